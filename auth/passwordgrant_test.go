package auth

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/oauth2-proxy/mockoidc"
	"golang.org/x/oauth2"
)

// grantIdP is a small OpenID provider for the password grant: discovery,
// JWKS (a mockoidc key pair), a token endpoint with grant_type=password
// and a userinfo endpoint. No IdP that offers the password grant can be
// installed here (Hydra has none), so the token endpoint is written in the
// test.
type grantIdP struct {
	srv      *httptest.Server
	kp       *mockoidc.Keypair
	clientID string
	secret   string

	calls atomic.Int32 // token requests

	mu        sync.Mutex
	users     map[string]grantUser // login name -> account
	noIDToken bool                 // answer with an opaque access token only
	status    int                  // != 0: answer the token request with this status
	errorCode string               // the "error" of such an answer
	signer    *mockoidc.Keypair    // != nil: sign ID tokens with this key
	delay     time.Duration
	lastForm  map[string][]string
	lastBasic bool
}

type grantUser struct {
	password string
	username string // the preferred_username claim
	groups   []string
}

func newGrantIdP(t *testing.T) *grantIdP {
	t.Helper()
	kp, err := mockoidc.DefaultKeypair()
	if err != nil {
		t.Fatal(err)
	}
	g := &grantIdP{kp: kp, clientID: "davgw", secret: "client-secret", users: map[string]grantUser{
		"alice": {password: "alice-pw", username: "alice", groups: []string{"staff"}},
		"dave":  {password: "dave-pw", username: "mallory"},
	}}
	mux := http.NewServeMux()
	mux.HandleFunc("/.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		u := g.srv.URL
		_ = json.NewEncoder(w).Encode(map[string]any{
			"issuer": u, "authorization_endpoint": u + "/authorize", "token_endpoint": u + "/token",
			"jwks_uri": u + "/jwks", "userinfo_endpoint": u + "/userinfo",
			"id_token_signing_alg_values_supported": []string{"RS256"},
			"token_endpoint_auth_methods_supported": []string{"client_secret_basic", "client_secret_post"},
		})
	})
	mux.HandleFunc("/jwks", func(w http.ResponseWriter, r *http.Request) {
		b, _ := kp.JWKS()
		_, _ = w.Write(b)
	})
	mux.HandleFunc("/token", g.token)
	mux.HandleFunc("/userinfo", func(w http.ResponseWriter, r *http.Request) {
		login, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer opaque-")
		g.mu.Lock()
		u, known := g.users[login]
		g.mu.Unlock()
		if !ok || !known {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"sub": "sub-" + login, "preferred_username": u.username, "groups": u.groups})
	})
	g.srv = httptest.NewServer(mux)
	t.Cleanup(g.srv.Close)
	return g
}

func (g *grantIdP) token(w http.ResponseWriter, r *http.Request) {
	g.calls.Add(1)
	_ = r.ParseForm()
	g.mu.Lock()
	defer g.mu.Unlock()
	time.Sleep(g.delay)
	id, secret, basic := r.BasicAuth()
	g.lastForm, g.lastBasic = r.PostForm, basic
	fail := func(status int, code string) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(map[string]string{"error": code, "error_description": "refused: " + r.PostForm.Get("password")})
	}
	switch {
	case g.status != 0:
		fail(g.status, g.errorCode)
		return
	case !basic || id != g.clientID || secret != g.secret:
		fail(http.StatusUnauthorized, "invalid_client")
		return
	case r.PostForm.Get("grant_type") != "password" || !strings.Contains(" "+r.PostForm.Get("scope")+" ", " openid "):
		fail(http.StatusBadRequest, "unsupported_grant_type")
		return
	}
	login := r.PostForm.Get("username")
	u, ok := g.users[login]
	if !ok || u.password != r.PostForm.Get("password") {
		fail(http.StatusBadRequest, "invalid_grant")
		return
	}
	resp := map[string]any{"access_token": "opaque-" + login, "token_type": "Bearer", "expires_in": 300}
	if !g.noIDToken {
		signer := g.kp
		if g.signer != nil {
			signer = g.signer
		}
		now := time.Now()
		tok, err := signer.SignJWT(jwt.MapClaims{
			"iss": g.srv.URL, "aud": g.clientID, "sub": "sub-" + login, "preferred_username": u.username,
			"groups": u.groups, "iat": now.Unix(), "exp": now.Add(5 * time.Minute).Unix(),
		})
		if err != nil {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		resp["id_token"] = tok
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(resp)
}

func (g *grantIdP) set(f func(g *grantIdP)) {
	g.mu.Lock()
	defer g.mu.Unlock()
	f(g)
}

// grantChain is a Chain with the password grant over g, a limiter of
// userMax failures per user, and its audit log in a buffer.
func grantChain(t *testing.T, g *grantIdP, userMax int) (*Chain, *PasswordGrant, *bytes.Buffer) {
	t.Helper()
	o, err := NewOIDC(context.Background(), OIDCConfig{Issuer: g.srv.URL, ClientID: g.clientID, ClientSecret: g.secret})
	if err != nil {
		t.Fatal(err)
	}
	m, err := NewMapper("users/{username}/", "preferred_username", []Rule{{Group: "auditors", ReadOnly: true}})
	if err != nil {
		t.Fatal(err)
	}
	pg, err := NewPasswordGrant(o, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	audit := slog.New(slog.NewTextHandler(&lockedWriter{w: &buf}, nil))
	c := NewChain(ChainConfig{OIDC: o, Mapper: m, PasswordGrant: pg, Limiter: NewLimiter(userMax, 1000, time.Minute), Audit: audit})
	return c, pg, &buf
}

type lockedWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func basicReq(user, pw string) *http.Request {
	r := httptest.NewRequest("PROPFIND", "/dav/", nil)
	r.SetBasicAuth(user, pw)
	return r
}

func TestPasswordGrantSignsInAndCachesBriefly(t *testing.T) {
	g := newGrantIdP(t)
	c, pg, audit := grantChain(t, g, 100)
	now := time.Now()
	pg.now = func() time.Time { return now }

	p, ok, err := c.Authenticate(basicReq("alice", "alice-pw"))
	if !ok || err != nil || p.Username != "alice" || p.Root != "users/alice/" || p.ReadOnly {
		t.Fatalf("got %+v ok=%v err=%v", p, ok, err)
	}
	if n := g.calls.Load(); n != 1 {
		t.Fatalf("%d token requests; want 1", n)
	}
	g.mu.Lock()
	form, basic := g.lastForm, g.lastBasic
	g.mu.Unlock()
	if !basic || form["client_secret"] != nil {
		t.Errorf("client authentication: Basic=%v, form %v; want client_secret_basic", basic, form)
	}
	if scope := strings.Fields(strings.Join(form["scope"], " ")); len(scope) == 0 || scope[0] != "openid" {
		t.Errorf("scope %q", scope)
	}

	for range 5 {
		if _, ok, err := c.Authenticate(basicReq("alice", "alice-pw")); !ok || err != nil {
			t.Fatalf("repeat: ok=%v err=%v", ok, err)
		}
	}
	if n := g.calls.Load(); n != 1 {
		t.Fatalf("%d token requests after repeats; want 1 (cached)", n)
	}
	if n := strings.Count(audit.String(), `msg="audit: sign-in"`); n != 1 {
		t.Errorf("%d sign-in audit lines; want 1:\n%s", n, audit)
	}

	now = now.Add(2 * time.Minute) // past the cache time
	if _, ok, err := c.Authenticate(basicReq("alice", "alice-pw")); !ok || err != nil {
		t.Fatalf("after expiry: ok=%v err=%v", ok, err)
	}
	if n := g.calls.Load(); n != 2 {
		t.Fatalf("%d token requests after the cache time; want 2", n)
	}
	if strings.Contains(audit.String(), "alice-pw") {
		t.Fatalf("the password reached the audit log:\n%s", audit)
	}
}

func TestPasswordGrantRefusals(t *testing.T) {
	g := newGrantIdP(t)
	c, pg, audit := grantChain(t, g, 3)

	t.Run("a wrong password is a 401 and asks the IdP each time", func(t *testing.T) {
		before := g.calls.Load()
		for n := range 2 {
			if _, ok, err := c.Authenticate(basicReq("alice", "wrong-pw")); ok || err != nil {
				t.Fatalf("attempt %d: ok=%v err=%v", n, ok, err)
			}
		}
		if d := g.calls.Load() - before; d != 2 {
			t.Fatalf("%d token requests for 2 wrong passwords; want 2 (one each, no retry)", d)
		}
	})
	t.Run("the third failure of a user is rate limited", func(t *testing.T) {
		_, _, _ = c.Authenticate(basicReq("alice", "wrong-again"))
		before := g.calls.Load()
		_, ok, err := c.Authenticate(basicReq("alice", "alice-pw"))
		var rl *RateLimitError
		if ok || !errors.As(err, &rl) {
			t.Fatalf("ok=%v err=%v; want *RateLimitError", ok, err)
		}
		if g.calls.Load() != before {
			t.Fatal("a rate-limited attempt reached the IdP")
		}
	})
	t.Run("a user name other than the claim is refused", func(t *testing.T) {
		// dave's password is right, but the IdP says he is mallory.
		_, ok, err := c.Authenticate(basicReq("dave", "dave-pw"))
		if ok || err != nil {
			t.Fatalf("ok=%v err=%v", ok, err)
		}
		if _, ok := pg.Cached("dave", "dave-pw"); ok {
			t.Fatal("a refused sign-in was cached")
		}
		if !strings.Contains(audit.String(), "differs from the Basic user name") {
			t.Errorf("no audit line for the mismatch:\n%s", audit)
		}
	})
	t.Run("unsafe user names never reach the IdP", func(t *testing.T) {
		before := g.calls.Load()
		for _, u := range []string{"../bob", "bob/", "%2e%2e", ""} {
			if _, ok, err := c.Authenticate(basicReq(u, "pw")); ok || err != nil {
				t.Fatalf("%q: ok=%v err=%v", u, ok, err)
			}
		}
		if g.calls.Load() != before {
			t.Fatal("an unsafe user name was sent to the IdP")
		}
	})
	t.Run("a token signed by another key is refused", func(t *testing.T) {
		other, _ := rsa.GenerateKey(rand.Reader, 2048)
		kp, _ := mockoidc.NewKeypair(other)
		g.set(func(g *grantIdP) { g.signer = kp })
		defer g.set(func(g *grantIdP) { g.signer = nil })
		_, _, err := pg.Verify(context.Background(), "alice", "alice-pw")
		if !errors.Is(err, ErrPasswordRefused) {
			t.Fatalf("err=%v; want ErrPasswordRefused", err)
		}
	})
	t.Run("no secret in any log line", func(t *testing.T) {
		for _, s := range []string{"alice-pw", "wrong-pw", "dave-pw", g.secret} {
			if strings.Contains(audit.String(), s) {
				t.Fatalf("%q reached the audit log:\n%s", s, audit)
			}
		}
	})
}

func TestPasswordGrantMatchesTheUserNameIgnoringCase(t *testing.T) {
	g := newGrantIdP(t)
	g.users["ALICE"] = grantUser{password: "alice-pw", username: "alice"}
	c, _, _ := grantChain(t, g, 100)
	p, ok, err := c.Authenticate(basicReq("ALICE", "alice-pw"))
	if !ok || err != nil || p.Username != "alice" || p.Root != "users/alice/" {
		t.Fatalf("got %+v ok=%v err=%v", p, ok, err)
	}
}

func TestPasswordGrantWithoutIDTokenAsksUserinfo(t *testing.T) {
	g := newGrantIdP(t)
	g.noIDToken = true
	c, _, _ := grantChain(t, g, 100)
	p, ok, err := c.Authenticate(basicReq("alice", "alice-pw"))
	if !ok || err != nil || p.Root != "users/alice/" {
		t.Fatalf("got %+v ok=%v err=%v", p, ok, err)
	}
	if _, ok, _ := c.Authenticate(basicReq("dave", "dave-pw")); ok {
		t.Fatal("dave signed in as mallory via userinfo")
	}
}

func TestPasswordGrantIdPOutage(t *testing.T) {
	g := newGrantIdP(t)
	c, _, audit := grantChain(t, g, 2)
	if _, ok, err := c.Authenticate(basicReq("alice", "alice-pw")); !ok || err != nil {
		t.Fatalf("first sign-in: ok=%v err=%v", ok, err)
	}
	g.users["bob"] = grantUser{password: "bob-pw", username: "bob"}

	t.Run("a 5xx answer is an outage, not a 401, and costs no failure", func(t *testing.T) {
		g.set(func(g *grantIdP) { g.status, g.errorCode = http.StatusBadGateway, "" })
		for range 3 {
			_, ok, err := c.Authenticate(basicReq("bob", "bob-pw"))
			if ok || !errors.Is(err, ErrIdPUnavailable) {
				t.Fatalf("ok=%v err=%v; want ErrIdPUnavailable", ok, err)
			}
		}
		g.set(func(g *grantIdP) { g.status = 0 })
	})
	t.Run("the gateway's client refused is an error, not a 401", func(t *testing.T) {
		g.set(func(g *grantIdP) { g.status, g.errorCode = http.StatusUnauthorized, "unauthorized_client" })
		defer g.set(func(g *grantIdP) { g.status = 0 })
		_, ok, err := c.Authenticate(basicReq("bob", "bob-pw"))
		if ok || err == nil || errors.Is(err, ErrPasswordRefused) || strings.Contains(err.Error(), "bob-pw") {
			t.Fatalf("ok=%v err=%v", ok, err)
		}
	})
	g.srv.Close()
	t.Run("an unreachable IdP is an outage for a new sign-in", func(t *testing.T) {
		_, ok, err := c.Authenticate(basicReq("bob", "bob-pw"))
		if ok || !errors.Is(err, ErrIdPUnavailable) {
			t.Fatalf("ok=%v err=%v; want ErrIdPUnavailable", ok, err)
		}
		if strings.Contains(err.Error(), "bob-pw") {
			t.Fatalf("the error holds the password: %v", err)
		}
	})
	t.Run("a cached sign-in keeps working", func(t *testing.T) {
		if p, ok, err := c.Authenticate(basicReq("alice", "alice-pw")); !ok || err != nil || p.Username != "alice" {
			t.Fatalf("got %+v ok=%v err=%v", p, ok, err)
		}
	})
	if strings.Contains(audit.String(), "bob-pw") {
		t.Fatalf("the password reached the audit log:\n%s", audit)
	}
}

func TestPasswordGrantSharesOneRequestForConcurrentLogins(t *testing.T) {
	g := newGrantIdP(t)
	g.delay = 100 * time.Millisecond
	c, _, audit := grantChain(t, g, 100)
	var wg sync.WaitGroup
	var failed atomic.Int32
	for range 10 {
		wg.Go(func() {
			if _, ok, err := c.Authenticate(basicReq("alice", "alice-pw")); !ok || err != nil {
				failed.Add(1)
			}
		})
	}
	wg.Wait()
	if failed.Load() != 0 {
		t.Fatalf("%d of 10 concurrent sign-ins failed", failed.Load())
	}
	if n := g.calls.Load(); n != 1 {
		t.Fatalf("%d token requests for 10 concurrent sign-ins; want 1", n)
	}
	if n := strings.Count(audit.String(), `msg="audit: sign-in"`); n != 1 {
		t.Errorf("%d sign-in audit lines; want 1", n)
	}
}

func TestPasswordGrantCacheKeyIsKeyedPerProcess(t *testing.T) {
	g := newGrantIdP(t)
	_, a, _ := grantChain(t, g, 100)
	_, b, _ := grantChain(t, g, 100)
	if a.keyOf("alice", "pw") == b.keyOf("alice", "pw") {
		t.Fatal("two instances derive the same cache key: the key is not random")
	}
	if a.keyOf("alice", "pw") == a.keyOf("alicep", "w") {
		t.Fatal("user name and password are not separated in the cache key")
	}
}

func TestPasswordGrantUsesClientSecretPostWhenOnlyThatIsOffered(t *testing.T) {
	o := &OIDC{cfg: OIDCConfig{ClientSecret: "s"}}
	for _, tt := range []struct {
		methods []string
		secret  string
		want    string
	}{
		{nil, "s", "header"},
		{[]string{"client_secret_basic", "client_secret_post"}, "s", "header"},
		{[]string{"client_secret_post"}, "s", "params"},
		{[]string{"client_secret_basic"}, "", "params"},
	} {
		o.tokenAuth, o.cfg.ClientSecret = tt.methods, tt.secret
		got := map[bool]string{true: "header", false: "params"}[o.tokenAuthStyle() == oauth2.AuthStyleInHeader]
		if got != tt.want {
			t.Errorf("%v secret=%q: %s; want %s", tt.methods, tt.secret, got, tt.want)
		}
	}
}

// TestPasswordGrantStaysCachedInSteadyUseAndDropsARefusedPassword: a
// client in steady use never waits for the IdP after its first sign-in
// (the IdP is asked again in the background past half the cache time),
// and a password the IdP stops accepting is dropped at that check.
func TestPasswordGrantStaysCachedInSteadyUseAndDropsARefusedPassword(t *testing.T) {
	g := newGrantIdP(t)
	c, pg, _ := grantChain(t, g, 100)
	advance := fakeClock(pg)
	waitCalls := func(want int32) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); g.calls.Load() < want; {
			if time.Now().After(deadline) {
				t.Fatalf("%d token requests, want %d", g.calls.Load(), want)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	if _, ok, err := c.Authenticate(basicReq("alice", "alice-pw")); !ok || err != nil {
		t.Fatalf("sign-in: ok=%v err=%v", ok, err)
	}
	// A request every 40 s for 10 minutes (the cache time is 1 minute):
	// each is answered from the cache; the IdP is asked in the background.
	for i := range 15 {
		advance(40 * time.Second)
		if _, ok := pg.lookup(pg.keyOf("alice", "alice-pw")); !ok {
			t.Fatalf("request %d: the cached sign-in expired in steady use", i)
		}
		if _, ok, err := c.Authenticate(basicReq("alice", "alice-pw")); !ok || err != nil {
			t.Fatalf("request %d: ok=%v err=%v", i, ok, err)
		}
		waitCalls(int32(i) + 2)
		for deadline := time.Now().Add(10 * time.Second); ; {
			if renewed(pg, pg.keyOf("alice", "alice-pw")) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("request %d: the background check did not renew the cached sign-in", i)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	// The IdP stops accepting the password: the next background check
	// drops it, and the request after that is refused.
	g.mu.Lock()
	u := g.users["alice"]
	u.password = "changed"
	g.users["alice"] = u
	g.mu.Unlock()
	advance(40 * time.Second)
	calls := g.calls.Load()
	if _, ok, _ := c.Authenticate(basicReq("alice", "alice-pw")); !ok {
		t.Fatal("the request that starts the background check was refused")
	}
	waitCalls(calls + 1)
	for deadline := time.Now().Add(10 * time.Second); ; {
		if _, ok := pg.lookup(pg.keyOf("alice", "alice-pw")); !ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("a password the IdP refused stayed cached")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if _, ok, _ := c.Authenticate(basicReq("alice", "alice-pw")); ok {
		t.Fatal("the old password was accepted after the IdP refused it")
	}
}

// renewed reports a cached success younger than half its TTL.
func renewed(g *PasswordGrant, k [32]byte) bool {
	now := g.now()
	young := false
	g.cache.Update(k, now, func(_ *grantEntry, expires *time.Time) { young = now.Before(expires.Add(-g.ttl / 2)) })
	return young
}

// TestPasswordGrantChecksInTheBackgroundOncePerEntry: past half the cache
// time, a burst of requests starts one background check, not one each,
// and an IdP outage during it does not start another.
func TestPasswordGrantChecksInTheBackgroundOncePerEntry(t *testing.T) {
	g := newGrantIdP(t)
	c, pg, _ := grantChain(t, g, 100)
	advance := fakeClock(pg)
	if _, ok, err := c.Authenticate(basicReq("alice", "alice-pw")); !ok || err != nil {
		t.Fatalf("sign-in: ok=%v err=%v", ok, err)
	}
	g.mu.Lock()
	g.status, g.errorCode = http.StatusServiceUnavailable, "temporarily_unavailable"
	g.mu.Unlock()
	advance(40 * time.Second)
	for range 200 {
		if _, ok, err := c.Authenticate(basicReq("alice", "alice-pw")); !ok || err != nil {
			t.Fatalf("request during the IdP outage: ok=%v err=%v", ok, err)
		}
	}
	for deadline := time.Now().Add(10 * time.Second); g.calls.Load() < 2 && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond) // time for any further (wrong) check to show
	if n := g.calls.Load(); n != 2 {
		t.Fatalf("%d token requests for 200 requests past half the cache time, want 2 (the sign-in and one check)", n)
	}
}

// fakeClock gives g a clock that stands still until the returned function
// moves it (safe for g's background checks).
func fakeClock(g *PasswordGrant) (advance func(time.Duration)) {
	var mu sync.Mutex
	now := time.Now()
	g.now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	return func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
}
