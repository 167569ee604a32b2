package tests

import (
	"bytes"
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/davgw/davgw/gateway"
)

// The per-folder index (.davgw-index.json) keeps modification times and
// dead properties for listings; these cases check its upkeep around the
// operations that copy, delete, recreate and fail.
func TestKeptTimesIndex(t *testing.T) {
	const kept = "Tue, 14 Nov 2023 22:13:20 GMT"
	lastModified := func(t *testing.T, e *davEnv, p string) string {
		t.Helper()
		r := e.alice(t, http.MethodHead, p, nil, nil)
		expect(t, "HEAD "+p, r, http.StatusOK)
		return r.Header.Get("Last-Modified")
	}
	listed := func(t *testing.T, e *davEnv, dir, name string) string {
		t.Helper()
		r := e.alice(t, "PROPFIND", dir, map[string]string{"Depth": "1"}, []byte(`<D:propfind xmlns:D="DAV:"><D:prop><D:getlastmodified/></D:prop></D:propfind>`))
		expect(t, "PROPFIND Depth 1 "+dir, r, http.StatusMultiStatus)
		for _, m := range parseMultistatus(t, r.Body) {
			if strings.TrimSuffix(hrefPath(t, m.Href), "/") == strings.TrimSuffix(dir+name, "/") {
				return m.Props["DAV: getlastmodified"].Text
			}
		}
		t.Fatalf("%s not listed in %s", name, dir)
		return ""
	}
	forEachBackend(t, backendNames, func(t *testing.T, e *davEnv) {
		t.Run("a folder COPY carries kept times to the copies, multipart ones included", func(t *testing.T) {
			_, dir := e.caseDir(t)
			expect(t, "MKCOL src", e.alice(t, "MKCOL", dir+"src/", nil, nil), http.StatusCreated)
			big := randBytes(12 << 20) // multipart at the gateway's 5 MiB parts: a -N ETag
			r := e.do(t, req{Method: http.MethodPut, Path: dir + "src/big.bin", User: "alice",
				Header: map[string]string{"X-OC-Mtime": "1700000000"}, Body: bytes.NewReader(big)})
			expect(t, "PUT big.bin with X-OC-Mtime", r, http.StatusCreated)
			if r.Header.Get("X-OC-Mtime") != "accepted" {
				t.Fatalf("X-OC-Mtime answer %q", r.Header.Get("X-OC-Mtime"))
			}
			expect(t, "PUT small.txt with X-OC-Mtime", e.alice(t, http.MethodPut, dir+"src/small.txt",
				map[string]string{"X-OC-Mtime": "1700000000"}, []byte("s")), http.StatusCreated)
			expect(t, "COPY src -> dst", e.alice(t, "COPY", dir+"src/", e.dest(dir+"dst/", ""), nil), http.StatusCreated)
			for _, name := range []string{"big.bin", "small.txt"} {
				if got := listed(t, e, dir+"dst/", name); got != kept {
					t.Errorf("listing of the copy shows %s at %q, want %s", name, got, kept)
				}
				if got := lastModified(t, e, dir+"dst/"+name); got != kept {
					t.Errorf("HEAD of the copy of %s: Last-Modified %q, want %s", name, got, kept)
				}
			}
		})
		t.Run("a folder deleted and created again does not inherit the old folder's properties", func(t *testing.T) {
			_, dir := e.caseDir(t)
			expect(t, "MKCOL x", e.alice(t, "MKCOL", dir+"x/", nil, nil), http.StatusCreated)
			patch := `<D:propertyupdate xmlns:D="DAV:"><D:set><D:prop><t:colour xmlns:t="urn:davgw:test">red</t:colour><D:getlastmodified>` + kept + `</D:getlastmodified></D:prop></D:set></D:propertyupdate>`
			expect(t, "PROPPATCH x", e.alice(t, "PROPPATCH", dir+"x/", nil, []byte(patch)), http.StatusMultiStatus)
			if got := e.deadProp(t, dir+"x/"); got != "red" {
				t.Fatalf("colour after PROPPATCH = %q", got)
			}
			if got := listed(t, e, dir, "x/"); got != kept {
				t.Errorf("the folder's kept time in its parent's listing = %q, want %s", got, kept)
			}
			// Finder asks for live properties only; the kept time still shows.
			r := e.alice(t, "PROPFIND", dir+"x/", map[string]string{"Depth": "0"}, []byte(`<D:propfind xmlns:D="DAV:"><D:prop><D:getlastmodified/></D:prop></D:propfind>`))
			expect(t, "PROPFIND x Depth 0", r, http.StatusMultiStatus)
			if ms := parseMultistatus(t, r.Body); len(ms) != 1 || ms[0].Props["DAV: getlastmodified"].Text != kept {
				t.Errorf("Depth 0 of the folder with live properties only: %s", r)
			}
			expect(t, "DELETE x", e.alice(t, http.MethodDelete, dir+"x/", nil, nil), http.StatusNoContent)
			expect(t, "MKCOL x again", e.alice(t, "MKCOL", dir+"x/", nil, nil), http.StatusCreated)
			if got := e.deadProp(t, dir+"x/"); got != "" {
				t.Errorf("the new folder inherited colour %q", got)
			}
		})
		t.Run("a failed index write fails no upload, and once known takes back X-OC-Mtime: accepted", func(t *testing.T) {
			keyPrefix, dir := e.caseDir(t)
			e.fault(t, accessDenied, func(c s3Call) bool {
				return c.Op() == "PutObject" && c.Key == keyPrefix+".davgw-index.json"
			})
			// The first upload's time waits in the batch: accepted, and
			// shown by this gateway until the batch write fails.
			r := e.alice(t, http.MethodPut, dir+"f.txt", map[string]string{"X-OC-Mtime": "1700000000"}, []byte("f"))
			expect(t, "PUT while the index cannot be written", r, http.StatusCreated)
			if h, l := lastModified(t, e, dir+"f.txt"), listed(t, e, dir, "f.txt"); h != kept || l != kept {
				t.Errorf("while pending: HEAD says %q, the listing %q, want %s", h, l, kept)
			}
			if err := e.gw.WritePending(context.Background()); err == nil {
				t.Error("writing the pending kept times reported no error although S3 refused the index")
			}
			// Given up: GET/HEAD and the listing agree (both S3's time), so
			// rclone sees one time and sets it again later.
			if h, l := lastModified(t, e, dir+"f.txt"), listed(t, e, dir, "f.txt"); h != l || h == kept {
				t.Errorf("after the failed write: HEAD says %q, the listing %q", h, l)
			}
			// The failure is known now: the next upload tries itself and
			// answers honestly.
			r = e.alice(t, http.MethodPut, dir+"g.txt", map[string]string{"X-OC-Mtime": "1700000000"}, []byte("g"))
			expect(t, "second PUT while the index cannot be written", r, http.StatusCreated)
			if r.Header.Get("X-OC-Mtime") == "accepted" {
				t.Error("X-OC-Mtime: accepted although the time was not kept")
			}
			if h, l := lastModified(t, e, dir+"g.txt"), listed(t, e, dir, "g.txt"); h != l || h == kept {
				t.Errorf("HEAD says %q, the listing %q", h, l)
			}
			expect(t, "DELETE while the index cannot be written", e.alice(t, http.MethodDelete, dir+"f.txt", nil, nil), http.StatusNoContent)
		})
	})
}

func TestQuotaCountsCopies(t *testing.T) {
	e := tunedEnv(t, "versitygw", func(o *gateway.Options) { o.QuotaBytes = 1500 })
	quotaBody := []byte(`<D:propfind xmlns:D="DAV:"><D:prop><D:quota-used-bytes/></D:prop></D:propfind>`)
	deadline := time.Now().Add(10 * time.Second)
	for {
		r := e.do(t, req{Method: "PROPFIND", Path: "/dav/", User: "quota", Header: map[string]string{"Depth": "0"}, Body: bytes.NewReader(quotaBody)})
		if bytes.Contains(r.Body, []byte("quota-used-bytes>")) || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	put := func(p string, n int) reply {
		return e.do(t, req{Method: http.MethodPut, Path: p, User: "quota", Body: bytes.NewReader(make([]byte, n))})
	}
	expect(t, "PUT 600 bytes", put("/dav/copyq-a.bin", 600), http.StatusCreated)
	expect(t, "COPY it once (1200 of 1500)", e.do(t, req{Method: "COPY", Path: "/dav/copyq-a.bin", User: "quota",
		Header: map[string]string{"Destination": e.URL + "/dav/copyq-b.bin"}}), http.StatusCreated)
	expect(t, "COPY it again (1800 > 1500)", e.do(t, req{Method: "COPY", Path: "/dav/copyq-a.bin", User: "quota",
		Header: map[string]string{"Destination": e.URL + "/dav/copyq-c.bin"}}), http.StatusInsufficientStorage)
	if _, ok := e.getS3(t, "users/quota/copyq-c.bin"); ok {
		t.Error("the COPY past the quota was stored")
	}
	for _, n := range []string{"a", "b"} {
		expect(t, "clean up", e.do(t, req{Method: http.MethodDelete, Path: "/dav/copyq-" + n + ".bin", User: "quota"}), http.StatusNoContent)
	}
}

// TestPendingKeptTimesAreWrittenOnShutdown: an upload's kept time waits in
// the gateway's batch (at least 250 ms); SIGTERM right after the upload
// still writes it to the folder's index before the process exits.
func TestPendingKeptTimesAreWrittenOnShutdown(t *testing.T) {
	const pw = "pw-kim-shutdown-1"
	g := serveBinary(t, 1024, "", "", map[string]string{"kim": pw})
	slug := "shutdown-" + randHex(4)
	if st, body := g.do(t, "MKCOL", "/dav/"+slug+"/", "kim", pw, nil); st != http.StatusCreated {
		t.Fatalf("MKCOL: %d %s", st, body)
	}
	st, _ := g.do(t, http.MethodPut, "/dav/"+slug+"/f.txt", "kim", pw, []byte("kept"), "X-OC-Mtime", "1700000000")
	if st != http.StatusCreated {
		t.Fatalf("PUT with X-OC-Mtime: %d", st)
	}
	g.p.stop(30 * time.Second)
	if g.p.err != nil {
		t.Fatalf("the gateway did not exit cleanly on SIGTERM: %v\n%s", g.p.err, g.p.log.String())
	}
	idx, ok := getEnv(t, "versitygw").getS3(t, "users/kim/"+slug+"/.davgw-index.json")
	if !ok {
		t.Fatalf("no index after a graceful stop: the pending kept time was lost\n%s", g.p.log.String())
	}
	if !strings.Contains(string(idx), `"f.txt"`) || !strings.Contains(string(idx), "1700000000000000000") {
		t.Fatalf("the index after a graceful stop lacks f.txt's kept time: %s", idx)
	}
}
