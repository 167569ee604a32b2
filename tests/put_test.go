package tests

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"
)

// onlyReader hides a reader's other methods (Len, Seek, WriteTo) so that
// net/http cannot learn the length and sends the body chunked.
type onlyReader struct{ r io.Reader }

func (o onlyReader) Read(p []byte) (int, error) { return o.r.Read(p) }

func putCases() []conformanceCase {
	return []conformanceCase{
		{"eight PUTs to one name at once all succeed, one after another, and the file is one of them whole (no 423 without a lock)", func(t *testing.T, e *davEnv) {
			keyPrefix, dir := e.caseDir(t)
			const n = 8
			bodies := make([][]byte, n)
			pipes := make([]*io.PipeWriter, n)
			statuses := make([]int, n)
			errs := make([]error, n)
			var wg sync.WaitGroup
			for i := range n {
				bodies[i] = bytes.Repeat([]byte{byte('a' + i)}, 256<<10)
				pr, pw := io.Pipe()
				pipes[i] = pw
				hr, err := http.NewRequest(http.MethodPut, e.URL+dir+"same.bin", pr)
				if err != nil {
					t.Fatal(err)
				}
				hr.ContentLength = int64(len(bodies[i]))
				hr.SetBasicAuth("alice", testUsers["alice"])
				wg.Go(func() {
					resp, err := http.DefaultTransport.RoundTrip(hr)
					if err != nil {
						errs[i] = err
						_ = pr.CloseWithError(err)
						return
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					statuses[i] = resp.StatusCode
					_ = pr.CloseWithError(errors.New("answered"))
				})
			}
			// Every request is under way (and all but one wait for the
			// name) before any body byte is sent.
			time.Sleep(300 * time.Millisecond)
			for i := range n {
				wg.Go(func() {
					_, _ = pipes[i].Write(bodies[i])
					_ = pipes[i].Close()
				})
			}
			wg.Wait()
			created := 0
			for i := range n {
				if errs[i] != nil {
					t.Fatalf("PUT %d: %v", i, errs[i])
				}
				switch statuses[i] {
				case http.StatusCreated:
					created++
				case http.StatusNoContent:
				default:
					t.Errorf("PUT %d answered %d; concurrent writes must both complete (201, then 204)", i, statuses[i])
				}
			}
			if created != 1 {
				t.Errorf("%d PUTs answered 201; exactly the first to finish creates the file", created)
			}
			got, ok := e.getS3(t, keyPrefix+"same.bin")
			if !ok || !slices.ContainsFunc(bodies, func(b []byte) bool { return bytes.Equal(b, got) }) {
				t.Fatalf("S3 holds %d bytes (exists=%v) that are none of the bodies sent whole", len(got), ok)
			}
			// A client's lock still answers 423 at once.
			_, tok := e.lock(t, dir+"same.bin", http.StatusOK)
			start := time.Now()
			r := e.alice(t, http.MethodPut, dir+"same.bin", nil, []byte("x"))
			expect(t, "PUT onto a name a client locked, without its token", r, http.StatusLocked)
			if took := time.Since(start); took > 2*time.Second {
				t.Errorf("the 423 for a client's lock took %s: it must not wait like a busy name", took)
			}
			expect(t, "UNLOCK", e.alice(t, "UNLOCK", dir+"same.bin", map[string]string{"Lock-Token": "<" + tok + ">"}, nil), http.StatusNoContent)
		}},
		{"PUT of a new file answers 201 and its ETag agrees with GET, PROPFIND and S3", func(t *testing.T, e *davEnv) {
			keyPrefix, dir := e.caseDir(t)
			body := randBytes(64 << 10)
			r := e.alice(t, http.MethodPut, dir+"new.bin", nil, body)
			expect(t, "PUT of a new file", r, http.StatusCreated)
			got, ok := e.getS3(t, keyPrefix+"new.bin")
			if !ok || !bytes.Equal(got, body) {
				t.Fatalf("S3 holds %d bytes (exists=%v), want the %d bytes sent", len(got), ok, len(body))
			}
			g := e.alice(t, http.MethodGet, dir+"new.bin", nil, nil)
			expect(t, "GET", g, http.StatusOK)
			if !bytes.Equal(g.Body, body) {
				t.Errorf("GET returned %d bytes that differ from the %d sent", len(g.Body), len(body))
			}
			s3etag, _, _, _ := e.headS3(t, keyPrefix+"new.bin")
			sameETags(t, map[string]string{
				"PUT": r.Header.Get("ETag"), "GET": g.Header.Get("ETag"),
				"PROPFIND": e.etagOf(t, dir+"new.bin"), "S3": s3etag,
			})
		}},
		{"PUT over an existing file answers 204 and the new bytes and ETag are served", func(t *testing.T, e *davEnv) {
			keyPrefix, dir := e.caseDir(t)
			e.putS3(t, keyPrefix+"over.txt", []byte("old content"), "text/plain")
			body := []byte("new content, longer than the old one")
			r := e.alice(t, http.MethodPut, dir+"over.txt", nil, body)
			expect(t, "PUT over an existing file", r, http.StatusNoContent)
			got, _ := e.getS3(t, keyPrefix+"over.txt")
			if !bytes.Equal(got, body) {
				t.Fatalf("S3 holds %q, want %q", got, body)
			}
			g := e.alice(t, http.MethodGet, dir+"over.txt", nil, nil)
			if !bytes.Equal(g.Body, body) {
				t.Errorf("GET after overwrite = %q, want %q", g.Body, body)
			}
			s3etag, _, _, _ := e.headS3(t, keyPrefix+"over.txt")
			sameETags(t, map[string]string{
				"PUT": r.Header.Get("ETag"), "GET": g.Header.Get("ETag"),
				"PROPFIND": e.etagOf(t, dir+"over.txt"), "S3": s3etag,
			})
		}},
		{"PUT with Transfer-Encoding chunked stores the whole body", func(t *testing.T, e *davEnv) {
			keyPrefix, dir := e.caseDir(t)
			body := randBytes(300 << 10)
			r := e.do(t, req{Method: http.MethodPut, Path: dir + "chunked.bin", User: "alice",
				Body: onlyReader{bytes.NewReader(body)}, Length: -1})
			expect(t, "chunked PUT", r, http.StatusCreated)
			got, _ := e.getS3(t, keyPrefix+"chunked.bin")
			if !bytes.Equal(got, body) {
				t.Errorf("S3 holds %d bytes, want the %d sent chunked", len(got), len(body))
			}
		}},
		{"PUT chunked with X-Expected-Entity-Length stores the whole body", func(t *testing.T, e *davEnv) {
			keyPrefix, dir := e.caseDir(t)
			body := randBytes(7<<20 + 123) // more than one 5 MiB part
			r := e.do(t, req{Method: http.MethodPut, Path: dir + "finder.bin", User: "alice",
				Body: onlyReader{bytes.NewReader(body)}, Length: -1,
				Header: map[string]string{"X-Expected-Entity-Length": strconv.Itoa(len(body))}})
			expect(t, "chunked PUT with X-Expected-Entity-Length", r, http.StatusCreated)
			got, _ := e.getS3(t, keyPrefix+"finder.bin")
			if !bytes.Equal(got, body) {
				t.Errorf("S3 holds %d bytes, want the %d sent", len(got), len(body))
			}
		}},
		{"PUT into a missing parent answers 409 and stores nothing", func(t *testing.T, e *davEnv) {
			keyPrefix, dir := e.caseDir(t)
			r := e.alice(t, http.MethodPut, dir+"no/such/parent.txt", nil, []byte("x"))
			expect(t, "PUT into a missing parent", r, http.StatusConflict)
			if keys := e.b.keys(t, keyPrefix); len(keys) != 1 {
				t.Errorf("keys after the refused PUT = %v, want only the case folder", keys)
			}
		}},
		{"PUT with If-None-Match star on an existing file answers 412 and keeps it", func(t *testing.T, e *davEnv) {
			keyPrefix, dir := e.caseDir(t)
			e.putS3(t, keyPrefix+"keep.txt", []byte("original"), "")
			r := e.alice(t, http.MethodPut, dir+"keep.txt", map[string]string{"If-None-Match": "*"}, []byte("replaced"))
			expect(t, "PUT If-None-Match: * on an existing file", r, http.StatusPreconditionFailed)
			if got, _ := e.getS3(t, keyPrefix+"keep.txt"); string(got) != "original" {
				t.Errorf("S3 holds %q after a refused PUT, want original", got)
			}
			n := e.alice(t, http.MethodPut, dir+"fresh.txt", map[string]string{"If-None-Match": "*"}, []byte("fresh"))
			expect(t, "PUT If-None-Match: * on a new file", n, http.StatusCreated)
		}},
		{"PUT with If-Match honours the ETag", func(t *testing.T, e *davEnv) {
			keyPrefix, dir := e.caseDir(t)
			etag := e.putS3(t, keyPrefix+"cond.txt", []byte("v1"), "")
			wrong := `"00000000000000000000000000000000"`
			r := e.alice(t, http.MethodPut, dir+"cond.txt", map[string]string{"If-Match": wrong}, []byte("v2 wrong"))
			expect(t, "PUT If-Match with a wrong ETag", r, http.StatusPreconditionFailed)
			if got, _ := e.getS3(t, keyPrefix+"cond.txt"); string(got) != "v1" {
				t.Fatalf("S3 holds %q after a refused If-Match PUT, want v1", got)
			}
			ok := e.alice(t, http.MethodPut, dir+"cond.txt", map[string]string{"If-Match": etag}, []byte("v2 right"))
			expect(t, "PUT If-Match with the right ETag", ok, http.StatusNoContent)
			if got, _ := e.getS3(t, keyPrefix+"cond.txt"); string(got) != "v2 right" {
				t.Errorf("S3 holds %q after If-Match PUT, want v2 right", got)
			}
			m := e.alice(t, http.MethodPut, dir+"missing.txt", map[string]string{"If-Match": etag}, []byte("x"))
			expect(t, "PUT If-Match on a missing file", m, http.StatusPreconditionFailed)
			if _, _, _, exists := e.headS3(t, keyPrefix+"missing.txt"); exists {
				t.Error("a refused If-Match PUT created missing.txt")
			}
		}},
		{"a 40 MiB multipart PUT round-trips byte for byte", func(t *testing.T, e *davEnv) {
			keyPrefix, dir := e.caseDir(t)
			const size = 40 << 20
			src := newPatternReader(size, 7)
			want := sha256.New()
			mark := e.b.proxy.Mark()
			r := e.do(t, req{Method: http.MethodPut, Path: dir + "big.bin", User: "alice",
				Body: io.TeeReader(src, want), Length: size})
			expect(t, "40 MiB PUT", r, http.StatusCreated)
			ops := countOps(e.b.proxy.SinceUnder(mark, keyPrefix))
			if ops["CreateMultipartUpload"] != 1 || ops["CompleteMultipartUpload"] != 1 || ops["UploadPart"] < 8 {
				t.Errorf("a 40 MiB PUT with 5 MiB parts made %v, want one multipart upload of at least 8 parts", ops)
			}
			g := e.alice(t, http.MethodGet, dir+"big.bin", nil, nil)
			expect(t, "GET of the 40 MiB file", g, http.StatusOK)
			wantSum := hex.EncodeToString(want.Sum(nil))
			if got := sha256Hex(g.Body); got != wantSum || len(g.Body) != size {
				t.Errorf("GET returned %d bytes sha256 %s, want %d bytes sha256 %s", len(g.Body), got, size, wantSum)
			}
			s3etag, s3size, _, _ := e.headS3(t, keyPrefix+"big.bin")
			if s3size != size {
				t.Errorf("S3 size = %d, want %d", s3size, size)
			}
			sameETags(t, map[string]string{"PUT": r.Header.Get("ETag"), "GET": g.Header.Get("ETag"),
				"PROPFIND": e.etagOf(t, dir+"big.bin"), "S3": s3etag})
			if open := e.b.openUploads(t, keyPrefix); len(open) != 0 {
				t.Errorf("multipart uploads left open: %v", open)
			}
		}},
	}
}

// patternReader yields size pseudo-random bytes without holding them: a
// xorshift stream, so that different offsets differ and nothing compresses.
type patternReader struct {
	left  int64
	state uint64
}

func newPatternReader(size int64, seed uint64) *patternReader {
	return &patternReader{left: size, state: seed*0x9E3779B97F4A7C15 | 1}
}

func (p *patternReader) Read(b []byte) (int, error) {
	if p.left <= 0 {
		return 0, io.EOF
	}
	if int64(len(b)) > p.left {
		b = b[:p.left]
	}
	n := len(b) &^ 7
	for i := 0; i < n; i += 8 {
		p.state ^= p.state << 13
		p.state ^= p.state >> 7
		p.state ^= p.state << 17
		s := p.state
		b[i], b[i+1], b[i+2], b[i+3] = byte(s), byte(s>>8), byte(s>>16), byte(s>>24)
		b[i+4], b[i+5], b[i+6], b[i+7] = byte(s>>32), byte(s>>40), byte(s>>48), byte(s>>56)
	}
	for i := n; i < len(b); i++ {
		b[i] = byte(i)
	}
	if len(b) == 0 {
		return 0, nil
	}
	p.left -= int64(len(b))
	return len(b), nil
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}
