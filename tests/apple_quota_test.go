package tests

import (
	"bytes"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/davgw/davgw/gateway"
)

// tunedEnv starts a second gateway over back end name with changed options
// (the shared one keeps the defaults), stopped at the end of the test.
func tunedEnv(t *testing.T, name string, tune func(*gateway.Options)) *davEnv {
	t.Helper()
	b := getBackend(t, name)
	e, err := newDavEnv(staticAuth(t), b, b.proxy.URL, gatewayPartSize, 2, tune)
	if err != nil {
		t.Fatalf("start a tuned gateway on %s: %v", name, err)
	}
	t.Cleanup(e.srv.Close)
	return e
}

func TestAppleFiles(t *testing.T) {
	for _, name := range backendNames {
		t.Run(name, func(t *testing.T) {
			t.Run("reject refuses side files and answers Finder's probes without S3", func(t *testing.T) {
				e := tunedEnv(t, name, func(o *gateway.Options) { o.AppleFiles = gateway.AppleReject })
				keyPrefix, dir := e.caseDir(t)
				expect(t, "PUT a normal file", e.alice(t, http.MethodPut, dir+"photo.jpg", nil, []byte("jpeg")), http.StatusCreated)
				mark := e.b.proxy.Mark()
				expect(t, "PUT ._photo.jpg", e.alice(t, http.MethodPut, dir+"._photo.jpg", nil, []byte("xattrs")), http.StatusForbidden)
				expect(t, "PUT .DS_Store", e.alice(t, http.MethodPut, dir+".DS_Store", nil, []byte("ds")), http.StatusForbidden)
				for _, probe := range []string{"._photo.jpg", ".DS_Store", ".localized", ".Spotlight-V100", ".metadata_never_index", "Backups.backupdb"} {
					r := e.alice(t, "PROPFIND", dir+probe, map[string]string{"Depth": "0"}, nil)
					expect(t, "PROPFIND "+probe, r, http.StatusNotFound)
				}
				expect(t, "MKCOL .Spotlight-V100", e.alice(t, "MKCOL", dir+".Spotlight-V100", nil, nil), http.StatusForbidden)
				expect(t, "COPY onto ._copy", e.alice(t, "COPY", dir+"photo.jpg", e.dest(dir+"._copy", ""), nil), http.StatusForbidden)
				if calls := e.b.proxy.SinceUnder(mark, keyPrefix); len(calls) != 0 {
					t.Errorf("side files and probes cost S3 requests: %v%s", countOps(calls), describeCalls(calls))
				}
				if keys := e.b.keys(t, keyPrefix); len(keys) != 2 { // the folder marker and photo.jpg
					t.Errorf("stored keys = %v, want only the marker and photo.jpg", keys)
				}
			})
			t.Run("hide stores side files but leaves them out of listings", func(t *testing.T) {
				e := tunedEnv(t, name, func(o *gateway.Options) { o.AppleFiles = gateway.AppleHide })
				keyPrefix, dir := e.caseDir(t)
				expect(t, "PUT photo.jpg", e.alice(t, http.MethodPut, dir+"photo.jpg", nil, []byte("jpeg")), http.StatusCreated)
				expect(t, "PUT ._photo.jpg", e.alice(t, http.MethodPut, dir+"._photo.jpg", nil, []byte("xattrs")), http.StatusCreated)
				expect(t, "PUT .DS_Store", e.alice(t, http.MethodPut, dir+".DS_Store", nil, []byte("ds")), http.StatusCreated)
				if _, ok := e.getS3(t, keyPrefix+"._photo.jpg"); !ok {
					t.Errorf("._photo.jpg was not stored")
				}
				r := e.alice(t, "PROPFIND", dir, map[string]string{"Depth": "1"}, nil)
				expect(t, "PROPFIND Depth 1", r, http.StatusMultiStatus)
				for _, m := range parseMultistatus(t, r.Body) {
					if strings.Contains(m.Href, "._photo") || strings.Contains(m.Href, "DS_Store") {
						t.Errorf("listing shows hidden side file %s", m.Href)
					}
				}
				g := e.alice(t, http.MethodGet, dir+"._photo.jpg", nil, nil)
				expect(t, "GET ._photo.jpg by name", g, http.StatusOK)
				if string(g.Body) != "xattrs" {
					t.Errorf("GET ._photo.jpg = %q", g.Body)
				}
			})
		})
	}
}

func TestQuota(t *testing.T) {
	for _, name := range backendNames {
		t.Run(name, func(t *testing.T) {
			const limit = 1000
			e := tunedEnv(t, name, func(o *gateway.Options) { o.QuotaBytes = limit })
			root := "users/quota/"
			quotaBody := []byte(`<D:propfind xmlns:D="DAV:"><D:prop><D:quota-available-bytes/><D:quota-used-bytes/></D:prop></D:propfind>`)
			quotaProps := func() (used, avail int64, ok bool) {
				r := e.do(t, req{Method: "PROPFIND", Path: "/dav/", User: "quota", Header: map[string]string{"Depth": "0"}, Body: bytes.NewReader(quotaBody)})
				expect(t, "quota PROPFIND", r, http.StatusMultiStatus)
				ms := parseMultistatus(t, r.Body)
				if len(ms) != 1 {
					t.Fatalf("quota PROPFIND gave %d responses", len(ms))
				}
				u, uok := ms[0].Props["DAV: quota-used-bytes"]
				a, aok := ms[0].Props["DAV: quota-available-bytes"]
				if !uok || !aok {
					return 0, 0, false
				}
				used, _ = strconv.ParseInt(strings.TrimSpace(u.Text), 10, 64)
				avail, _ = strconv.ParseInt(strings.TrimSpace(a.Text), 10, 64)
				return used, avail, true
			}
			// The usage is computed in the background after the first ask.
			deadline := time.Now().Add(10 * time.Second)
			var used, avail int64
			ok := false
			for !ok && time.Now().Before(deadline) {
				if used, avail, ok = quotaProps(); !ok {
					time.Sleep(50 * time.Millisecond)
				}
			}
			if !ok {
				t.Fatal("quota properties never appeared")
			}
			if used+avail != limit {
				t.Errorf("used %d + available %d != quota %d", used, avail, limit)
			}
			put := func(path string, body []byte, chunked bool) reply {
				r := req{Method: http.MethodPut, Path: path, User: "quota", Body: bytes.NewReader(body)}
				if chunked {
					r.Body, r.Length = onlyReader{bytes.NewReader(body)}, -1
				}
				return e.do(t, r)
			}
			expect(t, "PUT 600 bytes within the quota", put("/dav/a.bin", make([]byte, 600), false), http.StatusCreated)
			expect(t, "PUT 600 more bytes with Content-Length", put("/dav/b.bin", make([]byte, 600), false), http.StatusInsufficientStorage)
			expect(t, "PUT 600 more bytes chunked", put("/dav/c.bin", make([]byte, 600), true), http.StatusInsufficientStorage)
			for _, k := range []string{"b.bin", "c.bin"} {
				if _, ok := e.getS3(t, root+k); ok {
					t.Errorf("%s was stored past the quota", k)
				}
			}
			if open := e.b.openUploads(t, root); len(open) != 0 {
				t.Errorf("multipart uploads left open: %v", open)
			}
			if used, _, _ = quotaProps(); used != 600 {
				t.Errorf("quota-used-bytes = %d after a 600-byte upload, want 600", used)
			}
			expect(t, "overwrite a.bin with 900 bytes (replacing counts the old size)", put("/dav/a.bin", make([]byte, 900), false), http.StatusNoContent)
			expect(t, "DELETE a.bin", e.do(t, req{Method: http.MethodDelete, Path: "/dav/a.bin", User: "quota"}), http.StatusNoContent)
			expect(t, "PUT 600 bytes after the delete", put("/dav/b.bin", make([]byte, 600), false), http.StatusCreated)
			expect(t, "clean up", e.do(t, req{Method: http.MethodDelete, Path: "/dav/b.bin", User: "quota"}), http.StatusNoContent)
		})
	}
}
