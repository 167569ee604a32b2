package tests

import (
	"bufio"
	"bytes"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// What macOS Finder (webdavfs) sends (CLIENTS.md, "macOS Finder"): a fixed
// PROPFIND body, Depth 0 probes for Apple's marker files, LOCK before every
// write with the token read from the body, chunked PUTs announcing their
// size in X-Expected-Entity-Length.

var finderHeaders = map[string]string{"User-Agent": "WebDAVFS/3.0.0 (03008000) Darwin/22.1.0 (arm64)", "Accept": "*/*"}

const finderPropfind = `<?xml version="1.0" encoding="utf-8"?>` + "\n" +
	`<D:propfind xmlns:D="DAV:"><D:prop><D:getlastmodified/><D:getcontentlength/><D:creationdate/><D:resourcetype/></D:prop></D:propfind>`

const finderPropfindApple = `<?xml version="1.0" encoding="utf-8"?>` + "\n" +
	`<D:propfind xmlns:D="DAV:" xmlns:A="http://www.apple.com/webdav_fs/props/"><D:prop><D:getlastmodified/><D:getcontentlength/>` +
	`<D:creationdate/><D:resourcetype/><A:appledoubleheader/></D:prop></D:propfind>`

const finderQuota = `<?xml version="1.0" encoding="utf-8"?>` + "\n" +
	`<D:propfind xmlns:D="DAV:"><D:prop><D:quota-available-bytes/><D:quota-used-bytes/><D:quota/><D:quotaused/></D:prop></D:propfind>`

const finderLock = `<?xml version="1.0" encoding="utf-8"?>` + "\n" +
	`<D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype>` +
	`<D:owner><D:href>http://www.apple.com/webdav_fs/</D:href></D:owner></D:lockinfo>`

// finderRootProbes are the Depth 0 PROPFINDs Finder sends at the mount
// point; finderFolderProbes the ones in every folder it opens.
var (
	finderRootProbes   = []string{"._.", ".DS_Store", ".metadata_never_index", "Backups.backupdb", "mach_kernel", "Contents", ".Spotlight-V100", ".ql_disablethumbnails", ".ql_disablecache", ".localized", ".metadata_never_index_unless_rootfs", ".hidden"}
	finderFolderProbes = []string{".localized", ".DS_Store", "._."}
)

// TestFinder replays what macOS Finder sends on a volume mounted with
// "Connect to Server" http://host/dav/, on every back end.
func TestFinder(t *testing.T) {
	forEachBackend(t, backendNames, func(t *testing.T, e *davEnv) {
		f := newClientApp(e, "Finder", finderHeaders)
		for _, c := range finderCases() {
			t.Run(c.name, func(t *testing.T) { c.run(t, e, f) })
		}
	})
}

type finderCase struct {
	name string
	run  func(t *testing.T, e *davEnv, f *clientApp)
}

func (f *clientApp) propfind(t *testing.T, path, depth, body string) reply {
	t.Helper()
	return f.send(t, call{Method: "PROPFIND", Path: path, Header: map[string]string{"Depth": depth, "Content-Type": "text/xml"}, Body: []byte(body)})
}

// finderLockFile LOCKs path as Finder does and returns the token from the body.
func finderLockFile(t *testing.T, f *clientApp, path string, want ...int) string {
	t.Helper()
	l := f.send(t, call{Method: "LOCK", Path: path, Header: map[string]string{"Depth": "0", "Timeout": "Second-600", "Content-Type": "text/xml"}, Body: []byte(finderLock)})
	expect(t, "LOCK "+path, l, want...)
	return lockTokenFromBody(t, l.Body)
}

func finderCases() []finderCase {
	return []finderCase{
		{"mounting finds class 2 in OPTIONS and a collection at the base, then asks for the quota", func(t *testing.T, e *davEnv, f *clientApp) {
			o := f.send(t, call{Method: http.MethodOptions, Path: "/dav/"})
			expect(t, "OPTIONS /dav/", o, http.StatusOK)
			if !strings.Contains(o.Header.Get("DAV"), "2") {
				t.Errorf("DAV = %q: without class 2 Finder mounts read-only", o.Header.Get("DAV"))
			}
			m := onlyResponse(t, "PROPFIND /dav/ Depth 0", f.propfind(t, "/dav/", "0", finderPropfind))
			if !m.isCollection() {
				t.Errorf("the base is not a collection: Finder refuses to mount it")
			}
			for range 2 { // Finder repeats it
				q := f.propfind(t, "/dav/", "0", finderQuota)
				qm := onlyResponse(t, "quota PROPFIND", q)
				for _, p := range []string{"quota-available-bytes", "quota-used-bytes"} {
					if v, ok := qm.Props["DAV: "+p]; ok {
						if _, err := strconv.ParseInt(v.Text, 10, 64); err != nil {
							t.Errorf("%s = %q is not a number", p, v.Text)
						}
					}
				}
			}
		}},
		{"the probe storm of Apple names answers 404 fast with few S3 requests", func(t *testing.T, e *davEnv, f *clientApp) {
			keyPrefix, dir := e.caseDir(t)
			for _, n := range []string{"one.txt", "two.jpg", "three.pdf"} {
				e.putS3(t, keyPrefix+n, []byte(n), "")
			}
			list := f.propfind(t, dir, "1", finderPropfind)
			expect(t, "PROPFIND Depth 1", list, http.StatusMultiStatus)
			var probes []string
			for _, p := range finderRootProbes {
				probes = append(probes, "/dav/"+p)
			}
			for _, p := range finderFolderProbes {
				probes = append(probes, dir+p)
			}
			for _, n := range []string{"one.txt", "two.jpg", "three.pdf"} {
				probes = append(probes, dir+"._"+n) // one per listed file
			}
			var slowest time.Duration
			most, total := 0, 0
			for _, p := range probes {
				mark := e.b.proxy.Mark()
				start := time.Now()
				r := f.propfind(t, p, "0", finderPropfind)
				took := time.Since(start)
				expect(t, "PROPFIND "+p, r, http.StatusNotFound)
				calls := e.b.proxy.SinceUnder(mark, "users/alice/")
				total += len(calls)
				most = max(most, len(calls))
				slowest = max(slowest, took)
				if took > time.Second {
					t.Errorf("PROPFIND %s took %v: Finder waits on every probe", p, took)
				}
				if len(calls) > 3 {
					t.Errorf("PROPFIND %s made %d S3 requests:%s", p, len(calls), describeCalls(calls))
				}
			}
			report(t, "finder probe storm on %s: %d probes, %d S3 requests (at most %d per probe), slowest %v",
				e.b.name, len(probes), total, most, slowest.Round(time.Millisecond))
		}},
		{"listing a folder with the appledoubleheader property answers 207 with the known properties", func(t *testing.T, e *davEnv, f *clientApp) {
			keyPrefix, dir := e.caseDir(t)
			e.putS3(t, keyPrefix+"a.txt", []byte("abc"), "")
			e.putS3(t, keyPrefix+"Pictures/", nil, "")
			r := f.propfind(t, dir, "1", finderPropfindApple)
			expect(t, "PROPFIND Depth 1 with appledoubleheader", r, http.StatusMultiStatus)
			plausibleTimes(t, "Depth 1 listing", byPath(t, r))
			m, ok := byPath(t, r)[dir+"a.txt"]
			if !ok {
				t.Fatalf("the listing lacks a.txt: %s", r)
			}
			if m.Props["DAV: getcontentlength"].Text != "3" {
				t.Errorf("getcontentlength = %q", m.Props["DAV: getcontentlength"].Text)
			}
			lm := m.Props["DAV: getlastmodified"].Text
			if _, err := time.Parse(http.TimeFormat, lm); err != nil || !strings.HasSuffix(lm, " GMT") {
				t.Errorf("getlastmodified = %q, want RFC 1123 GMT", lm)
			}
		}},
		{"reading revalidates with If-Modified-Since and resumes with Range and a date in If-Range", func(t *testing.T, e *davEnv, f *clientApp) {
			keyPrefix, dir := e.caseDir(t)
			body := randBytes(100_000)
			e.putS3(t, keyPrefix+"movie.mov", body, "video/quicktime")
			g := f.send(t, call{Method: http.MethodGet, Path: dir + "movie.mov"})
			expect(t, "GET", g, http.StatusOK)
			if g.Header.Get("Content-Length") != strconv.Itoa(len(body)) {
				t.Errorf("GET Content-Length = %q, want %d", g.Header.Get("Content-Length"), len(body))
			}
			lm := g.Header.Get("Last-Modified")
			nm := f.send(t, call{Method: http.MethodGet, Path: dir + "movie.mov", Header: map[string]string{"If-Modified-Since": lm}})
			expect(t, "GET If-Modified-Since: Last-Modified", nm, http.StatusNotModified)
			rg := f.send(t, call{Method: http.MethodGet, Path: dir + "movie.mov", Header: map[string]string{"Range": "bytes=60000-", "If-Range": lm}})
			expect(t, "GET Range with a matching If-Range date", rg, http.StatusPartialContent)
			if !bytes.Equal(rg.Body, body[60000:]) {
				t.Errorf("the resumed read returned %d bytes that differ from the stored tail", len(rg.Body))
			}
			old := time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC).Format(http.TimeFormat)
			full := f.send(t, call{Method: http.MethodGet, Path: dir + "movie.mov", Header: map[string]string{"Range": "bytes=60000-", "If-Range": old}})
			expect(t, "GET Range with an outdated If-Range date", full, http.StatusOK)
			if len(full.Body) != len(body) {
				t.Errorf("an outdated If-Range got %d bytes, want the whole %d", len(full.Body), len(body))
			}
		}},
		{"copying a file in sends an empty PUT, LOCK, a chunked PUT with X-Expected-Entity-Length, a refresh and UNLOCK", func(t *testing.T, e *davEnv, f *clientApp) {
			keyPrefix, dir := e.caseDir(t)
			path, key := dir+"Holiday.mov", keyPrefix+"Holiday.mov"
			body := randBytes(7<<20 + 3) // more than one part
			expect(t, "PROPFIND of the new name", f.propfind(t, path, "0", finderPropfind), http.StatusNotFound)
			expect(t, "PUT of 0 bytes", f.send(t, call{Method: http.MethodPut, Path: path, Body: []byte{}}), http.StatusCreated)
			expect(t, "PROPFIND ._Holiday.mov", f.propfind(t, dir+"._Holiday.mov", "0", finderPropfind), http.StatusNotFound)
			tok := finderLockFile(t, f, path, http.StatusOK)
			ifTok := "(<" + tok + ">)"
			p := f.send(t, call{Method: http.MethodPut, Path: path, Stream: bytes.NewReader(body), Header: map[string]string{
				"If": ifTok, "X-Expected-Entity-Length": strconv.Itoa(len(body)), "Content-Type": "application/octet-stream"}})
			expect(t, "chunked PUT with X-Expected-Entity-Length and If", p, http.StatusNoContent)
			if p.Header.Get("ETag") == "" && p.Header.Get("Last-Modified") == "" {
				t.Log("the PUT answer has neither ETag nor Last-Modified: Finder PROPFINDs for them")
			}
			rf := f.send(t, call{Method: "LOCK", Path: path, Header: map[string]string{"If": ifTok, "Timeout": "Second-600"}})
			expect(t, "LOCK refresh without a body", rf, http.StatusOK)
			expect(t, "UNLOCK", f.send(t, call{Method: "UNLOCK", Path: path, Header: map[string]string{"Lock-Token": "<" + tok + ">"}}), http.StatusNoContent)
			if got, ok := e.getS3(t, key); !ok || !bytes.Equal(got, body) {
				t.Fatalf("S3 holds %d bytes (exists=%v), want the %d bytes sent", len(got), ok, len(body))
			}
			if ups := e.b.openUploads(t, keyPrefix); len(ups) != 0 {
				t.Errorf("multipart uploads left open: %v", ups)
			}

			// The AppleDouble companion goes through the same dance; a LOCK
			// of the missing name creates it empty (RFC 4918 7.3).
			side := dir + "._Holiday.mov"
			stok := finderLockFile(t, f, side, http.StatusCreated)
			if _, size, _, ok := e.headS3(t, keyPrefix+"._Holiday.mov"); !ok || size != 0 {
				t.Errorf("LOCK of the missing ._ file: exists=%v size=%d, want an empty object", ok, size)
			}
			apple := append([]byte{0, 5, 22, 7, 0, 2, 0, 0}, bytes.Repeat([]byte{0}, 4088)...)
			sp := f.send(t, call{Method: http.MethodPut, Path: side, Stream: bytes.NewReader(apple), Header: map[string]string{
				"If": "(<" + stok + ">)", "X-Expected-Entity-Length": strconv.Itoa(len(apple))}})
			expect(t, "chunked PUT of the ._ file", sp, http.StatusNoContent)
			expect(t, "UNLOCK of the ._ file", f.send(t, call{Method: "UNLOCK", Path: side, Header: map[string]string{"Lock-Token": "<" + stok + ">"}}), http.StatusNoContent)
			if got, _ := e.getS3(t, keyPrefix+"._Holiday.mov"); !bytes.Equal(got, apple) {
				t.Errorf("the ._ file holds %d bytes, want %d (apple_files = allow keeps it)", len(got), len(apple))
			}
		}},
		{"a PUT spelled Transfer-Encoding: Chunked is read whole", func(t *testing.T, e *davEnv, f *clientApp) {
			keyPrefix, dir := e.caseDir(t)
			body := randBytes(200_000)
			conn := e.startRawPUT(t, dir+"spelled.bin", fmt.Sprintf("User-Agent: %s\r\nTransfer-Encoding: Chunked\r\nX-Expected-Entity-Length: %d\r\n",
				finderHeaders["User-Agent"], len(body)))
			for off := 0; off < len(body); off += 65536 {
				end := min(off+65536, len(body))
				fmt.Fprintf(conn, "%x\r\n%s\r\n", end-off, body[off:end])
			}
			fmt.Fprint(conn, "0\r\n\r\n")
			_ = conn.SetReadDeadline(time.Now().Add(60 * time.Second)) // Finder gives up after 60 s
			resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err != nil {
				t.Fatalf("no answer to the chunked PUT: %v", err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusCreated {
				t.Errorf("PUT with Transfer-Encoding: Chunked answered %d, want 201", resp.StatusCode)
			}
			if got, _ := e.getS3(t, keyPrefix+"spelled.bin"); !bytes.Equal(got, body) {
				t.Errorf("S3 holds %d bytes, want the %d sent", len(got), len(body))
			}
		}},
		{"renaming a file sends MOVE with a full URL and no Overwrite header, with If when locked", func(t *testing.T, e *davEnv, f *clientApp) {
			keyPrefix, dir := e.caseDir(t)
			e.putS3(t, keyPrefix+"untitled.txt", []byte("text"), "")
			e.putS3(t, keyPrefix+"existing.txt", []byte("old"), "")
			m := f.send(t, call{Method: "MOVE", Path: dir + "untitled.txt", Header: map[string]string{"Destination": f.url(dir + "renamed.txt")}})
			expect(t, "MOVE to a free name", m, http.StatusCreated)
			tok := finderLockFile(t, f, dir+"renamed.txt", http.StatusOK)
			lm := f.send(t, call{Method: "MOVE", Path: dir + "renamed.txt", Header: map[string]string{
				"Destination": f.url(dir + "existing.txt"), "If": "(<" + tok + ">)"}})
			expect(t, "MOVE of a locked file onto an existing name (no Overwrite = T)", lm, http.StatusNoContent)
			if got, _ := e.getS3(t, keyPrefix+"existing.txt"); string(got) != "text" {
				t.Errorf("existing.txt holds %q, want text", got)
			}
			if keys := userKeys(t, e, keyPrefix); len(keys) != 2 {
				t.Errorf("S3 holds %v, want the marker and existing.txt", keys)
			}
		}},
		{"renaming a folder answers 403, which Finder shows as a permission error, and changes nothing", func(t *testing.T, e *davEnv, f *clientApp) {
			keyPrefix, dir := e.caseDir(t)
			e.putS3(t, keyPrefix+"untitled folder/", nil, "")
			e.putS3(t, keyPrefix+"untitled folder/a.txt", []byte("a"), "")
			before := e.b.snapshot(t, keyPrefix)
			m := f.send(t, call{Method: "MOVE", Path: dir + "untitled%20folder/", Header: map[string]string{"Destination": f.url(dir + "Photos")}})
			expect(t, "MOVE of a folder", m, http.StatusForbidden)
			if d := diffSnapshots(before, e.b.snapshot(t, keyPrefix)); d != "" {
				t.Errorf("a refused folder MOVE changed S3: %s", d)
			}
		}},
		{"deleting a file deletes its ._ file too and a folder after a Depth 1 check", func(t *testing.T, e *davEnv, f *clientApp) {
			keyPrefix, dir := e.caseDir(t)
			e.putS3(t, keyPrefix+"a.txt", []byte("a"), "")
			e.putS3(t, keyPrefix+"._a.txt", []byte("apple"), "")
			e.putS3(t, keyPrefix+"b.txt", []byte("b"), "")
			e.putS3(t, keyPrefix+"Old/", nil, "")
			e.putS3(t, keyPrefix+"Old/c.txt", []byte("c"), "")
			expect(t, "DELETE a.txt", f.send(t, call{Method: http.MethodDelete, Path: dir + "a.txt"}), http.StatusNoContent)
			expect(t, "DELETE ._a.txt", f.send(t, call{Method: http.MethodDelete, Path: dir + "._a.txt"}), http.StatusNoContent)
			expect(t, "DELETE b.txt", f.send(t, call{Method: http.MethodDelete, Path: dir + "b.txt"}), http.StatusNoContent)
			expect(t, "DELETE ._b.txt that never existed", f.send(t, call{Method: http.MethodDelete, Path: dir + "._b.txt"}), http.StatusNotFound)
			expect(t, "PROPFIND Depth 1 of the folder", f.propfind(t, dir+"Old/", "1", finderPropfind), http.StatusMultiStatus)
			expect(t, "DELETE of the folder", f.send(t, call{Method: http.MethodDelete, Path: dir + "Old/"}), http.StatusNoContent)
			if keys := userKeys(t, e, keyPrefix); len(keys) != 1 {
				t.Errorf("S3 still holds %v", keys)
			}
		}},
		{"names in NFD are stored and listed byte for byte", func(t *testing.T, e *davEnv, f *clientApp) {
			keyPrefix, dir := e.caseDir(t)
			const nfd = "u\u0308ber.txt" // ü as Finder sends it
			expect(t, "PUT an NFD name", f.send(t, call{Method: http.MethodPut, Path: dir + "u%CC%88ber.txt", Body: []byte("nfd")}), http.StatusCreated)
			if got, ok := e.getS3(t, keyPrefix+nfd); !ok || string(got) != "nfd" {
				t.Errorf("S3 key %q holds %q (exists=%v)", keyPrefix+nfd, got, ok)
			}
			if _, ok := byPath(t, f.propfind(t, dir, "1", finderPropfind))[dir+nfd]; !ok {
				t.Errorf("the listing lacks the NFD name")
			}
			expect(t, "GET the NFD name", f.send(t, call{Method: http.MethodGet, Path: dir + "u%CC%88ber.txt"}), http.StatusOK)
		}},
	}
}
