package tests

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"net/http"
	"net/url"
	"path"
	"strings"
	"testing"
)

// Names as clients send them (rclone's FsEncoding list among them): each
// either round-trips exactly (PUT, the listing's href, GET, MOVE, DELETE)
// or is refused with a 400 whose text names the problem; never a name that
// is stored but cannot be listed or opened again.

// nameCase is a name and the S3 key segment docs/names.md says it is
// stored under ("" = the name itself).
type nameCase struct{ name, key string }

func (c nameCase) s3Key() string {
	if c.key == "" {
		return c.name
	}
	return c.key
}

// xmlText reports whether an XML document can carry s as text (it comes
// back from an XML parser as it went in): then DAV:displayname shows the
// name, else its key.
func xmlText(s string) bool {
	var b bytes.Buffer
	b.WriteString("<x>")
	_ = xml.EscapeText(&b, []byte(s))
	b.WriteString("</x>")
	var got string
	return xml.Unmarshal(b.Bytes(), &got) == nil && got == s
}

// roundTripNames are names every back end must store and give back as
// they are: rclone's FsEncoding list (lib/encoder's cases: leading and
// trailing spaces, dots, tildes, CR, LF, tabs, VT, control characters,
// punctuation, invalid UTF-8, URL encoding) and the quote rune davgw
// escapes with, under the keys docs/names.md documents.
var roundTripNames = []nameCase{
	{" leading space", ""}, {"trailing space ", ""}, {"  ", ""}, {"trailing dot.", ""}, {"..dots", ""},
	{".hidden", ""}, {".leading dot", ""}, {"~leading tilde", ""},
	{"ｆｕｌｌｗｉｄｔｈ", ""}, {"＂＊：＜＞？｜＼／", ""}, {"␀␊␍␠", ""},
	{"question?mark", ""}, {"hash#mark", ""}, {"per%cent", ""}, {"amp&ersand", ""}, {"plus+sign", ""},
	{"test%46.txt", ""}, {"semi;colon", ""}, {"quote'single", ""}, {`quote"double`, ""},
	{"ümlaut", ""}, {"日本語", ""}, {"emoji 😀", ""}, {"colon:name", ""}, {"star*name", ""},
	{"pipe|name", ""}, {"lt<gt>", ""}, {"\uFFFD replacement", ""},
	{"!\"#$%&'()*+,-.:;<=>?@[]^_`{|}~", ""},
	{`!"#$%&'()*+,-.:;<=>?@[\]^_` + "`{|}~", `!"#$%&'()*+,-.:;<=>?@[‛5C]^_` + "`{|}~"},
	{`back\slash`, "back‛5Cslash"},
	{"\xfe", "‛FE"},
	{"a\xffb", "a‛FFb"},
	{"\xc3", "‛C3"},
	{"invalid utf-8\xfe", "invalid utf-8‛FE"},
	{"cr\rname", "cr‛0Dname"},
	{"lf\nname", "lf‛0Aname"},
	{"tab\tname", "tab‛09name"},
	{"del\x7f", "del‛7F"},
	{"\rleading CR", "‛0Dleading CR"},
	{"\nleading LF", "‛0Aleading LF"},
	{"\tleading HT", "‛09leading HT"},
	{"\vleading VT", "‛0Bleading VT"},
	{"trailing CR\r", "trailing CR‛0D"},
	{"trailing LF\n", "trailing LF‛0A"},
	{"trailing HT\t", "trailing HT‛09"},
	{"trailing VT\v", "trailing VT‛0B"},
	{"\x00\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0A\x0B\x0C\x0D\x0E\x0F\x10\x11\x12\x13\x14\x15\x16\x17\x18\x19\x1A\x1B\x1C\x1D\x1E\x1F\x7F",
		"‛00‛01‛02‛03‛04‛05‛06‛07‛08‛09‛0A‛0B‛0C‛0D‛0E‛0F‛10‛11‛12‛13‛14‛15‛16‛17‛18‛19‛1A‛1B‛1C‛1D‛1E‛1F‛7F"},
	{"non\uFFFEchar", "non‛EF‛BF‛BEchar"},
	{"non\uFFFFchar", "non‛EF‛BF‛BFchar"},
	{"quote‛rune", "quote‛‛rune"},
	{"‛FE", "‛‛FE"},
}

// refusedNames are raw path segments (as sent on the request line) that
// the gateway refuses with 400, and the text the 400 names them with: dot
// segments, names with a segment of more than 255 bytes in key form (what
// every store takes; 52 bytes that are not UTF-8 take 260, 43 quote runes 258), and names
// whose S3 key would pass S3's 1024 bytes.
var refusedNames = []struct{ raw, text string }{
	{"%2E%2E", `"."`},
	{"%2E", `"."`},
	{"a/%2E%2E/b", `"."`},
	{strings.Repeat("x", 256), "255"},
	{strings.Repeat("%FE", 52), "260 bytes"},
	{strings.Repeat("%E2%80%9B", 43), "258 bytes"}, // 129 bytes of quote runes, each doubled
	{strings.Repeat(strings.Repeat("y", 250)+"/", 4) + "z", "1024"},
}

func namesCases() []conformanceCase {
	return []conformanceCase{
		{"names from rclone's encoding list round-trip through PUT, S3 key, listing, GET, MOVE and DELETE", func(t *testing.T, e *davEnv) {
			keyPrefix, dir := e.caseDir(t)
			for _, c := range roundTripNames {
				p := dir + escapeSegment(c.name)
				body := []byte("content of " + c.name)
				expect(t, fmt.Sprintf("PUT %q", c.name), e.alice(t, http.MethodPut, p, nil, body), http.StatusCreated)
				if got, ok := e.getS3(t, keyPrefix+c.s3Key()); !ok || !bytes.Equal(got, body) {
					t.Fatalf("PUT %q: S3 holds %q (exists=%v) under the key %q", c.name, got, ok, keyPrefix+c.s3Key())
				}
				g := e.alice(t, http.MethodGet, p, nil, nil)
				expect(t, fmt.Sprintf("GET %q", c.name), g, http.StatusOK)
				if !bytes.Equal(g.Body, body) {
					t.Fatalf("GET %q = %q", c.name, g.Body)
				}
			}
			if keys := userKeys(t, e, keyPrefix); len(keys) != len(roundTripNames)+1 {
				t.Errorf("S3 holds %d keys under %s, want the marker and %d: %q", len(keys), keyPrefix, len(roundTripNames), keys)
			}
			r := e.alice(t, "PROPFIND", dir, map[string]string{"Depth": "1"}, nil)
			expect(t, "PROPFIND", r, http.StatusMultiStatus)
			listed, err := loadListing(e.URL+dir, r.Body)
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range roundTripNames {
				if _, ok := listed[c.name]; !ok {
					t.Errorf("%q is not listed under its own name (listed: %q)", c.name, keysOf(listed))
				}
			}
			if len(listed) != len(roundTripNames) {
				t.Errorf("listed %d names, want %d: %q", len(listed), len(roundTripNames), keysOf(listed))
			}
			// DAV:displayname is the name where XML can carry it, else the key.
			shown := map[string]string{}
			for _, m := range parseMultistatus(t, r.Body) {
				u, err := url.Parse(m.Href)
				if err != nil {
					t.Fatalf("href %q: %v", m.Href, err)
				}
				shown[path.Base(u.Path)] = m.Props["DAV: displayname"].Text
			}
			for _, c := range roundTripNames {
				want := c.s3Key()
				if xmlText(c.name) {
					want = c.name
				}
				if shown[c.name] != want {
					t.Errorf("displayname of %q = %q, want %q", c.name, shown[c.name], want)
				}
			}
			for _, c := range roundTripNames {
				from, to := dir+escapeSegment(c.name), dir+escapeSegment("moved "+c.name)
				expect(t, fmt.Sprintf("MOVE %q", c.name), e.alice(t, "MOVE", from, map[string]string{"Destination": e.URL + to, "Overwrite": "F"}, nil), http.StatusCreated)
				g := e.alice(t, http.MethodGet, to, nil, nil)
				expect(t, fmt.Sprintf("GET after MOVE %q", c.name), g, http.StatusOK)
				if string(g.Body) != "content of "+c.name {
					t.Errorf("GET after MOVE %q = %q", c.name, g.Body)
				}
				if _, ok := e.getS3(t, keyPrefix+"moved "+c.s3Key()); !ok {
					t.Errorf("MOVE of %q: no key %q", c.name, keyPrefix+"moved "+c.s3Key())
				}
				expect(t, fmt.Sprintf("DELETE %q", "moved "+c.name), e.alice(t, http.MethodDelete, to, nil, nil), http.StatusNoContent)
				if _, ok := e.getS3(t, keyPrefix+"moved "+c.s3Key()); ok {
					t.Errorf("DELETE of %q answered 204 and left the key", "moved "+c.name)
				}
				if _, ok := e.getS3(t, keyPrefix+c.s3Key()); ok {
					t.Errorf("MOVE of %q left its source", c.name)
				}
			}
			if keys := userKeys(t, e, keyPrefix); len(keys) != 1 {
				t.Errorf("after the DELETEs S3 holds %q under %s, want only the marker", keys, keyPrefix)
			}
		}},
		{"folders with escaped names list, copy and delete everything below them, keys no name maps to included", func(t *testing.T, e *davEnv) {
			keyPrefix, dir := e.caseDir(t)
			folder, copied := dir+escapeSegment("folder\xfe\r")+"/", dir+escapeSegment("copy\t‛")+"/"
			folderKey, copiedKey := keyPrefix+"folder‛FE‛0D/", keyPrefix+"copy‛09‛‛/"
			expect(t, "MKCOL", e.alice(t, "MKCOL", folder, nil, nil), http.StatusCreated)
			if _, ok := e.getS3(t, folderKey); !ok {
				t.Fatalf("MKCOL: no marker %q", folderKey)
			}
			inside := []nameCase{{"a\xfe", "a‛FE"}, {"b\nc", "b‛0Ac"}, {`d\e`, "d‛5Ce"}, {"plain", ""}}
			for _, c := range inside {
				expect(t, fmt.Sprintf("PUT %q", c.name), e.alice(t, http.MethodPut, folder+escapeSegment(c.name), nil, []byte(c.name)), http.StatusCreated)
			}
			expect(t, "MKCOL below", e.alice(t, "MKCOL", folder+escapeSegment("sub\x01")+"/", nil, nil), http.StatusCreated)
			expect(t, "PUT below", e.alice(t, http.MethodPut, folder+escapeSegment("sub\x01")+"/"+escapeSegment("deep\xff"), nil, []byte("deep")), http.StatusCreated)
			// Keys another S3 client wrote that no name maps to: not listed
			// (their names would open other keys), deleted with the folder.
			for _, k := range []string{"lone‛quote", "needless‛41"} {
				e.putS3(t, folderKey+k, []byte(k), "")
			}
			r := e.alice(t, "PROPFIND", folder, map[string]string{"Depth": "1"}, nil)
			expect(t, "PROPFIND", r, http.StatusMultiStatus)
			listed, err := loadListing(e.URL+folder, r.Body)
			if err != nil {
				t.Fatal(err)
			}
			if len(listed) != len(inside) {
				t.Errorf("the folder lists the files %q, want the %d put there", keysOf(listed), len(inside))
			}
			for _, c := range inside {
				if _, ok := listed[c.name]; !ok {
					t.Errorf("%q is not listed (listed: %q)", c.name, keysOf(listed))
				}
			}
			expect(t, "COPY the folder", e.alice(t, "COPY", folder, map[string]string{"Destination": e.URL + copied}, nil), http.StatusCreated)
			for _, c := range inside {
				g := e.alice(t, http.MethodGet, copied+escapeSegment(c.name), nil, nil)
				expect(t, fmt.Sprintf("GET the copy of %q", c.name), g, http.StatusOK)
				if string(g.Body) != c.name {
					t.Errorf("the copy of %q holds %q", c.name, g.Body)
				}
				if _, ok := e.getS3(t, copiedKey+c.s3Key()); !ok {
					t.Errorf("COPY: no key %q", copiedKey+c.s3Key())
				}
			}
			g := e.alice(t, http.MethodGet, copied+escapeSegment("sub\x01")+"/"+escapeSegment("deep\xff"), nil, nil)
			expect(t, "GET the deep copy", g, http.StatusOK)
			for _, f := range []string{folder, copied} {
				expect(t, "DELETE "+f, e.alice(t, http.MethodDelete, f, nil, nil), http.StatusNoContent)
			}
			if keys := e.b.keys(t, folderKey); len(keys) != 0 {
				t.Errorf("DELETE of the folder answered 204 and left %q", keys)
			}
			if keys := e.b.keys(t, copiedKey); len(keys) != 0 {
				t.Errorf("DELETE of the copy answered 204 and left %q", keys)
			}
			expect(t, "PROPFIND the deleted folder", e.alice(t, "PROPFIND", folder, map[string]string{"Depth": "0"}, nil), http.StatusNotFound)
		}},
		{"a lock on an escaped name shows the name as its root and its token opens writes to it", func(t *testing.T, e *davEnv) {
			_, dir := e.caseDir(t)
			p := dir + escapeSegment("locked\xfe\\")
			lr, tok := e.lock(t, p, http.StatusCreated)
			if !strings.Contains(string(lr.Body), "<D:href>"+p+"</D:href>") {
				t.Errorf("LOCK: the lock root is not %q: %s", p, lr.Body)
			}
			expect(t, "PUT without the token", e.alice(t, http.MethodPut, p, nil, []byte("x")), http.StatusLocked)
			expect(t, "PUT with the token", e.alice(t, http.MethodPut, p, map[string]string{"If": "<" + e.URL + p + "> (<" + tok + ">)"}, []byte("x")), http.StatusNoContent, http.StatusCreated)
			pp := e.alice(t, "PROPPATCH", p, map[string]string{"If": "(<" + tok + ">)"}, []byte(`<?xml version="1.0"?><D:propertyupdate xmlns:D="DAV:" xmlns:Z="urn:z"><D:set><D:prop><Z:color>red</Z:color></D:prop></D:set></D:propertyupdate>`))
			expect(t, "PROPPATCH", pp, http.StatusMultiStatus)
			if ms := parseMultistatus(t, pp.Body); len(ms) != 1 || ms[0].Href != p {
				t.Errorf("PROPPATCH answers for %v, want the href %q: %s", ms, p, pp.Body)
			}
			e.unlock(t, p, tok)
			expect(t, "DELETE", e.alice(t, http.MethodDelete, p, nil, nil), http.StatusNoContent)
		}},
		{"dot segments and names too long for an S3 key are refused with 400 that names the problem, and nothing is stored", func(t *testing.T, e *davEnv) {
			keyPrefix, dir := e.caseDir(t)
			expect(t, "PUT a file to move", e.alice(t, http.MethodPut, dir+"ok.txt", nil, []byte("ok")), http.StatusCreated)
			for _, c := range refusedNames {
				for _, m := range []string{http.MethodPut, "MKCOL", http.MethodGet, "PROPFIND"} {
					var body []byte
					if m == http.MethodPut {
						body = []byte("x")
					}
					r := e.alice(t, m, dir+c.raw, nil, body)
					expect(t, m+" "+truncate(c.raw, 40), r, http.StatusBadRequest)
					if !strings.Contains(string(r.Body), c.text) {
						t.Errorf("%s %s: the 400's text does not name the problem (%s): %q", m, truncate(c.raw, 40), c.text, r.Body)
					}
				}
				for _, m := range []string{"MOVE", "COPY"} {
					r := e.alice(t, m, dir+"ok.txt", map[string]string{"Destination": e.URL + dir + c.raw}, nil)
					expect(t, m+" onto "+truncate(c.raw, 40), r, http.StatusBadRequest)
					if !strings.Contains(string(r.Body), c.text) {
						t.Errorf("%s onto %s: the 400's text does not name the problem (%s): %q", m, truncate(c.raw, 40), c.text, r.Body)
					}
				}
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
			if keys := userKeys(t, e, keyPrefix); len(keys) != 2 {
				t.Errorf("S3 holds %q, want the marker and ok.txt", keys)
			}
			if got, ok := e.getS3(t, keyPrefix+"ok.txt"); !ok || string(got) != "ok" {
				t.Errorf("the source of the refused MOVEs changed: %q, %v", got, ok)
			}
		}},
		{"a folder COPY whose copies' keys would be too long for S3 is refused with 400 before anything is copied", func(t *testing.T, e *davEnv) {
			keyPrefix, dir := e.caseDir(t)
			// Three folders of 250-byte names hold the destination; the
			// source's child, 250 bytes, fits under the source but not
			// under the destination (more than 1024 bytes).
			parent := dir
			for _, c := range []string{"p", "q", "r"} {
				parent += strings.Repeat(c, 250) + "/"
				expect(t, "MKCOL "+c, e.alice(t, "MKCOL", parent, nil, nil), http.StatusCreated)
			}
			child := strings.Repeat("c", 250)
			expect(t, "MKCOL src", e.alice(t, "MKCOL", dir+"src/", nil, nil), http.StatusCreated)
			expect(t, "PUT the child", e.alice(t, http.MethodPut, dir+"src/"+child, nil, []byte("x")), http.StatusCreated)
			dst := parent + "dst"
			if n := len(keyPrefix) + len(strings.TrimPrefix(dst, dir)) + 1 + len(child); n <= 1024 {
				t.Fatalf("the copy's key would be %d bytes: the case needs more than 1024", n)
			}
			r := e.alice(t, "COPY", dir+"src/", map[string]string{"Destination": e.URL + dst + "/"}, nil)
			expect(t, "COPY onto a too deep destination", r, http.StatusBadRequest)
			if !strings.Contains(string(r.Body), "name too long") {
				t.Errorf("the 400's text does not name the problem: %q", r.Body)
			}
			expect(t, "PROPFIND the refused copy", e.alice(t, "PROPFIND", dst+"/", map[string]string{"Depth": "0"}, nil), http.StatusNotFound)
			// A folder whose marker fits S3 but not its index or a staged
			// copy inside (31 bytes more) is refused too; one with room is
			// made.
			rel := len(keyPrefix) + len(strings.TrimPrefix(parent, dir))
			tight := parent + strings.Repeat("t", 1020-rel-1)
			r = e.alice(t, "MKCOL", tight+"/", nil, nil)
			expect(t, "MKCOL of a folder with no room for its index", r, http.StatusBadRequest)
			if !strings.Contains(string(r.Body), "name too long") {
				t.Errorf("the 400's text does not name the problem: %q", r.Body)
			}
			roomy := parent + strings.Repeat("t", 1024-31-rel-1)
			expect(t, "MKCOL of a folder with room for its index", e.alice(t, "MKCOL", roomy+"/", nil, nil), http.StatusCreated)
			expect(t, "PUT with a kept time inside it", e.alice(t, "PUT", roomy+"/f", map[string]string{"X-OC-Mtime": "1000000000"}, []byte("f")), http.StatusCreated)
		}},
	}
}

// escapeSegment escapes one name as a path segment.
func escapeSegment(name string) string {
	return (&url.URL{Path: name}).EscapedPath()
}
