package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer is a bytes.Buffer safe for one writer and one reader.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

var listeningRE = regexp.MustCompile(`url=(http://127\.0\.0\.1:\d+/dav/)`)

// serveEmbedded runs `davgw serve -listen 127.0.0.1:0` in the current
// directory until stop is called, and returns its WebDAV URL and stdout.
func serveEmbedded(t *testing.T) (url string, stdout *syncBuffer, stop func() int) {
	t.Helper()
	return serveWith(t)
}

// serveWith runs `davgw serve -listen 127.0.0.1:0 ARGS...` until stop is
// called, and returns its WebDAV URL and stdout.
func serveWith(t *testing.T, args ...string) (url string, stdout *syncBuffer, stop func() int) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	stdout, stderr := &syncBuffer{}, &syncBuffer{}
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, append([]string{"serve", "-listen", "127.0.0.1:0"}, args...), strings.NewReader(""), stdout, stderr)
	}()
	deadline := time.Now().Add(20 * time.Second)
	for {
		if m := listeningRE.FindStringSubmatch(stderr.String()); m != nil {
			url = m[1]
			break
		}
		select {
		case code := <-done:
			cancel()
			t.Fatalf("serve exited with %d: %s", code, stderr.String())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("serve did not start: %s", stderr.String())
		}
	}
	return url, stdout, func() int { cancel(); return <-done }
}

func davRequest(t *testing.T, method, url, pw string, body io.Reader) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth("dev", pw)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestServeEmbeddedDefault starts the embedded default twice in one
// directory: the first start prints the password, the second does not, and
// a file written in the first is read back in the second.
func TestServeEmbeddedDefault(t *testing.T) {
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chdir(wd) })
	if err := os.Chdir(t.TempDir()); err != nil {
		t.Fatal(err)
	}
	t.Setenv(envConfig, "")

	url, stdout, stop := serveEmbedded(t)
	m := regexp.MustCompile(`password: (\S+)\n  \(shown only this once`).FindStringSubmatch(stdout.String())
	if m == nil {
		stop()
		t.Fatalf("first start did not print the password: %s", stdout.String())
	}
	pw := m[1]
	if code, _ := davRequest(t, "PUT", url+"hello.txt", pw, strings.NewReader("hello")); code != http.StatusCreated {
		stop()
		t.Fatalf("PUT: %d", code)
	}
	if code, _ := davRequest(t, "GET", url+"hello.txt", "wrong", nil); code != http.StatusUnauthorized {
		stop()
		t.Fatalf("GET with a wrong password: %d", code)
	}
	if code := stop(); code != exitOK {
		t.Fatalf("first serve exited with %d", code)
	}

	url, stdout, stop = serveEmbedded(t)
	defer stop()
	if strings.Contains(stdout.String(), pw) {
		t.Fatal("the second start printed the password again")
	}
	if code, body := davRequest(t, "GET", url+"hello.txt", pw, nil); code != http.StatusOK || body != "hello" {
		t.Fatalf("GET after restart: %d %q", code, body)
	}
}
