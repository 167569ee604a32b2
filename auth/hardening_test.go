package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/crypto/bcrypt"
)

// Tests of the security review's findings 2-6, 9 and 10.

func basicFrom(user, pw, addr string) *http.Request {
	r := httptest.NewRequest("PROPFIND", "/dav/", nil)
	r.SetBasicAuth(user, pw)
	if addr != "" {
		r.RemoteAddr = addr
	}
	return r
}

func TestAppPasswordsExpire(t *testing.T) {
	ctx := context.Background()
	st, _ := NewFileAppPasswords(t.TempDir())
	a := NewAppPasswords(st, time.Nanosecond) // no caching: every Verify reads
	now := time.Now()
	a.now = func() time.Time { return now }
	if a.MaxAge() != DefaultAppPasswordMaxAge {
		t.Fatalf("default max age %v", a.MaxAge())
	}
	secret, p, err := a.Mint(ctx, Claims{Subject: "s-a", Username: "alice"}, "x")
	if err != nil {
		t.Fatal(err)
	}
	if want := p.Created.Add(DefaultAppPasswordMaxAge); !p.Expires.Equal(want) {
		t.Fatalf("expires %v, want %v", p.Expires, want)
	}
	m, _ := NewMapper("users/{username}/", "", nil)
	c := NewChain(ChainConfig{Mapper: m, AppPasswords: a, Limiter: NewLimiter(2, 100, time.Minute), Audit: slog.New(slog.DiscardHandler)})
	if _, ok, err := c.Authenticate(basicFrom("alice", secret, "")); !ok || err != nil {
		t.Fatalf("fresh: ok=%v err=%v", ok, err)
	}
	a.now = func() time.Time { return now.Add(DefaultAppPasswordMaxAge + time.Second) }
	_, _, ok, err := a.Verify(ctx, "alice", secret)
	if ok || !errors.Is(err, ErrAppPasswordExpired) {
		t.Fatalf("after 90 days: ok=%v err=%v", ok, err)
	}
	for range 3 { // refused with 401, and not counted as guesses
		if _, ok, err := c.Authenticate(basicFrom("alice", secret, "")); ok || err != nil {
			t.Fatalf("chain after expiry: ok=%v err=%v", ok, err)
		}
	}
	t.Run("a lower max age applies to existing ones; 0 = never", func(t *testing.T) {
		a.now = func() time.Time { return now.Add(2 * time.Hour) }
		a.SetMaxAge(time.Hour)
		if _, _, ok, _ := a.Verify(ctx, "alice", secret); ok {
			t.Fatal("accepted past the lowered max age")
		}
		a.SetMaxAge(0)
		b := NewAppPasswords(st, time.Nanosecond)
		b.SetMaxAge(0)
		s2, p2, err := b.Mint(ctx, Claims{Subject: "s-a", Username: "alice"}, "forever")
		if err != nil || !p2.Expires.IsZero() {
			t.Fatalf("mint without max age: %+v %v", p2, err)
		}
		b.now = func() time.Time { return now.Add(10 * 365 * 24 * time.Hour) }
		if _, _, ok, err := b.Verify(ctx, "alice", s2); !ok || err != nil {
			t.Fatalf("max age 0 expired it: ok=%v err=%v", ok, err)
		}
	})
	t.Run("minting removes expired ones", func(t *testing.T) {
		a.SetMaxAge(time.Hour)
		a.now = func() time.Time { return now.Add(3 * time.Hour) }
		if _, _, err := a.Mint(ctx, Claims{Subject: "s-a", Username: "alice"}, "new"); err != nil {
			t.Fatal(err)
		}
		list, _ := a.List(ctx, "alice")
		if len(list) != 1 || list[0].Name != "new" {
			t.Fatalf("list %+v", list)
		}
	})
}

func TestBrowserSignInRefreshesTheClaimsOfAppPasswords(t *testing.T) {
	ctx := context.Background()
	st, _ := NewFileAppPasswords(t.TempDir())
	a := NewAppPasswords(st, time.Hour)
	secret, _, err := a.Mint(ctx, Claims{Subject: "s-a", Username: "alice", Groups: []string{"staff"}}, "x")
	if err != nil {
		t.Fatal(err)
	}
	m, _ := NewMapper("users/{username}/", "", []Rule{{Group: "staff", Root: "shared/staff/"}, {Group: "auditors", ReadOnly: true}})
	c := NewChain(ChainConfig{Mapper: m, AppPasswords: a, Audit: slog.New(slog.DiscardHandler)})
	if p, ok, _ := c.Authenticate(basicFrom("alice", secret, "")); !ok || p.Root != "shared/staff/" {
		t.Fatalf("before: %+v", p)
	}
	// The IdP removed alice from staff; she signs in with the browser.
	if err := a.RefreshClaims(ctx, Claims{Subject: "s-a", Username: "alice"}); err != nil {
		t.Fatal(err)
	}
	if p, ok, _ := c.Authenticate(basicFrom("alice", secret, "")); !ok || p.Root != "users/alice/" {
		t.Fatalf("after the sign-in: %+v ok=%v", p, ok)
	}
	t.Run("claims of another subject are not applied", func(t *testing.T) {
		// The entry keeps its mint-time claims (staff); the identity
		// binding is what refuses another subject.
		if err := a.RefreshClaims(ctx, Claims{Subject: "s-other", Username: "alice", Groups: []string{"auditors"}}); err != nil {
			t.Fatal(err)
		}
		if p, ok, _ := c.Authenticate(basicFrom("alice", secret, "")); !ok || p.Root != "shared/staff/" || p.ReadOnly {
			t.Fatalf("got %+v ok=%v", p, ok)
		}
	})
}

func TestUserNamesAreBoundToTheFirstSubject(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	ids, err := NewFileIdentities(dir)
	if err != nil {
		t.Fatal(err)
	}
	i := newIdP(t)
	st, _ := NewFileAppPasswords(t.TempDir())
	ap := NewAppPasswords(st, time.Nanosecond)
	// An app password minted for alice by an older account (before
	// bindings existed).
	old, _, err := ap.Mint(ctx, Claims{Subject: "sub-old-alice", Username: "alice"}, "old")
	if err != nil {
		t.Fatal(err)
	}
	m, _ := NewMapper("users/{username}/", "preferred_username", nil)
	c := NewChain(ChainConfig{OIDC: i.oidc, Mapper: m, AppPasswords: ap, Identities: NewIdentities(ids, i.m.Issuer()),
		Limiter: NewLimiter(100, 100, time.Minute), Audit: slog.New(slog.DiscardHandler)})
	if _, ok, err := c.Authenticate(bearer(i.token(t, jwt.MapClaims{"sub": "sub-alice"}))); !ok || err != nil {
		t.Fatalf("first sign-in: ok=%v err=%v", ok, err)
	}
	data, err := os.ReadFile(filepath.Join(dir, "alice.json"))
	if err != nil {
		t.Fatal(err)
	}
	var id Identity
	if json.Unmarshal(data, &id) != nil || id.Subject != "sub-alice" || id.Issuer != i.m.Issuer() {
		t.Fatalf("binding %s", data)
	}
	for name, tok := range map[string]string{
		"another subject":                   i.token(t, jwt.MapClaims{"sub": "sub-mallory"}),
		"another subject, name in capitals": i.token(t, jwt.MapClaims{"sub": "sub-mallory", "preferred_username": "ALICE"}),
	} {
		if _, ok, err := c.Authenticate(bearer(tok)); ok || err != nil {
			t.Errorf("%s: ok=%v err=%v", name, ok, err)
		}
	}
	if _, ok, err := c.Authenticate(basicFrom("alice", old, "")); ok || err != nil {
		t.Fatalf("an app password of the old account: ok=%v err=%v", ok, err)
	}
	if p, ok, err := c.Authenticate(bearer(i.token(t, jwt.MapClaims{"sub": "sub-alice", "preferred_username": "Alice"}))); !ok || err != nil || p.Root != "users/alice/" {
		t.Fatalf("Alice is alice: %+v ok=%v err=%v", p, ok, err)
	}
	t.Run("two stores binding one name at once: one wins", func(t *testing.T) {
		won := 0
		for _, sub := range []string{"x", "y"} {
			if ok, err := ids.Create(ctx, "carol", Identity{Subject: sub}); err != nil {
				t.Fatal(err)
			} else if ok {
				won++
			}
		}
		if won != 1 {
			t.Fatalf("%d winners", won)
		}
	})
}

func TestMapperRefusesUnverifiedEmailAndStaticNames(t *testing.T) {
	byEmail, _ := NewMapper("users/{email}/", "preferred_username", nil)
	if _, err := byEmail.Principal(Claims{Subject: "s", Username: "alice", Email: "alice@example.com"}); err == nil {
		t.Error("{email} without email_verified accepted")
	}
	if p, err := byEmail.Principal(Claims{Subject: "s", Username: "alice", Email: "Alice@Example.com", EmailVerified: true}); err != nil || p.Root != "users/alice@example.com/" {
		t.Errorf("verified: %+v %v", p, err)
	}
	emailName, _ := NewMapper("users/{username}/", "email", nil)
	if _, err := emailName.Principal(Claims{Subject: "s", Username: "bob@example.com"}); err == nil {
		t.Error("username_claim = email without email_verified accepted")
	}
	m, _ := NewMapper("users/{username}/", "preferred_username", nil)
	m.ReserveNames([]string{"Admin"})
	for _, n := range []string{"admin", "ADMIN", "Admin"} {
		if _, err := m.Principal(Claims{Subject: "s", Username: n}); err == nil {
			t.Errorf("OIDC user %q may take the static user's name", n)
		}
	}
	if p, err := m.Principal(Claims{Subject: "s", Username: "Alice"}); err != nil || p.Username != "alice" || p.Root != "users/alice/" {
		t.Errorf("Alice: %+v %v", p, err)
	}
}

func TestWrongPasswordsDoNotLockOutTheRealUser(t *testing.T) {
	hash, _ := bcrypt.GenerateFromPassword([]byte("alice-pw"), bcrypt.MinCost)
	s, err := NewStatic([]StaticUser{{Name: "alice", PasswordHash: string(hash)}}, "users/{username}/")
	if err != nil {
		t.Fatal(err)
	}
	c := NewChain(ChainConfig{Static: s, Limiter: NewLimiter(3, 100, time.Minute), Audit: slog.New(slog.DiscardHandler)})
	const home, attacker = "192.0.2.1:1000", "198.51.100.7:1000"
	if _, ok, _ := c.Authenticate(basicFrom("alice", "alice-pw", home)); !ok {
		t.Fatal("alice refused")
	}
	for range 5 {
		_, _, _ = c.Authenticate(basicFrom("alice", "guess", attacker))
		_, _, _ = c.Authenticate(basicFrom("ALICE", "guess", home)) // same NAT, any case
	}
	if _, _, err := c.Authenticate(basicFrom("alice", "guess", attacker)); err == nil {
		t.Fatal("the attacker is not limited")
	}
	if _, ok, err := c.Authenticate(basicFrom("alice", "alice-pw", home)); !ok || err != nil {
		t.Fatalf("alice with her cached password: ok=%v err=%v", ok, err)
	}
	if _, ok, err := c.Authenticate(basicFrom("alice", "alice-pw", "203.0.113.5:1")); !ok || err != nil {
		t.Fatalf("alice from elsewhere: ok=%v err=%v", ok, err)
	}
}

func TestLimiterKeysAndMemory(t *testing.T) {
	t.Run("an IPv6 /64 is one address", func(t *testing.T) {
		l := NewLimiter(100, 2, time.Minute)
		l.Fail("", "2001:db8:1:2::1")
		l.Fail("", "2001:db8:1:2:ffff::9")
		if l.Check("", "2001:db8:1:2::77") == nil {
			t.Fatal("another address of the same /64 is not limited")
		}
		if l.Check("", "2001:db8:1:3::1") != nil {
			t.Fatal("another /64 is limited")
		}
		if AddrKey("::ffff:192.0.2.1") != "192.0.2.1" || AddrKey("192.0.2.1") != "192.0.2.1" {
			t.Fatal("IPv4 keys")
		}
	})
	t.Run("a full map drops ended windows, then non-blocking ones, never blocking ones", func(t *testing.T) {
		l := NewLimiter(2, 1000, time.Minute)
		now := time.Now()
		l.now = func() time.Time { return now }
		l.Fail("victim", "")
		l.Fail("victim", "") // blocking
		for n := range limiterMaxKeys - 1 {
			l.Fail(fmt.Sprint("junk", n), "")
		}
		if len(l.mem.keys) != limiterMaxKeys {
			t.Fatalf("%d keys", len(l.mem.keys))
		}
		for n := range 1000 {
			l.Fail(fmt.Sprint("more", n), "")
		}
		if len(l.mem.keys) > limiterMaxKeys || l.Check("victim", "") == nil {
			t.Fatalf("%d keys; the victim's blocking window was evicted", len(l.mem.keys))
		}
		now = now.Add(time.Minute)
		l.Fail("late", "")
		if len(l.mem.keys) != 1 || len(l.mem.order)-l.mem.head > 2 {
			t.Fatalf("%d keys, %d queued after the window", len(l.mem.keys), len(l.mem.order)-l.mem.head)
		}
	})
}

// fakeIdP serves discovery, JWKS-less metadata, userinfo and introspection
// for the opaque-token and algorithm tests.
type fakeIdP struct {
	srv        *httptest.Server
	introspect bool
	algs       []string
	tokens     map[string]map[string]any // token -> introspection answer
	auth       [2]string                 // client credentials seen last
}

func newFakeIdP(t *testing.T, introspect bool) *fakeIdP {
	f := &fakeIdP{introspect: introspect, algs: []string{"RS256"}, tokens: map[string]map[string]any{}}
	mux := http.NewServeMux()
	mux.HandleFunc("/.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		doc := map[string]any{"issuer": f.srv.URL, "authorization_endpoint": f.srv.URL + "/auth", "token_endpoint": f.srv.URL + "/token",
			"jwks_uri": f.srv.URL + "/jwks", "userinfo_endpoint": f.srv.URL + "/userinfo", "id_token_signing_alg_values_supported": f.algs}
		if f.introspect {
			doc["introspection_endpoint"] = f.srv.URL + "/introspect"
		}
		_ = json.NewEncoder(w).Encode(doc)
	})
	mux.HandleFunc("/userinfo", func(w http.ResponseWriter, r *http.Request) {
		tok := r.Header.Get("Authorization")[len("Bearer "):]
		a, ok := f.tokens[tok]
		if !ok {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"sub": a["sub"], "preferred_username": "alice"})
	})
	mux.HandleFunc("/introspect", func(w http.ResponseWriter, r *http.Request) {
		id, secret, _ := r.BasicAuth()
		f.auth = [2]string{id, secret}
		if id != "gw" || secret != "gw-secret" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		a, ok := f.tokens[r.PostFormValue("token")]
		if !ok {
			a = map[string]any{"active": false}
		}
		_ = json.NewEncoder(w).Encode(a)
	})
	f.srv = httptest.NewServer(mux)
	t.Cleanup(f.srv.Close)
	return f
}

func TestOpaqueTokensAreIntrospected(t *testing.T) {
	ctx := context.Background()
	f := newFakeIdP(t, true)
	exp := float64(time.Now().Add(time.Hour).Unix())
	f.tokens["ours"] = map[string]any{"active": true, "client_id": "gw", "sub": "s-a", "exp": exp}
	f.tokens["for-our-audience"] = map[string]any{"active": true, "client_id": "cli", "aud": []any{"api://dav"}, "sub": "s-a", "exp": exp}
	f.tokens["other-client"] = map[string]any{"active": true, "client_id": "another-app", "aud": "another-api", "sub": "s-a", "exp": exp}
	f.tokens["revoked"] = map[string]any{"active": false, "client_id": "gw", "sub": "s-a"}
	o, err := NewOIDC(ctx, OIDCConfig{Issuer: f.srv.URL, ClientID: "gw", ClientSecret: "gw-secret", Audiences: []string{"gw", "api://dav"}})
	if err != nil {
		t.Fatal(err)
	}
	for tok, want := range map[string]bool{"ours": true, "for-our-audience": true, "other-client": false, "revoked": false, "unknown": false} {
		c, _, err := o.VerifyOpaque(ctx, tok, time.Minute)
		if got := err == nil; got != want || (want && c.Username != "alice") {
			t.Errorf("%s: %+v %v; want ok=%v", tok, c, err, want)
		}
		if !want && !errors.Is(err, ErrInvalidToken) {
			t.Errorf("%s: %v; want ErrInvalidToken", tok, err)
		}
	}
	if f.auth != [2]string{"gw", "gw-secret"} {
		t.Errorf("introspection authenticated as %q", f.auth)
	}
	t.Run("without an introspection endpoint: refused, unless opaque_tokens = userinfo", func(t *testing.T) {
		g := newFakeIdP(t, false)
		g.tokens["other-client"] = f.tokens["other-client"]
		o, _ := NewOIDC(ctx, OIDCConfig{Issuer: g.srv.URL, ClientID: "gw"})
		if _, _, err := o.VerifyOpaque(ctx, "other-client", time.Minute); !errors.Is(err, ErrInvalidToken) {
			t.Fatalf("introspect mode: %v", err)
		}
		u, _ := NewOIDC(ctx, OIDCConfig{Issuer: g.srv.URL, ClientID: "gw", OpaqueTokens: OpaqueUserinfo})
		if _, _, err := u.VerifyOpaque(ctx, "other-client", time.Minute); err != nil {
			t.Fatalf("userinfo mode: %v", err)
		}
	})
}

func TestDiscoveredAlgorithmsAreFiltered(t *testing.T) {
	f := newFakeIdP(t, false)
	f.algs = []string{"none", "HS256", "RS256", "ES256", "HS512", "EdDSA"}
	o, _ := NewOIDC(context.Background(), OIDCConfig{Issuer: f.srv.URL, ClientID: "gw"})
	if err := o.Discover(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(o.algs, []string{"RS256", "ES256", "EdDSA"}) {
		t.Fatalf("algorithms %v", o.algs)
	}
}

func TestJWTWithAnotherAuthorizedPartyIsRefused(t *testing.T) {
	i := newIdP(t, "api://dav")
	ctx := context.Background()
	if _, _, err := i.oidc.VerifyJWT(ctx, i.token(t, jwt.MapClaims{"aud": "api://dav", "azp": "another-app"}), nil, ""); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("foreign azp: %v", err)
	}
	for _, azp := range []string{i.m.ClientID, "api://dav"} {
		if _, _, err := i.oidc.VerifyJWT(ctx, i.token(t, jwt.MapClaims{"aud": "api://dav", "azp": azp}), nil, ""); err != nil {
			t.Fatalf("azp %q: %v", azp, err)
		}
	}
}

func TestAnotherCallsFailureDoesNotMakeABadTokenAnOutage(t *testing.T) {
	i := newIdP(t)
	ctx := context.Background()
	if _, _, err := i.oidc.VerifyJWT(ctx, i.token(t, nil), nil, ""); err != nil {
		t.Fatal(err)
	}
	// Some other request to the IdP failed "just now" (and keeps failing).
	i.oidc.track.lastFail.Store(time.Now().Add(time.Hour).UnixNano())
	good := i.token(t, nil)
	_, _, err := i.oidc.VerifyJWT(ctx, good[:len(good)-2]+flip(good[len(good)-2:]), nil, "")
	if !errors.Is(err, ErrInvalidToken) || errors.Is(err, ErrIdPUnavailable) {
		t.Fatalf("tampered token: %v; want ErrInvalidToken", err)
	}
}

func TestLocalAppPasswordFoldersAreLowerCase(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st, _ := NewFileAppPasswords(dir)
	a := NewAppPasswords(st, time.Nanosecond)
	secret, _, err := a.Mint(ctx, Claims{Subject: "s", Username: "Alice"}, "x")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "alice")); err != nil {
		t.Fatalf("folder: %v", err)
	}
	for _, u := range []string{"alice", "ALICE"} {
		if _, _, ok, err := a.Verify(ctx, u, secret); !ok || err != nil {
			t.Errorf("%s: ok=%v err=%v", u, ok, err)
		}
	}
}

// TestVerifiedCredentialsOutliveTheirCache (issue 10, F6): once the app
// password list's cache lapses, a user whose address is blocked by
// someone else's guesses (one NAT) still gets in, because the chain
// accepted these credentials before; a wrong password from there stays
// limited, and a revoked credential loses the pass.
func TestVerifiedCredentialsOutliveTheirCache(t *testing.T) {
	ctx := context.Background()
	st, _ := NewFileAppPasswords(t.TempDir())
	a := NewAppPasswords(st, time.Nanosecond) // the list is read again on every request
	secret, p, err := a.Mint(ctx, Claims{Subject: "s-a", Username: "alice"}, "laptop")
	if err != nil {
		t.Fatal(err)
	}
	m, _ := NewMapper("users/{username}/", "", nil)
	c := NewChain(ChainConfig{Mapper: m, AppPasswords: a, Limiter: NewLimiter(3, 5, time.Minute), Audit: slog.New(slog.DiscardHandler)})
	const nat = "192.0.2.1:1000"
	if _, ok, err := c.Authenticate(basicFrom("alice", secret, nat)); !ok || err != nil {
		t.Fatalf("alice: ok=%v err=%v", ok, err)
	}
	for i := range 6 {
		_, _, _ = c.Authenticate(basicFrom(fmt.Sprintf("guess%d", i), "x", nat))
	}
	if _, _, err := c.Authenticate(basicFrom("bob", "x", nat)); err == nil {
		t.Fatal("the address is not limited")
	}
	for range 3 {
		if _, ok, err := c.Authenticate(basicFrom("alice", secret, nat)); !ok || err != nil {
			t.Fatalf("alice behind the blocked address: ok=%v err=%v", ok, err)
		}
	}
	if _, _, err := c.Authenticate(basicFrom("alice", "wrong", nat)); err == nil {
		t.Fatal("a wrong password for alice is not limited")
	}
	if err := a.Revoke(ctx, "alice", p.ID); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := c.Authenticate(basicFrom("alice", secret, nat)); ok {
		t.Fatal("a revoked app password was accepted")
	}
	if _, _, err := c.Authenticate(basicFrom("alice", secret, nat)); err == nil {
		t.Fatal("a revoked app password keeps skipping the limits")
	}
}
