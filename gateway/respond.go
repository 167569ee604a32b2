package gateway

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync/atomic"
	"time"

	"golang.org/x/net/webdav"

	"github.com/davgw/davgw/davfs"
	"github.com/davgw/davgw/locks"
	"github.com/davgw/davgw/s3vfs"
)

// recorder wraps the ResponseWriter to learn the status and size for the
// request's log line, and carries the error to log.
type recorder struct {
	http.ResponseWriter
	id      string
	user    string
	store   string // the user\'s named store; "" = the default one
	addr    string // the client address (TrustedProxies.ClientAddr)
	proxy   string // the peer, when it is a trusted proxy that forwarded addr
	status  int
	bytes   int64
	err     error
	warning error // went wrong without failing the request
	start   time.Time
	s3calls *atomic.Int64
	body    *bodyReader // the request body; nil when it has none
	aborted bool        // the answer was cut after its status went out
	meterNotes
}

func (w *recorder) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *recorder) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(p)
	w.bytes += int64(n)
	return n, err
}

// Unwrap lets http.ResponseController reach the connection.
func (w *recorder) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// httpError is a request's failure as its answer: the status, the error
// for the log line (nil: the status says it all), and what the answer
// carries besides the status's standard text. Handlers return one (or a
// davfs or s3vfs error, which statusFor maps); answer writes it.
type httpError struct {
	status int
	err    error
	header http.Header // set on the answer; wins over the defaults (Retry-After)
	body   []byte      // replaces the standard text (PROPFIND's DAV:error, x/net's own answers)
	cut    bool        // the answer already started: cut the connection (see cutAnswer)
}

func (e *httpError) Error() string {
	if e.err == nil {
		return http.StatusText(e.status)
	}
	return e.err.Error()
}

func (e *httpError) Unwrap() error { return e.err }

// failWith answers status with its standard text; err is for the log.
func failWith(status int, err error) *httpError {
	return &httpError{status: status, err: err}
}

// explained answers the error's own text after the status text: for
// refusals whose reason the client needs and which hold nothing secret
// (a bound of [limits] that the request went past).
func (e *httpError) explained() *httpError {
	e.body = []byte(http.StatusText(e.status) + ": " + e.err.Error() + "\n")
	return e
}

// withHeader adds a header to the answer.
func (e *httpError) withHeader(key, value string) *httpError {
	if e.header == nil {
		e.header = make(http.Header)
	}
	e.header.Add(key, value)
	return e
}

// conflictIfMissing is err (from davfs) answered with statusFor, where a
// missing name means a missing parent or a lost race: 409, not 404.
func conflictIfMissing(err error) error {
	if err == nil {
		return nil
	}
	return failWith(statusFor(err, http.StatusConflict), err)
}

// cutAnswer marks a failure met after the answer's status and first bytes
// went out, where a short answer would look whole (a PROPFIND listing):
// the connection is cut.
func cutAnswer(err error) *httpError {
	return &httpError{status: http.StatusInternalServerError, err: err, cut: true}
}

// answer is the one place where a request's failure becomes its answer:
// an *httpError's status and extras, or statusFor's status for any other
// error (a missing name is 404), with the standard text and nothing
// internal; the error goes to the request's log line. When the status
// already went out (a GET's body, a streamed PROPFIND), the answer cannot
// change: the error is only logged, and a cutAnswer cuts the connection.
func (w *recorder) answer(err error) {
	if err == nil {
		return
	}
	var he *httpError
	if !errors.As(err, &he) {
		he = failWith(statusFor(err, http.StatusNotFound), err)
	}
	if he.err != nil && w.err == nil {
		w.err = he.err
	}
	if he.cut {
		w.aborted = true
		panic(http.ErrAbortHandler) // never a partial answer that looks whole
	}
	if w.status != 0 {
		return // too late to change the answer; the log still gets err
	}
	writeFailure(w, he)
}

// writeFailure writes an error answer: the status, its standard text (or
// the failure's own body), Retry-After for a 503 or 429, and the failure's
// headers.
func writeFailure(w http.ResponseWriter, e *httpError) {
	h := w.Header()
	if e.status == http.StatusServiceUnavailable || e.status == http.StatusTooManyRequests {
		h.Set("Retry-After", strconv.Itoa(retryAfterSeconds(e.err)))
	}
	for k, v := range e.header {
		h[k] = v
	}
	if e.body != nil {
		if e.header.Get("Content-Type") == "" { // explained(): text that may quote the request
			h.Set("Content-Type", "text/plain; charset=utf-8")
			h.Set("X-Content-Type-Options", "nosniff")
		}
		h.Set("Content-Length", strconv.Itoa(len(e.body)))
		w.WriteHeader(e.status)
		_, _ = w.Write(e.body)
		return
	}
	h.Del("Content-Length")
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(e.status)
	if e.status != http.StatusNoContent && e.status != http.StatusNotModified {
		_, _ = w.Write([]byte(webdav.StatusText(e.status) + "\n"))
	}
}

func retryAfterSeconds(err error) int {
	if err == nil {
		return 1
	}
	d := s3vfs.RetryAfter(err)
	if d <= 0 {
		return 1
	}
	return int((d + time.Second - 1) / time.Second)
}

// statusFor chooses the HTTP status for an error from davfs or s3vfs.
func statusFor(err error, notExist int) int {
	switch {
	case err == nil:
		return http.StatusOK
	case errors.Is(err, os.ErrDeadlineExceeded):
		return http.StatusRequestTimeout // the body stopped flowing (even inside ErrIncomplete)
	case errors.Is(err, s3vfs.ErrUnavailable), errors.Is(err, locks.ErrStoreUnavailable):
		return http.StatusServiceUnavailable
	case errors.Is(err, s3vfs.ErrOverShare), errors.Is(err, locks.ErrTooMany):
		return http.StatusTooManyRequests
	case errors.Is(err, davfs.ErrTooManyEntries), errors.Is(err, errQuotaExceeded):
		return webdav.StatusInsufficientStorage
	case errors.Is(err, s3vfs.ErrAccessDenied), errors.Is(err, fs.ErrPermission):
		return http.StatusForbidden
	case errors.Is(err, s3vfs.ErrPreconditionFailed):
		return http.StatusPreconditionFailed
	case errors.Is(err, s3vfs.ErrTooLarge), errors.Is(err, locks.ErrOwnerTooLarge):
		return http.StatusRequestEntityTooLarge
	case errors.Is(err, davfs.ErrIsDir):
		return http.StatusMethodNotAllowed
	case errors.Is(err, davfs.ErrNotDir):
		return http.StatusConflict
	case errors.Is(err, fs.ErrNotExist):
		return notExist
	case errors.Is(err, s3vfs.ErrConflict), errors.Is(err, fs.ErrExist):
		return http.StatusConflict
	case errors.Is(err, s3vfs.ErrInvalid), errors.Is(err, s3vfs.ErrIncomplete):
		return http.StatusBadRequest
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return http.StatusBadRequest // the client is gone; nobody reads this
	}
	return http.StatusInternalServerError
}

// begin starts a request: id, S3 call counter, recorder, in-flight gauge.
func (g *Gateway) begin(w http.ResponseWriter, r *http.Request) (*recorder, *http.Request) {
	id := r.Header.Get("X-Request-Id")
	if !safeRequestID(id) {
		var b [8]byte
		_, _ = rand.Read(b[:])
		id = hex.EncodeToString(b[:])
	}
	w.Header().Set("X-Request-Id", id)
	ctx, calls := s3vfs.WithCallCounter(r.Context())
	g.opts.Metrics.started()
	rec := &recorder{ResponseWriter: w, id: id, start: time.Now(), s3calls: calls}
	r = r.WithContext(ctx)
	// The client address is decided here, once: RemoteAddr carries it to
	// the sign-in limits (auth, web) and the per-address upload shares.
	rec.addr = g.opts.TrustedProxies.ClientAddr(r, g.opts.ForwardedHeader)
	if peer, _, err := net.SplitHostPort(r.RemoteAddr); err == nil && peer != rec.addr {
		rec.proxy = peer
		r.RemoteAddr = net.JoinHostPort(rec.addr, "0")
	}
	if rec.body = newBodyReader(w, r, g.opts.BodyIdleTimeout); rec.body != nil {
		r.Body = rec.body
	}
	return rec, r
}

// finish writes the request's one log line and counts it in the metrics.
func (g *Gateway) finish(rec *recorder, r *http.Request) {
	rec.body.unread()
	status := rec.status
	if status == 0 {
		status = http.StatusOK
	}
	if rec.aborted {
		// The client saw the status, then a cut connection: a failure of
		// the gateway's, counted and logged as one.
		g.opts.Metrics.finished(rec, r.Method, http.StatusBadGateway)
	} else {
		g.opts.Metrics.finished(rec, r.Method, status)
	}
	attrs := []slog.Attr{
		slog.String("id", rec.id),
		slog.String("user", rec.user),
		slog.String("addr", rec.addr),
		slog.String("method", r.Method),
		slog.String("path", r.URL.Path),
		slog.Int("status", status),
		slog.Int64("bytes", rec.bytes),
		slog.Duration("duration", time.Since(rec.start)),
		slog.Int64("s3_calls", rec.s3calls.Load()),
	}
	if rec.store != "" {
		attrs = append(attrs, slog.String("store", rec.store))
	}
	if rec.proxy != "" {
		attrs = append(attrs, slog.String("proxy", rec.proxy))
	}
	level := slog.LevelInfo
	if rec.warning != nil {
		attrs = append(attrs, slog.String("warning", rec.warning.Error()))
		level = slog.LevelWarn
	}
	if rec.err != nil {
		attrs = append(attrs, slog.String("error", rec.err.Error()))
		if status >= 500 {
			level = slog.LevelError
		}
	}
	if rec.aborted {
		attrs = append(attrs, slog.Bool("aborted", true))
		level = slog.LevelError
	}
	g.log.LogAttrs(r.Context(), level, "request", attrs...)
}

func safeRequestID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}
