package tests

import (
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/oauth2-proxy/mockoidc"

	"github.com/davgw/davgw/auth"
	"github.com/davgw/davgw/gateway"
)

// lockWithOwner is a LOCK body whose DAV:owner holds owner (as text).
func lockWithOwner(owner string) []byte {
	return []byte(`<?xml version="1.0" encoding="utf-8"?><D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope>` +
		`<D:locktype><D:write/></D:locktype><D:owner>` + owner + `</D:owner></D:lockinfo>`)
}

// lockAs sends a Depth 0 LOCK with owner as user and returns the answer
// (its body closed), for its status and headers.
func lockAs(t *testing.T, g *servedGateway, path, user, pw, owner string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest("LOCK", g.base+path, strings.NewReader(string(lockWithOwner(owner))))
	req.SetBasicAuth(user, pw)
	req.Header.Set("Depth", "0")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}

// rssKiB returns a process's resident memory, now and at its peak (KiB).
func rssKiB(t *testing.T, pid int) (now, peak int) {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		n, _ := strconv.Atoi(f[1])
		switch f[0] {
		case "VmRSS:":
			now = n
		case "VmHWM:":
			peak = n
		}
	}
	return now, peak
}

// TestLockFloodIsBounded (issue 10, F4): a user who sends LOCKs with huge
// owners, and more LOCKs than anyone needs, gets 413 and 429 with
// Retry-After; the gateway's memory and its lockdiscovery answers stay
// small, the user's granted locks keep working, and another user locks
// and writes as usual. For the memory and the Redis lock stores.
func TestLockFloodIsBounded(t *testing.T) {
	for _, store := range []string{"memory", "redis"} {
		t.Run(store, func(t *testing.T) {
			extra := "[limits]\nlocks_per_user = 40\n"
			if store == "redis" {
				extra += fmt.Sprintf("[locks]\nstore = %q\n", startRedis(t).URL)
			}
			// Names of their own: the bucket is shared with other tests.
			mallory, alice := "m"+randHex(4), "a"+randHex(4)
			g := serveBinary(t, 256, "", extra, map[string]string{mallory: "m-pw", alice: "a-pw"})
			pid := g.p.cmd.Process.Pid
			before, _ := rssKiB(t, pid)

			// Owners of 512 KiB: refused before they are kept.
			huge := strings.Repeat("x", 512<<10)
			for i := range 20 {
				st, _ := g.do(t, "LOCK", fmt.Sprintf("/dav/huge%d.txt", i), mallory, "m-pw", lockWithOwner(huge), "Depth", "0")
				if st != http.StatusRequestEntityTooLarge {
					t.Fatalf("LOCK with a 512 KiB owner: %d, want 413", st)
				}
			}
			// Owners just under the cap, more locks than allowed.
			owner := strings.Repeat("o", 4000)
			granted, refused := 0, 0
			var firstToken string
			for i := range 60 {
				resp := lockAs(t, g, fmt.Sprintf("/dav/f%d.txt", i), mallory, "m-pw", owner)
				switch resp.StatusCode {
				case http.StatusOK, http.StatusCreated:
					granted++
					if firstToken == "" {
						firstToken = resp.Header.Get("Lock-Token")
					}
				case http.StatusTooManyRequests:
					refused++
					if resp.Header.Get("Retry-After") == "" {
						t.Fatal("429 without Retry-After")
					}
				default:
					t.Fatalf("LOCK %d: %d", i, resp.StatusCode)
				}
			}
			if granted != 40 || refused != 20 {
				t.Fatalf("granted %d, refused %d; want 40 and 20", granted, refused)
			}
			st, body := g.do(t, "PROPFIND", "/dav/", mallory, "m-pw",
				[]byte(`<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:prop><D:lockdiscovery/></D:prop></D:propfind>`), "Depth", "1")
			if st != http.StatusMultiStatus {
				t.Fatalf("PROPFIND: %d", st)
			}
			if n := strings.Count(string(body), "<D:activelock"); n != 40 {
				t.Fatalf("lockdiscovery lists %d locks, want 40", n)
			}
			after, peak := rssKiB(t, pid)
			t.Logf("%s store: lockdiscovery answer %d bytes; RSS %d KiB before, %d KiB after (peak %d KiB)", store, len(body), before, after, peak)
			if len(body) > 1<<20 {
				t.Fatalf("lockdiscovery answer of %d bytes", len(body))
			}
			if after-before > 64<<10 {
				t.Fatalf("RSS grew by %d KiB", after-before)
			}
			// Nothing lost: mallory's own lock still guards its file.
			if st, _ := g.do(t, "PUT", "/dav/f0.txt", mallory, "m-pw", []byte("mine"), "If", "("+firstToken+")"); st != http.StatusNoContent && st != http.StatusCreated {
				t.Fatalf("PUT with mallory's token: %d", st)
			}
			// Another user is not affected.
			resp := lockAs(t, g, "/dav/a.txt", alice, "a-pw", "<D:href>alice</D:href>")
			tok := resp.Header.Get("Lock-Token")
			if (resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK) || tok == "" {
				t.Fatalf("alice's LOCK: %d", resp.StatusCode)
			}
			if st, _ := g.do(t, "PUT", "/dav/a.txt", alice, "a-pw", []byte("hello"), "If", "("+tok+")"); st != http.StatusNoContent && st != http.StatusCreated {
				t.Fatalf("alice's PUT: %d", st)
			}
			if st, got := g.do(t, "GET", "/dav/a.txt", alice, "a-pw", nil); st != http.StatusOK || string(got) != "hello" {
				t.Fatalf("alice's GET: %d %q", st, got)
			}
			if st, _ := g.do(t, "UNLOCK", "/dav/a.txt", alice, "a-pw", nil, "Lock-Token", tok); st != http.StatusNoContent {
				t.Fatalf("alice's UNLOCK: %d", st)
			}
		})
	}
}

// TestGuessesBehindASharedAddressLockOutNobody (issue 10, F6): behind a
// reverse proxy ([server].trusted_proxies) every client has its own
// address; a guesser who uses up the failures of an address that a real
// user shares (one NAT) is refused with 429, while that user, whose
// credentials were verified, keeps working long after the caches of
// verified credentials lapse, and a first-time user elsewhere behind the
// proxy signs in. A guesser cannot pick its address by sending its own
// X-Forwarded-For.
func TestGuessesBehindASharedAddressLockOutNobody(t *testing.T) {
	b := getBackend(t, "versitygw")
	m := startMockIdP(t)
	e := newSignInEnv(t, b, signInOptions{issuer: m.Issuer(), clientID: m.ClientID, clientSecret: m.ClientSecret,
		limiter: auth.NewLimiter(10, 50, time.Minute), appPasswordTTL: time.Second,
		trustedProxies: gateway.TrustedProxies{netip.MustParsePrefix("127.0.0.0/8")}})
	user := "u" + randHex(4)
	m.QueueUser(&mockoidc.MockUser{Subject: "sub-" + user, PreferredUsername: user})
	secret, _ := mintAppPassword(t, browserSignIn(t, e.URL), e.URL, "laptop")
	basic := basicOf(user, secret)
	const nat, elsewhere = "198.51.100.7", "203.0.113.20"
	via := func(addr string) map[string]string { return map[string]string{"X-Forwarded-For": addr} }
	expect(t, "the user's PUT", e.call(t, "PUT", "/dav/a.txt", basic, via(nat), "kept"), http.StatusCreated)

	guesses, limited := 0, 0
	for i := range 60 {
		r := e.call(t, "PROPFIND", "/dav/", basicOf(fmt.Sprintf("g%d", i), "guess"), via(nat), "")
		switch r.Status {
		case http.StatusUnauthorized:
			guesses++
		case http.StatusTooManyRequests:
			limited++
		default:
			t.Fatalf("guess %d: %d", i, r.Status)
		}
	}
	if guesses != 50 || limited != 10 {
		t.Fatalf("%d guesses checked, %d refused with 429; want 50 and 10", guesses, limited)
	}
	expect(t, "a guesser who forges X-Forwarded-For", e.call(t, "PROPFIND", "/dav/", basicOf("g", "guess"), via("1.2.3.4, "+nat), ""), http.StatusTooManyRequests)
	expect(t, "a first sign-in elsewhere behind the proxy", e.call(t, "PROPFIND", "/dav/", bearerOf(mockToken(t, m, "v"+randHex(4), nil)), map[string]string{"X-Forwarded-For": elsewhere, "Depth": "0"}, ""), http.StatusMultiStatus)

	// The user at the guesser's address, every 250 ms for 3.5 s: the
	// app passwords' cache (1 s here, 30 s by default) lapses three times.
	ok := 0
	for deadline := time.Now().Add(3500 * time.Millisecond); time.Now().Before(deadline); time.Sleep(250 * time.Millisecond) {
		r := e.call(t, "GET", "/dav/a.txt", basic, via(nat), "")
		if r.Status != http.StatusOK || string(r.Body) != "kept" {
			t.Fatalf("the user, %d requests in: %d %q", ok, r.Status, r.Body)
		}
		ok++
	}
	t.Logf("the user at the blocked address: %d requests answered 200 over 3.5 s", ok)
}

// TestASignInFloodBreaksNoSignInInProgress (issue 10, F7): while a user's
// browser is at the identity provider, a flood of /login from many
// addresses (behind a trusted proxy, so each counts as its own) fills the
// table of sign-ins in progress; the flood is refused (429 per address,
// 503 once full, each with Retry-After) and the user's sign-in completes.
func TestASignInFloodBreaksNoSignInInProgress(t *testing.T) {
	b := getBackend(t, "versitygw")
	m := startMockIdP(t)
	e := newSignInEnv(t, b, signInOptions{issuer: m.Issuer(), clientID: m.ClientID, clientSecret: m.ClientSecret,
		trustedProxies: gateway.TrustedProxies{netip.MustParsePrefix("127.0.0.0/8")}, pendingPerAddress: 5, maxPending: 50})
	user := "u" + randHex(4)
	m.QueueUser(&mockoidc.MockUser{Subject: "sub-" + user, PreferredUsername: user})

	// The user's browser: /login, then off to the IdP.
	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar, Timeout: 20 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := browser.Get(e.URL + "/login")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	toIdP := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusFound || toIdP == "" {
		t.Fatalf("/login: %d", resp.StatusCode)
	}

	// 101 addresses x 20 /login each, a few at a time.
	counts := map[int]int{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for a := range 101 {
		for range 20 {
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer func() { <-sem; wg.Done() }()
				req, _ := http.NewRequest("GET", e.URL+"/login", nil)
				req.Header.Set("X-Forwarded-For", fmt.Sprintf("198.51.%d.%d", a/200, a%200+1))
				resp, err := http.DefaultTransport.RoundTrip(req)
				if err != nil {
					t.Error(err)
					return
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusFound && resp.Header.Get("Retry-After") == "" {
					t.Errorf("/login answered %d without Retry-After", resp.StatusCode)
				}
				mu.Lock()
				counts[resp.StatusCode]++
				mu.Unlock()
			}()
		}
	}
	wg.Wait()
	t.Logf("flood of 2,020 /login: %v", counts)
	if counts[http.StatusFound] != 49 || counts[http.StatusTooManyRequests] == 0 || counts[http.StatusServiceUnavailable] == 0 {
		t.Fatalf("flood answers %v; want 49 started (the table holds 50), the rest 429 or 503", counts)
	}

	// The user's browser comes back from the IdP.
	browser.CheckRedirect = nil
	resp, err = browser.Get(toIdP)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `id="user"`) {
		t.Fatalf("the user's sign-in ended with %d at %s: %.300s", resp.StatusCode, resp.Request.URL, body)
	}
	if secret, _ := mintAppPassword(t, browser, e.URL, "laptop"); secret == "" {
		t.Fatal("no app password")
	}
}

// TestConcurrentWritesCannotPassTheQuota (issue 10, F13): with a 1 MiB
// quota, 10 concurrent 600 KB PUTs (5 declared, 5 chunked) store one file,
// the rest get 507 and leave nothing behind; dead properties count too, so
// PROPPATCHes stop at the quota; another user writes all along.
func TestConcurrentWritesCannotPassTheQuota(t *testing.T) {
	user, other := "q"+randHex(4), "o"+randHex(4)
	g := serveBinary(t, 256, "", "[webdav]\nquota_bytes = \"1MiB\"\n", map[string]string{user: "q-pw", other: "o-pw"})
	root := "users/" + user + "/"
	body := make([]byte, 600<<10)

	statuses := map[int]int{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			var rd io.Reader = strings.NewReader(string(body))
			if i%2 == 1 {
				rd = io.MultiReader(rd) // no length: chunked
			}
			req, _ := http.NewRequest("PUT", fmt.Sprintf("%s/dav/f%d.bin", g.base, i), rd)
			req.SetBasicAuth(user, "q-pw")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
			mu.Lock()
			statuses[resp.StatusCode]++
			mu.Unlock()
		}()
	}
	close(start)
	if st, _ := g.do(t, "PUT", "/dav/meanwhile.txt", other, "o-pw", []byte("not limited by someone else's quota")); st != http.StatusCreated {
		t.Fatalf("the other user's PUT: %d", st)
	}
	wg.Wait()
	var stored int64
	for _, o := range g.b.snapshot(t, root) {
		stored += o.Size
	}
	t.Logf("10 concurrent PUTs of 600 KB: %v; %d bytes stored under the 1 MiB quota", statuses, stored)
	if statuses[http.StatusCreated] != 1 || statuses[http.StatusInsufficientStorage] != 9 || stored > 1<<20 {
		t.Fatalf("answers %v, %d bytes stored; want one 201, nine 507, at most 1 MiB", statuses, stored)
	}
	if open := g.b.openUploads(t, root); len(open) != 0 {
		t.Fatalf("multipart uploads left open: %v", open)
	}

	// Dead properties: 50 KB each (random: they are stored compressed)
	// until the quota is full.
	value := randHex(25 << 10)
	patched, full := 0, false
	for i := 0; i < 20 && !full; i++ {
		name := fmt.Sprintf("/dav/p%d.txt", i)
		if st, _ := g.do(t, "PUT", name, user, "q-pw", []byte{}); st != http.StatusCreated {
			t.Fatalf("PUT of an empty file: %d", st)
		}
		st, _ := g.do(t, "PROPPATCH", name, user, "q-pw", []byte(`<?xml version="1.0"?><D:propertyupdate xmlns:D="DAV:" xmlns:Z="urn:x"><D:set><D:prop><Z:blob>`+value+`</Z:blob></D:prop></D:set></D:propertyupdate>`))
		switch st {
		case http.StatusMultiStatus:
			patched++
		case http.StatusInsufficientStorage:
			full = true
		default:
			t.Fatalf("PROPPATCH %d: %d", i, st)
		}
	}
	stored = 0
	for _, o := range g.b.snapshot(t, root) {
		stored += o.Size
	}
	t.Logf("PROPPATCH of 50 KB dead properties: %d accepted, then 507; %d bytes stored", patched, stored)
	if !full || patched > 9 || stored > 1<<20 {
		t.Fatalf("%d PROPPATCHes accepted, 507 seen: %v, %d bytes stored", patched, full, stored)
	}
	if st, got := g.do(t, "GET", "/dav/meanwhile.txt", other, "o-pw", nil); st != http.StatusOK || len(got) == 0 {
		t.Fatalf("the other user's file: %d", st)
	}
}

// TestRequestLimitsFollowTheConfig is issue 10's item 2 for the bounds
// that were constants: [limits] xml_depth, xml_elements,
// ranges_per_request, password_checks and password_checks_waiting,
// set low in the config of a real `davgw serve`, bound what they say and
// no more.
func TestRequestLimitsFollowTheConfig(t *testing.T) {
	extra := "[limits]\nxml_depth = 8\nxml_elements = 100\nranges_per_request = 2\npassword_checks = 1\npassword_checks_waiting = 1\n"
	alice := "a" + randHex(4)
	g := serveBinaryCost(t, 12, 256, extra, "", map[string]string{alice: "a-pw"})

	nested := func(depth int) []byte { // a dead property's value: depth elements deep in all
		return []byte(`<?xml version="1.0"?><D:propertyupdate xmlns:D="DAV:"><D:set><D:prop><Z:p xmlns:Z="urn:z">` +
			strings.Repeat("<Z:n>", depth-4) + strings.Repeat("</Z:n>", depth-4) + `</Z:p></D:prop></D:set></D:propertyupdate>`)
	}
	props := func(elements int) []byte { // elements in all
		return []byte(`<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:prop>` + strings.Repeat("<D:x/>", elements-2) + `</D:prop></D:propfind>`)
	}
	content := []byte("0123456789abcdefghij")
	if st, _ := g.do(t, http.MethodPut, "/dav/r.txt", alice, "a-pw", content); st != http.StatusCreated {
		t.Fatalf("PUT r.txt: %d", st)
	}
	for _, tt := range []struct {
		method, name string
		body         []byte
		want         int
		says         string
	}{
		{"PROPPATCH", "8 deep", nested(8), http.StatusMultiStatus, ""},
		{"PROPPATCH", "9 deep", nested(9), http.StatusBadRequest, "nested deeper than 8 elements ([limits].xml_depth)"},
		{"PROPFIND", "of 100 elements", props(100), http.StatusMultiStatus, ""},
		{"PROPFIND", "of 101 elements", props(101), http.StatusBadRequest, "more than 100 elements ([limits].xml_elements)"},
	} {
		st, body := g.do(t, tt.method, "/dav/r.txt", alice, "a-pw", tt.body, "Depth", "0")
		if st != tt.want || !strings.Contains(string(body), tt.says) {
			t.Errorf("%s with a body %s: %d %q, want %d naming %q", tt.method, tt.name, st, body, tt.want, tt.says)
		}
	}

	st, body := g.do(t, http.MethodGet, "/dav/r.txt", alice, "a-pw", nil, "Range", "bytes=0-1,5-6")
	if st != http.StatusPartialContent || !strings.Contains(string(body), "01") || !strings.Contains(string(body), "56") {
		t.Errorf("GET of 2 ranges: %d %q, want 206 with both", st, body)
	}
	st, body = g.do(t, http.MethodGet, "/dav/r.txt", alice, "a-pw", nil, "Range", "bytes=0-1,5-6,9-9")
	if st != http.StatusOK || string(body) != string(content) {
		t.Errorf("GET of 3 ranges past ranges_per_request = 2: %d %q, want 200 with the whole file", st, body)
	}

	// One bcrypt at a time (cost 12: a few hundred ms here) and one
	// waiting: of 6 concurrent guesses for distinct names, at least 4
	// find both taken and get 503 with Retry-After at once.
	type answer struct {
		status     int
		retryAfter string
	}
	answers := make(chan answer, 6)
	var wg sync.WaitGroup
	for i := range 6 {
		wg.Go(func() {
			req, _ := http.NewRequest("PROPFIND", g.base+"/dav/", nil)
			req.Header.Set("Depth", "0")
			req.SetBasicAuth(fmt.Sprintf("guess%d", i), "wrong")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
			answers <- answer{resp.StatusCode, resp.Header.Get("Retry-After")}
		})
	}
	wg.Wait()
	close(answers)
	counts := map[int]int{}
	for a := range answers {
		counts[a.status]++
		if a.status == http.StatusServiceUnavailable && a.retryAfter == "" {
			t.Error("503 without Retry-After")
		}
	}
	if counts[http.StatusServiceUnavailable] < 4 || counts[http.StatusUnauthorized]+counts[http.StatusServiceUnavailable] != 6 {
		t.Errorf("6 concurrent guesses with password_checks = 1, password_checks_waiting = 1: %v, want at most 2 checked (401), the rest 503", counts)
	}
}

// TestUsersSharingARootCannotUseEachOthersLocks: two users whose roots
// are one folder see each other's files and locks, but bob cannot write
// with, refresh or remove the lock alice took (RFC 4918 6.4: a token is
// of use only to its creator), in memory and in Redis.
func TestUsersSharingARootCannotUseEachOthersLocks(t *testing.T) {
	for _, store := range []string{"memory", "redis"} {
		t.Run(store, func(t *testing.T) {
			extra := "[auth]\nroot = \"team-" + randHex(4) + "/\"\n"
			if store == "redis" {
				extra += fmt.Sprintf("[locks]\nstore = %q\n", startRedis(t).URL)
			}
			alice, bob := "a"+randHex(4), "b"+randHex(4)
			g := serveBinary(t, 256, extra, "", map[string]string{alice: "a-pw", bob: "b-pw"})
			resp := lockAs(t, g, "/dav/plan.txt", alice, "a-pw", "alice")
			tok := resp.Header.Get("Lock-Token")
			if resp.StatusCode != http.StatusCreated || tok == "" {
				t.Fatalf("alice's LOCK: %d, token %q", resp.StatusCode, tok)
			}
			discovery := []byte(`<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:prop><D:lockdiscovery/></D:prop></D:propfind>`)
			if st, body := g.do(t, "PROPFIND", "/dav/plan.txt", bob, "b-pw", discovery, "Depth", "0"); st != http.StatusMultiStatus || !strings.Contains(string(body), strings.Trim(tok, "<>")) {
				t.Fatalf("bob's PROPFIND of the shared file: %d, lockdiscovery without alice's lock:\n%s", st, body)
			}
			for _, c := range []struct {
				what, method string
				body         []byte
				hdr          []string
				want         int
			}{
				{"a PUT without a token", http.MethodPut, []byte("bob"), nil, http.StatusLocked},
				{"a PUT with alice's token", http.MethodPut, []byte("bob"), []string{"If", "(" + tok + ")"}, http.StatusPreconditionFailed},
				{"a refresh of alice's lock", "LOCK", nil, []string{"If", "(" + tok + ")", "Timeout", "Second-600"}, http.StatusPreconditionFailed},
				{"an UNLOCK of alice's lock", "UNLOCK", nil, []string{"Lock-Token", tok}, http.StatusConflict},
				{"a DELETE with alice's token", http.MethodDelete, nil, []string{"If", "(" + tok + ")"}, http.StatusPreconditionFailed},
			} {
				if st, body := g.do(t, c.method, "/dav/plan.txt", bob, "b-pw", c.body, c.hdr...); st != c.want {
					t.Errorf("bob, %s: %d %s, want %d", c.what, st, body, c.want)
				}
			}
			if st, _ := g.do(t, http.MethodPut, "/dav/plan.txt", alice, "a-pw", []byte("alice"), "If", "("+tok+")"); st != http.StatusNoContent {
				t.Errorf("alice's PUT with her token: %d, want 204", st)
			}
			if st, _ := g.do(t, "UNLOCK", "/dav/plan.txt", alice, "a-pw", nil, "Lock-Token", tok); st != http.StatusNoContent {
				t.Errorf("alice's UNLOCK: %d, want 204", st)
			}
			if st, body := g.do(t, http.MethodGet, "/dav/plan.txt", bob, "b-pw", nil); st != http.StatusOK || string(body) != "alice" {
				t.Errorf("bob's GET after the unlock: %d %q, want alice's bytes", st, body)
			}
		})
	}
}
