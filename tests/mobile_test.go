package tests

import (
	"bytes"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
)

// What phone apps send (CLIENTS.md, "Android and iOS apps"): DAVx5 checks
// HEAD before random access and reads in 2 MiB Range GETs with If-Match;
// Material Files reads everything with Range GETs and takes 416 as the end
// of the file; File Provider apps on iOS use both range forms and absolute
// Destinations.

var (
	davx5Headers    = map[string]string{"User-Agent": "DAVx5/4.4.2-ose (2024/08/26; dav4jvm; okhttp/4.12.0) Android/14"}
	materialHeaders = map[string]string{"User-Agent": "okhttp/4.12.0"}
	iosHeaders      = map[string]string{"User-Agent": "Documents/8.10.3 CFNetwork/1494.0.7 Darwin/23.4.0"}
)

const davx5Propfind = `<?xml version='1.0' encoding='UTF-8' ?>` +
	`<d:propfind xmlns:d="DAV:"><d:prop><d:resourcetype/><d:current-user-privilege-set/><d:displayname/>` +
	`<d:getetag/><d:getcontenttype/><d:getcontentlength/><d:getlastmodified/>` +
	`<d:quota-available-bytes/><d:quota-used-bytes/></d:prop></d:propfind>`

const twoMiB = 2 << 20

// TestMobileApps replays the reads and writes of DAVx5, Material Files and
// iOS File Provider apps on every back end.
func TestMobileApps(t *testing.T) {
	forEachBackend(t, backendNames, func(t *testing.T, e *davEnv) {
		for _, c := range mobileCases() {
			t.Run(c.name, func(t *testing.T) { c.run(t, e) })
		}
	})
}

func mobileCases() []conformanceCase {
	return []conformanceCase{
		{"DAVx5's HEAD shows Content-Length, a strong ETag, Last-Modified and Accept-Ranges like GET", func(t *testing.T, e *davEnv) {
			keyPrefix, dir := e.caseDir(t)
			d := newClientApp(e, "DAVx5", davx5Headers)
			body := randBytes(5<<20 + 123)
			etag := e.putS3(t, keyPrefix+"video.mp4", body, "video/mp4")
			h := d.send(t, call{Method: http.MethodHead, Path: dir + "video.mp4"})
			expect(t, "HEAD", h, http.StatusOK)
			if got := h.Header.Get("Content-Length"); got != strconv.Itoa(len(body)) {
				t.Errorf("HEAD Content-Length = %q, want %d", got, len(body))
			}
			if got := h.Header.Get("ETag"); got != etag || strings.HasPrefix(got, "W/") {
				t.Errorf("HEAD ETag = %q, want the strong S3 ETag %q", got, etag)
			}
			if _, err := http.ParseTime(h.Header.Get("Last-Modified")); err != nil {
				t.Errorf("HEAD Last-Modified = %q: %v", h.Header.Get("Last-Modified"), err)
			}
			if got := h.Header.Get("Accept-Ranges"); got != "bytes" {
				t.Errorf("HEAD Accept-Ranges = %q, want bytes: DAVx5 then reads the whole file", got)
			}
			g := d.send(t, call{Method: http.MethodGet, Path: dir + "video.mp4"})
			expect(t, "GET", g, http.StatusOK)
			for _, name := range []string{"Content-Length", "ETag", "Last-Modified", "Accept-Ranges", "Content-Type"} {
				if h.Header.Get(name) != g.Header.Get(name) {
					t.Errorf("%s: HEAD says %q, GET says %q", name, h.Header.Get(name), g.Header.Get(name))
				}
			}
		}},
		{"DAVx5 reads in 2 MiB Range GETs with If-Match and gets 206 with the right bytes", func(t *testing.T, e *davEnv) {
			keyPrefix, dir := e.caseDir(t)
			d := newClientApp(e, "DAVx5", davx5Headers)
			body := randBytes(5<<20 + 123)
			etag := e.putS3(t, keyPrefix+"album.zip", body, "application/zip")
			for off := 0; off < len(body); off += twoMiB {
				end := min(off+twoMiB, len(body)) - 1
				rng := fmt.Sprintf("bytes=%d-%d", off, end)
				r := d.send(t, call{Method: http.MethodGet, Path: dir + "album.zip", Header: map[string]string{"Range": rng, "If-Match": etag}})
				expect(t, "GET "+rng+" with If-Match", r, http.StatusPartialContent)
				if want := fmt.Sprintf("bytes %d-%d/%d", off, end, len(body)); r.Header.Get("Content-Range") != want {
					t.Errorf("%s: Content-Range = %q, want %q", rng, r.Header.Get("Content-Range"), want)
				}
				if !bytes.Equal(r.Body, body[off:end+1]) {
					t.Errorf("%s: %d bytes that differ from the stored range", rng, len(r.Body))
				}
			}
			stale := d.send(t, call{Method: http.MethodGet, Path: dir + "album.zip", Header: map[string]string{"Range": "bytes=0-99", "If-Match": `"0123456789abcdef0123456789abcdef"`}})
			expect(t, "Range GET with a stale If-Match", stale, http.StatusPreconditionFailed)
		}},
		{"DAVx5 creates a file with an empty PUT and If-None-Match *, then writes it chunked with If-Match", func(t *testing.T, e *davEnv) {
			keyPrefix, dir := e.caseDir(t)
			d := newClientApp(e, "DAVx5", davx5Headers)
			p := d.send(t, call{Method: http.MethodPut, Path: dir + "IMG_0001.jpg", Header: map[string]string{"If-None-Match": "*"}, Body: []byte{}})
			expect(t, "PUT empty with If-None-Match: *", p, http.StatusCreated)
			again := d.send(t, call{Method: http.MethodPut, Path: dir + "IMG_0001.jpg", Header: map[string]string{"If-None-Match": "*"}, Body: []byte{}})
			expect(t, "the same PUT again (DAVx5 then tries another name)", again, http.StatusPreconditionFailed)
			etag, size, _, ok := e.headS3(t, keyPrefix+"IMG_0001.jpg")
			if !ok || size != 0 {
				t.Fatalf("S3 after the empty PUT: exists=%v size=%d", ok, size)
			}
			if got := p.Header.Get("ETag"); got != "" && got != etag {
				t.Errorf("PUT answered ETag %q, S3 has %q", got, etag)
			}
			body := randBytes(3<<20 + 5)
			w := d.send(t, call{Method: http.MethodPut, Path: dir + "IMG_0001.jpg", Header: map[string]string{"If-Match": etag}, Stream: bytes.NewReader(body)})
			expect(t, "chunked PUT with If-Match", w, http.StatusNoContent)
			if got, _ := e.getS3(t, keyPrefix+"IMG_0001.jpg"); !bytes.Equal(got, body) {
				t.Errorf("S3 holds %d bytes, want the %d written", len(got), len(body))
			}
			late := d.send(t, call{Method: http.MethodPut, Path: dir + "IMG_0001.jpg", Header: map[string]string{"If-Match": etag}, Body: []byte("lost update")})
			expect(t, "PUT with the old ETag in If-Match", late, http.StatusPreconditionFailed)
		}},
		{"DAVx5 moves and copies with Overwrite F and deletes with If-Match", func(t *testing.T, e *davEnv) {
			keyPrefix, dir := e.caseDir(t)
			d := newClientApp(e, "DAVx5", davx5Headers)
			etag := e.putS3(t, keyPrefix+"a.txt", []byte("a"), "")
			e.putS3(t, keyPrefix+"b.txt", []byte("b"), "")
			c := d.send(t, call{Method: "COPY", Path: dir + "a.txt", Header: map[string]string{"Destination": d.url(dir + "b.txt"), "Overwrite": "F"}})
			expect(t, "COPY onto an existing file with Overwrite F", c, http.StatusPreconditionFailed)
			m := d.send(t, call{Method: "MOVE", Path: dir + "a.txt", Header: map[string]string{"Destination": d.url(dir + "c.txt"), "Overwrite": "F", "If-Match": etag}})
			expect(t, "MOVE to a free name with Overwrite F and If-Match", m, http.StatusCreated)
			del := d.send(t, call{Method: http.MethodDelete, Path: dir + "b.txt", Header: map[string]string{"If-Match": etag}})
			expect(t, "DELETE with another file's ETag in If-Match", del, http.StatusPreconditionFailed)
			if got, _ := e.getS3(t, keyPrefix+"b.txt"); string(got) != "b" {
				t.Errorf("b.txt holds %q", got)
			}
			if got, _ := e.getS3(t, keyPrefix+"c.txt"); string(got) != "a" {
				t.Errorf("c.txt holds %q", got)
			}
		}},
		{"DAVx5's listing asks for privileges and quota and still gets every file with its ETag", func(t *testing.T, e *davEnv) {
			keyPrefix, dir := e.caseDir(t)
			d := newClientApp(e, "DAVx5", davx5Headers)
			etag := e.putS3(t, keyPrefix+"doc.pdf", []byte("%PDF-1.7"), "application/pdf")
			r := d.send(t, call{Method: "PROPFIND", Path: dir, Header: map[string]string{"Depth": "1"}, Body: []byte(davx5Propfind)})
			expect(t, "PROPFIND Depth 1", r, http.StatusMultiStatus)
			m, ok := byPath(t, r)[dir+"doc.pdf"]
			if !ok {
				t.Fatalf("the listing lacks doc.pdf: %s", r)
			}
			if m.Props["DAV: getetag"].Text != etag {
				t.Errorf("getetag = %q, want %q", m.Props["DAV: getetag"].Text, etag)
			}
			if m.Props["DAV: getcontenttype"].Text != "application/pdf" {
				t.Errorf("getcontenttype = %q, want application/pdf", m.Props["DAV: getcontenttype"].Text)
			}
		}},
		{"Material Files reads with Range GETs and gets 416 past the end", func(t *testing.T, e *davEnv) {
			keyPrefix, dir := e.caseDir(t)
			m := newClientApp(e, "Material Files", materialHeaders)
			body := randBytes(10_000)
			e.putS3(t, keyPrefix+"song.mp3", body, "audio/mpeg")
			r := m.send(t, call{Method: http.MethodGet, Path: dir + "song.mp3", Header: map[string]string{"Range": "bytes=8192-"}})
			expect(t, "GET bytes=8192-", r, http.StatusPartialContent)
			if !bytes.Equal(r.Body, body[8192:]) {
				t.Errorf("got %d bytes, want the last %d", len(r.Body), len(body)-8192)
			}
			end := m.send(t, call{Method: http.MethodGet, Path: dir + "song.mp3", Header: map[string]string{"Range": "bytes=10000-"}})
			expect(t, "GET from the end of the file", end, http.StatusRequestedRangeNotSatisfiable)
			if got := end.Header.Get("Content-Range"); got != "bytes */10000" {
				t.Errorf("416 Content-Range = %q, want bytes */10000", got)
			}
			e.putS3(t, keyPrefix+"empty.txt", nil, "")
			z := m.send(t, call{Method: http.MethodGet, Path: dir + "empty.txt", Header: map[string]string{"Range": "bytes=0-"}})
			expect(t, "Range GET of an empty file", z, http.StatusRequestedRangeNotSatisfiable, http.StatusOK)
		}},
		{"iOS File Provider apps use both range forms, absolute Destinations and get 403 for Depth infinity", func(t *testing.T, e *davEnv) {
			keyPrefix, dir := e.caseDir(t)
			i := newClientApp(e, "iOS app", iosHeaders)
			body := randBytes(4096)
			e.putS3(t, keyPrefix+"scan.pdf", body, "application/pdf")
			e.putS3(t, keyPrefix+"target.pdf", []byte("old"), "")
			for rng, want := range map[string][]byte{"bytes=100-199": body[100:200], "bytes=4000-": body[4000:], "bytes=-96": body[4000:]} {
				r := i.send(t, call{Method: http.MethodGet, Path: dir + "scan.pdf", Header: map[string]string{"Range": rng}})
				expect(t, "GET "+rng, r, http.StatusPartialContent)
				if !bytes.Equal(r.Body, want) {
					t.Errorf("%s: %d bytes that differ from the stored range", rng, len(r.Body))
				}
			}
			mv := i.send(t, call{Method: "MOVE", Path: dir + "scan.pdf", Header: map[string]string{"Destination": i.url(dir + "target.pdf"), "Overwrite": "T"}})
			expect(t, "MOVE onto an existing file with Overwrite T", mv, http.StatusNoContent)
			if got, _ := e.getS3(t, keyPrefix+"target.pdf"); !bytes.Equal(got, body) {
				t.Errorf("target.pdf holds %d bytes after the MOVE", len(got))
			}
			inf := i.send(t, call{Method: "PROPFIND", Path: dir, Header: map[string]string{"Depth": "infinity"}, Body: []byte(propfindListing)})
			expect(t, "PROPFIND Depth infinity", inf, http.StatusForbidden)
			if !bytes.Contains(inf.Body, []byte("propfind-finite-depth")) {
				t.Errorf("the 403 does not name propfind-finite-depth: %s", inf)
			}
		}},
		{"If-Range with the ETag gives 206 while the file is unchanged and 200 after it changed", func(t *testing.T, e *davEnv) {
			keyPrefix, dir := e.caseDir(t)
			d := newClientApp(e, "DAVx5", davx5Headers)
			etag := e.putS3(t, keyPrefix+"log.txt", []byte("0123456789"), "text/plain")
			r := d.send(t, call{Method: http.MethodGet, Path: dir + "log.txt", Header: map[string]string{"Range": "bytes=5-", "If-Range": etag}})
			expect(t, "If-Range with the current ETag", r, http.StatusPartialContent)
			if string(r.Body) != "56789" {
				t.Errorf("got %q, want 56789", r.Body)
			}
			e.putS3(t, keyPrefix+"log.txt", []byte("abcdefghijklmnop"), "text/plain")
			c := d.send(t, call{Method: http.MethodGet, Path: dir + "log.txt", Header: map[string]string{"Range": "bytes=5-", "If-Range": etag}})
			expect(t, "If-Range with the old ETag", c, http.StatusOK)
			if string(c.Body) != "abcdefghijklmnop" {
				t.Errorf("got %q, want the whole new file", c.Body)
			}
		}},
		{"getcontenttype comes from the stored content type, else from the extension", func(t *testing.T, e *davEnv) {
			keyPrefix, dir := e.caseDir(t)
			d := newClientApp(e, "DAVx5", davx5Headers)
			e.putS3(t, keyPrefix+"no-extension", []byte("x"), "image/webp")
			expect(t, "PUT photo.png without Content-Type", d.send(t, call{Method: http.MethodPut, Path: dir + "photo.png", Body: []byte("png")}), http.StatusCreated)
			// GET and a Depth 0 PROPFIND see the stored type; a listing has
			// only what ListObjectsV2 returns (no content type) and takes it
			// from the extension rather than a HEAD per entry.
			list := byPath(t, d.send(t, call{Method: "PROPFIND", Path: dir, Header: map[string]string{"Depth": "1"}, Body: []byte(davx5Propfind)}))
			if got := list[dir+"photo.png"].Props["DAV: getcontenttype"].Text; got != "image/png" {
				t.Errorf("photo.png in the listing: getcontenttype = %q, want image/png", got)
			}
			for name, want := range map[string]string{"no-extension": "image/webp", "photo.png": "image/png"} {
				one := onlyResponse(t, "PROPFIND Depth 0 of "+name, d.send(t, call{Method: "PROPFIND", Path: dir + name, Header: map[string]string{"Depth": "0"}, Body: []byte(davx5Propfind)}))
				if got := one.Props["DAV: getcontenttype"].Text; got != want {
					t.Errorf("%s: Depth 0 getcontenttype = %q, want %q", name, got, want)
				}
				g := d.send(t, call{Method: http.MethodGet, Path: dir + name})
				if got := g.Header.Get("Content-Type"); got != want {
					t.Errorf("%s: GET Content-Type = %q, want %q", name, got, want)
				}
			}
		}},
	}
}
