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
	"github.com/davgw/davgw/s3vfs"
)

// recorder wraps the ResponseWriter to learn the status and size for the
// request's log line, and carries the error to log.
type recorder struct {
	http.ResponseWriter
	id      string
	user    string
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

// fail answers status with its standard text (never internal details) and
// keeps err for the log. A 503 carries Retry-After.
func (w *recorder) fail(status int, err error) {
	if err != nil && w.err == nil {
		w.err = err
	}
	if w.status != 0 {
		return // too late to change the answer; the log still gets err
	}
	writeFailure(w, status, err)
}

// writeFailure writes an error answer: the status, its standard text, and
// Retry-After for a 503.
func writeFailure(w http.ResponseWriter, status int, err error) {
	h := w.Header()
	if status == http.StatusServiceUnavailable || status == http.StatusTooManyRequests {
		h.Set("Retry-After", strconv.Itoa(retryAfterSeconds(err)))
	}
	h.Del("Content-Length")
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	if status != http.StatusNoContent && status != http.StatusNotModified {
		_, _ = w.Write([]byte(webdav.StatusText(status) + "\n"))
	}
}

// failErr answers the honest status for err, with fallback used for plain
// "does not exist" (404, or 409 where a parent is meant).
func (w *recorder) failErr(err error, notExist int) {
	w.fail(statusFor(err, notExist), err)
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
	case errors.Is(err, s3vfs.ErrUnavailable), errors.Is(err, ErrLockStoreUnavailable):
		return http.StatusServiceUnavailable
	case errors.Is(err, s3vfs.ErrOverShare), errors.Is(err, ErrTooManyLocks):
		return http.StatusTooManyRequests
	case errors.Is(err, davfs.ErrTooManyEntries), errors.Is(err, errQuotaExceeded):
		return webdav.StatusInsufficientStorage
	case errors.Is(err, s3vfs.ErrAccessDenied), errors.Is(err, fs.ErrPermission):
		return http.StatusForbidden
	case errors.Is(err, s3vfs.ErrPreconditionFailed):
		return http.StatusPreconditionFailed
	case errors.Is(err, s3vfs.ErrTooLarge), errors.Is(err, ErrLockOwnerTooLarge):
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

// honestWriter sits between x/net/webdav and the client. When the handler
// answers an error status because davfs met a backend failure (throttling,
// denial, outage), it answers the honest status instead (503 with
// Retry-After, 403, ...) and drops x/net's body.
type honestWriter struct {
	http.ResponseWriter // where the answer goes
	rec                 *recorder
	fs                  *davfs.FS
	locks               func() error // the lock store's outage, if any
	wrote               bool
	swallowed           bool
}

func (w *honestWriter) WriteHeader(code int) {
	if w.wrote {
		return
	}
	w.wrote = true
	if code >= 400 {
		failure := w.fs.Failure()
		if failure == nil && w.locks != nil {
			failure = w.locks()
		}
		if failure != nil {
			if honest := statusFor(failure, code); honest != code || code == http.StatusInternalServerError {
				if w.rec.err == nil {
					w.rec.err = failure
				}
				writeFailure(w.ResponseWriter, honest, failure)
				w.swallowed = true
				return
			}
		}
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *honestWriter) Write(p []byte) (int, error) {
	if !w.wrote {
		w.WriteHeader(http.StatusOK)
	}
	if w.swallowed {
		return len(p), nil
	}
	return w.ResponseWriter.Write(p)
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
	rec.addr = g.opts.TrustedProxies.ClientAddr(r)
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
