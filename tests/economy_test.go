package tests

import (
	"bytes"
	"fmt"
	"net/http"
	"strings"
	"testing"
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
