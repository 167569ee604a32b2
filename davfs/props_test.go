package davfs

import (
	"encoding/xml"
	"fmt"
	"strings"
	"testing"
	"time"

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

func TestModificationTimesParseFromEveryClientFormat(t *testing.T) {
	cases := []struct {
		in   string
		want int64 // Unix nanoseconds
		ok   bool
	}{
		{"1700000000", 1700000000e9, true},
		{"1700000000.5", 1700000000e9 + 5e8, true},
		{"1700000000.123456789123", 1700000000e9 + 123456789, true},
		{"Tue, 14 Nov 2023 22:13:20 GMT", 1700000000e9, true},
		{"2023-11-14T22:13:20Z", 1700000000e9, true},
		{"-5", 0, false},
		{"soon", 0, false},
		{"", 0, false},
	}
	for _, c := range cases {
		t.Run(c.in, func(t *testing.T) {
			got, ok := parsePropTime([]byte(c.in))
			if ok != c.ok || (ok && got.UnixNano() != c.want) {
				t.Fatalf("parsePropTime(%q) = %v, %v; want %d, %v", c.in, got, ok, c.want, c.ok)
			}
		})
	}
	if s := formatMTime(time.Unix(1700000000, 5e8)); s != "1700000000.5" {
		t.Fatalf("formatMTime = %q", s)
	}
}

func TestReservedNamesAreRecognisedInAnySegment(t *testing.T) {
	for name, want := range map[string]bool{
		"/.davgw-index.json":    true,
		"/a/.davgw-staging-1/b": true,
		"/a/davgw-index.json":   false,
		"/a/x.davgw-index.json": false,
		"/":                     false,
	} {
		if got := IsReserved(name); got != want {
			t.Errorf("IsReserved(%q) = %v, want %v", name, got, want)
		}
	}
}

func TestIndexCacheStaysWithinItsBudget(t *testing.T) {
	c := NewIndexCache(time.Minute, 10_000)
	real := func() int {
		n := 0
		for _, it := range c.items {
			n += it.size
		}
		return n
	}
	for i := range 20000 {
		key := fmt.Sprintf("k%d", i%50)
		li := &loadedIndex{entries: map[string]metaEntry{}, size: 100 + i%900}
		if i%3 == 0 {
			c.putIfCurrent(key, li, c.generation(key))
		} else {
			c.put(key, li)
		}
		if c.bytes != real() {
			t.Fatalf("after %d stores the count says %d bytes, the items hold %d", i, c.bytes, real())
		}
		if c.bytes > c.MaxBytes {
			t.Fatalf("after %d stores the cache holds %d bytes, more than %d", i, c.bytes, c.MaxBytes)
		}
	}
}

func TestAFetchThatRacedAnUpdateIsNotCached(t *testing.T) {
	c := NewIndexCache(time.Minute, 1<<20)
	gen := c.generation("k") // a reader starts
	fresh := &loadedIndex{entries: map[string]metaEntry{"a": {MTime: 2}}, etag: `"new"`}
	c.put("k", fresh) // an update lands meanwhile
	c.putIfCurrent("k", &loadedIndex{entries: map[string]metaEntry{}, etag: `"old"`}, gen)
	if li, ok := c.get("k", "", false); !ok || li.etag != `"new"` {
		t.Fatalf("the cache holds %+v, want the update", li)
	}
}

func TestDeadPropertiesPastTheUncompressedLimitAreRefusedNotTruncated(t *testing.T) {
	n := xml.Name{Space: "urn:x", Local: "big"}
	big := map[xml.Name]webdav.Property{n: {XMLName: n, InnerXML: []byte(strings.Repeat("x", maxEntryPropsJSON))}}
	if _, err := encodeProps(big); err != errPropsTooLarge {
		t.Fatalf("encodeProps of %d uncompressed bytes = %v, want errPropsTooLarge", maxEntryPropsJSON, err)
	}
	fits := map[xml.Name]webdav.Property{n: {XMLName: n, InnerXML: []byte(strings.Repeat("x", maxEntryPropsJSON-100))}}
	enc, err := encodeProps(fits)
	if err != nil || len(enc) > maxEntryProps {
		t.Fatalf("encodeProps just under the limit = %d bytes, %v", len(enc), err)
	}
	got, err := decodeProps(enc)
	if err != nil || len(got[n].InnerXML) != maxEntryPropsJSON-100 {
		t.Fatalf("decodeProps = %d bytes, %v", len(got[n].InnerXML), err)
	}
}
