package tests

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/url"
	"testing"
	"time"
)

// abortCases: a client that goes away mid-PUT must leave the previous
// version untouched and no multipart upload behind (SPEC: PUT).
func abortCases() []conformanceCase {
	const declared = 20 << 20 // the length the client promises
	const sent = 12 << 20     // what it sends before it disconnects: > 2 parts of 5 MiB
	kinds := []struct {
		name    string
		headers string
		chunked bool
	}{
		{"with Content-Length", fmt.Sprintf("Content-Length: %d\r\n", declared), false},
		{"with Transfer-Encoding chunked", "Transfer-Encoding: chunked\r\n", true},
		{"chunked with X-Expected-Entity-Length",
			fmt.Sprintf("Transfer-Encoding: chunked\r\nX-Expected-Entity-Length: %d\r\n", declared), true},
	}
	var cs []conformanceCase
	for _, k := range kinds {
		cs = append(cs, conformanceCase{
			"a client that disconnects mid-PUT " + k.name + " leaves the old object and no multipart upload",
			func(t *testing.T, e *davEnv) {
				keyPrefix, dir := e.caseDir(t)
				key := keyPrefix + "victim.bin"
				old := randBytes(256 << 10)
				oldETag := e.putS3(t, key, old, "application/x-old")

				mark := e.b.proxy.Mark()
				conn := e.startRawPUT(t, dir+"victim.bin", k.headers)
				writeBody(t, conn, sent, k.chunked)
				// Wait until the gateway has started the multipart upload, so
				// that the disconnect hits the multipart path, then vanish.
				created := waitFor(5*time.Second, func() bool {
					return countOps(e.b.proxy.SinceUnder(mark, keyPrefix))["CreateMultipartUpload"] > 0
				})
				_ = conn.Close()

				if !created {
					t.Errorf("the gateway started no multipart upload after %d MiB of a %d MiB body (part size 5 MiB):%s",
						sent>>20, declared>>20, describeCalls(e.b.proxy.SinceUnder(mark, keyPrefix)))
				}
				var open []string
				clean := waitFor(10*time.Second, func() bool {
					open = e.b.openUploads(t, keyPrefix)
					ops := countOps(e.b.proxy.SinceUnder(mark, keyPrefix))
					return len(open) == 0 && ops["AbortMultipartUpload"] >= ops["CreateMultipartUpload"]
				})
				calls := e.b.proxy.SinceUnder(mark, keyPrefix)
				if !clean {
					t.Errorf("10 s after the disconnect: open uploads %v; S3 calls:%s", open, describeCalls(calls))
				}
				ops := countOps(calls)
				t.Logf("S3 calls of the aborted PUT: %v", ops)
				if ops["CompleteMultipartUpload"] != 0 || ops["PutObject"] != 0 || ops["CopyObject"] != 0 {
					t.Errorf("an incomplete body was committed: %v%s", ops, describeCalls(calls))
				}
				got, ok := e.getS3(t, key)
				if !ok || !bytes.Equal(got, old) {
					t.Fatalf("the previous object changed: %d bytes (exists=%v), want the %d old bytes", len(got), ok, len(old))
				}
				if etag, _, ctype, _ := e.headS3(t, key); etag != oldETag || ctype != "application/x-old" {
					t.Errorf("the previous object's ETag/type = %s %s, want %s application/x-old", etag, ctype, oldETag)
				}
				if keys := e.b.keys(t, keyPrefix); len(keys) != 2 {
					t.Errorf("keys after the aborted PUT = %v, want the folder and victim.bin only", keys)
				}
				g := e.alice(t, "GET", dir+"victim.bin", nil, nil)
				expect(t, "GET after the aborted PUT", g, 200)
				if !bytes.Equal(g.Body, old) {
					t.Errorf("GET after the aborted PUT returned %d bytes, want the %d old bytes", len(g.Body), len(old))
				}
			},
		})
	}
	cs = append(cs, conformanceCase{
		"a PUT whose body is shorter than its Content-Length stores nothing",
		func(t *testing.T, e *davEnv) {
			keyPrefix, dir := e.caseDir(t)
			key := keyPrefix + "short.txt"
			e.putS3(t, key, []byte("previous"), "")
			mark := e.b.proxy.Mark()
			conn := e.startRawPUT(t, dir+"short.txt", "Content-Length: 1000\r\n")
			if _, err := conn.Write(bytes.Repeat([]byte("x"), 100)); err != nil {
				t.Fatal(err)
			}
			// Half-close: the gateway sees EOF after 100 of 1000 bytes.
			if tc, ok := conn.(*net.TCPConn); ok {
				_ = tc.CloseWrite()
			}
			_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
			_, _ = io.Copy(io.Discard, conn) // whatever it answers, wait for it
			_ = conn.Close()
			waitFor(3*time.Second, func() bool { return len(e.b.openUploads(t, keyPrefix)) == 0 })
			if got, _ := e.getS3(t, key); string(got) != "previous" {
				t.Errorf("S3 holds %q after a short body, want previous; S3 calls:%s", got, describeCalls(e.b.proxy.SinceUnder(mark, keyPrefix)))
			}
			if open := e.b.openUploads(t, keyPrefix); len(open) != 0 {
				t.Errorf("open uploads after a short body: %v", open)
			}
		},
	})
	return cs
}

// startRawPUT opens a TCP connection to the gateway and sends the request
// head of a PUT as alice, with extra header lines (each ending in CRLF).
func (e *davEnv) startRawPUT(t *testing.T, path, headers string) net.Conn {
	t.Helper()
	u, err := url.Parse(e.URL)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.Dial("tcp", u.Host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	cred := base64.StdEncoding.EncodeToString([]byte("alice:" + testUsers["alice"]))
	head := "PUT " + path + " HTTP/1.1\r\nHost: " + u.Host + "\r\nAuthorization: Basic " + cred +
		"\r\nContent-Type: application/octet-stream\r\n" + headers + "\r\n"
	if _, err := io.WriteString(conn, head); err != nil {
		t.Fatal(err)
	}
	return conn
}

// writeBody sends n bytes of body, as 64 KiB chunks when chunked, and
// never the terminating chunk.
func writeBody(t *testing.T, conn net.Conn, n int, chunked bool) {
	t.Helper()
	block := randBytes(64 << 10)
	_ = conn.SetWriteDeadline(time.Now().Add(30 * time.Second))
	for sent := 0; sent < n; sent += len(block) {
		var err error
		if chunked {
			_, err = fmt.Fprintf(conn, "%x\r\n%s\r\n", len(block), block)
		} else {
			_, err = conn.Write(block)
		}
		if err != nil {
			t.Fatalf("writing the body after %d bytes: %v", sent, err)
		}
	}
}

// waitFor polls cond every 50 ms until it holds or timeout passes.
func waitFor(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
}
