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

// TestFinderSettings checks the [webdav] settings made for Finder:
// apple_files = hide and reject, and quota_bytes with RFC 4331's properties
// and 507 past the quota, each on a gateway of its own over every back end.
func TestFinderSettings(t *testing.T) {
	forEachBackend(t, backendNames, func(t *testing.T, e *davEnv) {
		t.Run("apple_files = hide stores ._ files and .DS_Store but leaves them out of listings", func(t *testing.T) {
			f := newConfiguredClientApp(t, e, "Finder", finderHeaders, func(o *gateway.Options) { o.AppleFiles = gateway.AppleHide })
			keyPrefix, dir := e.caseDir(t)
			e.putS3(t, keyPrefix+"a.txt", []byte("a"), "")
			for _, n := range []string{"._a.txt", ".DS_Store"} {
				expect(t, "PUT "+n, f.send(t, call{Method: http.MethodPut, Path: dir + n, Body: []byte("apple " + n)}), http.StatusCreated)
				if got, ok := e.getS3(t, keyPrefix+n); !ok || string(got) != "apple "+n {
					t.Errorf("S3 %s holds %q (exists=%v): hide must store it", n, got, ok)
				}
				g := f.send(t, call{Method: http.MethodGet, Path: dir + n})
				expect(t, "GET "+n, g, http.StatusOK)
			}
			list := byPath(t, f.propfind(t, dir, "1", finderPropfind))
			for _, n := range []string{"._a.txt", ".DS_Store"} {
				if _, ok := list[dir+n]; ok {
					t.Errorf("the listing shows %s under apple_files = hide", n)
				}
			}
			if _, ok := list[dir+"a.txt"]; !ok {
				t.Error("the listing lacks a.txt")
			}
		})

		t.Run("apple_files = reject refuses ._ files and .DS_Store and answers the probe storm without S3", func(t *testing.T) {
			f := newConfiguredClientApp(t, e, "Finder", finderHeaders, func(o *gateway.Options) { o.AppleFiles = gateway.AppleReject })
			keyPrefix, dir := e.caseDir(t)
			e.putS3(t, keyPrefix+"a.txt", []byte("a"), "")
			for _, n := range []string{"._a.txt", ".DS_Store"} {
				expect(t, "PUT "+n, f.send(t, call{Method: http.MethodPut, Path: dir + n, Body: []byte("x")}), http.StatusForbidden)
				l := f.send(t, call{Method: "LOCK", Path: dir + n, Header: map[string]string{"Depth": "0", "Timeout": "Second-600"}, Body: []byte(finderLock)})
				expect(t, "LOCK "+n, l, http.StatusForbidden)
			}
			c := f.send(t, call{Method: "COPY", Path: dir + "a.txt", Header: map[string]string{"Destination": f.url(dir + "._a.txt")}})
			expect(t, "COPY onto a ._ name", c, http.StatusForbidden)
			if keys := userKeys(t, e, keyPrefix); len(keys) != 2 {
				t.Errorf("S3 holds %v, want only the marker and a.txt", keys)
			}
			probes := []string{dir + "._a.txt", dir + ".DS_Store", dir + ".localized", dir + "._.", "/dav/.metadata_never_index", "/dav/.Spotlight-V100", "/dav/.ql_disablethumbnails"}
			for _, p := range probes {
				mark := e.b.proxy.Mark()
				r := f.propfind(t, p, "0", finderPropfind)
				expect(t, "PROPFIND "+p, r, http.StatusNotFound)
				if calls := e.b.proxy.SinceUnder(mark, "users/alice/"); len(calls) != 0 {
					t.Errorf("PROPFIND %s under reject made %d S3 requests:%s", p, len(calls), describeCalls(calls))
				}
			}
		})

		t.Run("quota_bytes reports RFC 4331 quota properties and refuses uploads past the quota with 507", func(t *testing.T) {
			const quota = 1 << 20
			prefix := "quota-" + randHex(4) + "/"
			f := newConfiguredClientApp(t, e, "Finder", finderHeaders, func(o *gateway.Options) {
				o.QuotaBytes = quota
				o.Prefix = prefix
			})
			root := prefix + "users/alice/"
			e.putS3(t, root+"already.bin", randBytes(100_000), "")
			used, avail := waitQuota(t, f, func(used, _ int64) bool { return used == 100_000 })
			if used != 100_000 || avail != quota-100_000 {
				t.Errorf("quota-used-bytes %d, quota-available-bytes %d; want 100000 and %d", used, avail, quota-100_000)
			}
			expect(t, "PUT within the quota", f.send(t, call{Method: http.MethodPut, Path: "/dav/fits.bin", Body: randBytes(600_000)}), http.StatusCreated)
			used, _ = waitQuota(t, f, func(used, _ int64) bool { return used == 700_000 })
			if used != 700_000 {
				t.Errorf("quota-used-bytes = %d after a 600000-byte PUT, want 700000", used)
			}
			big := f.send(t, call{Method: http.MethodPut, Path: "/dav/too-big.bin", Body: randBytes(600_000)})
			expect(t, "PUT past the quota", big, http.StatusInsufficientStorage)
			body := randBytes(600_000)
			chunked := f.send(t, call{Method: http.MethodPut, Path: "/dav/too-big-chunked.bin", Stream: bytes.NewReader(body),
				Header: map[string]string{"X-Expected-Entity-Length": strconv.Itoa(len(body))}})
			expect(t, "chunked PUT past the quota", chunked, http.StatusInsufficientStorage)
			for _, k := range []string{"too-big.bin", "too-big-chunked.bin"} {
				if _, ok := e.getS3(t, root+k); ok {
					t.Errorf("S3 holds %s after a 507", k)
				}
			}
			if ups := e.b.openUploads(t, root); len(ups) != 0 {
				t.Errorf("open multipart uploads after a 507: %v", ups)
			}
		})
	})
}

// waitQuota polls the quota PROPFIND on /dav/ until done holds (the usage
// is computed in the background) or 10 s pass, and returns the last values.
func waitQuota(t *testing.T, f *clientApp, done func(used, avail int64) bool) (used, avail int64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		m := onlyResponse(t, "quota PROPFIND", f.propfind(t, "/dav/", "0", finderQuota))
		u, uok := m.Props["DAV: quota-used-bytes"]
		a, aok := m.Props["DAV: quota-available-bytes"]
		if uok && aok {
			used, _ = strconv.ParseInt(strings.TrimSpace(u.Text), 10, 64)
			avail, _ = strconv.ParseInt(strings.TrimSpace(a.Text), 10, 64)
			if done(used, avail) {
				return used, avail
			}
		}
		if time.Now().After(deadline) {
			if !uok || !aok {
				t.Fatalf("no quota properties within 10 s: %v", m.Status)
			}
			return used, avail
		}
		time.Sleep(100 * time.Millisecond)
	}
}
