package auth

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/oauth2-proxy/mockoidc"
)

// idp is an in-process mockoidc with an OIDC verifier pointed at it.
type idp struct {
	m    *mockoidc.MockOIDC
	oidc *OIDC
}

func newIdP(t *testing.T, audiences ...string) *idp {
	t.Helper()
	m, err := mockoidc.Run()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Shutdown() })
	o, err := NewOIDC(context.Background(), OIDCConfig{Issuer: m.Issuer(), ClientID: m.ClientID, Audiences: audiences})
	if err != nil {
		t.Fatal(err)
	}
	return &idp{m: m, oidc: o}
}

// token signs claims with the IdP's key; base holds sensible defaults that
// claims override (a nil value deletes the claim).
func (i *idp) token(t *testing.T, claims jwt.MapClaims) string {
	t.Helper()
	now := time.Now()
	base := jwt.MapClaims{
		"iss": i.m.Issuer(), "aud": i.m.ClientID, "sub": "sub-alice",
		"exp": now.Add(10 * time.Minute).Unix(), "iat": now.Unix(),
		"preferred_username": "alice", "email": "alice@example.com", "groups": []string{"staff"},
	}
	for k, v := range claims {
		if v == nil {
			delete(base, k)
		} else {
			base[k] = v
		}
	}
	tok, err := i.m.Keypair.SignJWT(base)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestVerifyJWTRefusesEveryForgery(t *testing.T) {
	i := newIdP(t, "", "rclone")
	i.oidc.audiences = []string{i.m.ClientID, "rclone"}
	otherKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	good := i.token(t, nil)
	parts := strings.Split(good, ".")
	tamperedPayload := base64.RawURLEncoding.EncodeToString([]byte(`{"iss":"` + i.m.Issuer() + `","aud":"` + i.m.ClientID + `","sub":"sub-bob","preferred_username":"bob","exp":9999999999}`))
	none := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + parts[1] + "."
	kid, _ := i.m.Keypair.KeyID()
	forged := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.MapClaims{"iss": i.m.Issuer(), "aud": i.m.ClientID, "sub": "x", "preferred_username": "alice", "exp": time.Now().Add(time.Hour).Unix()})
	forged.Header["kid"] = kid
	forgedTok, err := forged.SignedString(otherKey)
	if err != nil {
		t.Fatal(err)
	}
	hs := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"iss": i.m.Issuer(), "aud": i.m.ClientID, "sub": "x", "exp": time.Now().Add(time.Hour).Unix()})
	hsTok, _ := hs.SignedString([]byte("public key bytes guessed"))

	tests := []struct {
		name   string
		token  string
		wantOK bool
	}{
		{"a valid token for the client id is accepted", good, true},
		{"a token for another configured audience is accepted", i.token(t, jwt.MapClaims{"aud": "rclone"}), true},
		{"an expired token is refused", i.token(t, jwt.MapClaims{"exp": time.Now().Add(-time.Minute).Unix()}), false},
		{"a token from another issuer is refused", i.token(t, jwt.MapClaims{"iss": "https://evil.example.com"}), false},
		{"a token for another audience is refused", i.token(t, jwt.MapClaims{"aud": "some-other-app"}), false},
		{"a token without an audience is refused", i.token(t, jwt.MapClaims{"aud": nil}), false},
		{"an unsigned alg=none token is refused", none, false},
		{"a token with a tampered payload is refused", parts[0] + "." + tamperedPayload + "." + parts[2], false},
		{"a token with a flipped signature byte is refused", good[:len(good)-2] + flip(good[len(good)-2:]), false},
		{"a token signed by another key with the right kid is refused", forgedTok, false},
		{"an HS256 token is refused", hsTok, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, _, err := i.oidc.VerifyJWT(context.Background(), tt.token, nil, "")
			if tt.wantOK {
				if err != nil || c.Username != "alice" {
					t.Fatalf("got %+v, %v; want alice", c, err)
				}
				return
			}
			if !errors.Is(err, ErrInvalidToken) {
				t.Fatalf("got %+v, %v; want ErrInvalidToken", c, err)
			}
		})
	}
}

func flip(s string) string {
	if s[0] == 'A' {
		return "B" + s[1:]
	}
	return "A" + s[1:]
}

// chainFor builds a Chain over the IdP with rules and a tight limiter.
func chainFor(t *testing.T, i *idp, rules []Rule, ap *AppPasswords) *Chain {
	t.Helper()
	m, err := NewMapper("users/{username}/", "preferred_username", rules)
	if err != nil {
		t.Fatal(err)
	}
	return NewChain(ChainConfig{OIDC: i.oidc, Mapper: m, AppPasswords: ap, Limiter: NewLimiter(3, 5, time.Minute), Audit: slog.New(slog.DiscardHandler)})
}

func bearer(tok string) *http.Request {
	r := httptest.NewRequest("PROPFIND", "/dav/", nil)
	r.Header.Set("Authorization", "Bearer "+tok)
	return r
}

func TestBearerClaimsNeverMapIntoAnotherRoot(t *testing.T) {
	i := newIdP(t)
	c := chainFor(t, i, []Rule{{Group: "auditors", ReadOnly: true}, {Group: "finance", Root: "shared/finance/"}}, nil)
	c.limit = NewLimiter(1000, 1000, time.Minute) // every refusal counts; this test is not about limits
	tests := []struct {
		name     string
		claims   jwt.MapClaims
		wantRoot string // "" = refused
		readOnly bool
	}{
		{"a plain user lands in users/<name>/", nil, "users/alice/", false},
		{"a finance member lands in the shared finance root", jwt.MapClaims{"groups": []string{"finance"}}, "shared/finance/", false},
		{"an auditor is read-only in their own root", jwt.MapClaims{"groups": []string{"auditors", "finance"}}, "users/alice/", true},
		{`a user name of "../bob" is refused`, jwt.MapClaims{"preferred_username": "../bob"}, "", false},
		{`a user name of "bob/" is refused`, jwt.MapClaims{"preferred_username": "bob/"}, "", false},
		{`a user name of "%2e%2e" is refused`, jwt.MapClaims{"preferred_username": "%2e%2e"}, "", false},
		{`a user name of "a..b" is refused`, jwt.MapClaims{"preferred_username": "a..b"}, "", false},
		{`a user name with a backslash is refused`, jwt.MapClaims{"preferred_username": `bob\x`}, "", false},
		{`a user name with a control character is refused`, jwt.MapClaims{"preferred_username": "bob\n"}, "", false},
		{`a user name of ".davgw" is refused`, jwt.MapClaims{"preferred_username": ".davgw"}, "", false},
		{"an empty user name is refused", jwt.MapClaims{"preferred_username": ""}, "", false},
		{"a missing user name is refused", jwt.MapClaims{"preferred_username": nil}, "", false},
		{"a non-string user name is refused", jwt.MapClaims{"preferred_username": 42}, "", false},
	}
	for n, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.claims = withSub(tt.claims, n)
			p, ok, err := c.Authenticate(bearer(i.token(t, tt.claims)))
			if err != nil {
				t.Fatal(err)
			}
			if tt.wantRoot == "" {
				if ok {
					t.Fatalf("accepted as %+v", p)
				}
				return
			}
			if !ok || p.Root != tt.wantRoot || p.ReadOnly != tt.readOnly {
				t.Fatalf("got %+v ok=%v; want root %q read-only %v", p, ok, tt.wantRoot, tt.readOnly)
			}
		})
	}
}

func withSub(c jwt.MapClaims, n int) jwt.MapClaims {
	if c == nil {
		c = jwt.MapClaims{}
	}
	c["jti"] = strings.Repeat("x", n+1) // distinct tokens, no cache hits
	return c
}

func TestBearerSurvivesAnIdPOutageOnlyForCachedTokens(t *testing.T) {
	i := newIdP(t)
	c := chainFor(t, i, nil, nil)
	cached := i.token(t, nil)
	if _, ok, err := c.Authenticate(bearer(cached)); !ok || err != nil {
		t.Fatalf("first use: ok=%v err=%v", ok, err)
	}
	if err := i.oidc.Ready(); err != nil {
		t.Fatalf("ready while the IdP is up: %v", err)
	}
	// A token signed by a key the gateway has not seen forces a JWKS fetch.
	other, _ := rsa.GenerateKey(rand.Reader, 2048)
	kp, _ := mockoidc.NewKeypair(other)
	fresh, _ := kp.SignJWT(jwt.MapClaims{"iss": i.m.Issuer(), "aud": i.m.ClientID, "sub": "s", "preferred_username": "bob", "exp": time.Now().Add(time.Hour).Unix()})
	_ = i.m.Shutdown()

	t.Run("a cached token keeps working", func(t *testing.T) {
		if p, ok, err := c.Authenticate(bearer(cached)); !ok || err != nil || p.Username != "alice" {
			t.Fatalf("got %+v ok=%v err=%v", p, ok, err)
		}
	})
	t.Run("a new token is an IdP error, not a 401", func(t *testing.T) {
		_, ok, err := c.Authenticate(bearer(fresh))
		if ok || !errors.Is(err, ErrIdPUnavailable) {
			t.Fatalf("ok=%v err=%v; want ErrIdPUnavailable", ok, err)
		}
	})
	t.Run("an opaque token is an IdP error, not a 401", func(t *testing.T) {
		i.oidc.cfg.OpaqueTokens = OpaqueUserinfo // mockoidc has no introspection
		defer func() { i.oidc.cfg.OpaqueTokens = OpaqueIntrospect }()
		_, ok, err := c.Authenticate(bearer("opaque-token-value"))
		if ok || !errors.Is(err, ErrIdPUnavailable) {
			t.Fatalf("ok=%v err=%v; want ErrIdPUnavailable", ok, err)
		}
	})
	t.Run("readiness reports the outage", func(t *testing.T) {
		if err := i.oidc.Ready(); err == nil {
			t.Fatal("ready while the IdP is down")
		}
	})
}

func TestFailedBearerTokensAreRateLimitedPerAddress(t *testing.T) {
	i := newIdP(t)
	c := chainFor(t, i, nil, nil)
	bad := i.token(t, jwt.MapClaims{"aud": "nope"})
	for n := range 5 {
		if _, ok, err := c.Authenticate(bearer(bad)); ok || err != nil {
			t.Fatalf("attempt %d: ok=%v err=%v", n, ok, err)
		}
	}
	_, _, err := c.Authenticate(bearer(i.token(t, nil)))
	var rl *RateLimitError
	if !errors.As(err, &rl) || rl.RetryAfter <= 0 {
		t.Fatalf("sixth attempt: %v; want *RateLimitError", err)
	}
}

func TestOpaqueTokensAreCheckedAtUserinfo(t *testing.T) {
	i := newIdP(t)
	c := chainFor(t, i, nil, nil)
	t.Run("an opaque token the IdP does not know is refused", func(t *testing.T) {
		if _, ok, err := c.Authenticate(bearer("not-a-jwt")); ok || err != nil {
			t.Fatalf("ok=%v err=%v", ok, err)
		}
	})
}
