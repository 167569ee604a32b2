package tests

import (
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/oauth2-proxy/mockoidc"
)

// balancer is a reverse proxy in front of several gateways, as a load
// balancer without sticky sessions would be; the test picks the gateway
// each request goes to.
type balancer struct {
	srv    *httptest.Server
	target atomic.Pointer[url.URL]
}

func newBalancer(t *testing.T) *balancer {
	t.Helper()
	lb := &balancer{}
	rp := &httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) {
		r.SetURL(lb.target.Load())
		r.Out.Host = r.In.Host
		r.SetXForwarded()
	}}
	lb.srv = httptest.NewServer(rp)
	t.Cleanup(lb.srv.Close)
	return lb
}

func (lb *balancer) to(t *testing.T, g *servedGateway) {
	u, err := url.Parse(g.base)
	if err != nil {
		t.Fatal(err)
	}
	lb.target.Store(u)
}

// TestReplicasShareSignInStateThroughRedis (issue 13, item 1): two real
// `davgw serve` processes behind one load balancer, with [locks].store on
// one redis-server, share browser sessions, sign-ins in progress, the
// failed sign-in limits and app-password revocations; with Redis killed
// new sign-ins answer 503 while verified credentials still read, and with
// Redis back everything works again.
func TestReplicasShareSignInStateThroughRedis(t *testing.T) {
	rs := startPersistentRedis(t)
	m := startMockIdP(t)
	lb := newBalancer(t)
	olive := "olive-" + randHex(3) // an OIDC user of this run only (identity bindings stay in the bucket)
	server := fmt.Sprintf("public_url = %q\ntrusted_proxies = [\"127.0.0.1\"]\n", lb.srv.URL)
	rest := fmt.Sprintf("\n[auth.oidc]\nissuer = %q\nclient_id = %q\nclient_secret = %q\n\n[locks]\nstore = %q\n",
		m.Issuer(), m.ClientID, m.ClientSecret, rs.URL)
	users := map[string]string{"stat": "stat-pw", "bob": "bob-pw"}
	a := serveBinary(t, 1024, server, rest, users)
	b := serveBinary(t, 1024, server, rest, users)
	gws := map[string]*servedGateway{"A": a, "B": b}

	// A request straight to one gateway, as from client address from.
	call := func(g *servedGateway, method, path, user, pw, from string) reply {
		t.Helper()
		r, err := http.NewRequest(method, g.base+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		if user != "" {
			r.SetBasicAuth(user, pw)
		}
		if from != "" {
			r.Header.Set("X-Forwarded-For", from)
		}
		if method == "PROPFIND" {
			r.Header.Set("Depth", "0")
		}
		resp, err := http.DefaultClient.Do(r)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return reply{Status: resp.StatusCode, Header: resp.Header, Body: body}
	}
	// The browser, through the balancer, never following redirects by
	// itself: the test sends each step to the gateway it names.
	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar, Timeout: 20 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	visit := func(on, rawURL string) *http.Response {
		t.Helper()
		lb.to(t, gws[on])
		resp, err := browser.Get(rawURL)
		if err != nil {
			t.Fatalf("GET %s on %s: %v", rawURL, on, err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}
	page := func(on string) (int, string, http.Header) {
		t.Helper()
		lb.to(t, gws[on])
		resp, err := browser.Get(lb.srv.URL + "/")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body), resp.Header
	}

	// A sign-in begun on A completes on B; the session works on both.
	m.QueueUser(&mockoidc.MockUser{Subject: "sub-" + olive, PreferredUsername: olive})
	begin := visit("A", lb.srv.URL+"/login")
	if begin.StatusCode != http.StatusFound {
		t.Fatalf("/login on A: %d", begin.StatusCode)
	}
	atIdP, err := browser.Get(begin.Header.Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	atIdP.Body.Close()
	back := atIdP.Header.Get("Location")
	if atIdP.StatusCode != http.StatusFound || !strings.HasPrefix(back, lb.srv.URL+"/callback?") {
		t.Fatalf("the IdP answered %d, Location %q", atIdP.StatusCode, back)
	}
	if done := visit("B", back); done.StatusCode != http.StatusSeeOther {
		t.Fatalf("/callback on B of a sign-in begun on A: %d (want 303)\n%s", done.StatusCode, b.p.log.String())
	}
	for _, on := range []string{"A", "B"} {
		status, body, _ := page(on)
		if status != http.StatusOK || !strings.Contains(body, `id="user"`) || !strings.Contains(body, olive) {
			t.Fatalf("the page on %s with B's session: %d %.300s", on, status, body)
		}
	}

	// An app password minted on A works on both; revoked on A, it fails
	// on B at once, though B verified it a moment ago (its copy of the
	// list is younger than the 30 s it keeps one).
	lb.to(t, a)
	laptop, laptopID := mintAppPassword(t, browser, lb.srv.URL, "laptop")
	keep, _ := mintAppPassword(t, browser, lb.srv.URL, "keep")
	for name, g := range gws {
		expect(t, "PROPFIND with the laptop password on "+name, call(g, "PROPFIND", "/dav/", olive, laptop, ""), http.StatusMultiStatus)
		expect(t, "PROPFIND with the kept password on "+name, call(g, "PROPFIND", "/dav/", olive, keep, ""), http.StatusMultiStatus)
	}
	revoked, err := browser.PostForm(lb.srv.URL+"/app-passwords/revoke", url.Values{"id": {laptopID}})
	if err != nil {
		t.Fatal(err)
	}
	revoked.Body.Close()
	if revoked.StatusCode != http.StatusSeeOther {
		t.Fatalf("revoke on A: %d", revoked.StatusCode)
	}
	expect(t, "PROPFIND with the revoked password on B", call(b, "PROPFIND", "/dav/", olive, laptop, ""), http.StatusUnauthorized)
	expect(t, "PROPFIND with the revoked password on A", call(a, "PROPFIND", "/dav/", olive, laptop, ""), http.StatusUnauthorized)
	expect(t, "PROPFIND with the kept password on B", call(b, "PROPFIND", "/dav/", olive, keep, ""), http.StatusMultiStatus)

	// A static user verified on both, with a file to read later.
	expect(t, "PUT as stat on A", call(a, "PUT", "/dav/kept.txt", "stat", "stat-pw", ""), http.StatusCreated, http.StatusNoContent)
	expect(t, "PROPFIND as stat on B", call(b, "PROPFIND", "/dav/", "stat", "stat-pw", ""), http.StatusMultiStatus)

	// Failed guesses spread over A and B count as if they reached one
	// gateway: 10 per user at an address, 50 per address.
	order := []*servedGateway{a, b}
	for i := range 10 {
		r := call(order[i%2], "PROPFIND", "/dav/", "mallory", "guess-"+randHex(4), "198.51.100.10")
		expect(t, fmt.Sprintf("wrong password %d of mallory", i+1), r, http.StatusUnauthorized)
	}
	for name, g := range gws {
		r := call(g, "PROPFIND", "/dav/", "mallory", "guess", "198.51.100.10")
		expect(t, "mallory's 11th guess on "+name, r, http.StatusTooManyRequests)
		if r.Header.Get("Retry-After") == "" {
			t.Fatalf("429 on %s without Retry-After", name)
		}
	}
	for i := range 50 {
		r := call(order[i%2], "PROPFIND", "/dav/", fmt.Sprint("guess", i), "pw", "198.51.100.50")
		expect(t, fmt.Sprintf("guess %d from one address", i+1), r, http.StatusUnauthorized)
	}
	for name, g := range gws {
		expect(t, "the address's 51st guess on "+name, call(g, "PROPFIND", "/dav/", "guess-x", "pw", "198.51.100.50"), http.StatusTooManyRequests)
	}

	// Redis killed: new sign-ins answer 503 with Retry-After; verified
	// credentials go on reading.
	rs.stop()
	for name, g := range gws {
		r := call(g, "GET", "/dav/kept.txt", "stat", "stat-pw", "")
		expect(t, "GET as stat on "+name+" with Redis down", r, http.StatusOK)
		expect(t, "PROPFIND with the kept app password on "+name+" with Redis down", call(g, "PROPFIND", "/dav/", olive, keep, ""), http.StatusMultiStatus)
		for _, c := range []struct {
			what string
			r    reply
		}{
			{"a first sign-in of bob", call(g, "PROPFIND", "/dav/", "bob", "bob-pw", "")},
			{"a PUT (locks live in Redis)", call(g, "PUT", "/dav/kept.txt", "stat", "stat-pw", "")},
		} {
			expect(t, c.what+" on "+name+" with Redis down", c.r, http.StatusServiceUnavailable)
			if c.r.Header.Get("Retry-After") == "" {
				t.Fatalf("%s on %s: 503 without Retry-After", c.what, name)
			}
		}
		status, _, hdr := page(name)
		if status != http.StatusServiceUnavailable || hdr.Get("Retry-After") == "" {
			t.Fatalf("the page on %s with Redis down: %d, Retry-After %q", name, status, hdr.Get("Retry-After"))
		}
		if r := visit(name, lb.srv.URL+"/login"); r.StatusCode != http.StatusServiceUnavailable || r.Header.Get("Retry-After") == "" {
			t.Fatalf("/login on %s with Redis down: %d, Retry-After %q", name, r.StatusCode, r.Header.Get("Retry-After"))
		}
	}

	// Redis back (with its data): the session, new sign-ins and writes
	// work again (a gateway tries Redis again a second after its last
	// failure).
	rs.start(t)
	for name, g := range gws {
		if !waitFor(10*time.Second, func() bool {
			return call(g, "PROPFIND", "/dav/", "bob", "bob-pw", "").Status == http.StatusMultiStatus
		}) {
			t.Fatalf("bob cannot sign in on %s 10 s after Redis is back", name)
		}
	}
	expect(t, "PUT as stat on B with Redis back", call(b, "PUT", "/dav/kept.txt", "stat", "stat-pw", ""), http.StatusNoContent)
	for _, on := range []string{"A", "B"} {
		if status, body, _ := page(on); status != http.StatusOK || !strings.Contains(body, olive) {
			t.Fatalf("the page on %s with Redis back: %d %.300s", on, status, body)
		}
	}
	if r := visit("B", lb.srv.URL+"/login"); r.StatusCode != http.StatusFound {
		t.Fatalf("/login on B with Redis back: %d", r.StatusCode)
	}
}
