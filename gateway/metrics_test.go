package gateway

import (
	"bufio"
	"encoding/base64"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/davgw/davgw/auth"
	"github.com/davgw/davgw/s3vfs"
)

// authFunc is an auth.Authenticator made of a function.
type authFunc func(*http.Request) (auth.Principal, bool, error)

func (f authFunc) Authenticate(r *http.Request) (auth.Principal, bool, error) { return f(r) }

// basic is the credentials of a Basic Authorization header.
func basic(user, pw string) string {
	return base64.StdEncoding.EncodeToString([]byte(user + ":" + pw))
}

// deniedS3 is an S3 endpoint that refuses every request with 403
// AccessDenied, counting them.
func deniedS3(t *testing.T) (*s3vfs.Store, *atomic.Int64) {
	t.Helper()
	var calls atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.Header().Set("Content-Type", "application/xml")
		w.WriteHeader(http.StatusForbidden)
		if r.Method != http.MethodHead {
			_, _ = io.WriteString(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>`)
		}
	}))
	t.Cleanup(srv.Close)
	store, err := s3vfs.New(t.Context(), s3vfs.Config{
		Endpoint: srv.URL, Region: "us-east-1", Bucket: "metrics-test", PathStyle: true,
		AccessKeyID: "AKIDTEST", SecretAccessKey: "secret",
	})
	if err != nil {
		t.Fatal(err)
	}
	return store, &calls
}

// scrape reads h's exposition: series (name{labels}) to value.
func scrape(t *testing.T, h http.Handler) map[string]float64 {
	t.Helper()
	rr := httptest.NewRecorder()
	h.ServeHTTP(rr, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rr.Code != http.StatusOK {
		t.Fatalf("GET /metrics: %d %s", rr.Code, rr.Body.String())
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(rr.Body)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("bad exposition line %q", line)
		}
		out[line[:i]] = v
	}
	return out
}

func TestMetricsCountRequestsWithBoundedLabels(t *testing.T) {
	store, s3calls := deniedS3(t)
	release := make(chan struct{})
	blocked := make(chan struct{})
	a := authFunc(func(r *http.Request) (auth.Principal, bool, error) {
		user, pw, ok := r.BasicAuth()
		switch {
		case r.Header.Get("X-Test-Block") != "":
			close(blocked)
			<-release
			return auth.Principal{}, false, nil
		case r.Header.Get("X-Test-Limit") != "":
			return auth.Principal{}, false, &auth.RateLimitError{RetryAfter: time.Second}
		case r.Header.Get("X-Test-IdP-Down") != "":
			return auth.Principal{}, false, errors.New("idp down")
		case ok && user == "alice-secret-name" && pw == "pw":
			return auth.Principal{Username: user, Root: "users/alice-secret-name/"}, true, nil
		}
		return auth.Principal{}, false, nil
	})
	m := NewMetrics()
	g, err := New(Options{Store: store, Auth: a, Logger: slog.New(slog.DiscardHandler), Metrics: m})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(g)
	defer srv.Close()
	do := func(method, path string, header map[string]string, body string) int {
		t.Helper()
		req, err := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range header {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	alice := map[string]string{"Authorization": "Basic " + basic("alice-secret-name", "pw")}

	// One request held in authentication shows in flight.
	done := make(chan int)
	go func() { done <- do("PROPFIND", "/dav/", map[string]string{"X-Test-Block": "1"}, "") }()
	<-blocked
	if got := scrape(t, m.Handler())["davgw_http_requests_in_flight"]; got != 1 {
		t.Errorf("in flight during a request = %v, want 1", got)
	}
	close(release)
	if code := <-done; code != http.StatusUnauthorized {
		t.Fatalf("blocked PROPFIND: %d", code)
	}

	steps := []struct {
		method, path string
		header       map[string]string
		want         int
	}{
		{"OPTIONS", "/dav/", nil, http.StatusOK},
		{"GET", "/healthz", nil, http.StatusOK},
		{"PROPFIND", "/dav/private-folder-name/", nil, http.StatusUnauthorized},
		{"PROPFIND", "/dav/private-folder-name/", map[string]string{"Authorization": "Basic " + basic("alice-secret-name", "wrong")}, http.StatusUnauthorized},
		{"PROPFIND", "/dav/private-folder-name/", map[string]string{"X-Test-Limit": "1"}, http.StatusTooManyRequests},
		{"PROPFIND", "/dav/private-folder-name/", map[string]string{"X-Test-IdP-Down": "1"}, http.StatusServiceUnavailable},
		{"GET", "/dav/private-folder-name/report.txt", alice, http.StatusForbidden},
		{"BREW", "/dav/private-folder-name/report.txt", alice, http.StatusMethodNotAllowed},
		{"GET", "/metrics", nil, http.StatusNotFound}, // never on the WebDAV listener
	}
	for _, s := range steps {
		if code := do(s.method, s.path, s.header, ""); code != s.want {
			t.Fatalf("%s %s: %d, want %d", s.method, s.path, code, s.want)
		}
	}

	got := scrape(t, m.Handler())
	want := map[string]float64{
		`davgw_http_requests_total{method="OPTIONS",status_class="2xx"}`:  1,
		`davgw_http_requests_total{method="GET",status_class="2xx"}`:      1,
		`davgw_http_requests_total{method="PROPFIND",status_class="4xx"}`: 4,
		`davgw_http_requests_total{method="PROPFIND",status_class="5xx"}`: 1,
		`davgw_http_requests_total{method="GET",status_class="4xx"}`:      2,
		`davgw_http_requests_total{method="OTHER",status_class="4xx"}`:    1,
		`davgw_http_request_duration_seconds_count{method="PROPFIND"}`:    5,
		`davgw_http_requests_in_flight`:                                   0,
		`davgw_auth_failures_total{reason="no_credentials"}`:              2,
		`davgw_auth_failures_total{reason="refused"}`:                     1,
		`davgw_auth_failures_total{reason="rate_limited"}`:                1,
		`davgw_auth_failures_total{reason="unavailable"}`:                 1,
		`davgw_s3_errors_total{kind="denied"}`:                            1,
		`davgw_s3_errors_total{kind="unavailable"}`:                       0,
		`davgw_uploads_total{result="committed"}`:                         0,
	}
	for series, v := range want {
		if got[series] != v {
			t.Errorf("%s = %v, want %v", series, got[series], v)
		}
	}
	// The gateway counts requests as it sends them; a HEAD cancelled
	// because the LIST beside it found a folder may never reach the fake
	// S3, so the metric may exceed the server's count by a little.
	if n, seen := got[`davgw_s3_requests_total`], float64(s3calls.Load()); n < 1 || n < seen || n > seen+4 {
		t.Errorf("davgw_s3_requests_total = %v, the fake S3 saw %v", n, seen)
	}
	if got[`davgw_http_response_bytes_total`] <= 0 {
		t.Errorf("no response bytes counted")
	}
	if _, ok := got[`go_goroutines`]; !ok {
		t.Errorf("the Go collector is missing")
	}
	for series := range got {
		if strings.Contains(series, "alice") || strings.Contains(series, "private-folder-name") || strings.Contains(series, "report.txt") || strings.Contains(series, "BREW") {
			t.Errorf("a label carries a user, path or raw method: %s", series)
		}
	}
}

func TestMetricsNotesOfUploads(t *testing.T) {
	m := NewMetrics()
	var calls atomic.Int64
	for _, upload := range []func(*recorder){
		func(rec *recorder) { rec.uploadCommitted(100) },
		func(rec *recorder) { rec.uploadCommitted(23) },
		func(rec *recorder) { rec.uploadAborted() },
	} {
		rec := &recorder{ResponseWriter: httptest.NewRecorder(), start: time.Now(), s3calls: &calls}
		m.started()
		upload(rec)
		m.finished(rec, http.MethodPut, http.StatusCreated)
	}
	got := scrape(t, m.Handler())
	for series, v := range map[string]float64{
		`davgw_uploads_total{result="committed"}`: 2,
		`davgw_uploads_total{result="aborted"}`:   1,
		`davgw_upload_bytes_total`:                123,
		`davgw_http_requests_in_flight`:           0,
	} {
		if got[series] != v {
			t.Errorf("%s = %v, want %v", series, got[series], v)
		}
	}
}

func TestAdminHandlerServesMetricsAndProbes(t *testing.T) {
	store, _ := deniedS3(t)
	var notReady atomic.Bool
	tests := []struct {
		name     string
		metrics  bool
		path     string
		notReady bool
		want     int
		body     string
	}{
		{name: "metrics are served when enabled", metrics: true, path: "/metrics", want: http.StatusOK, body: "davgw_http_requests_in_flight"},
		{name: "metrics are absent when disabled", path: "/metrics", want: http.StatusNotFound},
		{name: "healthz answers ok", path: "/healthz", want: http.StatusOK, body: "ok"},
		{name: "readyz answers ready", path: "/readyz", want: http.StatusOK, body: "ready"},
		{name: "readyz answers 503 without internal details", path: "/readyz", notReady: true, want: http.StatusServiceUnavailable, body: "Service Unavailable"},
		{name: "WebDAV is not served", metrics: true, path: "/dav/", want: http.StatusNotFound},
		{name: "pprof's index is served", path: "/debug/pprof/", want: http.StatusOK, body: "goroutine"},
		{name: "a heap profile is served", path: "/debug/pprof/heap?debug=1", want: http.StatusOK, body: "heap profile"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := Options{Store: store, Auth: authFunc(func(*http.Request) (auth.Principal, bool, error) { return auth.Principal{}, false, nil }),
				Logger: slog.New(slog.DiscardHandler),
				Ready: func() error {
					if notReady.Load() {
						return errors.New("idp at 10.0.0.7 unreachable")
					}
					return nil
				}}
			if tt.metrics {
				opts.Metrics = NewMetrics()
			}
			g, err := New(opts)
			if err != nil {
				t.Fatal(err)
			}
			notReady.Store(tt.notReady)
			rr := httptest.NewRecorder()
			g.AdminHandler().ServeHTTP(rr, httptest.NewRequest(http.MethodGet, tt.path, nil))
			if rr.Code != tt.want || !strings.Contains(rr.Body.String(), tt.body) {
				t.Fatalf("GET %s: %d %q, want %d with %q", tt.path, rr.Code, rr.Body.String(), tt.want, tt.body)
			}
			if strings.Contains(rr.Body.String(), "10.0.0.7") {
				t.Fatal("internal error text reached the body")
			}
		})
	}
}

func TestMetricLabelValuesAreBounded(t *testing.T) {
	tests := []struct{ method, want string }{
		{"GET", "GET"}, {"PROPFIND", "PROPFIND"}, {"UNLOCK", "UNLOCK"},
		{"get", "OTHER"}, {"BREW", "OTHER"}, {"/dav/alice/x", "OTHER"},
	}
	for _, tt := range tests {
		if got := metricMethod(tt.method); got != tt.want {
			t.Errorf("metricMethod(%q) = %q, want %q", tt.method, got, tt.want)
		}
	}
	for status, want := range map[int]string{200: "2xx", 207: "2xx", 404: "4xx", 507: "5xx", 101: "1xx", 0: "other"} {
		if got := statusClass(status); got != want {
			t.Errorf("statusClass(%d) = %q, want %q", status, got, want)
		}
	}
}

// TestProfilesAreNeverOnTheWebDAVListener: /debug/pprof/ is the admin
// listener's only; the WebDAV handler answers it 404.
func TestProfilesAreNeverOnTheWebDAVListener(t *testing.T) {
	store, _ := deniedS3(t)
	g, err := New(Options{Store: store, Logger: slog.New(slog.DiscardHandler),
		Auth: authFunc(func(*http.Request) (auth.Principal, bool, error) { return auth.Principal{Username: "alice"}, true, nil })})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"/debug/pprof/", "/debug/pprof/heap", "/debug/pprof/cmdline"} {
		rr := httptest.NewRecorder()
		g.ServeHTTP(rr, httptest.NewRequest(http.MethodGet, p, nil))
		if rr.Code != http.StatusNotFound || strings.Contains(rr.Body.String(), "goroutine") {
			t.Errorf("GET %s on the WebDAV handler: %d %q, want 404", p, rr.Code, truncateForLog(rr.Body.String()))
		}
	}
}

func truncateForLog(s string) string {
	if len(s) > 200 {
		return s[:200] + "..."
	}
	return s
}
