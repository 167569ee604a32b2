package gateway

import (
	"errors"
	"log/slog"
	"net/http"
	"net/http/pprof"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/davgw/davgw/auth"
	"github.com/davgw/davgw/s3vfs"
)

// Metrics are the gateway's Prometheus metrics, in a registry of their own
// (never the global default one), with the Go runtime and process
// collectors. Set Options.Metrics to fill them; serve them with Handler,
// on an admin listener only (Gateway.AdminHandler).
//
// Every label has a small fixed set of values: no path, user name, request
// id or client address ever becomes a label.
type Metrics struct {
	reg          *prometheus.Registry
	requests     *prometheus.CounterVec   // method, status_class
	duration     *prometheus.HistogramVec // method
	respBytes    prometheus.Counter
	inFlight     prometheus.Gauge
	s3Requests   prometheus.Counter
	s3Errors     *prometheus.CounterVec // kind
	uploads      *prometheus.CounterVec // result
	uploadBytes  prometheus.Counter
	authFailures *prometheus.CounterVec // reason
}

// Label values. metricMethods is the fixed set of the method label; any
// other method is counted as "OTHER".
var (
	metricMethods = []string{
		http.MethodOptions, http.MethodGet, http.MethodHead, http.MethodPut, http.MethodDelete, http.MethodPost,
		"MKCOL", "COPY", "MOVE", "PROPFIND", "PROPPATCH", "LOCK", "UNLOCK",
	}
	s3ErrorKinds    = []string{"unavailable", "denied", "not_found", "other"}
	uploadResults   = []string{"committed", "aborted"}
	authReasons     = []string{"no_credentials", "refused", "rate_limited", "unavailable"}
	durationBuckets = []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300}
)

// NewMetrics returns Metrics in a new registry.
func NewMetrics() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "davgw_http_requests_total",
			Help: "HTTP requests answered, by method and status class (2xx, 4xx, ...).",
		}, []string{"method", "status_class"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "davgw_http_request_duration_seconds",
			Help:    "Time from the start of a request to the end of its answer, by method.",
			Buckets: durationBuckets,
		}, []string{"method"}),
		respBytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "davgw_http_response_bytes_total",
			Help: "Response body bytes written to clients.",
		}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "davgw_http_requests_in_flight",
			Help: "Requests being served.",
		}),
		s3Requests: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "davgw_s3_requests_total",
			Help: "S3 HTTP requests (retries included) made while serving client requests.",
		}),
		s3Errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "davgw_s3_errors_total",
			Help: "Client requests that failed on an S3 error, by kind (unavailable, denied, not_found, other).",
		}, []string{"kind"}),
		uploads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "davgw_uploads_total",
			Help: "PUT uploads that reached S3, by result (committed, or aborted: short body, client gone, quota, S3 failure).",
		}, []string{"result"}),
		uploadBytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "davgw_upload_bytes_total",
			Help: "Bytes of committed PUT uploads.",
		}),
		authFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "davgw_auth_failures_total",
			Help: "WebDAV requests refused at authentication, by reason (no_credentials is the usual first challenge of a client).",
		}, []string{"reason"}),
	}
	m.reg.MustRegister(
		m.requests, m.duration, m.respBytes, m.inFlight, m.s3Requests,
		m.s3Errors, m.uploads, m.uploadBytes, m.authFailures,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	// Series with a fixed set of values start at 0, so that rate() sees
	// their first increase.
	for _, k := range s3ErrorKinds {
		m.s3Errors.WithLabelValues(k)
	}
	for _, r := range uploadResults {
		m.uploads.WithLabelValues(r)
	}
	for _, r := range authReasons {
		m.authFailures.WithLabelValues(r)
	}
	return m
}

// Handler serves the metrics in the Prometheus exposition format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
		Registry:            m.reg,
		ErrorHandling:       promhttp.ContinueOnError,
		MaxRequestsInFlight: 4,
		Timeout:             10 * time.Second,
	})
}

// started counts a request in flight. m may be nil.
func (m *Metrics) started() {
	if m != nil {
		m.inFlight.Inc()
	}
}

// finished counts a request that started: its method, status, duration,
// bytes, S3 calls and the notes the handlers left on rec. m may be nil.
func (m *Metrics) finished(rec *recorder, method string, status int) {
	if m == nil {
		return
	}
	m.inFlight.Dec()
	method = metricMethod(method)
	m.requests.WithLabelValues(method, statusClass(status)).Inc()
	m.duration.WithLabelValues(method).Observe(time.Since(rec.start).Seconds())
	m.respBytes.Add(float64(rec.bytes))
	m.s3Requests.Add(float64(rec.s3calls.Load()))
	if kind := s3ErrorKind(rec.err); kind != "" {
		m.s3Errors.WithLabelValues(kind).Inc()
	}
	if rec.upload != "" {
		m.uploads.WithLabelValues(rec.upload).Inc()
		m.uploadBytes.Add(float64(rec.uploadBytes))
	}
	if rec.authFailure != "" {
		m.authFailures.WithLabelValues(rec.authFailure).Inc()
	}
}

// meterNotes are what handlers note on the recorder for the metrics, beyond
// what the recorder sees of the answer.
type meterNotes struct {
	upload      string // "committed" or "aborted" once a PUT reached S3
	uploadBytes int64  // bytes committed
	authFailure string // one of authReasons
}

// uploadCommitted notes a committed upload of size bytes.
func (n *meterNotes) uploadCommitted(size int64) {
	n.upload, n.uploadBytes = "committed", size
}

// uploadAborted notes an upload that was started and dropped.
func (n *meterNotes) uploadAborted() {
	n.upload, n.uploadBytes = "aborted", 0
}

// authRefused notes a request refused at authentication with err, the
// Authenticator's error: rate limited, the authenticator unavailable, or
// (err nil) no or wrong credentials.
func (n *meterNotes) authRefused(r *http.Request, err error) {
	var limited *auth.RateLimitError
	switch {
	case errors.As(err, &limited):
		n.authFailure = "rate_limited"
	case err != nil:
		n.authFailure = "unavailable"
	case r.Header.Get("Authorization") == "":
		n.authFailure = "no_credentials"
	default:
		n.authFailure = "refused"
	}
}

// metricMethod is method if it is one of metricMethods, else "OTHER".
func metricMethod(method string) string {
	for _, m := range metricMethods {
		if method == m {
			return m
		}
	}
	return "OTHER"
}

// statusClass is "2xx" for 200 to 299 and so on.
func statusClass(status int) string {
	if status < 100 || status > 999 {
		return "other"
	}
	return strconv.Itoa(status/100) + "xx"
}

// s3ErrorKind classifies the error that failed a request by the S3
// sentinel it wraps; "" if it wraps none that S3 answered. A precondition
// failure or an incomplete body is the client's doing, not S3's.
func s3ErrorKind(err error) string {
	switch {
	case err == nil:
		return ""
	case errors.Is(err, s3vfs.ErrUnavailable):
		return "unavailable"
	case errors.Is(err, s3vfs.ErrAccessDenied):
		return "denied"
	case errors.Is(err, s3vfs.ErrNotFound):
		return "not_found"
	case errors.Is(err, s3vfs.ErrConflict), errors.Is(err, s3vfs.ErrTooLarge), errors.Is(err, s3vfs.ErrInvalid):
		return "other"
	}
	return ""
}

// AdminHandler serves the admin listener ([server].admin_listen): /metrics
// when Options.Metrics is set, /healthz, /readyz and Go's profiles under
// /debug/pprof/ (net/http/pprof). It serves no WebDAV and no sign-in
// pages, and its requests are neither logged nor counted. None of it has
// authentication: bind the admin listener to loopback or a private
// network. The profiles are only here, never on the WebDAV listener.
func (g *Gateway) AdminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /debug/pprof/", pprof.Index) // also serves the named profiles (heap, goroutine, allocs...)
	mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	if m := g.opts.Metrics; m != nil {
		mux.Handle("GET /metrics", m.Handler())
	}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if g.opts.Ready != nil {
			if err := g.opts.Ready(); err != nil {
				g.log.LogAttrs(r.Context(), slog.LevelWarn, "admin: not ready", slog.String("error", err.Error()))
				writeFailure(w, failWith(http.StatusServiceUnavailable, err))
				return
			}
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ready\n"))
	})
	return mux
}
