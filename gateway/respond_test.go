package gateway

import (
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"golang.org/x/net/webdav"

	"github.com/davgw/davgw/locks"
	"github.com/davgw/davgw/s3vfs"
)

func TestAnswerWritesEachFailureOnce(t *testing.T) {
	throttled := fmt.Errorf("%w: SlowDown", s3vfs.ErrUnavailable)
	cases := []struct {
		name       string
		err        error
		status     int
		header     string // "Key: value" expected on the answer
		bodyPrefix string
	}{
		{"a davfs error is mapped by statusFor: a missing name is 404", &fs.PathError{Op: "stat", Path: "/x", Err: fs.ErrNotExist}, 404, "X-Content-Type-Options: nosniff", "Not Found"},
		{"a throttled S3 request is 503 with Retry-After", throttled, 503, "Retry-After: 1", "Service Unavailable"},
		{"an explicit status keeps its headers", failWith(405, nil).withHeader("Allow", allowedMethods), 405, "Allow: " + allowedMethods, "Method Not Allowed"},
		{"a failure's own Retry-After wins over the default", failWith(429, errors.New("rate limited")).withHeader("Retry-After", "60"), 429, "Retry-After: 60", "Too Many Requests"},
		{"conflictIfMissing turns a missing name into 409", conflictIfMissing(&fs.PathError{Op: "stat", Path: "/x", Err: fs.ErrNotExist}), 409, "", "Conflict"},
		{"an explained refusal is plain text, never sniffed", failWith(400, errors.New("undeclared namespace prefix x")).explained(), 400, "X-Content-Type-Options: nosniff", "Bad Request: undeclared namespace prefix x"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rr := httptest.NewRecorder()
			rec := &recorder{ResponseWriter: rr}
			rec.answer(c.err)
			if rr.Code != c.status {
				t.Fatalf("status %d, want %d", rr.Code, c.status)
			}
			if k, v, ok := strings.Cut(c.header, ": "); ok && rr.Header().Get(k) != v {
				t.Errorf("%s = %q, want %q", k, rr.Header().Get(k), v)
			}
			if !strings.HasPrefix(rr.Body.String(), c.bodyPrefix) {
				t.Errorf("body %q, want it to start with %q", rr.Body.String(), c.bodyPrefix)
			}
			if rec.err == nil && c.status >= 500 {
				t.Error("the error was not kept for the log line")
			}
		})
	}
}

func TestAnswerAfterTheStatusOnlyLogs(t *testing.T) {
	rr := httptest.NewRecorder()
	rec := &recorder{ResponseWriter: rr}
	rec.WriteHeader(http.StatusOK)
	_, _ = rec.Write([]byte("partial"))
	rec.answer(errors.New("read failed"))
	if rr.Code != http.StatusOK || rr.Body.String() != "partial" || rec.err == nil {
		t.Fatalf("got %d %q (logged %v), want the 200 untouched and the error logged", rr.Code, rr.Body.String(), rec.err)
	}
}

func TestAnswerCutsAStartedListing(t *testing.T) {
	rec := &recorder{ResponseWriter: httptest.NewRecorder()}
	rec.WriteHeader(webdav.StatusMulti)
	defer func() {
		if p := recover(); p != http.ErrAbortHandler || !rec.aborted || rec.err == nil {
			t.Fatalf("recovered %v, aborted %v, err %v; want http.ErrAbortHandler, aborted, the error", p, rec.aborted, rec.err)
		}
	}()
	rec.answer(cutAnswer(errors.New("page 2 failed")))
}

func TestRelayMakesXNetStatusesHonest(t *testing.T) {
	throttled := &fs.PathError{Op: "open", Path: "/x", Err: fmt.Errorf("%w: SlowDown", s3vfs.ErrUnavailable)}
	cases := []struct {
		name   string
		status int // x/net's
		met    error
		want   int
		body   string
	}{
		{"a throttled PROPPATCH that x/net calls 405 is 503", 405, throttled, 503, "Service Unavailable\n"},
		{"a lock store outage that x/net calls 500 is 503", 500, fmt.Errorf("%w: redis: down", locks.ErrStoreUnavailable), 503, "Service Unavailable\n"},
		{"a root at its lock limit that x/net calls 500 is 429", 500, fmt.Errorf("%w: at most 3", locks.ErrTooMany), 429, "Too Many Requests\n"},
		{"an owner past its limit that x/net calls 500 is 413", 500, fmt.Errorf("%w: 65 bytes", locks.ErrOwnerTooLarge), 413, "Request Entity Too Large\n"},
		{"x/net's 423 for a held lock stands, with its body", 423, webdav.ErrLocked, 423, "Locked"},
		{"x/net's 404 for a missing name stands", 404, &fs.PathError{Op: "stat", Path: "/x", Err: fs.ErrNotExist}, 404, "Not Found"},
		{"any 500 is answered like every other", 500, errors.New("odd"), 500, "Internal Server Error\n"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rr := httptest.NewRecorder()
			rq := &request{w: &recorder{ResponseWriter: rr}}
			buf := &bufferedWriter{header: make(http.Header)}
			buf.WriteHeader(c.status)
			_, _ = buf.Write([]byte(webdav.StatusText(c.status)))
			rq.w.answer(rq.relay(buf, c.met, buf.body.Bytes()))
			if rr.Code != c.want || rr.Body.String() != c.body {
				t.Fatalf("answered %d %q, want %d %q", rr.Code, rr.Body.String(), c.want, c.body)
			}
		})
	}
}
