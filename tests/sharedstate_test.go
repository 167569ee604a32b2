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
// one redis-server, share browser sessions (made on one, used and ended on
// the other), sign-ins in progress (/login on A, /callback on B), the
// failed sign-in limits (guesses spread over both trip at the count of
// one gateway) and app-password revocations (refused on B at once); with
// Redis killed, new sign-ins, the pages and writes answer 503 with
// Retry-After while verified credentials still read; with Redis back
// (with its data) all of it works again, the session included.
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
	// Browsers go through the balancer and never follow redirects by
	// themselves: the test sends each step to the gateway it names.
	newBrowser := func() *http.Client {
		jar, _ := cookiejar.New(nil)
		return &http.Client{Jar: jar, Timeout: 20 * time.Second,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	send := func(c *http.Client, on, method, rawURL string) (int, string, http.Header) {
		t.Helper()
		lb.to(t, gws[on])
		r, err := http.NewRequest(method, rawURL, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := c.Do(r)
		if err != nil {
			t.Fatalf("%s %s on %s: %v", method, rawURL, on, err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body), resp.Header
	}
	page := func(c *http.Client, on string) (int, string, http.Header) {
		t.Helper()
		return send(c, on, "GET", lb.srv.URL+"/")
	}
	signedIn := func(c *http.Client, on string) bool {
		t.Helper()
		status, body, _ := page(c, on)
		return status == http.StatusOK && strings.Contains(body, `id="user"`) && strings.Contains(body, olive)
	}
	// signIn runs the code flow: /login on one gateway, /callback on
	// another (or the same).
	signIn := func(c *http.Client, loginOn, callbackOn string) {
		t.Helper()
		m.QueueUser(&mockoidc.MockUser{Subject: "sub-" + olive, PreferredUsername: olive})
		status, _, hdr := send(c, loginOn, "GET", lb.srv.URL+"/login")
		if status != http.StatusFound {
			t.Fatalf("/login on %s: %d", loginOn, status)
		}
		status, _, hdr = send(c, loginOn, "GET", hdr.Get("Location")) // the IdP
		back := hdr.Get("Location")
		if status != http.StatusFound || !strings.HasPrefix(back, lb.srv.URL+"/callback?") {
			t.Fatalf("the IdP answered %d, Location %q", status, back)
		}
		if status, _, _ := send(c, callbackOn, "GET", back); status != http.StatusSeeOther {
			t.Fatalf("/callback on %s of a sign-in begun on %s: %d (want 303)", callbackOn, loginOn, status)
		}
	}

	// Signed in on A, the session works on B; signed out on B, it is
	// gone on A.
	first := newBrowser()
	signIn(first, "A", "A")
	if !signedIn(first, "B") {
		t.Fatal("B does not know the session A made")
	}
	lbURL := mustURL(t, lb.srv.URL)
	kept := first.Jar.Cookies(lbURL) // a copy of the cookie, as a thief would keep
	if len(kept) != 1 || kept[0].Name != "davgw_session" {
		t.Fatalf("cookies after sign-in: %v", kept)
	}
	if status, _, _ := send(first, "B", "POST", lb.srv.URL+"/logout"); status != http.StatusSeeOther {
		t.Fatalf("sign-out on B: %d", status)
	}
	first.Jar.SetCookies(lbURL, kept)
	if status, body, _ := page(first, "A"); status != http.StatusOK || strings.Contains(body, `id="user"`) {
		t.Fatalf("A still accepts the session signed out on B: %d", status)
	}

	// A sign-in begun on A completes on B; the session works on both.
	browser := newBrowser()
	signIn(browser, "A", "B")
	for _, on := range []string{"A", "B"} {
		if !signedIn(browser, on) {
			t.Fatalf("the page on %s with the session of a sign-in begun on A, completed on B", on)
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
		for _, path := range []string{"/", "/login"} {
			status, _, hdr := send(browser, name, "GET", lb.srv.URL+path)
			if status != http.StatusServiceUnavailable || hdr.Get("Retry-After") == "" {
				t.Fatalf("%s on %s with Redis down: %d, Retry-After %q", path, name, status, hdr.Get("Retry-After"))
			}
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
		if !signedIn(browser, on) {
			t.Fatalf("the session is not back on %s with Redis", on)
		}
	}
	signIn(newBrowser(), "B", "A")
}

func mustURL(t *testing.T, raw string) *url.URL {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u
}
