package gateway

import (
	"bytes"
	"encoding/xml"
	"io"
	"net/url"
	"path"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/davgw/davgw/davfs"
	"github.com/davgw/davgw/locks"
)

// elementNames lists the (namespace-resolved) names of b's elements in
// document order, or ok = false if b is not well-formed XML. encoding/xml
// accepts some names XML does not (a local part "0" after a prefix, as in
// <A:0/>); those count as not well-formed here.
func elementNames(b []byte) (names []xml.Name, ok bool) {
	d := xml.NewDecoder(bytes.NewReader(b))
	for {
		tok, err := d.Token()
		if err == io.EOF {
			return names, true
		}
		if err != nil {
			return nil, false
		}
		if se, isStart := tok.(xml.StartElement); isStart {
			if !xmlName(se.Name.Local) {
				return nil, false
			}
			for _, a := range se.Attr {
				if !xmlName(a.Name.Local) {
					return nil, false
				}
			}
			names = append(names, se.Name)
		}
	}
}

// xmlName reports whether s can stand alone as an XML name (the ASCII
// rules, and any non-ASCII letter).
func xmlName(s string) bool {
	for i, r := range s {
		switch {
		case r == '_' || unicode.IsLetter(r):
		case i > 0 && (r == '-' || r == '.' || unicode.IsDigit(r)):
		default:
			return false
		}
	}
	return s != ""
}

// xmlSafeName reports a name the gateway accepts (davName refuses control
// characters) that XML text can carry as it is (no U+FFFE or U+FFFF).
func xmlSafeName(s string) bool {
	for _, r := range s {
		if r < 0x20 || r == 0x7f || r == 0xfffe || r == 0xffff {
			return false
		}
	}
	return true
}

// FuzzPropfindBody: checking and parsing a PROPFIND body never panics, and
// what parsePropfind accepts round-trips: written back as XML and parsed
// again, it asks for the same properties.
func FuzzPropfindBody(f *testing.F) {
	f.Fuzz(func(t *testing.T, body []byte) {
		_ = checkNamespaces(body, RequestLimits{}.withDefaults())
		pf, err := parsePropfind(body)
		if err != nil {
			return
		}
		for _, n := range append(slices.Clone(pf.Prop), pf.Include...) {
			if !xmlName(n.Local) {
				return // encoding/xml's leniency (<A:0/>), not the gateway's
			}
		}
		var b bytes.Buffer
		b.WriteString(`<D:propfind xmlns:D="DAV:">`)
		names := func(tag string, ns propNames) {
			if ns == nil {
				return
			}
			b.WriteString("<D:" + tag + ">")
			e := xml.NewEncoder(&b)
			for _, n := range ns {
				_ = e.EncodeToken(xml.StartElement{Name: n})
				_ = e.EncodeToken(xml.EndElement{Name: n})
			}
			_ = e.Flush()
			b.WriteString("</D:" + tag + ">")
		}
		if pf.Allprop != nil {
			b.WriteString("<D:allprop/>")
		}
		if pf.Propname != nil {
			b.WriteString("<D:propname/>")
		}
		names("prop", pf.Prop)
		names("include", pf.Include)
		b.WriteString(`</D:propfind>`)
		pf2, err := parsePropfind(b.Bytes())
		if err != nil {
			t.Fatalf("%q parsed as %+v, written back as %q, refused: %v", body, pf, b.Bytes(), err)
		}
		pf.XMLName, pf2.XMLName = xml.Name{}, xml.Name{}
		if !reflect.DeepEqual(pf, pf2) {
			t.Fatalf("%q parsed as %+v, written back as %q, parsed again as %+v", body, pf, b.Bytes(), pf2)
		}
	})
}

// FuzzProppatchBody: checking a PROPPATCH body never panics, and the
// rewrite that carries DAV:getlastmodified to davfs keeps the body
// well-formed with the same elements, only that one renamed.
func FuzzProppatchBody(f *testing.F) {
	from, to := xml.Name{Space: "DAV:", Local: "getlastmodified"}, davfs.MTimeSetter()
	f.Fuzz(func(t *testing.T, body []byte) {
		if checkNamespaces(body, RequestLimits{}.withDefaults()) != nil {
			return // refused with 400 before anything else reads it
		}
		before, ok := elementNames(body)
		if !ok {
			return
		}
		out, changed, err := renameProp(body, from, to)
		if err != nil {
			return
		}
		after, ok := elementNames(out)
		if !ok {
			t.Fatalf("%q was rewritten into malformed XML %q", body, out)
		}
		want := make([]xml.Name, len(before))
		renamed := false
		for i, n := range before {
			if n == from {
				n, renamed = to, true
			}
			want[i] = n
		}
		if changed != renamed || !slices.Equal(after, want) {
			t.Fatalf("%q: elements %v became %v (changed %v), want %v", body, before, after, changed, want)
		}
	})
}

// lockInfo is how x/net/webdav reads a LOCK body (its own type is not
// exported): the owner is kept as the client's inner XML.
type lockInfo struct {
	XMLName xml.Name `xml:"DAV: lockinfo"`
	Owner   struct {
		InnerXML string `xml:",innerxml"`
	} `xml:"DAV: owner"`
}

// FuzzLockBody: whatever owner a LOCK body carries, and whatever the
// locked name, the lockdiscovery the gateway writes and the lock answer it
// mends stay well-formed XML; an owner is repeated only when it is
// self-contained, and the lock root's href names the locked resource.
func FuzzLockBody(f *testing.F) {
	f.Fuzz(func(t *testing.T, body []byte, name string) {
		if checkNamespaces(body, RequestLimits{}.withDefaults()) != nil {
			return
		}
		var li lockInfo
		if xml.Unmarshal(body, &li) != nil {
			return
		}
		owner := li.Owner.InnerXML
		name = davfs.Clean(strings.ToValidUTF8(name, ""))
		if !xmlSafeName(name) {
			return
		}
		disc := lockDiscoveryXML([]locks.Active{{Token: "opaquelocktoken:x", Name: name, Owner: owner, Left: time.Minute}}, "/dav")
		doc := append(append([]byte(`<D:prop xmlns:D="DAV:"><D:lockdiscovery>`), disc...), `</D:lockdiscovery></D:prop>`...)
		if _, ok := elementNames(doc); !ok {
			t.Fatalf("owner %q, name %q: lockdiscovery is not well-formed: %q", owner, name, doc)
		}
		if shown := bytes.Contains(disc, []byte("<D:owner>")); shown != (owner != "" && ownerIsSelfContained(owner)) {
			t.Fatalf("owner %q shown: %v", owner, shown)
		}
		// x/net's answer: the lock root as a bare, XML-escaped name.
		var esc bytes.Buffer
		_ = xml.EscapeText(&esc, []byte(name))
		answer := []byte(`<?xml version="1.0" encoding="utf-8"?><D:prop xmlns:D="DAV:"><D:lockdiscovery><D:activelock><D:lockroot><D:href>` +
			esc.String() + `</D:href></D:lockroot></D:activelock></D:lockdiscovery></D:prop>`)
		fixed := fixLockRoot(answer, "/dav")
		var got struct {
			Href string `xml:"lockdiscovery>activelock>lockroot>href"`
		}
		if err := xml.Unmarshal(fixed, &got); err != nil {
			t.Fatalf("name %q: mended answer %q: %v", name, fixed, err)
		}
		u, err := url.Parse(got.Href)
		if err != nil || u.Path != path.Join("/dav", name) {
			t.Fatalf("name %q: lock root href %q (%v)", name, got.Href, err)
		}
	})
}
