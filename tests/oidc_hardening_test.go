package tests

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/oauth2-proxy/mockoidc"

	"github.com/davgw/davgw/auth"
)

// Tests of the security review of the OIDC and app-password code
// (findings 2 to 6), over a real S3 back end.

func TestOIDCUserNamesAreBoundToTheirFirstSubject(t *testing.T) {
	b := getBackend(t, "versitygw")
	m := startMockIdP(t)
	e := newSignInEnv(t, b, signInOptions{issuer: m.Issuer(), clientID: m.ClientID, clientSecret: m.ClientSecret})
	user := "u" + randHex(4)
	depth0 := map[string]string{"Depth": "0"}

	expect(t, "first sign-in binds the name", e.call(t, "PUT", "/dav/a.txt", bearerOf(mockToken(t, m, user, nil)), nil, "a"), http.StatusCreated)
	sum := sha256.Sum256([]byte(m.Issuer()))
	data, ok := (&davEnv{b: b}).getS3(t, "ids-"+hex.EncodeToString(sum[:6])+"/.davgw/identities/"+user+".json")
	if !ok || !strings.Contains(string(data), `"sub-`+user+`"`) {
		t.Fatalf("binding: %s", data)
	}
	t.Run("another subject with the same name gets 401 (Bearer, any case)", func(t *testing.T) {
		for _, name := range []string{user, strings.ToUpper(user)} {
			tok := mockToken(t, m, name, jwt.MapClaims{"sub": "sub-impostor"})
			expect(t, "impostor "+name, e.call(t, "PROPFIND", "/dav/", bearerOf(tok), depth0, ""), http.StatusUnauthorized)
		}
	})
	t.Run("another subject with the same name cannot sign in with the browser", func(t *testing.T) {
		m.QueueUser(&mockoidc.MockUser{Subject: "sub-impostor", PreferredUsername: user})
		jar, _ := cookiejar.New(nil)
		c := &http.Client{Jar: jar, Timeout: 20 * time.Second}
		resp, err := c.Get(e.URL + "/login")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized || strings.Contains(string(body), `id="user"`) {
			t.Fatalf("impostor's browser sign-in: %d %.300s", resp.StatusCode, body)
		}
	})
	t.Run("the name in capitals is the same user and root", func(t *testing.T) {
		tok := mockToken(t, m, strings.ToUpper(user), jwt.MapClaims{"sub": "sub-" + user})
		expect(t, "GET", e.call(t, "GET", "/dav/a.txt", bearerOf(tok), nil, ""), http.StatusOK)
	})
}

func TestOIDCAppPasswordsExpireAndFollowTheLatestSignIn(t *testing.T) {
	b := getBackend(t, "versitygw")
	m := startMockIdP(t)
	e := newSignInEnv(t, b, signInOptions{issuer: m.Issuer(), clientID: m.ClientID, clientSecret: m.ClientSecret,
		rules: []auth.Rule{{Group: "auditors", ReadOnly: true}}, appPasswordTTL: time.Second, appPasswordMaxAge: 3 * time.Second})
	user := "u" + randHex(4)
	m.QueueUser(&mockoidc.MockUser{Subject: "sub-" + user, PreferredUsername: user})
	c := browserSignIn(t, e.URL)
	secret, _ := mintAppPassword(t, c, e.URL, "laptop")
	basic := basicOf(user, secret)
	expect(t, "PUT with the app password", e.call(t, "PUT", "/dav/a.txt", basic, nil, "a"), http.StatusCreated)

	// The IdP puts the user into a read-only group; the next browser
	// sign-in carries it to the app password.
	m.QueueUser(&mockoidc.MockUser{Subject: "sub-" + user, PreferredUsername: user, Groups: []string{"auditors"}})
	browserSignIn(t, e.URL)
	time.Sleep(1100 * time.Millisecond) // the app-password cache TTL
	expect(t, "PUT after joining a read-only group", e.call(t, "PUT", "/dav/b.txt", basic, nil, "b"), http.StatusForbidden)
	expect(t, "GET still works", e.call(t, "GET", "/dav/a.txt", basic, nil, ""), http.StatusOK)

	time.Sleep(3 * time.Second) // the maximum age
	expect(t, "GET after the maximum age", e.call(t, "GET", "/dav/a.txt", basic, nil, ""), http.StatusUnauthorized)
}

func TestRateLimitNeverLocksOutAUserWithVerifiedCredentials(t *testing.T) {
	b := getBackend(t, "versitygw")
	m := startMockIdP(t)
	e := newSignInEnv(t, b, signInOptions{issuer: m.Issuer(), clientID: m.ClientID, clientSecret: m.ClientSecret,
		limiter: auth.NewLimiter(3, 100, time.Minute), appPasswordTTL: 30 * time.Second})
	user := "u" + randHex(4)
	m.QueueUser(&mockoidc.MockUser{Subject: "sub-" + user, PreferredUsername: user})
	secret, _ := mintAppPassword(t, browserSignIn(t, e.URL), e.URL, "laptop")
	basic := basicOf(user, secret)
	expect(t, "PUT", e.call(t, "PUT", "/dav/a.txt", basic, nil, "a"), http.StatusCreated)
	// Someone guesses the user's password, in every case, from the same
	// address (one NAT) until the user's counter is used up.
	for _, name := range []string{user, strings.ToUpper(user), user} {
		expect(t, "guess", e.call(t, "PROPFIND", "/dav/", basicOf(name, "guess-"+randHex(4)), nil, ""), http.StatusUnauthorized)
	}
	expect(t, "the guesser", e.call(t, "PROPFIND", "/dav/", basicOf(user, "guess"), nil, ""), http.StatusTooManyRequests)
	expect(t, "the real user", e.call(t, "GET", "/dav/a.txt", basic, nil, ""), http.StatusOK)
}

// introspectingIdP is mockoidc with an RFC 7662 introspection endpoint
// added (mockoidc has none): a small server of the test, which discovery
// advertises, answering for the tokens the test registers after checking
// the client's credentials.
type introspectingIdP struct {
	m      *mockoidc.MockOIDC
	mu     sync.Mutex
	tokens map[string]map[string]any
}

func startIntrospectingIdP(t *testing.T) *introspectingIdP {
	t.Helper()
	m, err := mockoidc.NewServer(nil)
	if err != nil {
		t.Fatal(err)
	}
	p := &introspectingIdP{m: m, tokens: map[string]map[string]any{}}
	in := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, secret, ok := r.BasicAuth()
		if !ok || id != m.ClientID || secret != m.ClientSecret || r.Method != http.MethodPost {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		p.mu.Lock()
		a, known := p.tokens[r.PostFormValue("token")]
		p.mu.Unlock()
		if !known {
			a = map[string]any{"active": false}
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(a)
	}))
	t.Cleanup(in.Close)
	if err := m.AddMiddleware(func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != mockoidc.DiscoveryEndpoint {
				next.ServeHTTP(w, r)
				return
			}
			rec := httptest.NewRecorder()
			next.ServeHTTP(rec, r)
			var doc map[string]any
			if err := json.Unmarshal(rec.Body.Bytes(), &doc); err != nil {
				w.WriteHeader(http.StatusInternalServerError)
				return
			}
			doc["introspection_endpoint"] = in.URL + "/introspect"
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(doc)
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

func TestOIDCOpaqueTokensAreIntrospected(t *testing.T) {
	b := getBackend(t, "versitygw")
	idp := startIntrospectingIdP(t)
	e := newSignInEnv(t, b, signInOptions{issuer: idp.m.Issuer(), clientID: idp.m.ClientID, clientSecret: idp.m.ClientSecret})
	user := "u" + randHex(4)
	exp := time.Now().Add(time.Hour).Unix()
	ours, foreign, revoked := "at-"+randHex(12), "at-"+randHex(12), "at-"+randHex(12)
	idp.mu.Lock()
	idp.tokens[ours] = map[string]any{"active": true, "client_id": idp.m.ClientID, "sub": "sub-" + user, "preferred_username": user, "exp": exp}
	idp.tokens[foreign] = map[string]any{"active": true, "client_id": "another-app", "aud": []string{"another-api"}, "sub": "sub-" + user, "preferred_username": user, "exp": exp}
	idp.tokens[revoked] = map[string]any{"active": false}
	idp.mu.Unlock()

	expect(t, "a token of this client writes", e.call(t, "PUT", "/dav/a.txt", bearerOf(ours), nil, "a"), http.StatusCreated)
	if _, _, _, ok := (&davEnv{b: b}).headS3(t, "users/"+user+"/a.txt"); !ok {
		t.Fatalf("object not under users/%s/", user)
	}
	expect(t, "a token of another client", e.call(t, "PROPFIND", "/dav/", bearerOf(foreign), map[string]string{"Depth": "0"}, ""), http.StatusUnauthorized)
	expect(t, "an inactive token", e.call(t, "PROPFIND", "/dav/", bearerOf(revoked), map[string]string{"Depth": "0"}, ""), http.StatusUnauthorized)
	expect(t, "an unknown token", e.call(t, "PROPFIND", "/dav/", bearerOf("at-"+randHex(12)), map[string]string{"Depth": "0"}, ""), http.StatusUnauthorized)
	// mockoidc's userinfo knows none of these tokens: had the gateway
	// fallen back to userinfo, "ours" would have failed too.
}
