package gateway

import (
	"bufio"
	"bytes"
	"context"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/net/webdav"

	"github.com/davgw/davgw/davfs"
)

// PROPFIND answers are written here rather than by x/net/webdav's Handler,
// so that a listing streams while S3's pages arrive. The XML is x/net's,
// element for element: every property of the DAV: namespace carries the
// "D:" prefix (older Windows ignores elements in a default namespace), a
// property of another namespace declares it, and a value is written as
// stored.

// propfindBody is a parsed PROPFIND request body (RFC 4918 14.20), with
// x/net/webdav's rules for which combinations are valid.
type propfindBody struct {
	XMLName  xml.Name  `xml:"DAV: propfind"`
	Allprop  *struct{} `xml:"DAV: allprop"`
	Propname *struct{} `xml:"DAV: propname"`
	Prop     propNames `xml:"DAV: prop"`
	Include  propNames `xml:"DAV: include"`
}

// propNames are the property names inside DAV:prop or DAV:include: empty
// elements, at least one.
type propNames []xml.Name

func (pn *propNames) UnmarshalXML(d *xml.Decoder, start xml.StartElement) error {
	for {
		t, err := nextToken(d)
		if err != nil {
			return err
		}
		switch t := t.(type) {
		case xml.EndElement:
			if len(*pn) == 0 {
				return fmt.Errorf("%s must not be empty", start.Name.Local)
			}
			return nil
		case xml.StartElement:
			end, err := nextToken(d)
			if err != nil {
				return err
			}
			if _, ok := end.(xml.EndElement); !ok {
				return fmt.Errorf("property %s has a value in a PROPFIND", t.Name.Local)
			}
			*pn = append(*pn, t.Name)
		}
	}
}

// nextToken skips comments, processing instructions and directives (RFC
// 4918 17: ignored wherever they appear).
func nextToken(d *xml.Decoder) (xml.Token, error) {
	for {
		t, err := d.Token()
		if err != nil {
			return nil, err
		}
		switch t.(type) {
		case xml.Comment, xml.ProcInst, xml.Directive:
			continue
		}
		return t, nil
	}
}

var errInvalidPropfind = fmt.Errorf("invalid PROPFIND body")

// parsePropfind reads a PROPFIND body; an empty one asks for allprop.
func parsePropfind(body []byte) (propfindBody, error) {
	if len(body) == 0 {
		return propfindBody{Allprop: new(struct{})}, nil
	}
	var pf propfindBody
	if err := xml.NewDecoder(bytes.NewReader(body)).Decode(&pf); err != nil {
		if err == io.EOF {
			err = errInvalidPropfind
		}
		return propfindBody{}, err
	}
	switch {
	case pf.Allprop == nil && pf.Include != nil,
		pf.Allprop != nil && (pf.Prop != nil || pf.Propname != nil),
		pf.Prop != nil && pf.Propname != nil,
		pf.Propname == nil && pf.Allprop == nil && pf.Prop == nil:
		return propfindBody{}, errInvalidPropfind
	}
	return pf, nil
}

// liveProp is a property davgw computes from a resource's FileInfo: value
// appends its XML to dst (a listing's entries share one buffer).
type liveProp struct {
	name  xml.Name
	dir   bool // it applies to folders too
	value func(dst []byte, ctx context.Context, name string, fi *davfs.FileInfo) []byte
}

func davName(local string) xml.Name { return xml.Name{Space: "DAV:", Local: local} }

// liveProps are the live properties, in the order allprop shows them.
var liveProps = []liveProp{
	{davName("resourcetype"), true, func(dst []byte, _ context.Context, _ string, fi *davfs.FileInfo) []byte {
		if fi.IsDir() {
			return append(dst, `<D:collection xmlns:D="DAV:"/>`...)
		}
		return dst
	}},
	{davName("displayname"), true, func(dst []byte, _ context.Context, name string, fi *davfs.FileInfo) []byte {
		if name == "/" {
			return dst
		}
		return appendEscaped(dst, displayName(fi.Name()))
	}},
	{davName("getcontentlength"), false, func(dst []byte, _ context.Context, _ string, fi *davfs.FileInfo) []byte {
		return strconv.AppendInt(dst, fi.Size(), 10)
	}},
	{davName("getlastmodified"), true, func(dst []byte, _ context.Context, _ string, fi *davfs.FileInfo) []byte {
		return fi.ModTime().UTC().AppendFormat(dst, http.TimeFormat)
	}},
	{davName("getcontenttype"), false, func(dst []byte, ctx context.Context, _ string, fi *davfs.FileInfo) []byte {
		ct, _ := fi.ContentType(ctx)
		return appendEscaped(dst, ct)
	}},
	{davName("getetag"), false, func(dst []byte, ctx context.Context, _ string, fi *davfs.FileInfo) []byte {
		if etag, err := fi.ETag(ctx); err == nil {
			return appendEscaped(dst, etag)
		}
		return fmt.Appendf(dst, `"%x%x"`, fi.ModTime().UnixNano(), fi.Size())
	}},
	{davName("supportedlock"), true, func(dst []byte, _ context.Context, _ string, _ *davfs.FileInfo) []byte {
		return append(dst, supportedLockEntry...)
	}},
}

const supportedLockEntry = `<D:lockentry xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype></D:lockentry>`

// hiddenLive are live properties that show only when davfs supplies them:
// a client cannot set them (PROPPATCH refuses) and, asked for by name
// without a value, they answer 404.
var hiddenLive = map[xml.Name]bool{
	davName("creationdate"): true, davName("getcontentlanguage"): true, davName("lockdiscovery"): true,
}

func findLive(n xml.Name) *liveProp {
	for i := range liveProps {
		if liveProps[i].name == n {
			return &liveProps[i]
		}
	}
	return nil
}

// appendEscaped appends s to dst as XML character data.
func appendEscaped(dst []byte, s string) []byte {
	if plainText(s) {
		return append(dst, s...)
	}
	b := bytes.NewBuffer(dst)
	_ = xml.EscapeText(b, []byte(s))
	return b.Bytes()
}

// plainText reports whether xml.EscapeText leaves s as it is: printable
// ASCII without any of the characters it escapes. Most names, ETags and
// types are, and a listing writes them per entry.
func plainText(s string) bool {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c < 0x20 || c >= 0x7f, c == '"', c == '\'', c == '&', c == '<', c == '>':
			return false
		}
	}
	return true
}

// propScratch is the memory propstats reuses from one resource to the
// next of an answer, so that a listing's entries cost no allocations of
// their own for their live properties. What propstats returns with it is
// valid until its next call with the same scratch.
type propScratch struct {
	values         []byte
	names          []xml.Name
	found, missing []webdav.Property
	out            []webdav.Propstat
}

// propstats answers pf for one resource: found properties under 200, the
// others under 404 (names only).
func propstats(ctx context.Context, pf propfindBody, name string, fi *davfs.FileInfo, dead map[xml.Name]webdav.Property, sc *propScratch) []webdav.Propstat {
	sc.values, sc.found, sc.missing, sc.out = sc.values[:0], sc.found[:0], sc.missing[:0], sc.out[:0]
	applies := func(lp *liveProp) bool { return lp != nil && (lp.dir || !fi.IsDir()) }
	if pf.Propname != nil {
		for _, lp := range liveProps {
			if applies(&lp) {
				sc.found = append(sc.found, webdav.Property{XMLName: lp.name})
			}
		}
		for _, n := range sortedNames(dead) {
			sc.found = append(sc.found, webdav.Property{XMLName: n})
		}
		return append(sc.out, webdav.Propstat{Status: http.StatusOK, Props: sc.found})
	}
	names := []xml.Name(pf.Prop)
	if pf.Allprop != nil {
		// Windows gives up on PROPFIND answers over 1 MB: allprop leaves
		// out DAV:supportedlock (always the same exclusive write lock);
		// clients that want it name it in an include.
		names = sc.names[:0]
		for _, lp := range liveProps {
			if applies(&lp) && lp.name.Local != "supportedlock" {
				names = append(names, lp.name)
			}
		}
		for _, n := range sortedNames(dead) {
			if findLive(n) == nil {
				names = append(names, n)
			}
		}
		for _, n := range pf.Include {
			if !containsName(names, n) {
				names = append(names, n)
			}
		}
		sc.names = names
	}
	for _, n := range names {
		if p, found := dead[n]; found {
			sc.found = append(sc.found, p)
			continue
		}
		if lp := findLive(n); applies(lp) {
			start := len(sc.values)
			sc.values = lp.value(sc.values, ctx, name, fi)
			// A later append may move sc.values; this slice keeps the
			// bytes it was given.
			sc.found = append(sc.found, webdav.Property{XMLName: n, InnerXML: sc.values[start:len(sc.values):len(sc.values)]})
			continue
		}
		sc.missing = append(sc.missing, webdav.Property{XMLName: n})
	}
	if len(sc.found) > 0 {
		sc.out = append(sc.out, webdav.Propstat{Status: http.StatusOK, Props: sc.found})
	}
	if len(sc.missing) > 0 {
		sc.out = append(sc.out, webdav.Propstat{Status: http.StatusNotFound, Props: sc.missing})
	}
	if len(sc.out) == 0 {
		sc.out = append(sc.out, webdav.Propstat{Status: http.StatusOK})
	}
	return sc.out
}

func sortedNames(m map[xml.Name]webdav.Property) []xml.Name {
	out := make([]xml.Name, 0, len(m))
	for n := range m {
		out = append(out, n)
	}
	slices.SortFunc(out, func(a, b xml.Name) int {
		if c := strings.Compare(a.Space, b.Space); c != 0 {
			return c
		}
		return strings.Compare(a.Local, b.Local)
	})
	return out
}

func containsName(list []xml.Name, n xml.Name) bool {
	for _, m := range list {
		if m == n {
			return true
		}
	}
	return false
}

// multistatus writes a 207 answer response by response through a buffer:
// the status and the first bytes go out only when the buffer first fills
// (or at the end), so that a failure before then still gets an honest
// status instead of a multistatus.
type multistatus struct {
	w       http.ResponseWriter
	bw      *bufio.Writer
	started bool // the 207 and bytes went out: no other status is possible now
	err     error
}

func newMultistatus(w http.ResponseWriter) *multistatus {
	m := &multistatus{w: w}
	m.bw = bufio.NewWriterSize(startWriter{m}, 64<<10)
	_, _ = m.bw.WriteString(`<?xml version="1.0" encoding="UTF-8"?><D:multistatus xmlns:D="DAV:">`)
	return m
}

// startWriter writes the 207 status before the first bytes of the body.
type startWriter struct{ m *multistatus }

func (s startWriter) Write(p []byte) (int, error) {
	if !s.m.started {
		s.m.started = true
		s.m.w.Header().Set("Content-Type", "text/xml; charset=utf-8")
		s.m.w.WriteHeader(webdav.StatusMulti)
	}
	n, err := s.m.w.Write(p)
	if err != nil && s.m.err == nil {
		s.m.err = err
	}
	return n, err
}

// response writes one resource's answer (href is its URL path, unescaped).
func (m *multistatus) response(href string, pstats []webdav.Propstat) error {
	b := m.bw
	b.WriteString(`<D:response><D:href>`)
	if !plainPath(href) {
		href = (&url.URL{Path: href}).EscapedPath()
	}
	writeEscaped(b, href)
	b.WriteString(`</D:href>`)
	for _, ps := range pstats {
		b.WriteString(`<D:propstat><D:prop>`)
		for _, p := range ps.Props {
			writeProp(b, p)
		}
		b.WriteString(`</D:prop><D:status>HTTP/1.1 `)
		b.WriteString(strconv.Itoa(ps.Status))
		b.WriteString(" ")
		writeEscaped(b, webdav.StatusText(ps.Status))
		b.WriteString(`</D:status></D:propstat>`)
	}
	b.WriteString(`</D:response>`)
	return m.err
}

// writeProp writes a property element as x/net does: the D: prefix for
// DAV:, a default namespace declaration for any other.
func writeProp(b *bufio.Writer, p webdav.Property) {
	open := p.XMLName.Local
	if strings.Contains(open, ":") {
		return // no XML can name it (a stored name with an unbound prefix)
	}
	b.WriteByte('<')
	switch p.XMLName.Space {
	case xmlNamespace: // bound to "xml:" and never declared
		open = "xml:" + open
		b.WriteString(open)
	case "DAV:":
		open = "D:" + open
		b.WriteString(open)
	case "":
		b.WriteString(open)
	default:
		b.WriteString(open)
		b.WriteString(` xmlns="`)
		writeEscaped(b, p.XMLName.Space)
		b.WriteByte('"')
	}
	if p.Lang != "" {
		b.WriteString(` xml:lang="`)
		writeEscaped(b, p.Lang)
		b.WriteByte('"')
	}
	b.WriteByte('>')
	b.Write(p.InnerXML)
	b.WriteString("</")
	b.WriteString(open)
	b.WriteByte('>')
}

// plainPath reports whether url.URL's EscapedPath leaves the path p as it
// is: letters, digits, "/" and -._~ only (a conservative subset of what it
// leaves unescaped).
func plainPath(p string) bool {
	for i := 0; i < len(p); i++ {
		switch c := p[i]; {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '/', c == '-', c == '.', c == '_', c == '~':
		default:
			return false
		}
	}
	return true
}

const xmlNamespace = "http://www.w3.org/XML/1998/namespace"

func writeEscaped(w *bufio.Writer, s string) {
	if plainText(s) {
		_, _ = w.WriteString(s)
		return
	}
	_ = xml.EscapeText(w, []byte(s))
}

// close ends the multistatus and sends what is buffered.
func (m *multistatus) close() error {
	_, _ = m.bw.WriteString(`</D:multistatus>`)
	if err := m.bw.Flush(); err != nil {
		return err
	}
	return m.err
}

// discard drops what is buffered: only before anything went out.
func (m *multistatus) discard() { m.bw.Reset(io.Discard) }
