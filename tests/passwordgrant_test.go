package tests

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/oauth2-proxy/mockoidc"

	"github.com/davgw/davgw/auth"
	"github.com/davgw/davgw/gateway"
	"github.com/davgw/davgw/s3vfs"
)

// passwordGrantIdP is mockoidc (real discovery, JWKS and signing keys) with
// a token endpoint for grant_type=password added in front of it.
//
// No IdP that offers the OAuth2 password grant can be installed here (ORY
// Hydra, the real IdP of the other tests, has none, and mockoidc only does
// the code and refresh grants), so this test implements the grant itself: a
// small handler that checks the client's credentials and the user's
// password and answers with an ID token signed by mockoidc's key.
type passwordGrantIdP struct {
	m     *mockoidc.MockOIDC
	calls atomic.Int32 // password-grant requests
	down  atomic.Bool  // token endpoint unreachable (connection dropped)

	mu    sync.Mutex
	users map[string][2]string // login -> {password, preferred_username}
	subs  map[string]string    // login -> sub, when not "sub-<login>"
}

func startPasswordGrantIdP(t *testing.T) *passwordGrantIdP {
	t.Helper()
	m, err := mockoidc.NewServer(nil)
	if err != nil {
		t.Fatal(err)
	}
	p := &passwordGrantIdP{m: m, users: map[string][2]string{}, subs: map[string]string{}}
	if err := m.AddMiddleware(func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != mockoidc.TokenEndpoint || r.Method != http.MethodPost {
				next.ServeHTTP(w, r)
				return
			}
			if p.down.Load() {
				// Unreachable: drop the connection without an answer.
				if hj, ok := w.(http.Hijacker); ok {
					if c, _, err := hj.Hijack(); err == nil {
						_ = c.Close()
						return
					}
				}
				w.WriteHeader(http.StatusServiceUnavailable)
				return
			}
			if err := r.ParseForm(); err != nil || r.PostForm.Get("grant_type") != "password" {
				next.ServeHTTP(w, r) // mockoidc's own grants
				return
			}
			p.calls.Add(1)
			p.passwordGrant(w, r)
		})
	}); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Start(ln, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Shutdown() })
	return p
}

func (p *passwordGrantIdP) addUser(login, password, username string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.users[login] = [2]string{password, username}
}

// passwordGrant is RFC 6749 section 4.3 as an IdP answers it: client
// authentication (client_secret_basic), scope with openid, then the
// resource owner's password; an ID token signed with mockoidc's key.
func (p *passwordGrantIdP) passwordGrant(w http.ResponseWriter, r *http.Request) {
	fail := func(status int, code string) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(map[string]string{"error": code})
	}
	id, secret, ok := r.BasicAuth()
	if !ok || id != p.m.ClientID || secret != p.m.ClientSecret {
		fail(http.StatusUnauthorized, "invalid_client")
		return
	}
	if !strings.Contains(" "+r.PostForm.Get("scope")+" ", " openid ") {
		fail(http.StatusBadRequest, "invalid_scope")
		return
	}
	login := r.PostForm.Get("username")
	p.mu.Lock()
	u, known := p.users[login]
	sub := p.subs[login]
	p.mu.Unlock()
	if sub == "" {
		sub = "sub-" + login
	}
	if !known || u[0] != r.PostForm.Get("password") {
		fail(http.StatusBadRequest, "invalid_grant")
		return
	}
	now := time.Now()
	idToken, err := p.m.Keypair.SignJWT(jwt.MapClaims{
		"iss": p.m.Issuer(), "aud": p.m.ClientID, "sub": sub, "preferred_username": u[1],
		"iat": now.Unix(), "exp": now.Add(5 * time.Minute).Unix(), "jti": randHex(8),
	})
	if err != nil {
		fail(http.StatusInternalServerError, "server_error")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{
		"access_token": "at-" + randHex(16), "token_type": "Bearer", "expires_in": 300, "id_token": idToken,
	})
}

// newPasswordGrantEnv starts a gateway over a real S3 back end whose only
// way in is the IdP password grant (Basic user:password).
func newPasswordGrantEnv(t *testing.T, b *backend, idp *passwordGrantIdP, lim *auth.Limiter) *signInEnv {
	t.Helper()
	store, err := s3vfs.New(context.Background(), s3vfs.Config{
		Endpoint: b.server.endpoint, Region: "us-east-1", Bucket: b.bucket, PathStyle: true,
		AccessKeyID: b.server.access, SecretAccessKey: b.server.secret, Checksums: "when_required",
	})
	if err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.DiscardHandler)
	if os.Getenv("DAVGW_TEST_LOG") != "" {
		logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	oc, err := auth.NewOIDC(context.Background(), auth.OIDCConfig{Issuer: idp.m.Issuer(), ClientID: idp.m.ClientID, ClientSecret: idp.m.ClientSecret})
	if err != nil {
		t.Fatal(err)
	}
	mapper, err := auth.NewMapper("users/{username}/", "preferred_username", nil)
	if err != nil {
		t.Fatal(err)
	}
	pg, err := auth.NewPasswordGrant(oc, 0)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(idp.m.Issuer())) // bindings per IdP, as in newSignInEnv
	ids := auth.NewIdentities(auth.NewBucketIdentities(store, "ids-"+hex.EncodeToString(sum[:6])+"/"), idp.m.Issuer())
	chain := auth.NewChain(auth.ChainConfig{OIDC: oc, Mapper: mapper, PasswordGrant: pg, Identities: ids, Limiter: lim, Audit: logger})
	srv := httptest.NewUnstartedServer(nil)
	pub := "http://" + srv.Listener.Addr().String()
	gw, err := gateway.New(gateway.Options{
		Store: store, DAVPrefix: "/dav/", Auth: chain, Realm: "davgw-test", Logger: logger,
		PublicURL: pub, Ready: oc.Ready,
	})
	if err != nil {
		t.Fatal(err)
	}
	srv.Config.Handler = gw
	srv.Start()
	t.Cleanup(srv.Close)
	return &signInEnv{URL: pub, b: b, oidc: oc}
}

func TestPasswordGrantOverRealS3(t *testing.T) {
	b := getBackend(t, "versitygw")
	idp := startPasswordGrantIdP(t)
	idp.addUser("alice", "alice-idp-pw", "alice")
	idp.addUser("bob", "bob-idp-pw", "bob")
	idp.addUser("eve", "eve-idp-pw", "eve")
	idp.addUser("dave", "dave-idp-pw", "mallory") // the IdP names dave "mallory"
	e := newPasswordGrantEnv(t, b, idp, auth.NewLimiter(3, 1000, time.Minute))
	alice := basicOf("alice", "alice-idp-pw")
	dir := "pg-" + randHex(4)
	depth0 := map[string]string{"Depth": "0"}

	t.Run("the right password writes into the user's own root", func(t *testing.T) {
		expect(t, "MKCOL", e.call(t, "MKCOL", "/dav/"+dir+"/", alice, nil, ""), http.StatusCreated)
		expect(t, "PUT", e.call(t, "PUT", "/dav/"+dir+"/a.txt", alice, nil, "hello"), http.StatusCreated)
		if _, _, _, ok := (&davEnv{b: b}).headS3(t, "users/alice/"+dir+"/a.txt"); !ok {
			t.Fatal("object not under users/alice/")
		}
		if n := idp.calls.Load(); n != 1 {
			t.Fatalf("%d password-grant requests; want 1", n)
		}
	})
	t.Run("a repeat within the cache time does not ask the IdP", func(t *testing.T) {
		before := idp.calls.Load()
		expect(t, "PROPFIND", e.call(t, "PROPFIND", "/dav/"+dir+"/", alice, depth0, ""), http.StatusMultiStatus)
		expect(t, "PUT", e.call(t, "PUT", "/dav/"+dir+"/b.txt", alice, nil, "again"), http.StatusCreated)
		expect(t, "GET", e.call(t, "GET", "/dav/"+dir+"/a.txt", alice, nil, ""), http.StatusOK)
		if d := idp.calls.Load() - before; d != 0 {
			t.Fatalf("%d password-grant requests for cached credentials; want 0", d)
		}
	})
	t.Run("a wrong password gets 401 after asking the IdP", func(t *testing.T) {
		before := idp.calls.Load()
		r := e.call(t, "PUT", "/dav/"+dir+"/c.txt", basicOf("alice", "not-the-password"), nil, "x")
		expect(t, "PUT with a wrong password", r, http.StatusUnauthorized)
		if !strings.Contains(strings.Join(r.Header.Values("WWW-Authenticate"), ","), "Basic") {
			t.Errorf("401 without a Basic challenge: %v", r.Header.Values("WWW-Authenticate"))
		}
		if d := idp.calls.Load() - before; d != 1 {
			t.Fatalf("%d password-grant requests for a wrong password; want 1", d)
		}
		if _, _, _, ok := (&davEnv{b: b}).headS3(t, "users/alice/"+dir+"/c.txt"); ok {
			t.Fatal("a wrong password wrote an object")
		}
	})
	t.Run("a user name that differs from the claim gets 401", func(t *testing.T) {
		before := idp.calls.Load()
		expect(t, "dave signed in as mallory", e.call(t, "PUT", "/dav/x.txt", basicOf("dave", "dave-idp-pw"), nil, "x"), http.StatusUnauthorized)
		if d := idp.calls.Load() - before; d != 1 {
			t.Fatalf("%d password-grant requests; want 1", d)
		}
		if keys := b.keys(t, "users/mallory/"); len(keys) != 0 {
			t.Fatalf("objects under users/mallory/: %v", keys)
		}
		if keys := b.keys(t, "users/dave/"); len(keys) != 0 {
			t.Fatalf("objects under users/dave/: %v", keys)
		}
	})
	t.Run("an account recreated under a bound name gets 401", func(t *testing.T) {
		idp.addUser("frank", "frank-pw-1", "frank")
		expect(t, "frank's first sign-in", e.call(t, "PROPFIND", "/dav/", basicOf("frank", "frank-pw-1"), depth0, ""), http.StatusMultiStatus)
		// The IdP deletes frank and creates a new account of that name.
		idp.mu.Lock()
		idp.subs["frank"] = "sub-new-frank"
		idp.mu.Unlock()
		idp.addUser("frank", "frank-pw-2", "frank")
		expect(t, "the new frank", e.call(t, "PROPFIND", "/dav/", basicOf("frank", "frank-pw-2"), depth0, ""), http.StatusUnauthorized)
	})
	t.Run("repeated wrong passwords are rate limited with 429", func(t *testing.T) {
		for range 3 {
			expect(t, "wrong password", e.call(t, "PROPFIND", "/dav/", basicOf("eve", "guess-"+randHex(4)), depth0, ""), http.StatusUnauthorized)
		}
		before := idp.calls.Load()
		r := e.call(t, "PROPFIND", "/dav/", basicOf("eve", "eve-idp-pw"), depth0, "")
		expect(t, "fourth attempt", r, http.StatusTooManyRequests)
		if r.Header.Get("Retry-After") == "" {
			t.Error("429 without Retry-After")
		}
		if idp.calls.Load() != before {
			t.Fatal("a rate-limited attempt reached the IdP")
		}
	})
	t.Run("token endpoint down: 503 for a new sign-in, the cached one keeps working", func(t *testing.T) {
		idp.down.Store(true)
		defer idp.down.Store(false)
		expect(t, "bob's first sign-in", e.call(t, "PROPFIND", "/dav/", basicOf("bob", "bob-idp-pw"), depth0, ""), http.StatusServiceUnavailable)
		expect(t, "alice, cached", e.call(t, "PUT", "/dav/"+dir+"/d.txt", alice, nil, "while down"), http.StatusCreated)
		expect(t, "alice, cached", e.call(t, "GET", "/dav/"+dir+"/d.txt", alice, nil, ""), http.StatusOK)
	})
	t.Run("the token endpoint back: bob signs in", func(t *testing.T) {
		expect(t, "bob's PUT", e.call(t, "PUT", "/dav/bob.txt", basicOf("bob", "bob-idp-pw"), nil, "b"), http.StatusCreated)
		if _, _, _, ok := (&davEnv{b: b}).headS3(t, "users/bob/bob.txt"); !ok {
			t.Fatal("object not under users/bob/")
		}
	})
	t.Run("the whole IdP down: new sign-ins 503, cached ones keep working", func(t *testing.T) {
		_ = idp.m.Shutdown()
		idp.addUser("carol", "carol-idp-pw", "carol")
		expect(t, "carol's first sign-in", e.call(t, "PROPFIND", "/dav/", basicOf("carol", "carol-idp-pw"), depth0, ""), http.StatusServiceUnavailable)
		expect(t, "alice, cached", e.call(t, "PROPFIND", "/dav/"+dir+"/", alice, depth0, ""), http.StatusMultiStatus)
		expect(t, "bob, cached", e.call(t, "GET", "/dav/bob.txt", basicOf("bob", "bob-idp-pw"), nil, ""), http.StatusOK)
	})
}
