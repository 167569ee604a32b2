package tests

// Shared pieces of the client tests (windows_test.go, finder_test.go,
// mobile_test.go, rclone_test.go, cadaver_test.go): a WebDAV client that
// sends the headers one client program sends on every request, a gateway
// over HTTPS (Windows refuses Basic over plain HTTP), and small parsers.
// ../shared/docs/CLIENTS.md is the source of every request pattern.

import (
	"bytes"
	"encoding/xml"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/davgw/davgw/gateway"
)

// clientApp speaks to one gateway the way one client program does: its
// fixed headers (User-Agent, translate: f, ...) on every request, Basic
// auth as alice.
type clientApp struct {
	name   string
	base   string // scheme://127.0.0.1:PORT, no trailing slash
	http   *http.Client
	header map[string]string
	proto  string // protocol of the last answer, e.g. HTTP/2.0
}

// newClientApp is a client of the plain-HTTP gateway e.
func newClientApp(e *davEnv, name string, header map[string]string) *clientApp {
	return &clientApp{name: name, base: e.URL, http: &http.Client{
		Transport:     http.DefaultTransport,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}, header: header}
}

// newTLSClientApp starts a second gateway over e's store, served over
// HTTPS with HTTP/2 enabled (as Windows maps https://host/dav/), and
// returns a client of it that trusts its certificate.
func newTLSClientApp(t *testing.T, e *davEnv, name string, header map[string]string) *clientApp {
	t.Helper()
	return startClientGateway(t, e, name, header, true, nil)
}

// newConfiguredClientApp starts a second gateway over e's store with
// options changed by set (apple_files, quota, prefix), over plain HTTP.
func newConfiguredClientApp(t *testing.T, e *davEnv, name string, header map[string]string, set func(*gateway.Options)) *clientApp {
	t.Helper()
	return startClientGateway(t, e, name, header, false, set)
}

func startClientGateway(t *testing.T, e *davEnv, name string, header map[string]string, tls bool, set func(*gateway.Options)) *clientApp {
	t.Helper()
	opts := gateway.Options{
		Store: e.store, DAVPrefix: "/dav/", Auth: staticAuth(t), Realm: "davgw-test",
		Logger: slog.New(slog.DiscardHandler),
	}
	if set != nil {
		set(&opts)
	}
	gw, err := gateway.New(opts)
	if err != nil {
		t.Fatalf("gateway.New: %v", err)
	}
	srv := httptest.NewUnstartedServer(gw)
	var c *http.Client
	if tls {
		srv.EnableHTTP2 = true
		srv.StartTLS()
		c = srv.Client()
	} else {
		srv.Start()
		c = &http.Client{Transport: http.DefaultTransport}
	}
	t.Cleanup(srv.Close)
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	c.Timeout = 2 * time.Minute
	return &clientApp{name: name, base: srv.URL, http: c, header: header}
}

// call is one request of a client; Path goes on the request line as is.
type call struct {
	Method string
	Path   string
	Header map[string]string
	Body   []byte
	// Stream, when set, is sent chunked (no Content-Length) instead of Body.
	Stream io.Reader
	// Anonymous sends no credentials (Windows' first OPTIONS).
	Anonymous bool
}

// send makes the request with the client's headers, then the call's.
func (c *clientApp) send(tb testing.TB, k call) reply {
	tb.Helper()
	var body io.Reader
	if k.Body != nil {
		body = bytes.NewReader(k.Body)
	}
	if k.Stream != nil {
		body = onlyReader{k.Stream}
	}
	hr, err := http.NewRequest(k.Method, c.base+"/", body)
	if err != nil {
		tb.Fatal(err)
	}
	hr.URL.Opaque = k.Path
	if k.Stream != nil {
		hr.ContentLength = -1
	}
	if k.Body != nil && len(k.Body) == 0 {
		hr.ContentLength = 0
		hr.Body = http.NoBody
	}
	if !k.Anonymous {
		hr.SetBasicAuth("alice", testUsers["alice"])
	}
	for h, v := range c.header {
		hr.Header.Set(h, v)
	}
	for h, v := range k.Header {
		hr.Header.Set(h, v)
	}
	resp, err := c.http.Do(hr)
	if err != nil {
		tb.Fatalf("%s: %s %s: %v", c.name, k.Method, k.Path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatalf("%s: %s %s: read body: %v", c.name, k.Method, k.Path, err)
	}
	c.proto = resp.Proto
	return reply{Status: resp.StatusCode, Header: resp.Header, Body: b}
}

// url is the full URL of a DAV path, as Destination headers carry it.
func (c *clientApp) url(path string) string { return c.base + path }

// lockTokenFromBody reads lockdiscovery/activelock/locktoken/href from a
// LOCK answer, where Finder takes its token from.
func lockTokenFromBody(tb testing.TB, body []byte) string {
	tb.Helper()
	var p struct {
		Hrefs []string `xml:"lockdiscovery>activelock>locktoken>href"`
	}
	if err := xml.Unmarshal(body, &p); err != nil {
		tb.Fatalf("LOCK body does not parse: %v\n%s", err, truncate(string(body), 1000))
	}
	if len(p.Hrefs) != 1 {
		tb.Fatalf("LOCK body carries %d lock tokens, want 1:\n%s", len(p.Hrefs), truncate(string(body), 1000))
	}
	return strings.TrimSpace(p.Hrefs[0])
}

// allPropsOK fails unless every property of every response of a 207
// PROPPATCH answer has status 200.
func allPropsOK(tb testing.TB, what string, r reply) {
	tb.Helper()
	expect(tb, what, r, http.StatusMultiStatus)
	ms := parseMultistatus(tb, r.Body)
	if len(ms) == 0 {
		tb.Errorf("%s: a 207 without responses: %s", what, r)
	}
	for _, m := range ms {
		if len(m.Status) == 0 {
			tb.Errorf("%s: response for %s lists no property: %s", what, m.Href, r)
		}
		for prop, st := range m.Status {
			if !strings.Contains(st, " 200") {
				tb.Errorf("%s: %s answered %q, want 200", what, prop, st)
			}
		}
	}
}

// onlyResponse returns the single response of a Depth 0 PROPFIND.
func onlyResponse(tb testing.TB, what string, r reply) msResponse {
	tb.Helper()
	expect(tb, what, r, http.StatusMultiStatus)
	ms := parseMultistatus(tb, r.Body)
	if len(ms) != 1 {
		tb.Fatalf("%s: %d responses, want 1: %s", what, len(ms), r)
	}
	return ms[0]
}

// byPath indexes a Depth 1 listing by unescaped path, folders without
// their trailing slash.
func byPath(tb testing.TB, r reply) map[string]msResponse {
	tb.Helper()
	out := map[string]msResponse{}
	for _, m := range parseMultistatus(tb, r.Body) {
		out[strings.TrimSuffix(hrefPath(tb, m.Href), "/")] = m
	}
	return out
}

// sameHTTPTime fails unless got is an HTTP date equal to want (to the second).
func sameHTTPTime(tb testing.TB, what, got string, want time.Time) {
	tb.Helper()
	ts, err := http.ParseTime(got)
	if err != nil {
		tb.Errorf("%s = %q: not an HTTP date: %v", what, got, err)
		return
	}
	if !ts.Equal(want.Truncate(time.Second)) {
		tb.Errorf("%s = %q, want %q (the kept modification time)", what, got, want.UTC().Format(http.TimeFormat))
	}
}

// userKeys lists the keys under prefix that a user put there: without the
// gateway's own objects (names starting with ".davgw-").
func userKeys(tb testing.TB, e *davEnv, prefix string) []string {
	tb.Helper()
	var out []string
	for _, k := range e.b.keys(tb, prefix) {
		if !strings.Contains(k, "/.davgw-") {
			out = append(out, k)
		}
	}
	return out
}

// plausibleTimes fails for any getlastmodified in a listing that is not a
// real date (for example the zero time of a folder S3 knows no time for):
// Explorer and Finder show it as the folder's date.
func plausibleTimes(tb testing.TB, what string, list map[string]msResponse) {
	tb.Helper()
	for p, m := range list {
		lm, ok := m.Props["DAV: getlastmodified"]
		if !ok {
			continue
		}
		ts, err := http.ParseTime(lm.Text)
		if err != nil || ts.Year() < 1980 {
			tb.Errorf("%s: %s has getlastmodified %q", what, p, lm.Text)
		}
	}
}

// forEachBackend runs fn on every back end in parallel, one subtest each.
func forEachBackend(t *testing.T, names []string, fn func(t *testing.T, e *davEnv)) {
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			fn(t, getEnv(t, name))
		})
	}
}
