package gateway

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"path"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/davgw/davgw/davfs"
)

// maxXMLBody caps PROPFIND, PROPPATCH and LOCK request bodies.
const maxXMLBody = 1 << 20

// readXMLBody reads a small XML request body whole and checks that its
// namespace declarations are legal (x/net/webdav accepts xmlns:p="", which
// XML Namespaces 1.0 forbids: litmus propfind_invalid2). It answers the
// error itself and returns ok = false.
func (rq *request) readXMLBody() (body []byte, ok bool) {
	rq.w.body.whole() // a small body: all of it within the idle timeout
	b, err := io.ReadAll(http.MaxBytesReader(rq.w, rq.r.Body, maxXMLBody))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			rq.w.fail(http.StatusRequestEntityTooLarge, err)
		} else {
			rq.w.fail(statusFor(err, http.StatusBadRequest), err)
		}
		return nil, false
	}
	if err := checkNamespaces(b); err != nil {
		rq.w.fail(http.StatusBadRequest, err)
		return nil, false
	}
	rq.r.Body = io.NopCloser(bytes.NewReader(b))
	rq.r.ContentLength = int64(len(b))
	return b, true
}

// XML body bounds: x/net/webdav decodes request bodies recursively and
// keeps every element, so a 1 MiB body of nested elements took gigabytes
// (issue 10, F5). No WebDAV client nests deeper than a few levels or
// sends thousands of elements; a body past either bound is refused (400)
// before it reaches x/net.
const (
	maxXMLDepth    = 32
	maxXMLElements = 20000
)

// checkNamespaces scans a body's tokens (never building a tree): it
// refuses illegal namespace declarations and bodies past the XML bounds.
func checkNamespaces(b []byte) error {
	if len(bytes.TrimSpace(b)) == 0 {
		return nil
	}
	d := xml.NewDecoder(bytes.NewReader(b))
	depth, elements := 0, 0
	for {
		tok, err := d.RawToken()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err // x/net reports malformed XML itself; this only adds a reason
		}
		switch t := tok.(type) {
		case xml.StartElement:
			depth++
			elements++
			if depth > maxXMLDepth {
				return fmt.Errorf("XML body nested deeper than %d elements", maxXMLDepth)
			}
			if elements > maxXMLElements {
				return fmt.Errorf("XML body with more than %d elements", maxXMLElements)
			}
			for _, a := range t.Attr {
				if a.Name.Space == "xmlns" && a.Value == "" {
					return errors.New("empty namespace name for prefix " + a.Name.Local)
				}
			}
		case xml.EndElement:
			depth--
		}
	}
}

// liveProps are the DAV: properties x/net/webdav computes itself.
var liveProps = map[string]bool{
	"resourcetype": true, "displayname": true, "getcontentlength": true,
	"getlastmodified": true, "creationdate": true, "getetag": true,
	"getcontenttype": true, "lockdiscovery": true, "supportedlock": true,
	"getcontentlanguage": true,
}

// asksLivePropsOnly reports whether a PROPFIND body names properties and
// all of them are live (Finder's and most listing requests): dead
// properties then need not be read.
func asksLivePropsOnly(body []byte) bool {
	d := xml.NewDecoder(bytes.NewReader(body))
	depth, inProp, named := 0, false, 0
	for {
		tok, err := d.Token()
		if err == io.EOF {
			return named > 0
		}
		if err != nil {
			return false
		}
		switch t := tok.(type) {
		case xml.StartElement:
			depth++
			switch {
			case depth == 2 && t.Name.Space == "DAV:" && t.Name.Local == "prop":
				inProp = true
			case depth == 2:
				return false // allprop, propname, include or unknown
			case depth == 3 && inProp:
				if t.Name.Space != "DAV:" || !liveProps[t.Name.Local] {
					return false
				}
				named++
			}
		case xml.EndElement:
			depth--
			if depth == 1 {
				inProp = false
			}
		}
	}
}

// propfind checks Depth (infinity is refused on collections), reads the
// target and, for Depth 1, its listing before the first byte is written, so
// that S3 failures get an honest status instead of a broken multistatus.
// The listing fills the request's stat cache: x/net's per-child Stat and
// OpenFile then cost nothing.
func (rq *request) propfind() {
	ctx := rq.r.Context()
	body, ok := rq.readXMLBody()
	if !ok {
		return
	}
	if asksLivePropsOnly(body) {
		ctx = davfs.WithLivePropsOnly(ctx)
	}
	if bytes.Contains(body, []byte("http://owncloud.org/ns")) && bytes.Contains(body, []byte("checksums")) {
		ctx = davfs.WithChecksums(ctx)
	}
	if q := rq.g.quota; q != nil && bytes.Contains(body, []byte("quota")) {
		if used, known := q.used(rq.root); known {
			ctx = davfs.WithQuota(ctx, used, max(0, q.limit-used))
		}
	}
	if rl, ok := rq.locks.(*rootLocks); ok && bytes.Contains(body, []byte("lockdiscovery")) {
		ctx = davfs.WithLockDiscovery(ctx, func(name string) []byte {
			return lockDiscoveryXML(rl.discover(time.Now(), name), rq.g.davBase)
		})
	}
	rq.r = rq.r.WithContext(ctx)
	// A Depth 1 PROPFIND lists a folder: the listing itself shows that the
	// folder exists, so the folder costs no request of its own beyond its
	// entry in its parent's index.
	var (
		fi  *davfs.FileInfo
		err error
	)
	if rq.r.Header.Get("Depth") == "1" {
		fi, err = rq.fs.LookupListing(ctx, rq.name, rq.slash)
	} else {
		fi, err = rq.fs.LookupFresh(ctx, rq.name, rq.slash)
	}
	if err == nil {
		err = rq.fs.LoadMeta(ctx, fi, rq.name) // its kept modification time
	}
	if err == nil && rq.slash && !fi.IsDir() {
		err = &fs.PathError{Op: "stat", Path: rq.name + "/", Err: fs.ErrNotExist}
	}
	if err != nil {
		rq.w.failErr(err, http.StatusNotFound)
		return
	}
	depth := strings.ToLower(strings.TrimSpace(rq.r.Header.Get("Depth")))
	rq.r.Header.Set("Depth", depth)
	switch depth {
	case "0", "1":
	case "", "infinity":
		if fi.IsDir() {
			h := rq.w.Header()
			h.Set("Content-Type", "application/xml; charset=utf-8")
			rq.w.WriteHeader(http.StatusForbidden)
			_, _ = io.WriteString(rq.w, `<?xml version="1.0" encoding="utf-8"?>`+"\n"+
				`<D:error xmlns:D="DAV:"><D:propfind-finite-depth/></D:error>`+"\n")
			return
		}
		rq.r.Header.Set("Depth", "0")
	default:
		rq.w.fail(http.StatusBadRequest, errors.New("bad Depth"))
		return
	}
	if rq.r.Header.Get("Depth") == "1" && fi.IsDir() {
		if _, err := rq.fs.ReadDir(ctx, rq.name); err != nil {
			rq.w.failErr(err, http.StatusNotFound)
			return
		}
	}
	if !isAllprop(body) {
		rq.delegate(rq.locks, rq.w)
		return
	}
	// Windows gives up on PROPFIND answers over 1 MB: keep allprop answers
	// compact by leaving out DAV:supportedlock (always the same exclusive
	// write lock; clients that want it name it, and then get it).
	sw := &stripWriter{ResponseWriter: rq.w, pat: []byte(supportedLockXML)}
	rq.delegate(rq.locks, sw)
	sw.flush()
}

// supportedLockXML is x/net/webdav's DAV:supportedlock value, byte for byte.
const supportedLockXML = `<D:supportedlock><D:lockentry xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype></D:lockentry></D:supportedlock>`

// isAllprop reports an allprop PROPFIND (an empty body is one) that does
// not name DAV:supportedlock in an include.
func isAllprop(body []byte) bool {
	if len(bytes.TrimSpace(body)) == 0 {
		return true
	}
	d := xml.NewDecoder(bytes.NewReader(body))
	depth, allprop := 0, false
	for {
		tok, err := d.Token()
		if err == io.EOF {
			return allprop
		}
		if err != nil {
			return false
		}
		switch t := tok.(type) {
		case xml.StartElement:
			depth++
			if depth == 2 && t.Name == (xml.Name{Space: "DAV:", Local: "allprop"}) {
				allprop = true
			}
			if t.Name == (xml.Name{Space: "DAV:", Local: "supportedlock"}) {
				return false
			}
		case xml.EndElement:
			depth--
		}
	}
}

// stripWriter removes every occurrence of pat from a streamed answer,
// holding back only the bytes that could start one.
type stripWriter struct {
	http.ResponseWriter
	pat []byte
	buf []byte
}

func (s *stripWriter) Write(p []byte) (int, error) {
	s.buf = bytes.ReplaceAll(append(s.buf, p...), s.pat, nil)
	if keep := len(s.pat) - 1; len(s.buf) > keep {
		out := s.buf[:len(s.buf)-keep]
		if _, err := s.ResponseWriter.Write(out); err != nil {
			return 0, err
		}
		s.buf = append([]byte(nil), s.buf[len(s.buf)-keep:]...)
	}
	return len(p), nil
}

func (s *stripWriter) flush() {
	if len(s.buf) > 0 {
		_, _ = s.ResponseWriter.Write(s.buf)
		s.buf = nil
	}
}

// proppatch checks the body, the target and the If header (ETag conditions
// included), then lets x/net/webdav apply the patch through davfs's
// DeadPropsHolder.
func (rq *request) proppatch() {
	body, ok := rq.readXMLBody()
	if !ok {
		return
	}
	if _, err := rq.lookup(); err != nil {
		rq.w.failErr(err, http.StatusNotFound)
		return
	}
	release, status := rq.confirmLocks(rq.name, "", false)
	if status != 0 {
		rq.w.fail(status, errors.New("lock or If header check failed"))
		return
	}
	defer release()
	// x/net/webdav refuses to set DAV:getlastmodified (a live property);
	// davgw keeps it as the modification time. It travels to davfs under
	// another name and comes back under its own in the answer.
	renamed := false
	if bytes.Contains(body, []byte("getlastmodified")) {
		if nb, changed, err := renameProp(body, xml.Name{Space: "DAV:", Local: "getlastmodified"}, davfs.MTimeSetter()); err == nil && changed {
			rq.r.Body = io.NopCloser(bytes.NewReader(nb))
			rq.r.ContentLength = int64(len(nb))
			renamed = true
		}
	}
	if !renamed {
		rq.delegate(preconfirmed{rq.locks}, rq.w)
		return
	}
	buf := &bufferedWriter{header: make(http.Header)}
	rq.delegate(preconfirmed{rq.locks}, buf)
	out := bytes.ReplaceAll(buf.body.Bytes(), []byte(`xmlns="`+davfs.MTimeSetter().Space+`"`), []byte(`xmlns="DAV:"`))
	for k, v := range buf.header {
		rq.w.Header()[k] = v
	}
	rq.w.Header().Set("Content-Length", strconv.Itoa(len(out)))
	if buf.status != 0 {
		rq.w.WriteHeader(buf.status)
	}
	_, _ = rq.w.Write(out)
}

// renameProp rewrites an XML body, renaming elements called from to to.
// Namespace declarations are re-emitted by the encoder.
func renameProp(body []byte, from, to xml.Name) ([]byte, bool, error) {
	d := xml.NewDecoder(bytes.NewReader(body))
	var out bytes.Buffer
	e := xml.NewEncoder(&out)
	changed := false
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, false, err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if t.Name == from {
				t.Name, changed = to, true
			}
			attrs := t.Attr[:0]
			for _, a := range t.Attr {
				if a.Name.Space != "xmlns" && !(a.Name.Space == "" && a.Name.Local == "xmlns") {
					attrs = append(attrs, a)
				}
			}
			t.Attr = attrs
			tok = t
		case xml.EndElement:
			if t.Name == from {
				t.Name = to
			}
			tok = t
		case xml.ProcInst:
			continue // the encoder refuses a second xml declaration; none is needed
		}
		if err := e.EncodeToken(xml.CopyToken(tok)); err != nil {
			return nil, false, err
		}
	}
	if err := e.Flush(); err != nil {
		return nil, false, err
	}
	return out.Bytes(), changed, nil
}

// maxLockTimeout caps lock lifetimes. Windows asks for "Infinite": a client
// that crashes holding such a lock would keep the file locked for everyone
// until a restart. Clients refresh locks they keep (Finder every ~300 s).
const maxLockTimeout = time.Hour

// lock lets x/net/webdav create or refresh the lock; a LOCK on a missing
// name creates an empty file (RFC 4918 7.3), which needs its parent.
func (rq *request) lock() {
	ctx := rq.r.Context()
	body, ok := rq.readXMLBody()
	if !ok {
		return
	}
	if len(bytes.TrimSpace(body)) > 0 {
		fi, err := rq.fs.Lookup(ctx, rq.name, rq.slash)
		switch {
		case err == nil && rq.slash && !fi.IsDir():
			rq.w.fail(http.StatusNotFound, nil)
			return
		case err == nil:
		case !errors.Is(err, fs.ErrNotExist):
			rq.w.failErr(err, http.StatusNotFound)
			return
		case rq.name == "/" || rq.slash:
			rq.w.fail(http.StatusConflict, errors.New("LOCK of a missing folder"))
			return
		default:
			if _, err := rq.fs.StatDir(ctx, path.Dir(rq.name)); err != nil {
				rq.w.failErr(err, http.StatusConflict)
				return
			}
		}
	}
	rq.r.Header.Set("Timeout", capTimeout(rq.r.Header.Get("Timeout")))

	// x/net writes the lock root without the WebDAV prefix (and without URL
	// escaping): buffer its small answer and mend the href.
	buf := &bufferedWriter{header: make(http.Header)}
	rq.delegate(rq.locks, buf)
	for k, v := range buf.header {
		rq.w.Header()[k] = v
	}
	out := buf.body.Bytes()
	if buf.status < 300 {
		out = fixLockRoot(out, rq.g.davBase)
	}
	rq.w.Header().Set("Content-Length", strconv.Itoa(len(out)))
	if buf.status != 0 {
		rq.w.WriteHeader(buf.status)
	}
	_, _ = rq.w.Write(out)
}

// capTimeout turns a LOCK Timeout header into "Second-N" with N at most
// maxLockTimeout ("Infinite" and a missing header get the cap).
func capTimeout(h string) string {
	maxSec := int64(maxLockTimeout / time.Second)
	first, _, _ := strings.Cut(h, ",")
	first = strings.TrimSpace(first)
	if n, ok := strings.CutPrefix(first, "Second-"); ok {
		if v, err := strconv.ParseInt(n, 10, 64); err == nil && v >= 0 && v < maxSec {
			return "Second-" + strconv.FormatInt(v, 10)
		}
	}
	return "Second-" + strconv.FormatInt(maxSec, 10)
}

var lockRootRE = regexp.MustCompile(`<D:lockroot><D:href>([^<]*)</D:href></D:lockroot>`)

// fixLockRoot rewrites x/net's lockroot href (a bare, XML-escaped name) into
// the escaped URL path under the WebDAV prefix.
func fixLockRoot(body []byte, davBase string) []byte {
	return lockRootRE.ReplaceAllFunc(body, func(m []byte) []byte {
		sub := lockRootRE.FindSubmatch(m)
		var name string
		if err := xml.Unmarshal([]byte("<x>"+string(sub[1])+"</x>"), &struct {
			XMLName xml.Name `xml:"x"`
			Text    *string  `xml:",chardata"`
		}{Text: &name}); err != nil {
			return m
		}
		href := (&url.URL{Path: path.Join(davBase, name)}).EscapedPath()
		var esc bytes.Buffer
		_ = xml.EscapeText(&esc, []byte(href))
		return []byte("<D:lockroot><D:href>" + esc.String() + "</D:href></D:lockroot>")
	})
}

// lockDiscoveryXML renders active locks as DAV:lockdiscovery's content.
func lockDiscoveryXML(locks []activeLock, davBase string) []byte {
	var b bytes.Buffer
	for _, l := range locks {
		depth := "infinity"
		if l.zeroDepth {
			depth = "0"
		}
		b.WriteString(`<D:activelock xmlns:D="DAV:"><D:locktype><D:write/></D:locktype><D:lockscope><D:exclusive/></D:lockscope><D:depth>`)
		b.WriteString(depth)
		b.WriteString(`</D:depth>`)
		if l.owner != "" && ownerIsSelfContained(l.owner) {
			b.WriteString(`<D:owner>` + l.owner + `</D:owner>`)
		}
		b.WriteString(`<D:timeout>Second-` + strconv.FormatInt(int64(max(l.left, 0)/time.Second), 10) + `</D:timeout><D:locktoken><D:href>`)
		_ = xml.EscapeText(&b, []byte(l.token))
		b.WriteString(`</D:href></D:locktoken><D:lockroot><D:href>`)
		_ = xml.EscapeText(&b, []byte((&url.URL{Path: path.Join(davBase, l.name)}).EscapedPath()))
		b.WriteString(`</D:href></D:lockroot></D:activelock>`)
	}
	return b.Bytes()
}

// ownerIsSelfContained reports whether a lock owner's XML (as the client
// sent it, without its surrounding declarations) stays well-formed where
// only the D: prefix is declared: no other prefixes, balanced elements.
func ownerIsSelfContained(owner string) bool {
	d := xml.NewDecoder(strings.NewReader(`<D:owner xmlns:D="DAV:">` + owner + `</D:owner>`))
	for {
		tok, err := d.Token()
		if err == io.EOF {
			return true
		}
		if err != nil {
			return false
		}
		if se, ok := tok.(xml.StartElement); ok {
			if se.Name.Space != "" && !strings.Contains(se.Name.Space, ":") {
				return false // an undeclared prefix
			}
			for _, a := range se.Attr {
				if a.Name.Space != "" && a.Name.Space != "xmlns" && !strings.Contains(a.Name.Space, ":") {
					return false
				}
			}
		}
	}
}

// bufferedWriter collects a small response.
type bufferedWriter struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (b *bufferedWriter) Header() http.Header { return b.header }
func (b *bufferedWriter) WriteHeader(code int) {
	if b.status == 0 {
		b.status = code
	}
}
func (b *bufferedWriter) Write(p []byte) (int, error) {
	if b.status == 0 {
		b.status = http.StatusOK
	}
	return b.body.Write(p)
}
