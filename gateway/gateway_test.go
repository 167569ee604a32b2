package gateway

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"strings"
	"testing"

	"golang.org/x/net/webdav"

	"github.com/davgw/davgw/davfs"
	"github.com/davgw/davgw/s3vfs"
)

func TestDavNameKeepsEveryPathInsideTheNamespace(t *testing.T) {
	g := &Gateway{davBase: "/dav"}
	cases := []struct {
		path string
		want string
		ok   bool
	}{
		{"/dav", "/", true},
		{"/dav/", "/", true},
		{"/dav/a/b.txt", "/a/b.txt", true},
		{"/dav//a//b", "/a/b", true},
		{"/dav/a/", "/a", true},
		{"/davx/a", "", false},
		{"/", "", false},
		{"/dav/../alice/x", "", false},
		{"/dav/a/../../alice", "", false},
		{"/dav/./a", "", false},
		{"/dav/a\x00b", "/a‛00b", true}, // escaped into the key form (davfs.EncodeName)
		{"/dav/a\nb", "/a‛0Ab", true},
		{`/dav/..\alice\x`, "/..‛5Calice‛5Cx", true}, // a backslash is no separator
		{"/dav/\xfe", "/‛FE", true},                  // not UTF-8
		{"/dav/a\xffb/c", "/a‛FFb/c", true},
		{"/dav/a\uFFFEb", "/a‛EF‛BF‛BEb", true}, // no XML character
		{"/dav/a\uFFFF", "/a‛EF‛BF‛BF", true},
		{"/dav/it‛s", "/it‛‛s", true},
		{"/dav/a\xfe/../b", "", false},
		{"/dav/a\uFFFDb", "/a\uFFFDb", true},
	}
	for _, c := range cases {
		t.Run(fmt.Sprintf("%q maps to %q (ok=%v)", c.path, c.want, c.ok), func(t *testing.T) {
			got, ok := g.davName(c.path)
			if ok != c.ok || got != c.want {
				t.Fatalf("davName(%q) = %q, %v; want %q, %v", c.path, got, ok, c.want, c.ok)
			}
		})
	}
}

func TestSingleRangeHintsOnlySatisfiableSingleRanges(t *testing.T) {
	cases := []struct {
		h          string
		size       int64
		start, end int64
		ok         bool
	}{
		{"bytes=0-99", 1000, 0, 99, true},
		{"bytes=900-2000", 1000, 900, 999, true},
		{"bytes=-100", 1000, 900, 999, true},
		{"bytes=-5000", 1000, 0, 999, true},
		{"bytes=100-", 1000, 0, 0, false},
		{"bytes=0-1,5-6", 1000, 0, 0, false},
		{"bytes=2000-3000", 1000, 0, 0, false},
		{"bytes=5-1", 1000, 0, 0, false},
		{"items=0-1", 1000, 0, 0, false},
		{"bytes=x-y", 1000, 0, 0, false},
	}
	for _, c := range cases {
		t.Run(c.h, func(t *testing.T) {
			s, e, ok := singleRange(c.h, c.size)
			if ok != c.ok || (ok && (s != c.start || e != c.end)) {
				t.Fatalf("singleRange(%q, %d) = %d, %d, %v", c.h, c.size, s, e, ok)
			}
		})
	}
}

func TestETagListMatching(t *testing.T) {
	cases := []struct {
		list, etag string
		exists     bool
		want       bool
	}{
		{"*", `"a"`, true, true},
		{"*", "", false, false},
		{`"a"`, `"a"`, true, true},
		{`"b", "a"`, `"a"`, true, true},
		{`W/"a"`, `"a"`, true, true},
		{`"b"`, `"a"`, true, false},
		{`"a"`, "", true, false},
	}
	for _, c := range cases {
		t.Run(c.list+" against "+c.etag, func(t *testing.T) {
			if got := etagListMatches(c.list, c.etag, c.exists); got != c.want {
				t.Fatalf("got %v, want %v", got, c.want)
			}
		})
	}
}

func TestEmptyPrefixedNamespaceDeclarationsAreRejected(t *testing.T) {
	bad := `<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:prop><bar:foo xmlns:bar=""/></D:prop></D:propfind>`
	if err := checkNamespaces([]byte(bad), RequestLimits{}.withDefaults()); err == nil {
		t.Fatal("xmlns:bar=\"\" was accepted")
	}
	good := `<?xml version="1.0"?><D:propfind xmlns:D="DAV:" xmlns=""><D:allprop/></D:propfind>`
	if err := checkNamespaces([]byte(good), RequestLimits{}.withDefaults()); err != nil {
		t.Fatalf("a legal body was refused: %v", err)
	}
	if err := checkNamespaces(nil, RequestLimits{}.withDefaults()); err != nil {
		t.Fatalf("an empty body was refused: %v", err)
	}
}

func TestErrorsMapToHonestStatuses(t *testing.T) {
	cases := []struct {
		name string
		err  error
		want int
	}{
		{"throttling is 503", fmt.Errorf("put: %w", s3vfs.ErrUnavailable), http.StatusServiceUnavailable},
		{"access denied by S3 is 403", &fs.PathError{Op: "stat", Path: "/x", Err: fmt.Errorf("%w: %w", fs.ErrPermission, s3vfs.ErrAccessDenied)}, http.StatusForbidden},
		{"a precondition failed at S3 is 412", s3vfs.ErrPreconditionFailed, http.StatusPreconditionFailed},
		{"too large is 413", s3vfs.ErrTooLarge, http.StatusRequestEntityTooLarge},
		{"too many entries is 507", davfs.ErrTooManyEntries, webdav.StatusInsufficientStorage},
		{"not found uses the caller's status", &fs.PathError{Op: "stat", Path: "/x", Err: fs.ErrNotExist}, http.StatusTeapot},
		{"a parent that is a file is 409", &fs.PathError{Op: "stat", Path: "/x", Err: errors.Join(fs.ErrNotExist, davfs.ErrNotDir)}, http.StatusConflict},
		{"an incomplete body is 400", s3vfs.ErrIncomplete, http.StatusBadRequest},
		{"anything else is 500", errors.New("boom"), http.StatusInternalServerError},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := statusFor(c.err, http.StatusTeapot); got != c.want {
				t.Fatalf("statusFor(%v) = %d, want %d", c.err, got, c.want)
			}
		})
	}
}

func TestLivePropsOnlyRequestsAreRecognised(t *testing.T) {
	cases := []struct {
		name, body string
		want       bool
	}{
		{"Finder's listing body", `<D:propfind xmlns:D="DAV:"><D:prop><D:getlastmodified/><D:getcontentlength/><D:creationdate/><D:resourcetype/></D:prop></D:propfind>`, true},
		{"an empty body is allprop", ``, false},
		{"allprop", `<D:propfind xmlns:D="DAV:"><D:allprop/></D:propfind>`, false},
		{"propname", `<D:propfind xmlns:D="DAV:"><D:propname/></D:propfind>`, false},
		{"a dead property", `<D:propfind xmlns:D="DAV:"><D:prop><D:getetag/><Z:Win32FileAttributes xmlns:Z="urn:schemas-microsoft-com:"/></D:prop></D:propfind>`, false},
		{"an unknown DAV: property", `<D:propfind xmlns:D="DAV:"><D:prop><D:quota-used-bytes/></D:prop></D:propfind>`, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			pf, err := parsePropfind([]byte(c.body))
			if err != nil {
				t.Fatal(err)
			}
			if got := asksLivePropsOnly(pf); got != c.want {
				t.Fatalf("got %v, want %v", got, c.want)
			}
		})
	}
}

func TestGetlastmodifiedIsRenamedForDavfs(t *testing.T) {
	body := `<?xml version="1.0" encoding="utf-8" ?><D:propertyupdate xmlns:D="DAV:"><D:set><D:prop>` +
		`<D:getlastmodified>Tue, 14 Nov 2023 22:13:20 GMT</D:getlastmodified>` +
		`<Z:Win32FileAttributes xmlns:Z="urn:schemas-microsoft-com:">00000020</Z:Win32FileAttributes>` +
		`</D:prop></D:set></D:propertyupdate>`
	out, changed, err := renameProp([]byte(body), xml.Name{Space: "DAV:", Local: "getlastmodified"}, davfs.MTimeSetter())
	if err != nil || !changed {
		t.Fatalf("renameProp: changed=%v err=%v", changed, err)
	}
	var doc struct {
		Set struct {
			Prop struct {
				Inner []byte `xml:",innerxml"`
			} `xml:"DAV: prop"`
		} `xml:"DAV: set"`
	}
	if err := xml.Unmarshal(out, &doc); err != nil {
		t.Fatalf("rewritten body is not XML: %v\n%s", err, out)
	}
	d := xml.NewDecoder(bytes.NewReader(out))
	var names []xml.Name
	for {
		tok, err := d.Token()
		if err != nil {
			break
		}
		if se, ok := tok.(xml.StartElement); ok {
			names = append(names, se.Name)
		}
	}
	want := []xml.Name{{Space: "DAV:", Local: "propertyupdate"}, {Space: "DAV:", Local: "set"}, {Space: "DAV:", Local: "prop"},
		davfs.MTimeSetter(), {Space: "urn:schemas-microsoft-com:", Local: "Win32FileAttributes"}}
	if fmt.Sprint(names) != fmt.Sprint(want) {
		t.Fatalf("elements = %v, want %v", names, want)
	}
}

func TestActiveContentTypesAreRecognised(t *testing.T) {
	for ct, want := range map[string]bool{
		"text/html; charset=utf-8":  true,
		"TEXT/HTML":                 true,
		"image/svg+xml":             true,
		"application/atom+xml":      true,
		"application/pdf":           true,
		"text/plain; charset=utf-8": false,
		"image/jpeg":                false,
		"application/octet-stream":  false,
		"text/plain, text/html":     true, // several types: any active one counts
		"text/plain,image/svg+xml":  true,
		"text/plain, image/png":     false,
		"text/xsl":                  true,
		"multipart/x-mixed-replace": true,
		"text/<html>":               true, // does not parse
		"":                          false,
	} {
		if got := activeContent(ct); got != want {
			t.Errorf("activeContent(%q) = %v, want %v", ct, got, want)
		}
	}
}

func TestXMLBodiesPastTheBoundsAreRefusedByTheTokenScan(t *testing.T) {
	for _, limits := range []RequestLimits{RequestLimits{}.withDefaults(), {XMLDepth: 5, XMLElements: 12}} {
		d, n := limits.XMLDepth, limits.XMLElements
		// propfind + d-1 nested: d deep; one more is past the bound.
		deep := `<D:propfind xmlns:D="DAV:">` + strings.Repeat("<a>", d) + strings.Repeat("</a>", d) + `</D:propfind>`
		if err := checkNamespaces([]byte(deep), limits); err == nil || !strings.Contains(err.Error(), "deeper") || !strings.Contains(err.Error(), "xml_depth") {
			t.Errorf("limits %+v: a body nested %d deep: %v, want refused as too deep", limits, d+1, err)
		}
		ok := `<D:propfind xmlns:D="DAV:">` + strings.Repeat("<a>", d-1) + strings.Repeat("</a>", d-1) + `</D:propfind>`
		if err := checkNamespaces([]byte(ok), limits); err != nil {
			t.Errorf("limits %+v: a body nested %d deep: %v, want accepted", limits, d, err)
		}
		many := `<D:propfind xmlns:D="DAV:"><D:prop>` + strings.Repeat("<D:x/>", n-1) + `</D:prop></D:propfind>`
		if err := checkNamespaces([]byte(many), limits); err == nil || !strings.Contains(err.Error(), "xml_elements") {
			t.Errorf("limits %+v: a body of %d elements: %v, want refused as too many", limits, n+1, err)
		}
		enough := `<D:propfind xmlns:D="DAV:"><D:prop>` + strings.Repeat("<D:x/>", n-2) + `</D:prop></D:propfind>`
		if err := checkNamespaces([]byte(enough), limits); err != nil {
			t.Errorf("limits %+v: a body of %d elements: %v, want accepted", limits, n, err)
		}
	}
}

func TestAnswersShowNamesDecoded(t *testing.T) {
	cases := []struct {
		key     string // a name in key form, as davName gives it
		dir     bool
		href    string // unescaped URL path
		display string
	}{
		{"/plain.txt", false, "/dav/plain.txt", "plain.txt"},
		{"/a/folder", true, "/dav/a/folder/", "folder"},
		{"/", true, "/dav/", ""},
		{"/invalid‛FE", false, "/dav/invalid\xfe", "invalid‛FE"},
		{"/cr‛0Dlf‛0Atab‛09", false, "/dav/cr\rlf\ntab\t", "cr\rlf\ntab\t"},
		{"/vt‛0B", false, "/dav/vt\v", "vt‛0B"},
		{"/back‛5Cslash", false, "/dav/back\\slash", `back\slash`},
		{"/non‛EF‛BF‛BE", false, "/dav/non\uFFFE", "non‛EF‛BF‛BE"},
		{"/it‛‛s", false, "/dav/it‛s", "it‛s"},
	}
	for _, c := range cases {
		if got := davPath("/dav", c.key, c.dir); got != c.href {
			t.Errorf("davPath(%q) = %q, want %q", c.key, got, c.href)
		}
		if c.key == "/" {
			continue
		}
		base := c.key[strings.LastIndexByte(c.key, '/')+1:]
		if got := displayName(base); got != c.display {
			t.Errorf("displayName(%q) = %q, want %q", base, got, c.display)
		}
	}
}
