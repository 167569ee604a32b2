package auth

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/sync/singleflight"

	"github.com/davgw/davgw/internal/ttlcache"
)

// Password-grant cache bounds.
const (
	// PasswordGrantTTL is how long a password the IdP accepted is trusted
	// without asking the IdP again (0 passed to NewPasswordGrant).
	PasswordGrantTTL = 5 * time.Minute
	// passwordGrantMaxCache bounds the number of remembered successes.
	passwordGrantMaxCache = 10000
)

// ErrPasswordRefused: the IdP refused the user name and password, or what it
// answered does not fit the Basic credentials (another user name, a token
// that does not verify). The caller answers 401 and counts a failure.
var ErrPasswordRefused = errors.New("auth: password refused")

// PasswordGrant checks Basic user:password with the OAuth2 Resource Owner
// Password Credentials grant at the IdP's token endpoint
// ([auth.oidc].password_grant). The ID token of the answer (or, without
// one, the access token at the userinfo endpoint) is verified like a Bearer
// token, and its user name claim must equal the Basic user name (ignoring
// case).
//
// Successes are remembered for a short time so that Windows' per-request
// Basic does not ask the IdP every time. The cache key is HMAC-SHA256 of
// the user name and password under a random per-process key: neither the
// password nor an unkeyed hash of it is kept. Concurrent checks of the same
// credentials share one IdP request.
type PasswordGrant struct {
	oidc   *OIDC
	ttl    time.Duration
	key    [32]byte
	now    func() time.Time
	flight singleflight.Group
	cache  *ttlcache.Cache[[32]byte, grantEntry]
}

type grantEntry struct {
	claims     Claims
	refreshing bool // a background check was started for this entry
}

// NewPasswordGrant returns a PasswordGrant over o. ttl is how long a
// success is cached (0 = PasswordGrantTTL).
func NewPasswordGrant(o *OIDC, ttl time.Duration) (*PasswordGrant, error) {
	if o == nil {
		return nil, errors.New("auth: the password grant needs OIDC")
	}
	if ttl <= 0 {
		ttl = PasswordGrantTTL
	}
	g := &PasswordGrant{oidc: o, ttl: ttl, now: time.Now, cache: ttlcache.New[[32]byte, grantEntry](passwordGrantMaxCache)}
	if _, err := rand.Read(g.key[:]); err != nil {
		return nil, err
	}
	return g, nil
}

// Cached returns the claims of an earlier success with exactly this user
// name and password that has not expired yet. It never makes the caller
// wait for the IdP: when the success is older than half the TTL, it asks
// the IdP again in the background, which keeps credentials in steady use
// cached for as long as the IdP accepts them, and drops them as soon as
// it refuses them (a changed password, a disabled account).
func (g *PasswordGrant) Cached(user, pw string) (Claims, bool) {
	k := g.keyOf(user, pw)
	c, ok, refresh := g.check(k, true)
	if refresh {
		go g.refresh(k, user, pw)
	}
	return c, ok
}

// refresh asks the IdP again for a cached success, once per entry (Cached
// starts it only for an entry not yet being checked): a success renews
// the entry, a refusal drops it, an outage leaves it to expire at its
// time without another try.
func (g *PasswordGrant) refresh(k [32]byte, user, pw string) {
	_, _, _ = g.flight.Do("refresh:"+string(k[:]), func() (any, error) {
		c, err := g.exchange(context.Background(), user, pw)
		switch {
		case err == nil:
			g.remember(k, c)
		case errors.Is(err, ErrPasswordRefused):
			g.cache.Delete(k)
		}
		return nil, nil
	})
}

// Verify checks user and pw: from the cache, else at the IdP. fresh is true
// when this call asked the IdP (a sign-in to audit). A refusal wraps
// ErrPasswordRefused; an IdP that cannot be reached or answers 5xx wraps
// ErrIdPUnavailable; any other error means the gateway's client is not
// allowed to use the grant. No error ever holds the password or a token.
func (g *PasswordGrant) Verify(ctx context.Context, user, pw string) (c Claims, fresh bool, err error) {
	k := g.keyOf(user, pw)
	if c, ok := g.lookup(k); ok {
		return c, false, nil
	}
	// The user name must equal a safe username claim, so anything else can
	// never succeed: do not bother the IdP with it.
	if err := SafeClaimValue(user); err != nil {
		return Claims{}, false, fmt.Errorf("%w: user name: %v", ErrPasswordRefused, err)
	}
	if pw == "" {
		return Claims{}, false, fmt.Errorf("%w: empty password", ErrPasswordRefused)
	}
	leader := false
	v, err, _ := g.flight.Do(string(k[:]), func() (any, error) {
		leader = true
		if c, ok := g.lookup(k); ok {
			return c, nil
		}
		// The request to the IdP outlives a client that gives up, so that
		// the callers sharing it get an answer; the IdP client's timeout
		// bounds it.
		c, err := g.exchange(context.WithoutCancel(ctx), user, pw)
		if err != nil {
			return nil, err
		}
		g.remember(k, c)
		return c, nil
	})
	if err != nil {
		return Claims{}, false, err
	}
	return v.(Claims), leader, nil
}

// exchange runs the password grant and verifies what the IdP answered.
func (g *PasswordGrant) exchange(ctx context.Context, user, pw string) (Claims, error) {
	cfg, err := g.oidc.OAuth2Config(ctx, "")
	if err != nil {
		return Claims{}, err
	}
	if cfg.Endpoint.TokenURL == "" {
		return Claims{}, errors.New("auth: password grant: the IdP's discovery document has no token_endpoint")
	}
	cfg.Endpoint.AuthStyle = g.oidc.tokenAuthStyle()
	tok, err := cfg.PasswordCredentialsToken(context.WithValue(ctx, oauth2.HTTPClient, g.oidc.client), user, pw)
	if err != nil {
		return Claims{}, grantError(err)
	}
	var claims Claims
	switch raw, _ := tok.Extra("id_token").(string); {
	case raw != "":
		// An ID token is for the client; accept the Bearer audiences too.
		auds := append([]string{g.oidc.cfg.ClientID}, g.oidc.audiences...)
		claims, _, err = g.oidc.VerifyJWT(ctx, raw, auds, "")
	case tok.AccessToken != "":
		claims, err = g.oidc.Userinfo(ctx, tok.AccessToken)
	default:
		err = fmt.Errorf("%w: no token in the answer", ErrInvalidToken)
	}
	switch {
	case errors.Is(err, ErrIdPUnavailable):
		return Claims{}, err
	case err != nil:
		return Claims{}, fmt.Errorf("%w: the IdP's token does not verify: %v", ErrPasswordRefused, err)
	}
	if !strings.EqualFold(claims.Username, user) {
		return Claims{}, fmt.Errorf("%w: claim %s = %q of the IdP's token differs from the Basic user name", ErrPasswordRefused, g.oidc.cfg.UsernameClaim, claims.Username)
	}
	return claims, nil
}

// grantError sorts a failed token request: 5xx and network failures are an
// outage, invalid_grant (and unknown 4xx answers) a refused password, and
// errors about the client itself a configuration problem. Only the status
// and the error code are kept: never the body.
func grantError(err error) error {
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) {
		// Network failures (*url.Error names the token endpoint, never the
		// form) and answers that are not a token.
		return fmt.Errorf("%w: token endpoint: %v", ErrIdPUnavailable, err)
	}
	status := 0
	if re.Response != nil {
		status = re.Response.StatusCode
	}
	code := re.ErrorCode
	if len(code) > 64 {
		code = code[:64]
	}
	switch {
	case status >= 500:
		return fmt.Errorf("%w: token endpoint answered %d", ErrIdPUnavailable, status)
	case code == "invalid_client", code == "unauthorized_client", code == "unsupported_grant_type", code == "invalid_scope":
		return fmt.Errorf("auth: password grant: the IdP refused the gateway's client (%d %q): check auth.oidc.client_id and client_secret, and that the IdP allows this client the password grant", status, code)
	default:
		return fmt.Errorf("%w: the IdP refused the credentials (%d %q)", ErrPasswordRefused, status, code)
	}
}

// tokenAuthStyle picks how the client authenticates at the token endpoint
// from the discovery document (so that a refused password costs one
// request, not oauth2's auto-detected two): HTTP Basic unless the IdP
// lists only client_secret_post; a client without a secret sends its id in
// the form.
func (o *OIDC) tokenAuthStyle() oauth2.AuthStyle {
	o.mu.Lock()
	methods := o.tokenAuth
	o.mu.Unlock()
	switch {
	case o.cfg.ClientSecret == "":
		return oauth2.AuthStyleInParams
	case len(methods) == 0, slices.Contains(methods, "client_secret_basic"):
		return oauth2.AuthStyleInHeader
	case slices.Contains(methods, "client_secret_post"):
		return oauth2.AuthStyleInParams
	default:
		return oauth2.AuthStyleInHeader
	}
}

// keyOf is HMAC-SHA256(key, len(user), user, pw).
func (g *PasswordGrant) keyOf(user, pw string) [32]byte {
	m := hmac.New(sha256.New, g.key[:])
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(len(user)))
	m.Write(n[:])
	m.Write([]byte(user))
	m.Write([]byte(pw))
	var k [32]byte
	copy(k[:], m.Sum(nil))
	return k
}

func (g *PasswordGrant) lookup(k [32]byte) (Claims, bool) {
	c, ok, _ := g.check(k, false)
	return c, ok
}

// check is lookup that, with claim, also tells whether the success is past
// half its TTL and not being checked yet: then the caller starts the
// background check, and no other caller will for this entry.
func (g *PasswordGrant) check(k [32]byte, claim bool) (c Claims, ok, refresh bool) {
	now := g.now()
	e, ok := g.cache.Update(k, now, func(e *grantEntry, expires *time.Time) {
		if claim && !e.refreshing && now.After(expires.Add(-g.ttl/2)) {
			e.refreshing, refresh = true, true
		}
	})
	return e.claims, ok, refresh
}

func (g *PasswordGrant) remember(k [32]byte, c Claims) {
	now := g.now()
	g.cache.Put(k, grantEntry{claims: c}, now.Add(g.ttl), now)
}
