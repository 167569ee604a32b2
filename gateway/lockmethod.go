package gateway

import (
	"bytes"
	"encoding/xml"
	"errors"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/davgw/davgw/davfs"
	"github.com/davgw/davgw/locks"
)

// lock lets x/net/webdav create or refresh the lock; a LOCK on a missing
// name creates an empty file (RFC 4918 7.3), which needs its parent.
func (rq *request) lock() error {
	ctx := rq.r.Context()
	body, err := rq.readXMLBody()
	if err != nil {
		return err
	}
	hasBody := len(bytes.TrimSpace(body)) > 0
	if hasBody && rq.refreshMeant(time.Now()) {
		rq.r.Body, rq.r.ContentLength, hasBody = http.NoBody, 0, false
	}
	if hasBody {
		// x/net ignores the If header of a new lock: one whose lists all
		// fail (a changed ETag, a stale token) is 412 (RFC 4918 10.4).
		if _, err := rq.evalIf(); err != nil {
			return err
		}
		_, err := rq.fs.Lookup(ctx, rq.name, rq.slash)
		switch {
		case err == nil:
		case !errors.Is(err, fs.ErrNotExist) || errors.Is(err, davfs.ErrFileNamedAsFolder):
			return err // a file named as a folder is 404
		case rq.slash:
			return failWith(http.StatusConflict, errors.New("LOCK of a missing folder"))
		default:
			// x/net creates the empty file after it took the lock: a
			// name that cannot be created is refused before.
			if _, err := rq.fs.CreateTarget(ctx, rq.name); err != nil {
				return conflictIfMissing(err)
			}
		}
	}
	rq.r.Header.Set("Timeout", capTimeout(rq.r.Header.Get("Timeout")))

	// x/net writes the lock root without the WebDAV prefix (and without URL
	// escaping): mend the href of its small answer.
	buf, met := rq.delegate(rq.locks)
	out := buf.body.Bytes()
	if buf.status < 300 {
		out = fixLockRoot(out, rq.base)
	}
	return rq.relay(buf, met, out)
}

// refreshMeant reports whether a LOCK with a lockinfo body means to
// refresh a lock: its If header is one list of one lock token, and that
// token is a lock on the name itself. The npm webdav client's
// lock(path, {refreshToken}) refreshes that way, on the name it locked,
// where RFC 4918 (9.10.2) sends no body; as a new lock it could only fail
// (locks are exclusive: 423), so it is taken as the refresh it is. The
// token of a deep lock above the name is not: that body asks for a new
// lock (and a missing name's creation) inside an exclusive one, 423.
func (rq *request) refreshMeant(now time.Time) bool {
	ih, ok := parseIfHeader(rq.r.Header.Get("If"))
	if !ok || len(ih.lists) != 1 || len(ih.lists[0].conditions) != 1 {
		return false
	}
	c := ih.lists[0].conditions[0]
	if c.Not || c.Token == "" {
		return false
	}
	for _, l := range rq.locks.Discover(now, rq.name) {
		if l.Token == c.Token && l.Name == rq.name {
			return true
		}
	}
	return false
}

// capTimeout turns a LOCK Timeout header into "Second-N" with N at most
// locks.MaxTimeout ("Infinite" and a missing header get the cap).
func capTimeout(h string) string {
	maxSec := int64(locks.MaxTimeout / time.Second)
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
		href := (&url.URL{Path: davPath(davBase, name, false)}).EscapedPath()
		var esc bytes.Buffer
		_ = xml.EscapeText(&esc, []byte(href))
		return []byte("<D:lockroot><D:href>" + esc.String() + "</D:href></D:lockroot>")
	})
}

// lockDiscoveryXML renders active locks as DAV:lockdiscovery's content.
func lockDiscoveryXML(active []locks.Active, davBase string) []byte {
	var b bytes.Buffer
	for _, l := range active {
		depth := "infinity"
		if l.ZeroDepth {
			depth = "0"
		}
		b.WriteString(`<D:activelock xmlns:D="DAV:"><D:locktype><D:write/></D:locktype><D:lockscope><D:exclusive/></D:lockscope><D:depth>`)
		b.WriteString(depth)
		b.WriteString(`</D:depth>`)
		if l.Owner != "" && ownerIsSelfContained(l.Owner) {
			b.WriteString(`<D:owner>` + l.Owner + `</D:owner>`)
		}
		b.WriteString(`<D:timeout>Second-` + strconv.FormatInt(int64(max(l.Left, 0)/time.Second), 10) + `</D:timeout><D:locktoken><D:href>`)
		_ = xml.EscapeText(&b, []byte(l.Token))
		b.WriteString(`</D:href></D:locktoken><D:lockroot><D:href>`)
		_ = xml.EscapeText(&b, []byte((&url.URL{Path: davPath(davBase, l.Name, false)}).EscapedPath()))
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
