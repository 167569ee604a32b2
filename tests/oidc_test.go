package tests

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/hex"
	"html"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/oauth2-proxy/mockoidc"

	"github.com/davgw/davgw/auth"
	"github.com/davgw/davgw/gateway"
	"github.com/davgw/davgw/s3vfs"
	"github.com/davgw/davgw/web"
)

// signInEnv is a gateway with OIDC sign-in over a real S3 back end: Bearer
// tokens, app passwords kept in the bucket, the pages at "/".
type signInEnv struct {
	URL  string
	b    *backend
	oidc *auth.OIDC
	ap   *auth.AppPasswords
}

// signInOptions tune newSignInEnv.
type signInOptions struct {
	issuer, clientID, clientSecret string
	rules                          []auth.Rule
	limiter                        *auth.Limiter
	appPasswordTTL                 time.Duration
	appPasswordMaxAge              time.Duration // 0 = the default (90 days)
	opaqueTokens                   string        // "" = introspect
	listener                       net.Listener  // nil = a free 127.0.0.1 port
	trustedProxies                 gateway.TrustedProxies
	pendingPerAddress, maxPending  int                           // 0 = web's defaults
	stores                         map[string]gateway.NamedStore // [s3.stores.NAME]
}

// newSignInEnv starts a gateway on a free 127.0.0.1 port; it stops with
// the test.
func newSignInEnv(t *testing.T, b *backend, o signInOptions) *signInEnv {
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
	oc, err := auth.NewOIDC(context.Background(), auth.OIDCConfig{Issuer: o.issuer, ClientID: o.clientID, ClientSecret: o.clientSecret, OpaqueTokens: o.opaqueTokens})
	if err != nil {
		t.Fatal(err)
	}
	mapper, err := auth.NewMapper("users/{username}/", "preferred_username", o.rules)
	if err != nil {
		t.Fatal(err)
	}
	ap := auth.NewAppPasswords(auth.NewBucketAppPasswords(store, ""), o.appPasswordTTL)
	if o.appPasswordMaxAge > 0 {
		ap.SetMaxAge(o.appPasswordMaxAge)
	}
	// Tests share one bucket but each runs its own IdP, and "alice" is
	// another subject at each: keep each issuer's bindings apart (the
	// gateways of one test, on one issuer, share theirs).
	sum := sha256.Sum256([]byte(o.issuer))
	ids := auth.NewIdentities(auth.NewBucketIdentities(store, "ids-"+hex.EncodeToString(sum[:6])+"/"), o.issuer)
	lim := o.limiter
	if lim == nil {
		lim = auth.NewLimiter(1000, 1000, time.Minute)
	}
	chain := auth.NewChain(auth.ChainConfig{OIDC: oc, Mapper: mapper, AppPasswords: ap, Identities: ids, Limiter: lim, Audit: logger})
	srv := httptest.NewUnstartedServer(nil)
	if o.listener != nil {
		srv.Listener.Close()
		srv.Listener = o.listener
	}
	pub := "http://" + srv.Listener.Addr().String()
	pages, err := web.New(web.Options{OIDC: oc, Mapper: mapper, AppPasswords: ap, Identities: ids, PublicURL: pub, Logger: logger,
		PendingPerAddress: o.pendingPerAddress, MaxPending: o.maxPending})
	if err != nil {
		t.Fatal(err)
	}
	gw, err := gateway.New(gateway.Options{
		Store: store, DAVPrefix: "/dav/", Auth: chain, Realm: "davgw-test", Logger: logger,
		PublicURL: pub, Web: pages, Ready: oc.Ready, TrustedProxies: o.trustedProxies, Stores: o.stores,
	})
	if err != nil {
		t.Fatal(err)
	}
	srv.Config.Handler = gw
	srv.Start()
	t.Cleanup(srv.Close)
	return &signInEnv{URL: pub, b: b, oidc: oc, ap: ap}
}

// call sends one request with the given Authorization header ("" = none).
func (e *signInEnv) call(t *testing.T, method, path, authz string, hdr map[string]string, body string) reply {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	r, err := http.NewRequest(method, e.URL+"/", rd)
	if err != nil {
		t.Fatal(err)
	}
	r.URL.Opaque = path
	if authz != "" {
		r.Header.Set("Authorization", authz)
	}
	for k, v := range hdr {
		r.Header.Set(k, v)
	}
	resp, err := http.DefaultTransport.RoundTrip(r)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return reply{Status: resp.StatusCode, Header: resp.Header, Body: data}
}

func bearerOf(tok string) string { return "Bearer " + tok }

func basicOf(user, pw string) string {
	r, _ := http.NewRequest("GET", "/", nil)
	r.SetBasicAuth(user, pw)
	return r.Header.Get("Authorization")
}

// startMockIdP runs mockoidc on a free 127.0.0.1 port.
func startMockIdP(t *testing.T) *mockoidc.MockOIDC {
	t.Helper()
	m, err := mockoidc.Run()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Shutdown() })
	return m
}

// mockToken signs an ID token for user with the mock IdP's key; extra
// claims override the defaults.
func mockToken(t *testing.T, m *mockoidc.MockOIDC, user string, extra jwt.MapClaims) string {
	t.Helper()
	c := jwt.MapClaims{
		"iss": m.Issuer(), "aud": m.ClientID, "sub": "sub-" + user, "preferred_username": user,
		"exp": time.Now().Add(10 * time.Minute).Unix(), "iat": time.Now().Unix(), "jti": randHex(8),
	}
	for k, v := range extra {
		c[k] = v
	}
	tok, err := m.Keypair.SignJWT(c)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// browserSignIn runs the code flow with a cookie jar, as a browser would,
// and returns the client holding the session.
func browserSignIn(t *testing.T, base string) *http.Client {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Timeout: 20 * time.Second}
	resp, err := c.Get(base + "/login")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `id="user"`) {
		t.Fatalf("sign-in ended with %d at %s: %.400s", resp.StatusCode, resp.Request.URL, body)
	}
	return c
}

var (
	secretRE = regexp.MustCompile(`<code id="secret">([^<]+)</code>`)
	idRE     = regexp.MustCompile(`name="id" value="([0-9a-f]{16})"`)
)

// mintAppPassword posts the page's form and returns the secret shown once
// and the id of the newest entry.
func mintAppPassword(t *testing.T, c *http.Client, base, name string) (secret, id string) {
	t.Helper()
	resp, err := c.PostForm(base+"/app-passwords", url.Values{"name": {name}})
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m, ids := secretRE.FindSubmatch(body), idRE.FindSubmatch(body)
	if resp.StatusCode != http.StatusOK || m == nil || ids == nil {
		t.Fatalf("mint: %d %.600s", resp.StatusCode, body)
	}
	return html.UnescapeString(string(m[1])), string(ids[1])
}

func revokeAppPassword(t *testing.T, c *http.Client, base, id string) {
	t.Helper()
	resp, err := c.PostForm(base+"/app-passwords/revoke", url.Values{"id": {id}})
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || strings.Contains(string(body), `value="`+id+`"`) {
		t.Fatalf("revoke: %d, entry still listed: %v", resp.StatusCode, strings.Contains(string(body), id))
	}
}

func TestOIDCSignInOverRealS3(t *testing.T) {
	b := getBackend(t, "versitygw")
	m := startMockIdP(t)
	opts := signInOptions{issuer: m.Issuer(), clientID: m.ClientID, clientSecret: m.ClientSecret,
		rules: []auth.Rule{{Group: "auditors", ReadOnly: true}}, appPasswordTTL: time.Second}
	e := newSignInEnv(t, b, opts)
	other := newSignInEnv(t, b, opts) // a second gateway on the same bucket
	alice := bearerOf(mockToken(t, m, "alice", nil))
	bob := bearerOf(mockToken(t, m, "bob", nil))
	dir := "oidc-" + randHex(4)

	t.Run("a Bearer token writes into the user's own root", func(t *testing.T) {
		expect(t, "MKCOL", e.call(t, "MKCOL", "/dav/"+dir+"/", alice, nil, ""), http.StatusCreated)
		expect(t, "PUT", e.call(t, "PUT", "/dav/"+dir+"/a.txt", alice, nil, "hello"), http.StatusCreated)
		if _, _, _, ok := (&davEnv{b: b}).headS3(t, "users/alice/"+dir+"/a.txt"); !ok {
			t.Fatal("object not under users/alice/")
		}
		expect(t, "bob's PROPFIND of alice's folder", e.call(t, "PROPFIND", "/dav/"+dir+"/", bob, map[string]string{"Depth": "0"}, ""), http.StatusNotFound)
	})
	t.Run("alice's token with a Destination into bob's root never writes there", func(t *testing.T) {
		before := b.snapshot(t, "users/bob/")
		for _, dst := range []string{
			e.URL + "/dav/../bob/stolen.txt", "/dav/%2e%2e/bob/stolen.txt", e.URL + "/dav/..%2fbob%2fstolen.txt",
			"/dav/../../users/bob/stolen.txt", "http://evil.example.com/dav/stolen.txt",
		} {
			for _, method := range []string{"COPY", "MOVE"} {
				r := e.call(t, method, "/dav/"+dir+"/a.txt", alice, map[string]string{"Destination": dst}, "")
				if r.Status < 400 && r.Status != http.StatusCreated && r.Status != http.StatusNoContent {
					t.Errorf("%s to %s: %d", method, dst, r.Status)
				}
			}
		}
		if d := diffSnapshots(before, b.snapshot(t, "users/bob/")); d != "" {
			t.Fatalf("bob's root changed: %s", d)
		}
	})
	t.Run("forged and foreign tokens get 401 with a Bearer challenge", func(t *testing.T) {
		for name, tok := range map[string]string{
			"expired":        mockToken(t, m, "alice", jwt.MapClaims{"exp": time.Now().Add(-time.Minute).Unix()}),
			"wrong issuer":   mockToken(t, m, "alice", jwt.MapClaims{"iss": "http://127.0.0.1:1/"}),
			"wrong audience": mockToken(t, m, "alice", jwt.MapClaims{"aud": "another-app"}),
			"claim ../bob":   mockToken(t, m, "../bob", nil),
			"claim bob/":     mockToken(t, m, "bob/", nil),
			"claim %2e%2e":   mockToken(t, m, "%2e%2e", nil),
		} {
			r := e.call(t, "PROPFIND", "/dav/", bearerOf(tok), map[string]string{"Depth": "0"}, "")
			if r.Status != http.StatusUnauthorized || !strings.Contains(strings.Join(r.Header.Values("WWW-Authenticate"), ","), "Bearer") {
				t.Errorf("%s: %d %v", name, r.Status, r.Header.Values("WWW-Authenticate"))
			}
		}
	})
	t.Run("a read-only group gets 403 on writes and can still read", func(t *testing.T) {
		ro := bearerOf(mockToken(t, m, "alice", jwt.MapClaims{"groups": []string{"auditors"}}))
		expect(t, "GET", e.call(t, "GET", "/dav/"+dir+"/a.txt", ro, nil, ""), http.StatusOK)
		for _, method := range []string{"PUT", "DELETE", "MKCOL", "PROPPATCH", "LOCK"} {
			expect(t, method, e.call(t, method, "/dav/"+dir+"/ro-"+method, ro, nil, ""), http.StatusForbidden)
		}
	})
	t.Run("an app password minted in the browser works until it is revoked, on every gateway", func(t *testing.T) {
		m.QueueUser(&mockoidc.MockUser{Subject: "sub-alice", PreferredUsername: "alice", Email: "alice@example.com"})
		c := browserSignIn(t, e.URL)
		secret, id := mintAppPassword(t, c, e.URL, "Windows laptop")
		if len(secret) < 24 {
			t.Fatalf("secret of %d characters", len(secret))
		}
		basic := basicOf("alice", secret)
		expect(t, "PUT with the app password", e.call(t, "PUT", "/dav/"+dir+"/b.txt", basic, nil, "x"), http.StatusCreated)
		expect(t, "PUT on the other gateway", other.call(t, "PUT", "/dav/"+dir+"/c.txt", basic, nil, "x"), http.StatusCreated)
		expect(t, "alice's app password as bob", e.call(t, "PROPFIND", "/dav/", basicOf("bob", secret), map[string]string{"Depth": "0"}, ""), http.StatusUnauthorized)
		keys := b.keys(t, ".davgw/app-passwords/alice/")
		if len(keys) == 0 {
			t.Fatal("no app password under the reserved prefix")
		}
		for _, k := range keys {
			if data, ok := (&davEnv{b: b}).getS3(t, k); ok && strings.Contains(string(data), secret) {
				t.Fatalf("%s holds the secret", k)
			}
		}
		revokeAppPassword(t, c, e.URL, id)
		expect(t, "PUT after revocation", e.call(t, "PUT", "/dav/"+dir+"/d.txt", basic, nil, "x"), http.StatusUnauthorized)
		deadline := time.Now().Add(5 * time.Second)
		for other.call(t, "PROPFIND", "/dav/", basic, map[string]string{"Depth": "0"}, "").Status != http.StatusUnauthorized {
			if time.Now().After(deadline) {
				t.Fatal("the other gateway still accepts the revoked app password")
			}
			time.Sleep(200 * time.Millisecond)
		}
	})
	t.Run("the IdP going down stops new sign-ins but not cached ones", func(t *testing.T) {
		expect(t, "readyz", e.call(t, "GET", "/readyz", "", nil, ""), http.StatusOK)
		fresh := bearerOf(mockToken(t, m, "carol", nil))
		_ = m.Shutdown()
		expect(t, "cached token", e.call(t, "PROPFIND", "/dav/", alice, map[string]string{"Depth": "0"}, ""), http.StatusMultiStatus)
		// mockoidc's key is known already, so a new JWT still verifies.
		// mockoidc advertises no introspection_endpoint, so with the
		// default opaque_tokens = "introspect" an opaque token is refused
		// (401) whether the IdP is up or not; with "userinfo" it would
		// need the IdP and get 503 (auth's unit tests).
		expect(t, "new JWT with a known key", e.call(t, "PROPFIND", "/dav/", fresh, map[string]string{"Depth": "0"}, ""), http.StatusMultiStatus)
		expect(t, "opaque token", e.call(t, "PROPFIND", "/dav/", "Bearer opaque-"+randHex(8), map[string]string{"Depth": "0"}, ""), http.StatusUnauthorized)
		// A JWT signed by a key the gateway has not seen needs the JWKS:
		// 503, and the failed fetch is what readiness reports.
		otherKey, _ := rsa.GenerateKey(rand.Reader, 2048)
		kp, _ := mockoidc.NewKeypair(otherKey)
		unseen, err := kp.SignJWT(jwt.MapClaims{"iss": m.Issuer(), "aud": m.ClientID, "sub": "sub-dave", "preferred_username": "dave", "exp": time.Now().Add(time.Hour).Unix()})
		if err != nil {
			t.Fatal(err)
		}
		expect(t, "JWT with an unseen key", e.call(t, "PROPFIND", "/dav/", bearerOf(unseen), map[string]string{"Depth": "0"}, ""), http.StatusServiceUnavailable)
		expect(t, "readyz", e.call(t, "GET", "/readyz", "", nil, ""), http.StatusServiceUnavailable)
		expect(t, "browser sign-in", e.call(t, "GET", "/login", "", nil, ""), http.StatusServiceUnavailable)
	})
}

func TestFailedSignInsAreRateLimited(t *testing.T) {
	b := getBackend(t, "versitygw")
	m := startMockIdP(t)
	e := newSignInEnv(t, b, signInOptions{issuer: m.Issuer(), clientID: m.ClientID, limiter: auth.NewLimiter(3, 100, time.Minute)})
	for range 3 {
		expect(t, "wrong password", e.call(t, "PROPFIND", "/dav/", basicOf("mallory", "guess-"+randHex(4)), nil, ""), http.StatusUnauthorized)
	}
	r := e.call(t, "PROPFIND", "/dav/", basicOf("mallory", "guess"), nil, "")
	expect(t, "fourth wrong password", r, http.StatusTooManyRequests)
	if r.Header.Get("Retry-After") == "" {
		t.Fatal("429 without Retry-After")
	}
}
