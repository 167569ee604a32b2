package gateway

import (
	"bytes"
	"encoding/xml"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"golang.org/x/net/webdav"
)

// TestMultistatusWritesPropertiesAsXNetDoes checks the XML of one
// response: D: prefixes for DAV:, a declared default namespace for other
// namespaces, xml:lang, escaped hrefs and values, names in the XML
// namespace with their reserved prefix, and stored names that no XML can
// hold left out.
func TestMultistatusWritesPropertiesAsXNetDoes(t *testing.T) {
	rr := httptest.NewRecorder()
	ms := newMultistatus(rr)
	err := ms.response("/dav/a&b <c>/", []webdav.Propstat{
		{Status: http.StatusOK, Props: []webdav.Property{
			{XMLName: xml.Name{Space: "DAV:", Local: "getetag"}, InnerXML: []byte(`&#34;x&#34;`)},
			{XMLName: xml.Name{Space: `urn:q"&`, Local: "colour"}, Lang: "en", InnerXML: []byte(`blue`)},
			{XMLName: xml.Name{Space: xmlNamespace, Local: "space"}, InnerXML: []byte(`preserve`)},
			{XMLName: xml.Name{Space: "a", Local: "b:c"}, InnerXML: []byte(`x`)},
		}},
		{Status: http.StatusNotFound, Props: []webdav.Property{{XMLName: xml.Name{Space: "DAV:", Local: "quota"}}}},
	})
	if err == nil {
		err = ms.close()
	}
	if err != nil {
		t.Fatal(err)
	}
	want := `<?xml version="1.0" encoding="UTF-8"?><D:multistatus xmlns:D="DAV:"><D:response><D:href>/dav/a&amp;b%20%3Cc%3E/</D:href>` +
		`<D:propstat><D:prop><D:getetag>&#34;x&#34;</D:getetag><colour xmlns="urn:q&#34;&amp;" xml:lang="en">blue</colour>` +
		`<xml:space>preserve</xml:space></D:prop><D:status>HTTP/1.1 200 OK</D:status></D:propstat>` +
		`<D:propstat><D:prop><D:quota></D:quota></D:prop><D:status>HTTP/1.1 404 Not Found</D:status></D:propstat></D:response></D:multistatus>`
	if got := rr.Body.String(); got != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
	if rr.Code != webdav.StatusMulti || !strings.HasPrefix(rr.Header().Get("Content-Type"), "text/xml") {
		t.Fatalf("status %d, Content-Type %q", rr.Code, rr.Header().Get("Content-Type"))
	}
	if err := xml.Unmarshal(rr.Body.Bytes(), new(struct{})); err != nil {
		t.Fatalf("not XML: %v", err)
	}
}

// TestMultistatusSendsNothingUntilItsBufferFills: a failure before the
// first bytes went out can still be answered with its own status.
func TestMultistatusSendsNothingUntilItsBufferFills(t *testing.T) {
	rr := httptest.NewRecorder()
	ms := newMultistatus(rr)
	if err := ms.response("/dav/x", []webdav.Propstat{{Status: http.StatusOK}}); err != nil {
		t.Fatal(err)
	}
	if ms.started || rr.Body.Len() != 0 {
		t.Fatalf("started=%v with %d bytes sent after one small response", ms.started, rr.Body.Len())
	}
	ms.discard()
	writeFailure(rr, failWith(http.StatusServiceUnavailable, nil))
	if rr.Code != http.StatusServiceUnavailable || strings.Contains(rr.Body.String(), "multistatus") {
		t.Fatalf("after discard: %d %q", rr.Code, rr.Body.String())
	}
}

// TestFastPathsWriteWhatTheLibrariesWould checks the shortcuts of the
// listing writer against encoding/xml and net/url on names of every kind.
func TestFastPathsWriteWhatTheLibrariesWould(t *testing.T) {
	cases := []string{"", "plain.txt", "a b", "a&b", `q"uote`, "it's", "<tag>", "tab\there", "nl\n", "cr\r",
		"ümlaut", "日本", "\xff\xfe", "~tilde_-.", "x%41", "a+b", "semi;colon", "del\x7f", "/dav/a/b/", "/dav/a b/"}
	for _, s := range cases {
		var want bytes.Buffer
		_ = xml.EscapeText(&want, []byte(s))
		if got := string(appendEscaped(nil, s)); got != want.String() {
			t.Errorf("appendEscaped(%q) = %q, encoding/xml writes %q", s, got, want.String())
		}
		if got := string(appendEscaped([]byte("before:"), s)); got != "before:"+want.String() {
			t.Errorf("appendEscaped after other bytes (%q) = %q", s, got)
		}
		if plainPath(s) {
			if esc := (&url.URL{Path: s}).EscapedPath(); esc != s {
				t.Errorf("plainPath(%q) is true, but net/url escapes it to %q", s, esc)
			}
		}
	}
}
