package tests

import (
	"bytes"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// Names as clients send them (rclone's FsEncoding list among them): each
// either round-trips exactly (PUT, the listing's href, GET, MOVE, DELETE)
// or is refused with a 400 whose text names the problem; never a name that
// is stored but cannot be listed or opened again.

// roundTripNames are names every back end must store and give back as
// they are.
var roundTripNames = []string{
	" leading space", "trailing space ", "  ", "trailing dot.", "..dots", ".hidden",
	"ｆｕｌｌｗｉｄｔｈ", "question?mark", "hash#mark", "per%cent", "amp&ersand", "plus+sign",
	"semi;colon", "quote'single", `quote"double`, "ümlaut", "日本語", "emoji 😀",
	"colon:name", "star*name", "pipe|name", "lt<gt>",
}

// refusedNames are raw path segments (as sent on the request line) that
// the gateway refuses with 400: bytes that are not UTF-8, control
// characters (CR, LF, tab, DEL), U+FFFE and U+FFFF (no XML character: a
// listing would show U+FFFD instead), dot segments and backslashes (SeaweedFS
// lists "a\\b" as "a/b": the file could be read but never listed).
var refusedNames = []string{"%FE", "a%FFb", "%C3", "cr%0Dname", "lf%0Aname", "tab%09name", "del%7F", "%2E%2E", "back%5Cslash", "non%EF%BF%BEchar", "non%EF%BF%BFchar"}

func namesCases() []conformanceCase {
	return []conformanceCase{
		{"names from rclone's encoding list round-trip through PUT, listing, GET, MOVE and DELETE", func(t *testing.T, e *davEnv) {
			keyPrefix, dir := e.caseDir(t)
			for _, name := range roundTripNames {
				p := dir + escapeSegment(name)
				body := []byte("content of " + name)
				expect(t, "PUT "+name, e.alice(t, http.MethodPut, p, nil, body), http.StatusCreated)
				if got, ok := e.getS3(t, keyPrefix+name); !ok || !bytes.Equal(got, body) {
					t.Fatalf("PUT %q: S3 holds %q (exists=%v) under the key %q", name, got, ok, keyPrefix+name)
				}
				g := e.alice(t, http.MethodGet, p, nil, nil)
				expect(t, "GET "+name, g, http.StatusOK)
				if !bytes.Equal(g.Body, body) {
					t.Fatalf("GET %q = %q", name, g.Body)
				}
			}
			r := e.alice(t, "PROPFIND", dir, map[string]string{"Depth": "1"}, nil)
			expect(t, "PROPFIND", r, http.StatusMultiStatus)
			listed, err := loadListing(e.URL+dir, r.Body)
			if err != nil {
				t.Fatal(err)
			}
			for _, name := range roundTripNames {
				if _, ok := listed[name]; !ok {
					t.Errorf("%q is not listed under its own name (listed: %v)", name, keysOf(listed))
				}
			}
			if len(listed) != len(roundTripNames) {
				t.Errorf("listed %d names, want %d: %v", len(listed), len(roundTripNames), keysOf(listed))
			}
			for _, name := range roundTripNames {
				from, to := dir+escapeSegment(name), dir+escapeSegment("moved "+name)
				expect(t, "MOVE "+name, e.alice(t, "MOVE", from, map[string]string{"Destination": e.URL + to, "Overwrite": "F"}, nil), http.StatusCreated)
				expect(t, "GET after MOVE "+name, e.alice(t, http.MethodGet, to, nil, nil), http.StatusOK)
				expect(t, "DELETE "+name, e.alice(t, http.MethodDelete, to, nil, nil), http.StatusNoContent)
				if _, ok := e.getS3(t, keyPrefix+"moved "+name); ok {
					t.Errorf("DELETE of %q answered 204 and left the key", "moved "+name)
				}
				if _, ok := e.getS3(t, keyPrefix+name); ok {
					t.Errorf("MOVE of %q left its source", name)
				}
			}
		}},
		{"names that are not UTF-8, hold control characters or are dot segments are refused with 400, and nothing is stored", func(t *testing.T, e *davEnv) {
			keyPrefix, dir := e.caseDir(t)
			expect(t, "PUT a file to move", e.alice(t, http.MethodPut, dir+"ok.txt", nil, []byte("ok")), http.StatusCreated)
			for _, raw := range refusedNames {
				for _, m := range []string{http.MethodPut, "MKCOL"} {
					var body []byte
					if m == http.MethodPut {
						body = []byte("x")
					}
					r := e.alice(t, m, dir+raw, nil, body)
					expect(t, m+" "+raw, r, http.StatusBadRequest)
					if !strings.Contains(string(r.Body), "UTF-8") {
						t.Errorf("%s %s: the 400's text does not name the problem: %q", m, raw, r.Body)
					}
				}
				r := e.alice(t, "MOVE", dir+"ok.txt", map[string]string{"Destination": e.URL + dir + raw}, nil)
				expect(t, "MOVE onto "+raw, r, http.StatusBadRequest)
				r = e.alice(t, "COPY", dir+"ok.txt", map[string]string{"Destination": e.URL + dir + raw}, nil)
				expect(t, "COPY onto "+raw, r, http.StatusBadRequest)
			}
			// The folder still lists, holding only what was stored.
			r := e.alice(t, "PROPFIND", dir, map[string]string{"Depth": "1"}, nil)
			expect(t, "PROPFIND after the refusals", r, http.StatusMultiStatus)
			listed, err := loadListing(e.URL+dir, r.Body)
			if err != nil {
				t.Fatal(err)
			}
			if len(listed) != 1 {
				t.Errorf("the folder lists %v, want only ok.txt", keysOf(listed))
			}
			if got, ok := e.getS3(t, keyPrefix+"ok.txt"); !ok || string(got) != "ok" {
				t.Errorf("the source of the refused MOVEs changed: %q, %v", got, ok)
			}
		}},
	}
}

// escapeSegment escapes one name as a path segment.
func escapeSegment(name string) string {
	return (&url.URL{Path: name}).EscapedPath()
}
