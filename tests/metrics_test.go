package tests

import (
	"bufio"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/davgw/davgw/gateway"
)

// TestMetrics drives a gateway with metrics on over a real S3 server and
// reads its /metrics: requests, uploads, S3 calls and sign-in failures
// move, and no label carries a path or a user name. The metrics do not
// depend on the back end, so one is enough.
func TestMetrics(t *testing.T) {
	m := gateway.NewMetrics()
	e := tunedEnv(t, "versitygw", func(o *gateway.Options) { o.Metrics = m })
	_, dir := e.caseDir(t)
	before := scrapeMetrics(t, m)

	body := randBytes(64 << 10)
	expect(t, "PUT", e.alice(t, http.MethodPut, dir+"quarterly-report.bin", nil, body), http.StatusCreated)
	expect(t, "GET", e.alice(t, http.MethodGet, dir+"quarterly-report.bin", nil, nil), http.StatusOK)
	expect(t, "GET of a missing file", e.alice(t, http.MethodGet, dir+"missing.bin", nil, nil), http.StatusNotFound)
	expect(t, "PROPFIND", e.alice(t, "PROPFIND", dir, map[string]string{"Depth": "1"}, nil), http.StatusMultiStatus)
	expect(t, "PROPFIND without credentials", e.do(t, req{Method: "PROPFIND", Path: dir}), http.StatusUnauthorized)
	expect(t, "PROPFIND with a wrong password", e.do(t, req{Method: "PROPFIND", Path: dir, User: "alice", Pass: "not-alice-pw"}), http.StatusUnauthorized)
	// A client that promises 1,000 bytes, sends 100 and goes away.
	conn := e.startRawPUT(t, dir+"half-sent.bin", "Content-Length: 1000\r\n")
	if _, err := conn.Write(randBytes(100)); err != nil {
		t.Fatal(err)
	}
	_ = conn.Close()
	aborted := `davgw_uploads_total{result="aborted"}`
	if !waitFor(10*time.Second, func() bool { return scrapeMetrics(t, m)[aborted] > before[aborted] }) {
		t.Errorf("%s did not move after a client went away mid-PUT", aborted)
	}

	after := scrapeMetrics(t, m)
	grew := func(series string, atLeast float64) {
		t.Helper()
		if d := after[series] - before[series]; d < atLeast {
			t.Errorf("%s grew by %v, want at least %v", series, d, atLeast)
		}
	}
	grew(`davgw_http_requests_total{method="PUT",status_class="2xx"}`, 1)
	grew(`davgw_http_requests_total{method="GET",status_class="2xx"}`, 1)
	grew(`davgw_http_requests_total{method="GET",status_class="4xx"}`, 1)
	grew(`davgw_http_requests_total{method="PROPFIND",status_class="2xx"}`, 1)
	grew(`davgw_http_requests_total{method="PROPFIND",status_class="4xx"}`, 2)
	grew(`davgw_http_request_duration_seconds_count{method="PUT"}`, 2)
	grew(`davgw_http_response_bytes_total`, float64(len(body)))
	grew(`davgw_s3_requests_total`, 3)
	grew(`davgw_uploads_total{result="committed"}`, 1)
	grew(`davgw_upload_bytes_total`, float64(len(body)))
	grew(`davgw_auth_failures_total{reason="no_credentials"}`, 1)
	grew(`davgw_auth_failures_total{reason="refused"}`, 1)
	if got := after[`davgw_http_requests_in_flight`]; got != 0 {
		t.Errorf("requests in flight after all answered = %v", got)
	}
	if _, ok := after[`process_resident_memory_bytes`]; !ok {
		t.Errorf("the process collector is missing")
	}

	slug := strings.Trim(strings.TrimPrefix(dir, "/dav/"), "/")
	for series := range after {
		for _, secret := range []string{"alice", slug, "quarterly-report", "half-sent", "missing.bin", "/dav"} {
			if strings.Contains(series, secret) {
				t.Errorf("series %s carries %q: labels must never hold a path or user name", series, secret)
			}
		}
	}
}

// scrapeMetrics reads m's exposition: series (name{labels}) to value.
func scrapeMetrics(t *testing.T, m *gateway.Metrics) map[string]float64 {
	t.Helper()
	rr := httptest.NewRecorder()
	m.Handler().ServeHTTP(rr, httptest.NewRequest(http.MethodGet, "/metrics", nil))
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
