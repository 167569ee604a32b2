package davfs

import (
	"encoding/xml"
	"strings"
	"testing"

	"golang.org/x/net/webdav"
)

func TestDeadPropertiesSurviveTheMetadataEncoding(t *testing.T) {
	props := map[xml.Name]webdav.Property{
		{Space: "http://example.com/neon/litmus/", Local: "prop0"}: {XMLName: xml.Name{Space: "http://example.com/neon/litmus/", Local: "prop0"}, InnerXML: []byte("value0")},
		{Space: "urn:x", Local: "unicode"}:                         {XMLName: xml.Name{Space: "urn:x", Local: "unicode"}, InnerXML: []byte("\U0001F600 ü <b xmlns=\"urn:y\">x</b>"), Lang: "de"},
		{Space: "", Local: "nons"}:                                 {XMLName: xml.Name{Local: "nons"}},
	}
	enc, err := encodeProps(props)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range enc {
		if c > 0x7e || c < 0x20 {
			t.Fatalf("encoded value is not printable ASCII: %q", enc)
		}
	}
	got, err := decodeProps(enc)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(props) {
		t.Fatalf("got %d properties, want %d", len(got), len(props))
	}
	for n, p := range props {
		g, ok := got[n]
		if !ok || string(g.InnerXML) != string(p.InnerXML) || g.Lang != p.Lang {
			t.Fatalf("property %v: got %+v, want %+v", n, g, p)
		}
	}
}

func TestNoDeadPropertiesEncodeToNothing(t *testing.T) {
	enc, err := encodeProps(nil)
	if err != nil || enc != "" {
		t.Fatalf("encodeProps(nil) = %q, %v", enc, err)
	}
	got, err := decodeProps("")
	if err != nil || len(got) != 0 {
		t.Fatalf("decodeProps(\"\") = %v, %v", got, err)
	}
}

func TestGarbageMetadataIsAnErrorNotAPanic(t *testing.T) {
	for _, v := range []string{"!!!", "AAAA", strings.Repeat("A", 100)} {
		if _, err := decodeProps(v); err == nil {
			t.Fatalf("decodeProps(%q) accepted garbage", v)
		}
	}
}

func TestCleanNeverLeavesTheRoot(t *testing.T) {
	for in, want := range map[string]string{
		"":            "/",
		"/":           "/",
		"../../x":     "/x",
		"/a/../../b":  "/b",
		"a//b/":       "/a/b",
		"/./a/./b/..": "/a",
	} {
		if got := Clean(in); got != want {
			t.Errorf("Clean(%q) = %q, want %q", in, got, want)
		}
	}
}
