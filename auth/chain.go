package auth

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/davgw/davgw/internal/ttlcache"
)

// Bearer cache bounds: a verified token is remembered until it expires (at
// most bearerMaxTTL; opaque tokens, whose expiry the userinfo answer does
// not give, for opaqueTTL).
const (
	bearerMaxTTL   = time.Hour
	opaqueTTL      = time.Minute
	bearerMaxCache = 10000
	// A Basic credential the chain accepted skips the failure limits
	// while it stays in use: until verifiedIdle passes without a request
	// presenting it (at most verifiedMax remembered).
	verifiedIdle = 15 * time.Minute
	verifiedMax  = 10000
)

// ChainConfig assembles a Chain. Every part is optional.
type ChainConfig struct {
	// Static checks [[auth.users]].
	Static *Static
	// OIDC verifies Bearer tokens; Mapper turns their claims (and those
	// stored with app passwords) into a Principal.
	OIDC   *OIDC
	Mapper *Mapper
	// AppPasswords checks Basic user:app-password.
	AppPasswords *AppPasswords
	// PasswordGrant, when set, checks other Basic credentials (not an app
	// password, not a static user) at the IdP's token endpoint.
	PasswordGrant *PasswordGrant
	// Identities, when set, binds every OIDC user name to the {iss, sub}
	// that first signed in with it and refuses any other subject under
	// that name (Bearer, password grant, app passwords).
	Identities *Identities
	// Limiter rate-limits failed attempts; nil = NewLimiter defaults.
	Limiter *Limiter
	// Audit receives one line per sign-in (first use of a credential) and
	// per refusal; nil = slog.Default(). Secrets never reach it.
	Audit *slog.Logger
}

// Chain is the gateway's Authenticator: Bearer tokens through OIDC, Basic
// through app passwords, then static users. Failed attempts count per user
// name at a client address and per client address; over the limit it
// returns *RateLimitError. Credentials verified recently (the in-memory
// caches of static users, app passwords and the password grant) are
// accepted before the limits are looked at, and any Basic credential the
// chain accepted skips the limits while it stays in use (a request every
// 15 minutes; it is still verified, only never refused as a guess), so
// that an attacker's wrong passwords never lock out the real user, even
// from the user's own address once a cache has lapsed (an app password's
// list is read again every 30 s). An IdP outage is an error (503) for new
// tokens while cached ones keep working. With the limits in Redis
// (Limiter.SharedIn), an outage of Redis is an error (503) for every
// credential that must pass the limits (one this gateway has not
// accepted within 15 minutes), while the ones it has keep working.
type Chain struct {
	cfg   ChainConfig
	limit *Limiter
	audit *slog.Logger
	now   func() time.Time

	bearer   *ttlcache.Cache[[32]byte, Claims]   // SHA-256 of a token -> its claims, until it expires
	verified *ttlcache.Cache[[32]byte, struct{}] // HMAC of accepted Basic credentials, for verifiedIdle after each use
	vkey     [32]byte                            // per-process key of verified
}

var (
	_ Authenticator = (*Chain)(nil)
	_ Challenger    = (*Chain)(nil)
)

// NewChain returns a Chain.
func NewChain(cfg ChainConfig) *Chain {
	l := cfg.Limiter
	if l == nil {
		l = NewLimiter(0, 0, 0)
	}
	a := cfg.Audit
	if a == nil {
		a = slog.Default()
	}
	c := &Chain{cfg: cfg, limit: l, audit: a, now: time.Now,
		bearer:   ttlcache.New[[32]byte, Claims](bearerMaxCache),
		verified: ttlcache.New[[32]byte, struct{}](verifiedMax),
	}
	_, _ = rand.Read(c.vkey[:])
	return c
}

// credKey is the HMAC of a Basic credential under the process's key: the
// chain never keeps the password itself.
func (c *Chain) credKey(user, pw string) [32]byte {
	m := hmac.New(sha256.New, c.vkey[:])
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(len(user)))
	m.Write(n[:])
	m.Write([]byte(strings.ToLower(user)))
	m.Write([]byte(pw))
	var k [32]byte
	m.Sum(k[:0])
	return k
}

// wasVerified reports whether the chain accepted this credential within
// verifiedIdle.
func (c *Chain) wasVerified(k [32]byte, now time.Time) bool {
	_, ok := c.verified.Get(k, now)
	return ok
}

// noteVerified records a use of an accepted credential (ok) or forgets a
// refused one.
func (c *Chain) noteVerified(k [32]byte, now time.Time, ok bool) {
	if !ok {
		c.verified.Delete(k)
		return
	}
	c.verified.Put(k, struct{}{}, now.Add(verifiedIdle), now)
}

// Challenges implements Challenger: Basic, plus Bearer when OIDC is on.
func (c *Chain) Challenges(realm string) []string {
	ch := []string{`Basic realm="` + realm + `", charset="UTF-8"`}
	if c.cfg.OIDC != nil {
		ch = append(ch, `Bearer realm="`+realm+`"`)
	}
	return ch
}

// Authenticate implements Authenticator.
func (c *Chain) Authenticate(r *http.Request) (Principal, bool, error) {
	addr := clientAddr(r)
	h := r.Header.Get("Authorization")
	scheme, cred, _ := strings.Cut(h, " ")
	switch {
	case h == "":
		return Principal{}, false, nil
	case strings.EqualFold(scheme, "Bearer"):
		return c.authBearer(r, strings.TrimSpace(cred), addr)
	case strings.EqualFold(scheme, "Basic"):
		user, pw, ok := r.BasicAuth()
		if !ok {
			c.refuse("basic", "", addr, "malformed Basic credentials")
			return Principal{}, false, nil
		}
		return c.authBasic(r, user, pw, addr)
	default:
		return Principal{}, false, nil
	}
}

func (c *Chain) authBearer(r *http.Request, tok, addr string) (Principal, bool, error) {
	if c.cfg.OIDC == nil || c.cfg.Mapper == nil || tok == "" {
		return Principal{}, false, nil
	}
	key := sha256.Sum256([]byte(tok))
	now := c.now()
	if claims, hit := c.bearer.Get(key, now); hit {
		return c.principal(r.Context(), "bearer", claims, addr, false)
	}
	if lim := c.limit.Check("", addr); lim != nil {
		return Principal{}, false, lim
	}
	var claims Claims
	var expires time.Time
	var err error
	if isJWT(tok) {
		claims, expires, err = c.cfg.OIDC.VerifyJWT(r.Context(), tok, nil, "")
	} else {
		claims, expires, err = c.cfg.OIDC.VerifyOpaque(r.Context(), tok, opaqueTTL)
	}
	switch {
	case errors.Is(err, ErrIdPUnavailable):
		return Principal{}, false, err
	case err != nil:
		c.limit.Fail("", addr)
		c.refuse("bearer", "", addr, err.Error())
		return Principal{}, false, nil
	}
	p, ok, perr := c.principal(r.Context(), "bearer", claims, addr, true)
	if ok {
		if limit := now.Add(bearerMaxTTL); expires.After(limit) {
			expires = limit
		}
		c.bearer.Put(key, claims, expires, now)
	}
	return p, ok, perr
}

func (c *Chain) authBasic(r *http.Request, user, pw, addr string) (p Principal, ok bool, err error) {
	ctx := r.Context()
	pg := c.cfg.PasswordGrant
	key, now := c.credKey(user, pw), c.now()
	defer func() {
		if ok || err == nil { // an error (IdP down, busy) decides nothing
			c.noteVerified(key, now, ok)
		}
	}()
	// Credentials this gateway verified recently are accepted before the
	// limits are looked at: the real user keeps working while someone
	// else's wrong guesses for the same name are refused.
	if pg != nil && c.cfg.Mapper != nil {
		// A recent success at the IdP: skip the app-password and static
		// checks (it can only have been cached after both failed).
		if claims, ok := pg.Cached(user, pw); ok {
			return c.principal(ctx, "password-grant", claims, addr, false)
		}
	}
	if c.cfg.AppPasswords != nil && c.cfg.Mapper != nil {
		if claims, ok := c.cfg.AppPasswords.Cached(ctx, user, pw); ok {
			return c.appPassword(ctx, user, claims, addr, false)
		}
	}
	if c.cfg.Static != nil {
		if p, ok := c.cfg.Static.Cached(user, pw); ok {
			return p, true, nil
		}
	}
	if lim := c.limit.Check(user, addr); lim != nil && !c.wasVerified(key, now) {
		c.refuse("basic", user, addr, "rate limited")
		return Principal{}, false, lim
	}
	if c.cfg.AppPasswords != nil && c.cfg.Mapper != nil {
		claims, fresh, ok, err := c.cfg.AppPasswords.Verify(ctx, user, pw)
		if errors.Is(err, ErrAppPasswordExpired) {
			// A real secret, not a guess: refused, not counted.
			c.refuse("app-password", user, addr, err.Error())
			return Principal{}, false, nil
		}
		if err != nil {
			return Principal{}, false, err
		}
		if ok {
			return c.appPassword(ctx, user, claims, addr, fresh)
		}
	}
	if c.cfg.Static != nil {
		p, ok, err := c.cfg.Static.VerifyContext(ctx, user, pw)
		switch {
		case errors.Is(err, ErrBusy):
			// Counted as a failure of this user at this address: a flood
			// of guesses that keeps the checks busy is limited (429) like
			// guesses that were checked.
			c.limit.Fail(user, addr)
			return Principal{}, false, err
		case err != nil:
			return Principal{}, false, err // the client is gone
		case ok:
			return p, true, nil
		}
	}
	if pg != nil && c.cfg.Mapper != nil {
		claims, fresh, err := pg.Verify(ctx, user, pw)
		switch {
		case err == nil:
			return c.principal(ctx, "password-grant", claims, addr, fresh)
		case !errors.Is(err, ErrPasswordRefused):
			// IdP down (503 unless cached above) or the client refused.
			return Principal{}, false, err
		}
		c.limit.Fail(user, addr)
		c.refuse("password-grant", user, addr, err.Error())
		return Principal{}, false, nil
	}
	c.limit.Fail(user, addr)
	c.refuse("basic", user, addr, "wrong user name or password")
	return Principal{}, false, nil
}

// appPassword maps the claims of a matching app password of user.
func (c *Chain) appPassword(ctx context.Context, user string, claims Claims, addr string, fresh bool) (Principal, bool, error) {
	if !strings.EqualFold(claims.Username, user) {
		// Stored under user's name, so this cannot happen unless the
		// store was tampered with: refuse.
		c.refuse("app-password", user, addr, "stored claims name another user")
		return Principal{}, false, nil
	}
	return c.principal(ctx, "app-password", claims, addr, fresh)
}

// principal maps claims, checks the user name's identity binding and
// audits the outcome; fresh marks a first verification (logged as a
// sign-in).
func (c *Chain) principal(ctx context.Context, method string, claims Claims, addr string, fresh bool) (Principal, bool, error) {
	p, err := c.cfg.Mapper.Principal(claims)
	if err != nil {
		c.limit.Fail("", addr)
		c.refuse(method, claims.Username, addr, err.Error())
		return Principal{}, false, nil
	}
	if c.cfg.Identities != nil {
		err := c.cfg.Identities.Check(ctx, claims)
		if errors.Is(err, ErrIdentityMismatch) {
			c.limit.Fail("", addr)
			c.refuse(method, p.Username, addr, err.Error())
			return Principal{}, false, nil
		}
		if err != nil {
			return Principal{}, false, fmt.Errorf("auth: identity binding of %q: %w", p.Username, err)
		}
	}
	if fresh {
		c.audit.Info("audit: sign-in", "method", method, "user", p.Username, "store", p.Store, "root", p.Root, "read_only", p.ReadOnly, "addr", addr)
	}
	return p, true, nil
}

func (c *Chain) refuse(method, user, addr, why string) {
	c.audit.Warn("audit: sign-in refused", "method", method, "user", user, "addr", addr, "reason", why)
}

// clientAddr is the request's client IP. The gateway has decided it
// already (gateway.TrustedProxies.ClientAddr: X-Forwarded-For is believed
// only from [server].trusted_proxies) and left it in RemoteAddr.
func clientAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}
