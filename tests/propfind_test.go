package tests

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// awkwardNames are file names every href must carry intact.
var awkwardNames = []string{"with space.txt", "ünïcødé ✓.txt", "100%.txt", "hash#tag.txt", "a+b&c=d.txt"}

const propfindListing = `<?xml version="1.0" encoding="utf-8"?>` +
	`<D:propfind xmlns:D="DAV:"><D:prop><D:resourcetype/><D:getcontentlength/><D:getetag/>` +
	`<D:getlastmodified/><D:displayname/><D:getcontenttype/></D:prop></D:propfind>`

func propfindCases() []conformanceCase {
	return []conformanceCase{
		{"PROPFIND Depth 0 on a file describes the file", func(t *testing.T, e *davEnv) {
			keyPrefix, dir := e.caseDir(t)
			etag := e.putS3(t, keyPrefix+"f.txt", []byte("twelve bytes"), "text/plain")
			r := e.alice(t, "PROPFIND", dir+"f.txt", map[string]string{"Depth": "0"}, []byte(propfindListing))
			expect(t, "PROPFIND Depth 0 on a file", r, http.StatusMultiStatus)
			ms := parseMultistatus(t, r.Body)
			if len(ms) != 1 {
				t.Fatalf("got %d responses, want 1: %s", len(ms), r)
			}
			m := ms[0]
			if got := hrefPath(t, m.Href); got != dir+"f.txt" {
				t.Errorf("href = %q, want %q", got, dir+"f.txt")
			}
			if m.isCollection() {
				t.Error("a file is reported as a collection")
			}
			if got := m.Props["DAV: getcontentlength"].Text; got != "12" {
				t.Errorf("getcontentlength = %q, want 12", got)
			}
			if got := m.Props["DAV: getetag"].Text; got != etag {
				t.Errorf("getetag = %q, want the S3 ETag %q", got, etag)
			}
			if _, err := http.ParseTime(m.Props["DAV: getlastmodified"].Text); err != nil {
				t.Errorf("getlastmodified = %q: %v", m.Props["DAV: getlastmodified"].Text, err)
			}
		}},
		{"PROPFIND Depth 0 on a folder describes only the folder", func(t *testing.T, e *davEnv) {
			keyPrefix, dir := e.caseDir(t)
			e.putS3(t, keyPrefix+"inside.txt", []byte("x"), "")
			for _, p := range []string{dir, strings.TrimSuffix(dir, "/")} {
				r := e.alice(t, "PROPFIND", p, map[string]string{"Depth": "0"}, []byte(propfindListing))
				expect(t, "PROPFIND Depth 0 on "+p, r, http.StatusMultiStatus)
				ms := parseMultistatus(t, r.Body)
				if len(ms) != 1 || !ms[0].isCollection() {
					t.Fatalf("PROPFIND Depth 0 on %s: want one collection, got %s", p, r)
				}
				if got := hrefPath(t, ms[0].Href); strings.TrimSuffix(got, "/") != strings.TrimSuffix(dir, "/") {
					t.Errorf("href = %q, want %q", got, dir)
				}
			}
			root := e.alice(t, "PROPFIND", "/dav/", map[string]string{"Depth": "0"}, nil)
			expect(t, "PROPFIND Depth 0 on the user's root", root, http.StatusMultiStatus)
		}},
		{"PROPFIND Depth 1 lists children with percent-encoded hrefs", func(t *testing.T, e *davEnv) {
			keyPrefix, dir := e.caseDir(t)
			for _, n := range awkwardNames {
				r := e.alice(t, http.MethodPut, dir+url.PathEscape(n), nil, []byte("content of "+n))
				expect(t, "PUT "+n, r, http.StatusCreated)
				if _, ok := e.getS3(t, keyPrefix+n); !ok {
					t.Errorf("PUT %q did not store the key %q", n, keyPrefix+n)
				}
			}
			expect(t, "MKCOL", e.alice(t, "MKCOL", dir+url.PathEscape("sub folder #1"), nil, nil), http.StatusCreated)
			e.putS3(t, keyPrefix+"implicit dir/deep.txt", []byte("x"), "") // a prefix without a marker

			r := e.alice(t, "PROPFIND", dir, map[string]string{"Depth": "1"}, []byte(propfindListing))
			expect(t, "PROPFIND Depth 1", r, http.StatusMultiStatus)
			want := map[string]bool{dir: true, dir + "sub folder #1/": true, dir + "implicit dir/": true}
			for _, n := range awkwardNames {
				want[dir+n] = false
			}
			got := map[string]msResponse{}
			for _, m := range parseMultistatus(t, r.Body) {
				if strings.ContainsAny(m.Href, " #") {
					t.Errorf("href %q is not percent-encoded", m.Href)
				}
				p := hrefPath(t, m.Href)
				if m.isCollection() && !strings.HasSuffix(p, "/") {
					p += "/"
				}
				got[p] = m
			}
			for p, isDir := range want {
				m, ok := got[p]
				if !ok {
					t.Errorf("PROPFIND Depth 1 lacks %q", p)
					continue
				}
				if m.isCollection() != isDir {
					t.Errorf("%q: collection=%v, want %v", p, m.isCollection(), isDir)
				}
				if !isDir {
					name := strings.TrimPrefix(p, dir)
					if l := m.Props["DAV: getcontentlength"].Text; l != strconv.Itoa(len("content of "+name)) {
						t.Errorf("%q: getcontentlength = %q", p, l)
					}
					s3etag, _, _, _ := e.headS3(t, keyPrefix+name)
					if m.Props["DAV: getetag"].Text != s3etag {
						t.Errorf("%q: getetag %q, S3 ETag %q", p, m.Props["DAV: getetag"].Text, s3etag)
					}
				}
			}
			if len(got) != len(want) {
				var names []string
				for p := range got {
					names = append(names, p)
				}
				sort.Strings(names)
				t.Errorf("PROPFIND Depth 1 returned %d entries %q, want %d", len(got), names, len(want))
			}
		}},
		{"PROPFIND without Depth or with Depth infinity on a folder answers 403 propfind-finite-depth", func(t *testing.T, e *davEnv) {
			_, dir := e.caseDir(t)
			for _, h := range []map[string]string{nil, {"Depth": "infinity"}} {
				r := e.alice(t, "PROPFIND", dir, h, []byte(propfindListing))
				expect(t, fmt.Sprintf("PROPFIND %v on a folder", h), r, http.StatusForbidden)
				if !strings.Contains(string(r.Body), "propfind-finite-depth") {
					t.Errorf("PROPFIND %v: body %q lacks propfind-finite-depth", h, r.Body)
				}
			}
		}},
		{"PROPFIND with Depth Infinity in capitals on a folder answers 403 propfind-finite-depth", func(t *testing.T, e *davEnv) {
			_, dir := e.caseDir(t)
			for _, depth := range []string{"Infinity", "INFINITY"} {
				r := e.alice(t, "PROPFIND", dir, map[string]string{"Depth": depth}, []byte(propfindListing))
				expect(t, "PROPFIND Depth: "+depth+" on a folder", r, http.StatusForbidden)
				if !strings.Contains(string(r.Body), "propfind-finite-depth") {
					t.Errorf("PROPFIND Depth: %s: body %q lacks propfind-finite-depth", depth, r.Body)
				}
			}
		}},
		{"PROPFIND Depth 1 over 2,500 objects makes 3 ListObjectsV2 pages and no per-entry request", func(t *testing.T, e *davEnv) {
			keyPrefix, dir := e.caseDir(t)
			const n = 2500
			start := time.Now()
			e.putManyS3(t, keyPrefix, n)
			created := time.Since(start)

			for _, variant := range []struct{ name, body string }{
				{"named properties", propfindListing},
				{"allprop", ""},
			} {
				mark := e.b.proxy.Mark()
				start = time.Now()
				var body []byte
				if variant.body != "" {
					body = []byte(variant.body)
				}
				r := e.alice(t, "PROPFIND", dir, map[string]string{"Depth": "1"}, body)
				took := time.Since(start)
				calls := e.b.proxy.Since(mark)
				expect(t, "PROPFIND Depth 1 over 2,500 objects ("+variant.name+")", r, http.StatusMultiStatus)
				ms := parseMultistatus(t, r.Body)
				files := 0
				for _, m := range ms {
					if !m.isCollection() {
						files++
					}
				}
				if files != n || len(ms) != n+1 {
					t.Errorf("%s: %d responses with %d files, want %d files plus the folder", variant.name, len(ms), files, n)
				}
				pages, other, perEntry, unrelated := classifyListingCalls(calls, keyPrefix)
				if len(unrelated) > 0 {
					t.Logf("%s: not counted, calls on other keys made meanwhile:%s", variant.name, describeCalls(unrelated))
					folder := strings.TrimSuffix(keyPrefix, "/")
					calls = slices.DeleteFunc(calls, func(c s3Call) bool { return c.Key != "" && !strings.HasPrefix(c.Key, folder) })
				}
				report(t, "%s: PROPFIND Depth 1 over %d objects (%s): %d S3 requests: %d ListObjectsV2 pages, "+
					"%d for the folder itself, %d per entry; %v in %v (objects created in %v)",
					e.b.name, n, variant.name, len(calls), pages, other, perEntry, countOps(calls), took.Round(time.Millisecond),
					created.Round(time.Millisecond))
				if len(calls) < 10 {
					t.Logf("%s: the S3 calls:%s", variant.name, describeCalls(calls))
				}
				if pages != 3 || other > 2 || perEntry != 0 {
					t.Errorf("%s: want 3 ListObjectsV2 pages, at most 2 other calls and none per entry; got:%s",
						variant.name, describeCalls(calls))
				}
			}

			// S3 fails after the first page: the 207 has gone out, so the
			// answer is cut; a client must never read a partial listing
			// as a whole one.
			e.fault(t, accessDenied, func(c s3Call) bool {
				return c.Op() == "ListObjectsV2" && c.Query.Get("prefix") == keyPrefix && c.Query.Has("continuation-token")
			})
			status, body, readErr := e.rawAlice(t, "PROPFIND", dir, map[string]string{"Depth": "1"}, []byte(propfindListing))
			report(t, "%s: PROPFIND Depth 1 with its second LIST page refused: status %d, %d bytes, then %v",
				e.b.name, status, len(body), readErr)
			if status != http.StatusMultiStatus {
				t.Errorf("status %d, want 207 sent after the first page", status)
			}
			if readErr == nil || bytes.Contains(body, []byte("</D:multistatus>")) {
				t.Errorf("the cut listing ended cleanly (read error %v, %d bytes): a client would take it for the whole folder", readErr, len(body))
			}
		}},
		{"PROPFIND Depth 1 reads the index by name when the first page ends before it", func(t *testing.T, e *davEnv) {
			keyPrefix, dir := e.caseDir(t)
			const n = 1001 // "-00000".."-01000" all sort before ".davgw-index.json"
			e.putManyNamedS3(t, keyPrefix, "-%05d", n)
			expect(t, "PROPPATCH of the last name", e.alice(t, "PROPPATCH", dir+"-01000", nil, []byte(deadPropPatch)), http.StatusMultiStatus)
			mark := e.b.proxy.Mark()
			r := e.alice(t, "PROPFIND", dir, map[string]string{"Depth": "1"}, []byte(deadPropFind))
			calls := e.b.proxy.SinceUnder(mark, keyPrefix)
			expect(t, "PROPFIND Depth 1", r, http.StatusMultiStatus)
			ms := parseMultistatus(t, r.Body)
			if len(ms) != n+1 {
				t.Fatalf("%d responses, want %d", len(ms), n+1)
			}
			colours := 0
			for _, m := range ms {
				if c := m.Props["urn:davgw:test colour"].Text; c != "" {
					colours++
					if hrefPath(t, m.Href) != dir+"-01000" || c != "deep blue & green" {
						t.Errorf("%s shows colour %q", m.Href, c)
					}
				}
			}
			if colours != 1 {
				t.Errorf("%d entries show the dead property, want exactly -01000", colours)
			}
			t.Logf("S3 calls:%s", describeCalls(calls))
		}},
	}
}

// classifyListingCalls splits the S3 calls of one PROPFIND of the folder
// keyPrefix: listing pages (ListObjectsV2 of the folder, max-keys absent or
// at least 1000), per-entry calls (anything on a key inside the folder) and
// the rest (stat of the folder itself). Calls on unrelated keys (such as a
// late check of an earlier test's aborted upload) are returned apart.
func classifyListingCalls(calls []s3Call, keyPrefix string) (pages, other, perEntry int, unrelated []s3Call) {
	folder := strings.TrimSuffix(keyPrefix, "/")
	for _, c := range calls {
		switch {
		case c.Key != "" && !strings.HasPrefix(c.Key, folder):
			unrelated = append(unrelated, c)
		case c.Op() == "ListObjectsV2" && c.Query.Get("prefix") == keyPrefix && bigPage(c.Query.Get("max-keys")):
			pages++
		case c.Op() != "ListObjectsV2" && strings.HasPrefix(c.Key, keyPrefix) && len(c.Key) > len(keyPrefix):
			perEntry++
		default:
			other++
		}
	}
	return pages, other, perEntry, unrelated
}

func bigPage(maxKeys string) bool {
	if maxKeys == "" {
		return true
	}
	n, err := strconv.Atoi(maxKeys)
	return err == nil && n >= 1000
}

// putManyS3 creates n small objects under keyPrefix straight in S3, 32 at a time.
func (e *davEnv) putManyS3(t testing.TB, keyPrefix string, n int) {
	t.Helper()
	e.putManyNamedS3(t, keyPrefix, "f-%05d.txt", n)
}

// putManyNamedS3 is putManyS3 with the names made by format from 0..n-1.
func (e *davEnv) putManyNamedS3(t testing.TB, keyPrefix, format string, n int) {
	t.Helper()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	jobs := make(chan int)
	for range 32 {
		wg.Go(func() {
			for i := range jobs {
				key := keyPrefix + fmt.Sprintf(format, i)
				_, err := e.b.s3.PutObject(context.Background(), &s3.PutObjectInput{
					Bucket: &e.b.bucket, Key: aws.String(key), Body: strings.NewReader(key),
				})
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = fmt.Errorf("PutObject %s: %w", key, err)
					}
					mu.Unlock()
				}
			}
		})
	}
	for i := range n {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	if firstErr != nil {
		t.Fatal(firstErr)
	}
}

const deadPropPatch = `<?xml version="1.0" encoding="utf-8"?>` +
	`<D:propertyupdate xmlns:D="DAV:" xmlns:Z="urn:davgw:test"><D:set><D:prop>` +
	`<Z:colour>deep blue &amp; green</Z:colour></D:prop></D:set></D:propertyupdate>`

const deadPropFind = `<?xml version="1.0" encoding="utf-8"?>` +
	`<D:propfind xmlns:D="DAV:" xmlns:Z="urn:davgw:test"><D:prop><Z:colour/></D:prop></D:propfind>`

const win32Patch = `<?xml version="1.0" encoding="utf-8"?>` +
	`<D:propertyupdate xmlns:D="DAV:" xmlns:Z="urn:schemas-microsoft-com:"><D:set><D:prop>` +
	`<Z:Win32CreationTime>Tue, 14 Nov 2023 22:13:20 GMT</Z:Win32CreationTime>` +
	`<Z:Win32LastAccessTime>Tue, 14 Nov 2023 22:13:20 GMT</Z:Win32LastAccessTime>` +
	`<Z:Win32LastModifiedTime>Tue, 14 Nov 2023 22:13:20 GMT</Z:Win32LastModifiedTime>` +
	`<Z:Win32FileAttributes>00000020</Z:Win32FileAttributes>` +
	`</D:prop></D:set></D:propertyupdate>`

// deadProp returns the urn:davgw:test colour property of path ("" if absent).
func (e *davEnv) deadProp(t *testing.T, path string) string {
	t.Helper()
	r := e.alice(t, "PROPFIND", path, map[string]string{"Depth": "0"}, []byte(deadPropFind))
	expect(t, "PROPFIND of the dead property on "+path, r, http.StatusMultiStatus)
	ms := parseMultistatus(t, r.Body)
	if len(ms) != 1 {
		t.Fatalf("PROPFIND Depth 0 of %s: %d responses", path, len(ms))
	}
	return ms[0].Props["urn:davgw:test colour"].Text
}

func proppatchCases() []conformanceCase {
	return []conformanceCase{
		{"PROPPATCH keeps a dead property that PROPFIND returns and COPY and MOVE carry", func(t *testing.T, e *davEnv) {
			_, dir := e.caseDir(t)
			expect(t, "PUT", e.alice(t, http.MethodPut, dir+"props.txt", nil, []byte("p")), http.StatusCreated)
			r := e.alice(t, "PROPPATCH", dir+"props.txt", nil, []byte(deadPropPatch))
			expect(t, "PROPPATCH", r, http.StatusMultiStatus)
			ms := parseMultistatus(t, r.Body)
			if len(ms) != 1 || !strings.Contains(ms[0].Status["urn:davgw:test colour"], " 200") {
				t.Fatalf("PROPPATCH did not answer 200 for the property: %s", r)
			}
			const want = "deep blue & green"
			if got := e.deadProp(t, dir+"props.txt"); got != want {
				t.Fatalf("PROPFIND returned %q, want %q", got, want)
			}
			expect(t, "COPY", e.alice(t, "COPY", dir+"props.txt", map[string]string{"Destination": e.URL + dir + "copied.txt"}, nil),
				http.StatusCreated)
			if got := e.deadProp(t, dir+"copied.txt"); got != want {
				t.Errorf("after COPY the copy has %q, want %q", got, want)
			}
			expect(t, "MOVE", e.alice(t, "MOVE", dir+"props.txt", map[string]string{"Destination": e.URL + dir + "moved.txt"}, nil),
				http.StatusCreated)
			if got := e.deadProp(t, dir+"moved.txt"); got != want {
				t.Errorf("after MOVE the destination has %q, want %q", got, want)
			}
		}},
		{"PROPPATCH of Win32 times succeeds on files and on folders", func(t *testing.T, e *davEnv) {
			keyPrefix, dir := e.caseDir(t)
			e.putS3(t, keyPrefix+"w.txt", []byte("w"), "")
			for _, p := range []string{dir + "w.txt", dir} {
				r := e.alice(t, "PROPPATCH", p, nil, []byte(win32Patch))
				expect(t, "PROPPATCH Win32 times on "+p, r, http.StatusMultiStatus)
				for _, m := range parseMultistatus(t, r.Body) {
					for prop, st := range m.Status {
						if !strings.Contains(st, " 200") {
							t.Errorf("PROPPATCH on %s: %s answered %q, want 200", p, prop, st)
						}
					}
				}
			}
			// Keeping Win32LastModifiedTime as the mtime shown by GET and
			// listings is the client-compatibility issue's work (kept
			// times in listings without a request per entry).
		}},
	}
}
