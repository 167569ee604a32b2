package tests

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"testing"
	"time"
)

// indexKey is the per-folder index of kept times (davfs), read alongside a
// file read from the shared cache or with one GET.
const indexKey = ".davgw-index.json"

// fileCalls splits the S3 calls of one request into those on key, the
// listings, the reads of folder indexes, and anything else.
func fileCalls(calls []s3Call, key string) (onKey, lists, indexes, other []s3Call) {
	for _, c := range calls {
		switch {
		case c.Op() == "ListObjectsV2":
			lists = append(lists, c)
		case c.Key == key:
			onKey = append(onKey, c)
		case strings.HasSuffix(c.Key, "/"+indexKey) && c.Op() == "GetObject":
			indexes = append(indexes, c)
		default:
			other = append(other, c)
		}
	}
	return onKey, lists, indexes, other
}

func economyCases() []conformanceCase {
	return []conformanceCase{
		{"GET, HEAD and Range GET of a file cost one S3 request on the object and no LIST", func(t *testing.T, e *davEnv) {
			keyPrefix, dir := e.caseDir(t)
			content := bytes.Repeat([]byte("0123456789abcdef"), 64) // 1 KiB
			e.putS3(t, keyPrefix+"f.bin", content, "application/octet-stream")
			tests := []struct {
				name   string
				method string
				header map[string]string
				status int
				body   []byte
				op     string
				rng    string
			}{
				{"GET", http.MethodGet, nil, http.StatusOK, content, "GetObject", ""},
				{"HEAD", http.MethodHead, nil, http.StatusOK, nil, "HeadObject", ""},
				{"Range GET", http.MethodGet, map[string]string{"Range": "bytes=100-199"}, http.StatusPartialContent, content[100:200], "GetObject", "bytes=100-199"},
				{"suffix Range GET", http.MethodGet, map[string]string{"Range": "bytes=-24"}, http.StatusPartialContent, content[1000:], "GetObject", "bytes=-24"},
			}
			counts := make([]string, 0, len(tests))
			for _, tt := range tests {
				mark := e.b.proxy.Mark()
				r := e.alice(t, tt.method, dir+"f.bin", tt.header, nil)
				calls := e.b.proxy.SinceUnder(mark, keyPrefix)
				expect(t, tt.name+" of a 1 KiB file", r, tt.status)
				if tt.method == http.MethodGet && !bytes.Equal(r.Body, tt.body) {
					t.Errorf("%s: %d bytes, want %d", tt.name, len(r.Body), len(tt.body))
				}
				if got := r.Header.Get("Etag"); got == "" {
					t.Errorf("%s: no ETag", tt.name)
				}
				onKey, lists, indexes, other := fileCalls(calls, keyPrefix+"f.bin")
				if len(onKey) != 1 || onKey[0].Op() != tt.op || onKey[0].Range != tt.rng || len(lists) != 0 || len(indexes) > 1 || len(other) != 0 {
					t.Errorf("%s: want one %s (Range %q), no LIST and at most one index read alongside; got:%s",
						tt.name, tt.op, tt.rng, describeCalls(calls))
				}
				counts = append(counts, fmt.Sprintf("%s %d on the object + %d index", tt.name, len(onKey), len(indexes)))
			}
			report(t, "%s: S3 requests per read of a 1 KiB file: %s", e.b.name, strings.Join(counts, "; "))
		}},
		{"Range edge cases: bytes=-0 answers 416, a Range on an empty file 200, a range past the end 416", func(t *testing.T, e *davEnv) {
			keyPrefix, dir := e.caseDir(t)
			e.putS3(t, keyPrefix+"ten.txt", []byte("0123456789"), "text/plain")
			e.putS3(t, keyPrefix+"empty.txt", nil, "text/plain")
			r := e.alice(t, http.MethodGet, dir+"ten.txt", map[string]string{"Range": "bytes=-0"}, nil)
			expect(t, "GET bytes=-0", r, http.StatusRequestedRangeNotSatisfiable)
			if got := r.Header.Get("Content-Range"); got != "bytes */10" {
				t.Errorf("GET bytes=-0: Content-Range %q, want bytes */10", got)
			}
			r = e.alice(t, http.MethodGet, dir+"ten.txt", map[string]string{"Range": "bytes=10-"}, nil)
			expect(t, "GET bytes=10- of 10 bytes", r, http.StatusRequestedRangeNotSatisfiable)
			r = e.alice(t, http.MethodGet, dir+"ten.txt", map[string]string{"Range": "bytes=8-20"}, nil)
			expect(t, "GET bytes=8-20 of 10 bytes", r, http.StatusPartialContent)
			if string(r.Body) != "89" || r.Header.Get("Content-Range") != "bytes 8-9/10" {
				t.Errorf("GET bytes=8-20: %q, Content-Range %q", r.Body, r.Header.Get("Content-Range"))
			}
			for _, rng := range []string{"bytes=-5", "bytes=0-"} {
				r = e.alice(t, http.MethodGet, dir+"empty.txt", map[string]string{"Range": rng}, nil)
				expect(t, "GET "+rng+" of an empty file", r, http.StatusOK)
				if len(r.Body) != 0 {
					t.Errorf("GET %s of an empty file: %q", rng, r.Body)
				}
			}
		}},
		{"a GET with 2,000 ranges is answered whole with one S3 request (issue 10 F3)", func(t *testing.T, e *davEnv) {
			keyPrefix, dir := e.caseDir(t)
			content := bytes.Repeat([]byte("r"), 4096)
			e.putS3(t, keyPrefix+"r.bin", content, "application/octet-stream")
			ranges := make([]string, 2000)
			for i := range ranges {
				ranges[i] = fmt.Sprintf("%d-%d", i, i)
			}
			mark := e.b.proxy.Mark()
			r := e.alice(t, http.MethodGet, dir+"r.bin", map[string]string{"Range": "bytes=" + strings.Join(ranges, ",")}, nil)
			calls := e.b.proxy.SinceUnder(mark, keyPrefix)
			expect(t, "GET with 2,000 ranges", r, http.StatusOK)
			if !bytes.Equal(r.Body, content) {
				t.Errorf("GET with 2,000 ranges: %d bytes, want the whole %d", len(r.Body), len(content))
			}
			if onKey, _, _, _ := fileCalls(calls, keyPrefix+"r.bin"); len(onKey) != 1 {
				t.Errorf("GET with 2,000 ranges: %d S3 requests on the object, want 1:%s", len(onKey), describeCalls(calls))
			}
		}},
		{"a GET with 8 ranges reads only those bytes from S3, one closed range each", func(t *testing.T, e *davEnv) {
			keyPrefix, dir := e.caseDir(t)
			content := bytes.Repeat([]byte("0123456789abcdef"), 64<<10) // 1 MiB
			e.putS3(t, keyPrefix+"m.bin", content, "application/octet-stream")
			var specs []string
			for i := range 8 {
				specs = append(specs, fmt.Sprintf("%d-%d", i*1000, i*1000+1))
			}
			mark := e.b.proxy.Mark()
			r := e.alice(t, http.MethodGet, dir+"m.bin", map[string]string{"Range": "bytes=" + strings.Join(specs, ",")}, nil)
			calls := e.b.proxy.SinceUnder(mark, keyPrefix)
			expect(t, "GET with 8 ranges", r, http.StatusPartialContent)
			gets := 0
			for _, c := range calls {
				if c.Op() != "GetObject" || c.Key != keyPrefix+"m.bin" {
					continue
				}
				gets++
				var a, b int64
				if _, err := fmt.Sscanf(c.Range, "bytes=%d-%d", &a, &b); err != nil || b-a != 1 {
					t.Errorf("an S3 read for a 2-byte range asked for %q", c.Range)
				}
			}
			if gets != 8 {
				t.Errorf("%d ranged GetObjects for 8 ranges, want 8:%s", gets, describeCalls(calls))
			}
		}},
		{"GET of a folder's name without its slash answers 405 after one GetObject and one LIST", func(t *testing.T, e *davEnv) {
			keyPrefix, dir := e.caseDir(t)
			e.putS3(t, keyPrefix+"sub/child.txt", []byte("child"), "text/plain")
			mark := e.b.proxy.Mark()
			r := e.alice(t, http.MethodGet, strings.TrimSuffix(dir, "/")+"/sub", nil, nil)
			calls := e.b.proxy.SinceUnder(mark, keyPrefix)
			expect(t, "GET of a folder", r, http.StatusMethodNotAllowed)
			onKey, lists, _, _ := fileCalls(calls, keyPrefix+"sub")
			if len(onKey) != 1 || len(lists) != 1 {
				t.Errorf("want one GetObject and one LIST; got:%s", describeCalls(calls))
			}
			g := e.alice(t, http.MethodGet, dir+"missing.txt", nil, nil)
			expect(t, "GET of a missing file", g, http.StatusNotFound)
		}},
	}
}

func economyWriteCases() []conformanceCase {
	return []conformanceCase{
		{"PUTs into a busy folder of 1,500 objects nobody listed become one PutObject each once it is listed in the background", func(t *testing.T, e *davEnv) {
			keyPrefix, dir := e.caseDir(t)
			e.putManyS3(t, keyPrefix, 1500) // more than one page: a PUT's own probe cannot learn it whole
			mark := e.b.proxy.Mark()
			var costs []int
			put := func(i int) {
				name := fmt.Sprintf("busy-%02d.txt", i)
				m := e.b.proxy.Mark()
				expect(t, "PUT "+name, e.alice(t, http.MethodPut, dir+name, nil, []byte("small")), http.StatusCreated)
				n := 0
				for _, c := range e.b.proxy.SinceUnder(m, keyPrefix) {
					if c.Key == keyPrefix+name || c.Query.Get("prefix") == keyPrefix+name+"/" {
						n++
					}
				}
				costs = append(costs, n)
			}
			pages := func() (done int) {
				for _, c := range e.b.proxy.SinceUnder(mark, keyPrefix) {
					if c.Op() == "ListObjectsV2" && c.Query.Get("prefix") == keyPrefix && c.Status != 0 {
						done++
					}
				}
				return done
			}
			for i := range 5 { // the 5th write in a row finds the folder busy
				put(i)
			}
			// The background listing: one page proved the folder, two list it.
			deadline := time.Now().Add(20 * time.Second)
			for pages() < 3 && time.Now().Before(deadline) {
				time.Sleep(20 * time.Millisecond)
			}
			time.Sleep(100 * time.Millisecond) // its last page is being read into the cache
			for i := 5; i < 15; i++ {
				put(i)
			}
			report(t, "%s: 15 PUTs into a folder of 1,500 objects: S3 requests per PUT %v; %d listing pages of the folder", e.b.name, costs, pages())
			for i, n := range costs[5:] {
				if n != 1 {
					t.Errorf("PUT %d cost %d S3 requests, want one PutObject once the folder is listed (all: %v)", 5+i, n, costs)
				}
			}
			if got := pages(); got != 3 {
				t.Errorf("%d listing pages of the folder for 15 PUTs, want 3 (one to prove it, two to list it once)", got)
			}
		}},
		{"PUT of a small file into a listed folder is one PutObject, DELETE one DeleteObject, MOVE a copy and a delete", func(t *testing.T, e *davEnv) {
			keyPrefix, dir := e.caseDir(t)
			e.putS3(t, keyPrefix+"old.txt", []byte("old"), "text/plain")
			e.putS3(t, keyPrefix+"sub/x.txt", []byte("x"), "text/plain")
			e.putS3(t, keyPrefix+"keep.txt", []byte("keep"), "text/plain")
			r := e.alice(t, "PROPFIND", dir, map[string]string{"Depth": "1"}, []byte(propfindListing))
			expect(t, "PROPFIND Depth 1 of the folder", r, http.StatusMultiStatus)
			content := bytes.Repeat([]byte("4 KiB file "), 4096/11)
			var counts []string
			for _, name := range []string{"new1.txt", "new2.txt", "new3.txt"} {
				mark := e.b.proxy.Mark()
				p := e.alice(t, http.MethodPut, dir+name, nil, content)
				calls := e.b.proxy.SinceUnder(mark, keyPrefix)
				expect(t, "PUT "+name, p, http.StatusCreated)
				if len(calls) != 1 || calls[0].Op() != "PutObject" || calls[0].Key != keyPrefix+name {
					t.Errorf("PUT %s into a listed folder: want one PutObject; got:%s", name, describeCalls(calls))
				}
				counts = append(counts, fmt.Sprintf("PUT %d", len(calls)))
			}
			// Overwriting a listed file answers 204, a folder's name 405.
			mark := e.b.proxy.Mark()
			p := e.alice(t, http.MethodPut, dir+"old.txt", nil, []byte("new"))
			calls := e.b.proxy.SinceUnder(mark, keyPrefix)
			expect(t, "PUT over old.txt", p, http.StatusNoContent)
			counts = append(counts, fmt.Sprintf("PUT over a file %d", len(calls)))
			p = e.alice(t, http.MethodPut, dir+"sub", nil, []byte("onto a folder"))
			expect(t, "PUT onto the folder sub", p, http.StatusMethodNotAllowed)
			if got, ok := e.getS3(t, keyPrefix+"sub"); ok {
				t.Errorf("PUT onto a folder stored %q", got)
			}
			for _, name := range []string{"new1.txt", "new2.txt"} {
				mark := e.b.proxy.Mark()
				d := e.alice(t, http.MethodDelete, dir+name, nil, nil)
				calls := e.b.proxy.SinceUnder(mark, keyPrefix)
				expect(t, "DELETE "+name, d, http.StatusNoContent)
				dels := 0
				for _, c := range calls {
					if c.Op() == "DeleteObject" || c.Op() == "DeleteObjects" {
						dels++
					}
				}
				if dels != 1 || len(calls) > 2 {
					t.Errorf("DELETE %s of a listed file: want one delete and at most one index read; got:%s", name, describeCalls(calls))
				}
				counts = append(counts, fmt.Sprintf("DELETE %d", len(calls)))
			}
			// A file MOVE in the listed folder.
			mark = e.b.proxy.Mark()
			m := e.alice(t, "MOVE", dir+"new3.txt", map[string]string{"Destination": dir + "moved.txt", "Overwrite": "T"}, nil)
			calls = e.b.proxy.SinceUnder(mark, keyPrefix)
			expect(t, "MOVE new3.txt", m, http.StatusCreated)
			ops := countOps(calls)
			if ops["CopyObject"] != 1 || ops["DeleteObject"]+ops["DeleteObjects"] != 1 || len(calls) > 2 {
				t.Errorf("MOVE of a listed file: want one CopyObject, one delete and at most one index read; got:%s", describeCalls(calls))
			}
			counts = append(counts, fmt.Sprintf("MOVE %d", len(calls)))
			// With Overwrite: F the destination is asked of S3 by one HEAD
			// (never "free" on a listing's word); that it is no folder
			// comes from the listing: no LIST.
			mark = e.b.proxy.Mark()
			m = e.alice(t, "MOVE", dir+"old.txt", map[string]string{"Destination": dir + "moved-f.txt", "Overwrite": "F"}, nil)
			calls = e.b.proxy.SinceUnder(mark, keyPrefix)
			expect(t, "MOVE old.txt with Overwrite: F", m, http.StatusCreated)
			ops = countOps(calls)
			if ops["HeadObject"] != 1 || ops["CopyObject"] != 1 || ops["DeleteObject"]+ops["DeleteObjects"] != 1 || ops["ListObjectsV2"] != 0 || len(calls) > 4 {
				t.Errorf("MOVE with Overwrite: F of a listed file to a free name: want one HEAD of the destination, one CopyObject, one delete, at most one index read, no LIST; got:%s", describeCalls(calls))
			}
			counts = append(counts, fmt.Sprintf("MOVE with Overwrite: F %d", len(calls)))
			if got, ok := e.getS3(t, keyPrefix+"moved-f.txt"); !ok || string(got) != "new" {
				t.Errorf("moved-f.txt holds %q (exists=%v), want %q", got, ok, "new")
			}
			// Onto a listed file: 412 after one HEAD of each name, nothing changed.
			mark = e.b.proxy.Mark()
			m = e.alice(t, "MOVE", dir+"moved-f.txt", map[string]string{"Destination": dir + "keep.txt", "Overwrite": "F"}, nil)
			calls = e.b.proxy.SinceUnder(mark, keyPrefix)
			expect(t, "MOVE onto keep.txt with Overwrite: F", m, http.StatusPreconditionFailed)
			if ops := countOps(calls); ops["HeadObject"] != len(calls) || len(calls) > 2 {
				t.Errorf("MOVE with Overwrite: F onto a listed file: want HEADs only (at most two); got:%s", describeCalls(calls))
			}
			if got, ok := e.getS3(t, keyPrefix+"keep.txt"); !ok || string(got) != "keep" {
				t.Errorf("keep.txt holds %q (exists=%v) after a refused MOVE onto it", got, ok)
			}
			if got, ok := e.getS3(t, keyPrefix+"moved.txt"); !ok || !bytes.Equal(got, content) {
				t.Errorf("moved.txt holds %d bytes (exists=%v), want %d", len(got), ok, len(content))
			}
			if _, ok := e.getS3(t, keyPrefix+"new3.txt"); ok {
				t.Error("new3.txt still stored after its MOVE")
			}
			if _, ok := e.getS3(t, keyPrefix+"new1.txt"); ok {
				t.Error("new1.txt still stored after its DELETE")
			}
			report(t, "%s: S3 requests in a listed folder: %s", e.b.name, strings.Join(counts, "; "))
		}},
		{"PUTs into a folder nobody listed: the first lists it (one LIST), the next ones are one PutObject each", func(t *testing.T, e *davEnv) {
			keyPrefix, dir := e.caseDir(t)
			e.putS3(t, keyPrefix+"there.txt", []byte("there"), "text/plain")
			var counts []string
			for i := range 4 {
				name := fmt.Sprintf("n%d.txt", i)
				mark := e.b.proxy.Mark()
				expect(t, "PUT "+name, e.alice(t, http.MethodPut, dir+name, nil, []byte("new")), http.StatusCreated)
				calls := e.b.proxy.SinceUnder(mark, keyPrefix)
				counts = append(counts, fmt.Sprint(len(calls)))
				ops := countOps(calls)
				switch {
				case i == 0 && (ops["PutObject"] != 1 || ops["ListObjectsV2"] != 1 || len(calls) != 2):
					t.Errorf("first PUT: want one LIST and one PutObject; got:%s", describeCalls(calls))
				case i > 0 && (ops["PutObject"] != 1 || len(calls) != 1):
					t.Errorf("PUT %d: want one PutObject; got:%s", i, describeCalls(calls))
				}
			}
			expect(t, "PUT over there.txt", e.alice(t, http.MethodPut, dir+"there.txt", nil, []byte("again")), http.StatusNoContent)
			report(t, "%s: S3 requests of 4 PUTs into a folder nobody listed: %s", e.b.name, strings.Join(counts, ", "))
		}},
	}
}

// TestAGetWithoutContentLengthFromS3IsNeverServedShort: a store (or a
// proxy between) that answers GetObject chunked, without Content-Length,
// must not make the gateway serve the file as empty.
func TestAGetWithoutContentLengthFromS3IsNeverServedShort(t *testing.T) {
	base := getEnv(t, "versitygw")
	keyPrefix, dir := base.caseDir(t)
	up, err := url.Parse(base.b.proxy.URL)
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(up)
	rp.ModifyResponse = func(resp *http.Response) error {
		if resp.Request.Method == http.MethodGet && resp.Request.URL.Query().Get("list-type") == "" {
			resp.Header.Del("Content-Length")
			resp.ContentLength = -1
		}
		return nil
	}
	chunked := httptest.NewServer(rp)
	defer chunked.Close()
	e, err := newDavEnv(staticAuth(t), base.b, chunked.URL, gatewayPartSize, 2)
	if err != nil {
		t.Fatal(err)
	}
	defer e.srv.Close()
	content := []byte("hello, world: twenty-nine b.")
	base.putS3(t, keyPrefix+"hello.txt", content, "text/plain")
	for _, h := range []map[string]string{nil, {"Range": "bytes=0-"}, {"Range": "bytes=7-11"}, {"If-None-Match": `"other"`}} {
		r := e.alice(t, http.MethodGet, dir+"hello.txt", h, nil)
		want, status := content, http.StatusOK
		if rng := h["Range"]; rng == "bytes=7-11" {
			want, status = content[7:12], http.StatusPartialContent
		} else if rng != "" {
			status = http.StatusPartialContent
		}
		expect(t, fmt.Sprintf("GET with %v from a chunked store", h), r, status)
		if !bytes.Equal(r.Body, want) {
			t.Errorf("GET with %v from a chunked store: %q, want %q", h, r.Body, want)
		}
	}
}
