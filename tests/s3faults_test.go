package tests

import (
	"bytes"
	"net/http"
	"strings"
	"testing"
	"time"
)

// The S3-fault rows of issue 10: what a client sees when S3 fails in the
// middle of an operation, checked over HTTP and then in S3 directly. Each
// case also checks that another user is still served meanwhile.

// otherUserServed checks that bob can still write and read a file: a fault
// met by alice must never block another user.
func (e *davEnv) otherUserServed(t *testing.T) {
	t.Helper()
	name := "/dav/served-" + randHex(4) + ".txt"
	body := "bob's " + randHex(8)
	expect(t, "bob's PUT while alice's request met a fault", e.bob(t, http.MethodPut, name, nil, body), http.StatusCreated)
	g := e.bob(t, http.MethodGet, name, nil, "")
	expect(t, "bob's GET while alice's request met a fault", g, http.StatusOK)
	if string(g.Body) != body {
		t.Errorf("bob's GET = %q, want %q", g.Body, body)
	}
	expect(t, "bob's DELETE", e.bob(t, http.MethodDelete, name, nil, ""), http.StatusNoContent)
}

// cutOnce cuts the body of the next S3 answer that match accepts after
// n bytes, until the test ends.
func (e *davEnv) cutOnce(t *testing.T, match func(c s3Call) bool, n int64, onCut func()) {
	t.Helper()
	t.Cleanup(e.b.proxy.cutBodyOnce(match, n, onCut))
}

// getOf matches the GetObject calls of one key.
func getOf(key string) func(c s3Call) bool {
	return func(c s3Call) bool { return c.Op() == "GetObject" && c.Key == key }
}

// getObjectCalls returns the GetObject calls on key among calls.
func getObjectCalls(calls []s3Call, key string) []s3Call {
	var out []s3Call
	for _, c := range calls {
		if c.Op() == "GetObject" && c.Key == key {
			out = append(out, c)
		}
	}
	return out
}

func s3FaultCases() []conformanceCase {
	cs := append(raceCases(), moveRetryCases()...)
	cs = append(cs, propLimitCases()...)
	cs = append(cs, abortOutageCases()...)
	cs = append(cs, unreadableIndexCases()...)
	cs = append(cs, throttledIndexCases()...)
	return append(cs, []conformanceCase{
		{"a GET whose S3 body is cut once mid-stream is re-read from the offset and arrives whole (F15)", func(t *testing.T, e *davEnv) {
			keyPrefix, dir := e.caseDir(t)
			key := keyPrefix + "big.bin"
			body := randBytes(3 << 20)
			e.putS3(t, key, body, "application/octet-stream")
			mark := e.b.proxy.Mark()
			e.cutOnce(t, getOf(key), 1<<20, nil)
			status, got, readErr := e.rawAlice(t, http.MethodGet, dir+"big.bin", nil, nil)
			gets := getObjectCalls(e.b.proxy.SinceUnder(mark, keyPrefix), key)
			report(t, "%s: GET of 3 MiB cut by S3 after 1 MiB: %d, %d bytes, read error %v, %d GetObjects",
				e.b.name, status, len(got), readErr, len(gets))
			if status != http.StatusOK || readErr != nil || !bytes.Equal(got, body) {
				t.Fatalf("GET = %d with %d of %d bytes (read error %v, same bytes %v), want 200 and the whole file",
					status, len(got), len(body), readErr, bytes.Equal(got, body))
			}
			if len(gets) != 2 || !strings.HasPrefix(gets[1].Range, "bytes=") || gets[1].Range == "bytes=0-" {
				t.Errorf("want the GET and one ranged re-read from the offset; S3 calls:%s", describeCalls(gets))
			}
			e.otherUserServed(t)
		}},
		{"a GET whose object is replaced while its S3 body is cut fails the transfer, never a short 200 (F15)", func(t *testing.T, e *davEnv) {
			keyPrefix, dir := e.caseDir(t)
			key := keyPrefix + "big.bin"
			e.putS3(t, key, randBytes(3<<20), "application/octet-stream")
			replacement := randBytes(3 << 20)
			e.cutOnce(t, getOf(key), 1<<20, func() {
				e.putS3(t, key, replacement, "application/octet-stream")
			})
			status, got, readErr := e.rawAlice(t, http.MethodGet, dir+"big.bin", nil, nil)
			report(t, "%s: GET of 3 MiB cut after 1 MiB and replaced meanwhile: %d, %d bytes, read error %v",
				e.b.name, status, len(got), readErr)
			if readErr == nil && status == http.StatusOK {
				t.Fatalf("GET = 200 with %d bytes and a clean end: a mix or a short file taken for whole", len(got))
			}
			if s3got, _ := e.getS3(t, key); !bytes.Equal(s3got, replacement) {
				t.Errorf("S3 holds %d bytes that are not the replacement", len(s3got))
			}
			g := e.alice(t, http.MethodGet, dir+"big.bin", nil, nil)
			expect(t, "GET again", g, http.StatusOK)
			if !bytes.Equal(g.Body, replacement) {
				t.Errorf("GET again = %d bytes, not the replacement", len(g.Body))
			}
			e.otherUserServed(t)
		}},
	}...)
}

// raceOnce runs fn (a change made directly in S3) just before the gateway's
// next S3 call that match accepts reaches S3, until the test ends.
func (e *davEnv) raceOnce(t *testing.T, match func(c s3Call) bool, fn func()) {
	t.Helper()
	t.Cleanup(e.b.proxy.beforeOnce(match, fn))
}

// raceCases: a GET whose object is deleted or replaced in S3 between the
// gateway's HEAD (conditional and multi-range GETs HEAD first) and its
// GetObject of the bytes.
func raceCases() []conformanceCase {
	type race struct {
		name    string
		header  map[string]string
		replace bool // else delete
		want    int
		check   func(t *testing.T, got []byte, second []byte)
	}
	second := []byte("the second version, longer than the first")
	wholeIsSecond := func(t *testing.T, got, second []byte) {
		if !bytes.Equal(got, second) {
			t.Errorf("body = %q, want the new version %q", got, second)
		}
	}
	rangesOfSecond := func(t *testing.T, got, second []byte) {
		for _, part := range [][]byte{second[0:4], second[10:16]} {
			if !bytes.Contains(got, part) {
				t.Errorf("multipart body %q lacks the new version's bytes %q", got, part)
			}
		}
	}
	races := []race{
		{"a conditional GET racing a DELETE answers 404", map[string]string{"If-None-Match": `"not-this"`}, false, http.StatusNotFound, nil},
		{"a conditional GET racing a PUT serves the new version whole", map[string]string{"If-Modified-Since": "Mon, 01 Jan 2001 00:00:00 GMT"}, true, http.StatusOK, wholeIsSecond},
		{"a multi-range GET racing a PUT serves the new version's ranges, not 412", map[string]string{"Range": "bytes=0-3,10-15"}, true, http.StatusPartialContent, rangesOfSecond},
		{"a multi-range GET racing a DELETE answers 404", map[string]string{"Range": "bytes=0-3,10-15"}, false, http.StatusNotFound, nil},
		{"a GET with If-Match on the old version racing a PUT answers 412", nil, true, http.StatusPreconditionFailed, nil},
	}
	var cs []conformanceCase
	for _, rc := range races {
		cs = append(cs, conformanceCase{rc.name + " (F11)", func(t *testing.T, e *davEnv) {
			keyPrefix, dir := e.caseDir(t)
			key := keyPrefix + "f.txt"
			etag := e.putS3(t, key, []byte("first version"), "text/plain")
			header := rc.header
			if header == nil {
				header = map[string]string{"If-Match": etag}
			}
			e.raceOnce(t, getOf(key), func() {
				if rc.replace {
					e.putS3(t, key, second, "text/plain")
				} else {
					e.deleteS3(t, key)
				}
			})
			status, got, readErr := e.rawAlice(t, http.MethodGet, dir+"f.txt", header, nil)
			report(t, "%s: %s: %d, %d bytes, read error %v", e.b.name, rc.name, status, len(got), readErr)
			if status != rc.want || readErr != nil {
				t.Fatalf("GET = %d %q (read error %v), want %d with a whole answer", status, got, readErr, rc.want)
			}
			if rc.check != nil {
				rc.check(t, got, second)
			}
			if rc.replace {
				if s3got, _ := e.getS3(t, key); !bytes.Equal(s3got, second) {
					t.Errorf("S3 holds %q, want the new version", s3got)
				}
			} else if _, _, _, ok := e.headS3(t, key); ok {
				t.Errorf("the deleted object is back")
			}
			e.otherUserServed(t)
		}})
	}
	return cs
}

// moveRetryCases: a MOVE whose DeleteObject of the source fails after the
// copy answers 503, and the same MOVE repeated completes it.
func moveRetryCases() []conformanceCase {
	var cs []conformanceCase
	for _, overwrite := range []string{"F", "T"} {
		cs = append(cs, conformanceCase{"a MOVE (Overwrite " + overwrite + ") whose DeleteObject fails answers 503, and the same MOVE repeated completes it (F18)", func(t *testing.T, e *davEnv) {
			keyPrefix, dir := e.caseDir(t)
			body := randBytes(64 << 10)
			e.putS3(t, keyPrefix+"src.bin", body, "application/octet-stream")
			clear := e.fault(t, slowDown, opsUnder(keyPrefix, "DeleteObject", "DeleteObjects"))
			r := e.alice(t, "MOVE", dir+"src.bin", e.dest(dir+"dst.bin", overwrite), nil)
			expect(t, "MOVE while S3 refuses deletes", r, http.StatusServiceUnavailable)
			clear()
			for _, k := range []string{"src.bin", "dst.bin"} {
				if got, _ := e.getS3(t, keyPrefix+k); !bytes.Equal(got, body) {
					t.Errorf("after the failed MOVE, %s holds %d bytes, want the file", k, len(got))
				}
			}
			e.otherUserServed(t)
			again := e.alice(t, "MOVE", dir+"src.bin", e.dest(dir+"dst.bin", overwrite), nil)
			report(t, "%s: MOVE (Overwrite %s) repeated after its DeleteObject failed: %d", e.b.name, overwrite, again.Status)
			if overwrite == "F" {
				expect(t, "the same MOVE repeated", again, http.StatusCreated)
			} else {
				expect(t, "the same MOVE repeated", again, http.StatusCreated, http.StatusNoContent)
			}
			if _, _, _, ok := e.headS3(t, keyPrefix+"src.bin"); ok {
				t.Errorf("the source is still there after the repeated MOVE")
			}
			if got, _ := e.getS3(t, keyPrefix+"dst.bin"); !bytes.Equal(got, body) {
				t.Errorf("the destination holds %d bytes, want the moved file", len(got))
			}
		}})
	}
	cs = append(cs, conformanceCase{"a MOVE with Overwrite F onto another file, even one with the same bytes, still answers 412 and changes nothing (F18)", func(t *testing.T, e *davEnv) {
		keyPrefix, dir := e.caseDir(t)
		for _, dst := range []string{"other bytes!", "source bytes"} {
			e.putS3(t, keyPrefix+"src.bin", []byte("source bytes"), "")
			e.putS3(t, keyPrefix+"dst.bin", []byte(dst), "")
			r := e.alice(t, "MOVE", dir+"src.bin", e.dest(dir+"dst.bin", "F"), nil)
			expect(t, "MOVE onto another file holding "+dst, r, http.StatusPreconditionFailed)
			if got, _ := e.getS3(t, keyPrefix+"dst.bin"); string(got) != dst {
				t.Errorf("dst = %q, want %q", got, dst)
			}
			if got, _ := e.getS3(t, keyPrefix+"src.bin"); string(got) != "source bytes" {
				t.Errorf("src = %q", got)
			}
		}
	}})
	return cs
}

// bigPropPatch sets urn:davgw:test <local> to n bytes of one letter (it
// compresses to almost nothing).
func bigPropPatch(local string, n int) []byte {
	return []byte(`<?xml version="1.0" encoding="utf-8"?><D:propertyupdate xmlns:D="DAV:" xmlns:Z="urn:davgw:test"><D:set><D:prop><Z:` +
		local + `>` + strings.Repeat("x", n) + `</Z:` + local + `></D:prop></D:set></D:propertyupdate>`)
}

func propLimitCases() []conformanceCase {
	return []conformanceCase{
		{"a PROPPATCH that would push a file's dead properties past 1 MiB answers 507 for them and keeps the others (F10)", func(t *testing.T, e *davEnv) {
			_, dir := e.caseDir(t)
			expect(t, "PUT", e.alice(t, http.MethodPut, dir+"p.txt", nil, []byte("p")), http.StatusCreated)
			expect(t, "PROPPATCH colour", e.alice(t, "PROPPATCH", dir+"p.txt", nil, []byte(deadPropPatch)), http.StatusMultiStatus)
			first := e.alice(t, "PROPPATCH", dir+"p.txt", nil, bigPropPatch("first", 600<<10))
			expect(t, "PROPPATCH of 600 KiB", first, http.StatusMultiStatus)
			if ms := parseMultistatus(t, first.Body); len(ms) != 1 || !strings.Contains(ms[0].Status["urn:davgw:test first"], " 200") {
				t.Fatalf("the first 600 KiB property was not answered 200: %s", first)
			}
			second := e.alice(t, "PROPPATCH", dir+"p.txt", nil, bigPropPatch("second", 600<<10))
			expect(t, "PROPPATCH of 600 KiB more", second, http.StatusMultiStatus)
			ms := parseMultistatus(t, second.Body)
			st := ""
			if len(ms) == 1 {
				st = ms[0].Status["urn:davgw:test second"]
			}
			report(t, "%s: PROPPATCH taking a file's dead properties past 1 MiB: %s", e.b.name, st)
			if !strings.Contains(st, " 507") {
				t.Errorf("the property past the limit was answered %q, want 507 Insufficient Storage: %s", st, truncate(string(second.Body), 400))
			}
			if got := e.deadProp(t, dir+"p.txt"); got != "deep blue & green" {
				t.Errorf("after the refused PROPPATCH the earlier property reads %q, want it kept", got)
			}
			if got := e.deadPropNamed(t, dir+"p.txt", "urn:davgw:test", "first"); len(got) != 600<<10 {
				t.Errorf("the first 600 KiB property reads %d bytes, want it kept", len(got))
			}
			if got := e.deadPropNamed(t, dir+"p.txt", "urn:davgw:test", "second"); got != "" {
				t.Errorf("the refused property was kept (%d bytes)", len(got))
			}
			e.otherUserServed(t)
		}},
	}
}

// s3Down is what S3 answers while it is down (or restarting behind a load
// balancer).
var s3Down = s3Fault{Status: http.StatusServiceUnavailable, Code: "ServiceUnavailable", Message: "Service is unavailable"}

func abortOutageCases() []conformanceCase {
	return []conformanceCase{
		{"a multipart PUT cut by a 3 s S3 outage answers 503 and leaves no upload once S3 is back (F14)", func(t *testing.T, e *davEnv) {
			keyPrefix, dir := e.caseDir(t)
			// Part 1 lands; from part 2 on, S3 is down, aborts included.
			down := opsUnder(keyPrefix, "UploadPart", "AbortMultipartUpload", "ListParts", "CompleteMultipartUpload")
			clear := e.fault(t, s3Down, func(c s3Call) bool {
				return down(c) && !(c.Op() == "UploadPart" && c.Query.Get("partNumber") == "1")
			})
			mark := e.b.proxy.Mark()
			r, took := e.timed(t, http.MethodPut, dir+"big.bin", nil, randBytes(12<<20))
			expect(t, "PUT during the outage", r, http.StatusServiceUnavailable)
			calls := e.b.proxy.SinceUnder(mark, keyPrefix)
			if n := countOps(calls)["UploadPart"]; n == 0 {
				t.Fatalf("no part was sent; S3 calls:%s", describeCalls(calls))
			}
			if took > 15*time.Second {
				t.Errorf("the PUT took %v to fail", took)
			}
			if open := e.b.openUploads(t, keyPrefix); len(open) == 0 {
				t.Fatalf("no upload open during the outage: the case tests nothing")
			}
			e.otherUserServed(t)
			time.Sleep(3 * time.Second)
			clear()
			back := time.Now()
			var open []string
			for time.Since(back) < 30*time.Second {
				if open = e.b.openUploads(t, keyPrefix); len(open) == 0 {
					break
				}
				time.Sleep(250 * time.Millisecond)
			}
			report(t, "%s: multipart PUT in a 3 s outage: %d in %v; uploads left %v after S3 came back (%v later)",
				e.b.name, r.Status, took.Round(time.Millisecond), open, time.Since(back).Round(100*time.Millisecond))
			if len(open) != 0 {
				t.Errorf("multipart uploads left 30 s after S3 came back: %v", open)
			}
			if _, _, _, ok := e.headS3(t, keyPrefix+"big.bin"); ok {
				t.Errorf("the failed PUT stored an object")
			}
		}},
	}
}

// indexCalls matches the gateway's calls of operation op on the folder
// indexes under keyPrefix.
func indexCalls(keyPrefix, op string) func(c s3Call) bool {
	return func(c s3Call) bool {
		return c.Op() == op && strings.HasPrefix(c.Key, keyPrefix) && strings.HasSuffix(c.Key, "/.davgw-index.json")
	}
}

func unreadableIndexCases() []conformanceCase {
	return []conformanceCase{
		{"a GET or HEAD in a folder whose index S3 will not serve answers the file without Last-Modified; a PROPFIND answers 503 (F17)", func(t *testing.T, e *davEnv) {
			keyPrefix, dir := e.caseDir(t)
			e.putS3(t, keyPrefix+"f.txt", []byte("the bytes"), "text/plain")
			mark := e.b.proxy.Mark()
			clear := e.fault(t, slowDown, indexCalls(keyPrefix, "GetObject"))
			g := e.alice(t, http.MethodGet, dir+"f.txt", nil, nil)
			hit := len(faultedCalls(e.b.proxy.SinceUnder(mark, keyPrefix), http.StatusServiceUnavailable)) > 0
			report(t, "%s: GET while the folder's index is unreadable: %d %q, Last-Modified %q",
				e.b.name, g.Status, truncate(string(g.Body), 40), g.Header.Get("Last-Modified"))
			if !hit {
				t.Fatalf("the index read was never faulted; S3 calls:%s", describeCalls(e.b.proxy.SinceUnder(mark, keyPrefix)))
			}
			expect(t, "GET while the folder's index is unreadable", g, http.StatusOK)
			if string(g.Body) != "the bytes" {
				t.Errorf("GET = %q, want the file", g.Body)
			}
			if lm := g.Header.Get("Last-Modified"); lm != "" {
				t.Errorf("GET shows Last-Modified %q although the kept time is unknown", lm)
			}
			h := e.alice(t, http.MethodHead, dir+"f.txt", nil, nil)
			expect(t, "HEAD while the folder's index is unreadable", h, http.StatusOK)
			if h.Header.Get("Last-Modified") != "" || h.Header.Get("ETag") == "" {
				t.Errorf("HEAD: Last-Modified %q, ETag %q; want no time and the ETag", h.Header.Get("Last-Modified"), h.Header.Get("ETag"))
			}
			ims := e.alice(t, http.MethodGet, dir+"f.txt", map[string]string{"If-Modified-Since": "Mon, 01 Jan 2100 00:00:00 GMT"}, nil)
			expect(t, "GET If-Modified-Since while the kept time is unknown", ims, http.StatusOK)
			p, took := e.timed(t, "PROPFIND", dir+"f.txt", map[string]string{"Depth": "0"}, []byte(propfindListing))
			e.expectUnavailable(t, "PROPFIND Depth 0 while the folder's index is unreadable", p, took)
			e.otherUserServed(t)
			clear()
			g = e.alice(t, http.MethodGet, dir+"f.txt", nil, nil)
			expect(t, "GET once the index is readable", g, http.StatusOK)
			if g.Header.Get("Last-Modified") == "" {
				t.Errorf("GET once the index is readable has no Last-Modified")
			}
		}},
	}
}

func throttledIndexCases() []conformanceCase {
	return []conformanceCase{
		{"a PROPPATCH or a PUT with a time while S3 throttles index writes answers promptly, without stacked retries (F16)", func(t *testing.T, e *davEnv) {
			keyPrefix, dir := e.caseDir(t)
			e.putS3(t, keyPrefix+"f.txt", []byte("f"), "text/plain")
			e.fault(t, slowDown, indexCalls(keyPrefix, "PutObject"))
			mark := e.b.proxy.Mark()
			p, took := e.timed(t, "PROPPATCH", dir+"f.txt", nil, []byte(deadPropPatch))
			ops := countOps(e.b.proxy.SinceUnder(mark, keyPrefix))
			report(t, "%s: PROPPATCH while index writes are throttled: %d in %v, %d PutObject + %d GetObject",
				e.b.name, p.Status, took.Round(time.Millisecond), ops["PutObject"], ops["GetObject"])
			e.expectUnavailable(t, "PROPPATCH", p, took)
			if ops["PutObject"] > 3 || ops["GetObject"] > 1 || took > 6*time.Second {
				t.Errorf("PROPPATCH: %d PutObject and %d GetObject in %v; want the SDK's 3 attempts at most, one read, and a prompt answer",
					ops["PutObject"], ops["GetObject"], took)
			}
			// The first upload's time waits in the batcher (accepted: this
			// gateway shows it); once that batch write failed, the
			// folder's uploads write their own entries.
			first := e.alice(t, http.MethodPut, dir+"g0.txt", map[string]string{"X-OC-Mtime": "1700000000"}, []byte("g0"))
			expect(t, "PUT with a time while index writes are throttled", first, http.StatusCreated)
			time.Sleep(4 * time.Second)
			mark = e.b.proxy.Mark()
			r, took := e.timed(t, http.MethodPut, dir+"g.txt", map[string]string{"X-OC-Mtime": "1700000000"}, []byte("g"))
			calls := e.b.proxy.SinceUnder(mark, keyPrefix)
			writes := 0
			for _, c := range calls {
				if indexCalls(keyPrefix, "PutObject")(c) {
					writes++
				}
			}
			report(t, "%s: PUT with X-OC-Mtime while index writes are throttled: %d in %v, X-OC-Mtime %q, %d index writes",
				e.b.name, r.Status, took.Round(time.Millisecond), r.Header.Get("X-OC-Mtime"), writes)
			expect(t, "PUT with a time while index writes are throttled", r, http.StatusCreated)
			if r.Header.Get("X-OC-Mtime") == "accepted" {
				t.Errorf("X-OC-Mtime: accepted although the index could not be written")
			}
			if writes > 3 || took > 6*time.Second {
				t.Errorf("PUT: %d index writes in %v; want the SDK's 3 attempts at most and a prompt answer:%s", writes, took, describeCalls(calls))
			}
			if got, _ := e.getS3(t, keyPrefix+"g.txt"); string(got) != "g" {
				t.Errorf("the file was not stored: %q", got)
			}
			e.otherUserServed(t)
		}},
	}
}
