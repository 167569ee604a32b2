package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// Sentinel errors of OIDC.
var (
	// ErrIdPUnavailable: the identity provider could not be reached or
	// answered 5xx. Callers answer 503; nothing is known about the token.
	ErrIdPUnavailable = errors.New("auth: identity provider unavailable")
	// ErrInvalidToken: the token is expired, badly signed, from another
	// issuer, for another audience, or refused by the userinfo endpoint.
	ErrInvalidToken = errors.New("auth: invalid token")
)

// The claims that give the user name and the groups when OIDCConfig (or
// NewMapper) names none ([auth.oidc].username_claim and groups_claim).
const (
	DefaultUsernameClaim = "preferred_username"
	DefaultGroupsClaim   = "groups"
)

// How opaque Bearer tokens are checked ([auth.oidc].opaque_tokens).
const (
	OpaqueIntrospect = "introspect"
	OpaqueUserinfo   = "userinfo"
)

// safeAlgs are the signature algorithms kept from the discovery document:
// asymmetric ones only (never "none" or HMAC, whose key would be the
// client secret).
var safeAlgs = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}

// discoveryRetry is how long OIDC waits after a failed discovery before it
// asks the identity provider again.
const discoveryRetry = 5 * time.Second

// OIDCConfig configures OIDC ([auth.oidc]).
type OIDCConfig struct {
	// Issuer is the issuer URL, exactly as the IdP's discovery document
	// spells it.
	Issuer string
	// ClientID and ClientSecret are the gateway's OAuth client.
	ClientID     string
	ClientSecret string
	// Audiences are the accepted "aud" values of Bearer tokens; empty =
	// [ClientID].
	Audiences []string
	// UsernameClaim and GroupsClaim name the claims that give the user
	// name and the groups (DefaultUsernameClaim, DefaultGroupsClaim).
	UsernameClaim string
	GroupsClaim   string
	// OpaqueTokens says how opaque (non-JWT) Bearer tokens are checked:
	// OpaqueIntrospect ("" too) at the IdP's introspection_endpoint (RFC
	// 7662; without one they are refused), or OpaqueUserinfo at the
	// userinfo endpoint, which does not tell which client a token is for.
	OpaqueTokens string
	// HTTPClient talks to the IdP; nil = a client with a 10 s timeout.
	HTTPClient *http.Client
	// Now is the clock of token checks; nil = time.Now.
	Now func() time.Time
}

// OIDC verifies tokens of one OpenID Connect issuer with go-oidc. It
// discovers the issuer lazily (and again after a failure), so the gateway
// starts and serves static users while the IdP is down; Ready reports the
// IdP's state for /readyz.
type OIDC struct {
	cfg       OIDCConfig
	audiences []string
	client    *http.Client
	track     *idpTransport
	ctx       context.Context // carries client for go-oidc's background key fetches

	mu            sync.Mutex
	provider      *oidc.Provider
	keys          *keySet
	algs          []string // accepted signature algorithms
	userinfoURL   string
	introspectURL string
	tokenAuth     []string // token_endpoint_auth_methods_supported
	jwksURL       string
	lastTry       time.Time
	lastErr       error
}

// NewOIDC checks cfg and returns an OIDC. It does not contact the IdP; ctx
// only carries values (go-oidc keeps it for background key fetches) and its
// cancellation is ignored.
func NewOIDC(ctx context.Context, cfg OIDCConfig) (*OIDC, error) {
	if cfg.Issuer == "" || cfg.ClientID == "" {
		return nil, errors.New("auth: OIDC needs an issuer and a client id")
	}
	if cfg.UsernameClaim == "" {
		cfg.UsernameClaim = DefaultUsernameClaim
	}
	if cfg.GroupsClaim == "" {
		cfg.GroupsClaim = DefaultGroupsClaim
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	switch cfg.OpaqueTokens {
	case "":
		cfg.OpaqueTokens = OpaqueIntrospect
	case OpaqueIntrospect, OpaqueUserinfo:
	default:
		return nil, fmt.Errorf("auth: opaque_tokens must be %q or %q", OpaqueIntrospect, OpaqueUserinfo)
	}
	base := http.DefaultTransport
	timeout := 10 * time.Second
	if cfg.HTTPClient != nil {
		if cfg.HTTPClient.Transport != nil {
			base = cfg.HTTPClient.Transport
		}
		if cfg.HTTPClient.Timeout > 0 {
			timeout = cfg.HTTPClient.Timeout
		}
	}
	track := &idpTransport{base: base}
	client := &http.Client{Transport: track, Timeout: timeout}
	auds := cfg.Audiences
	if len(auds) == 0 {
		auds = []string{cfg.ClientID}
	}
	return &OIDC{
		cfg:       cfg,
		audiences: slices.Clone(auds),
		client:    client,
		track:     track,
		ctx:       oidc.ClientContext(context.WithoutCancel(ctx), client),
	}, nil
}

// Discover fetches the discovery document now (if not yet done) and
// reports whether it worked: for start-up logs and `davgw check`.
func (o *OIDC) Discover(ctx context.Context) error {
	_, err := o.getProvider(ctx)
	return err
}

// CheckKeys fetches the JWKS once (for `davgw check`).
func (o *OIDC) CheckKeys(ctx context.Context) error {
	if _, err := o.getProvider(ctx); err != nil {
		return err
	}
	// The provider is rebuilt from a ProviderConfig, so its Claims are
	// empty: use the jwks_uri kept at discovery.
	o.mu.Lock()
	jwks := o.jwksURL
	o.mu.Unlock()
	if jwks == "" {
		return errors.New("auth: discovery document has no jwks_uri")
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, jwks, nil)
	if err != nil {
		return err
	}
	resp, err := o.client.Do(req)
	if err != nil {
		return fmt.Errorf("%w: JWKS: %v", ErrIdPUnavailable, err)
	}
	defer resp.Body.Close()
	var keys struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if resp.StatusCode != http.StatusOK || json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&keys) != nil || len(keys.Keys) == 0 {
		return fmt.Errorf("%w: JWKS at %s: status %d or no keys", ErrIdPUnavailable, jwks, resp.StatusCode)
	}
	return nil
}

// Ready returns nil when discovery succeeded and the last call to the IdP
// did not fail, else an error saying why (for /readyz).
func (o *OIDC) Ready() error {
	o.mu.Lock()
	p, lastErr := o.provider, o.lastErr
	o.mu.Unlock()
	if p == nil {
		if lastErr == nil {
			// Not tried yet: try now, briefly.
			ctx, cancel := context.WithTimeout(o.ctx, 3*time.Second)
			defer cancel()
			_, err := o.getProvider(ctx)
			return err
		}
		return lastErr
	}
	if o.track.failing() {
		// The last call failed: ask again, so that a recovered IdP is
		// noticed without waiting for a token to need it.
		ctx, cancel := context.WithTimeout(o.ctx, 3*time.Second)
		defer cancel()
		if err := o.probe(ctx); err != nil {
			return fmt.Errorf("%w: %s: %v", ErrIdPUnavailable, o.cfg.Issuer, err)
		}
	}
	return nil
}

// probe fetches the discovery document through the tracking client.
func (o *OIDC) probe(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(o.cfg.Issuer, "/")+"/.well-known/openid-configuration", nil)
	if err != nil {
		return err
	}
	resp, err := o.client.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("discovery answered %d", resp.StatusCode)
	}
	return nil
}

func (o *OIDC) getProvider(ctx context.Context) (*oidc.Provider, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.provider != nil {
		return o.provider, nil
	}
	now := time.Now()
	if o.lastErr != nil && now.Sub(o.lastTry) < discoveryRetry {
		return nil, o.lastErr
	}
	o.lastTry = now
	// The provider keeps o.ctx (with our client) for background key
	// fetches; the discovery request itself honours ctx's deadline.
	dctx, cancel := context.WithCancel(o.ctx)
	stop := context.AfterFunc(ctx, cancel)
	p, err := oidc.NewProvider(dctx, o.cfg.Issuer)
	stop()
	cancel()
	if err != nil {
		o.lastErr = fmt.Errorf("%w: discovery at %s: %v", ErrIdPUnavailable, o.cfg.Issuer, err)
		return nil, o.lastErr
	}
	// Rebuild the provider from the fetched document over the long-lived
	// context, so that its key fetches never inherit a request's
	// cancellation.
	var doc struct {
		Userinfo   string   `json:"userinfo_endpoint"`
		Introspect string   `json:"introspection_endpoint"`
		JWKS       string   `json:"jwks_uri"`
		Auth       string   `json:"authorization_endpoint"`
		Token      string   `json:"token_endpoint"`
		Algs       []string `json:"id_token_signing_alg_values_supported"`
		TokenAuth  []string `json:"token_endpoint_auth_methods_supported"`
	}
	if err := p.Claims(&doc); err != nil {
		o.lastErr = fmt.Errorf("%w: discovery document: %v", ErrIdPUnavailable, err)
		return nil, o.lastErr
	}
	// Only asymmetric algorithms, whatever the document lists; none at all
	// leaves go-oidc's default, RS256.
	var algs []string
	for _, a := range doc.Algs {
		if slices.Contains(safeAlgs, a) && !slices.Contains(algs, a) {
			algs = append(algs, a)
		}
	}
	pc := &oidc.ProviderConfig{
		IssuerURL:   o.cfg.Issuer,
		AuthURL:     doc.Auth,
		TokenURL:    doc.Token,
		UserInfoURL: doc.Userinfo,
		JWKSURL:     doc.JWKS,
		Algorithms:  algs,
	}
	o.provider = pc.NewProvider(o.ctx)
	o.keys = &keySet{inner: oidc.NewRemoteKeySet(o.ctx, doc.JWKS)}
	o.algs = algs
	o.userinfoURL = doc.Userinfo
	o.introspectURL = doc.Introspect
	o.tokenAuth = doc.TokenAuth
	o.jwksURL = doc.JWKS
	o.lastErr = nil
	return o.provider, nil
}

// Endpoint returns the IdP's OAuth endpoints (discovering it if needed).
func (o *OIDC) Endpoint(ctx context.Context) (oauth2.Endpoint, error) {
	p, err := o.getProvider(ctx)
	if err != nil {
		return oauth2.Endpoint{}, err
	}
	return p.Endpoint(), nil
}

// OAuth2Config returns the code-flow configuration with redirectURL.
func (o *OIDC) OAuth2Config(ctx context.Context, redirectURL string) (*oauth2.Config, error) {
	ep, err := o.Endpoint(ctx)
	if err != nil {
		return nil, err
	}
	return &oauth2.Config{
		ClientID:     o.cfg.ClientID,
		ClientSecret: o.cfg.ClientSecret,
		Endpoint:     ep,
		RedirectURL:  redirectURL,
		Scopes:       []string{oidc.ScopeOpenID, "profile", "email", o.cfg.GroupsClaim},
	}, nil
}

// Client returns the HTTP client used for the IdP (for the code exchange).
func (o *OIDC) Client() *http.Client { return o.client }

// IntrospectionEndpoint returns the discovered introspection_endpoint ("" if
// the IdP advertises none or was not discovered yet) and the configured
// way of checking opaque tokens.
func (o *OIDC) IntrospectionEndpoint() (endpoint, mode string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.introspectURL, o.cfg.OpaqueTokens
}

// VerifyJWT checks a JWT for signature, issuer, expiry and audience: aud
// must contain one of audiences (nil = the configured Bearer audiences),
// and an azp claim, when present, must be the client id or one of the
// configured audiences.
// When nonce is not "", the token's nonce must equal it. It returns the
// claims and the expiry. Errors wrap ErrInvalidToken or ErrIdPUnavailable.
func (o *OIDC) VerifyJWT(ctx context.Context, raw string, audiences []string, nonce string) (Claims, time.Time, error) {
	if _, err := o.getProvider(ctx); err != nil {
		return Claims{}, time.Time{}, err
	}
	if audiences == nil {
		audiences = o.audiences
	}
	o.mu.Lock()
	keys, algs := o.keys, o.algs
	o.mu.Unlock()
	// This call's own key fetch (if it needed one) decides between an
	// outage and a bad token, never another request's failure.
	var fetch fetchOutcome
	v := oidc.NewVerifier(o.cfg.Issuer, keys, &oidc.Config{SkipClientIDCheck: true, Now: o.cfg.Now, SupportedSigningAlgs: algs})
	tok, err := v.Verify(context.WithValue(ctx, fetchKey{}, &fetch), raw)
	if err != nil {
		if fetch.failed.Load() {
			return Claims{}, time.Time{}, fmt.Errorf("%w: %v", ErrIdPUnavailable, err)
		}
		return Claims{}, time.Time{}, fmt.Errorf("%w: %v", ErrInvalidToken, err)
	}
	if !slices.ContainsFunc(tok.Audience, func(a string) bool { return slices.Contains(audiences, a) }) {
		return Claims{}, time.Time{}, fmt.Errorf("%w: audience %q not accepted", ErrInvalidToken, tok.Audience)
	}
	if nonce != "" && tok.Nonce != nonce {
		return Claims{}, time.Time{}, fmt.Errorf("%w: nonce mismatch", ErrInvalidToken)
	}
	var m map[string]any
	if err := tok.Claims(&m); err != nil {
		return Claims{}, time.Time{}, fmt.Errorf("%w: claims: %v", ErrInvalidToken, err)
	}
	if azp, present := m["azp"]; present {
		s, _ := azp.(string)
		if s == "" || (s != o.cfg.ClientID && !slices.Contains(o.audiences, s) && !slices.Contains(audiences, s)) {
			return Claims{}, time.Time{}, fmt.Errorf("%w: authorized party (azp) %q not accepted", ErrInvalidToken, s)
		}
	}
	return o.claimsOf(m), tok.Expiry, nil
}

// Userinfo asks the IdP's userinfo endpoint about an opaque access token.
// A 401 or 403 is ErrInvalidToken; a network failure or 5xx is
// ErrIdPUnavailable.
func (o *OIDC) Userinfo(ctx context.Context, accessToken string) (Claims, error) {
	if _, err := o.getProvider(ctx); err != nil {
		return Claims{}, err
	}
	o.mu.Lock()
	endpoint := o.userinfoURL
	o.mu.Unlock()
	if endpoint == "" {
		return Claims{}, fmt.Errorf("%w: the IdP has no userinfo endpoint for opaque tokens", ErrInvalidToken)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, endpoint, nil)
	if err != nil {
		return Claims{}, err
	}
	req.Header.Set("Authorization", "Bearer "+accessToken)
	resp, err := o.client.Do(req)
	if err != nil {
		return Claims{}, fmt.Errorf("%w: userinfo: %v", ErrIdPUnavailable, err)
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode >= 500:
		return Claims{}, fmt.Errorf("%w: userinfo: status %d", ErrIdPUnavailable, resp.StatusCode)
	case resp.StatusCode != http.StatusOK:
		return Claims{}, fmt.Errorf("%w: userinfo: status %d", ErrInvalidToken, resp.StatusCode)
	}
	var m map[string]any
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&m); err != nil {
		return Claims{}, fmt.Errorf("%w: userinfo: %v", ErrInvalidToken, err)
	}
	c := o.claimsOf(m)
	if c.Subject == "" {
		return Claims{}, fmt.Errorf("%w: userinfo without sub", ErrInvalidToken)
	}
	return c, nil
}

// claimsOf picks the configured claims out of a claim set. A groups claim
// may be a list of strings or a single string; other values are ignored.
func (o *OIDC) claimsOf(m map[string]any) Claims {
	str := func(k string) string {
		s, _ := m[k].(string)
		return s
	}
	// User names and e-mail addresses are folded to lower case, so that
	// "Alice" and "alice" are one user with one root and one key.
	c := Claims{Subject: str("sub"), Username: strings.ToLower(str(o.cfg.UsernameClaim)), Email: strings.ToLower(str("email"))}
	switch v := m["email_verified"].(type) {
	case bool:
		c.EmailVerified = v
	case string:
		c.EmailVerified = v == "true"
	}
	switch g := m[o.cfg.GroupsClaim].(type) {
	case []any:
		for _, x := range g {
			if s, ok := x.(string); ok {
				c.Groups = append(c.Groups, s)
			}
		}
	case string:
		c.Groups = []string{g}
	}
	return c
}

// idpTransport remembers when a request to the IdP last failed (network
// error or 5xx) and last succeeded, so that a failed verification can be
// told apart from an IdP outage, and readiness can report the outage.
type idpTransport struct {
	base     http.RoundTripper
	lastFail atomic.Int64 // unix nanoseconds
	lastOK   atomic.Int64
}

func (t *idpTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := t.base.RoundTrip(r)
	now := time.Now().UnixNano()
	if err != nil || resp.StatusCode >= 500 {
		t.lastFail.Store(now)
	} else {
		t.lastOK.Store(now)
	}
	return resp, err
}

func (t *idpTransport) failing() bool {
	f := t.lastFail.Load()
	return f != 0 && f > t.lastOK.Load()
}

// isJWT reports whether a bearer token looks like a compact JWS (three
// base64url parts); anything else is treated as an opaque token.
func isJWT(tok string) bool {
	return strings.Count(tok, ".") == 2
}

// keySet wraps go-oidc's remote key set to tell, per call, a failed key
// fetch (the IdP is unavailable) from a token that does not verify.
type keySet struct {
	inner *oidc.RemoteKeySet
}

type fetchKey struct{}

// fetchOutcome is set by keySet for the verification that carries it.
type fetchOutcome struct {
	failed atomic.Bool
}

func (k *keySet) VerifySignature(ctx context.Context, jwt string) ([]byte, error) {
	payload, err := k.inner.VerifySignature(ctx, jwt)
	if err != nil && strings.HasPrefix(err.Error(), "fetching keys") {
		// go-oidc's wording for "the JWKS could not be fetched" (network
		// error, non-200 or undecodable answer) of this very call.
		if f, ok := ctx.Value(fetchKey{}).(*fetchOutcome); ok {
			f.failed.Store(true)
		}
	}
	return payload, err
}

// VerifyOpaque checks an opaque access token as configured: at the
// introspection endpoint (active, and issued to this gateway's client or
// for one of its audiences), or, with OpaqueUserinfo, at userinfo only. It
// returns the claims and how long the answer may be trusted (at most
// maxTTL). Errors wrap ErrInvalidToken or ErrIdPUnavailable.
func (o *OIDC) VerifyOpaque(ctx context.Context, tok string, maxTTL time.Duration) (Claims, time.Time, error) {
	if _, err := o.getProvider(ctx); err != nil {
		return Claims{}, time.Time{}, err
	}
	now := o.cfg.Now()
	endpoint, mode := o.IntrospectionEndpoint()
	if endpoint == "" {
		if mode != OpaqueUserinfo {
			return Claims{}, time.Time{}, fmt.Errorf("%w: opaque token refused: the IdP advertises no introspection_endpoint (set auth.oidc.opaque_tokens = %q to check them at userinfo, or use JWT access tokens)", ErrInvalidToken, OpaqueUserinfo)
		}
		c, err := o.Userinfo(ctx, tok)
		return c, now.Add(maxTTL), err
	}
	m, err := o.introspect(ctx, endpoint, tok)
	if err != nil {
		return Claims{}, time.Time{}, err
	}
	if active, _ := m["active"].(bool); !active {
		return Claims{}, time.Time{}, fmt.Errorf("%w: introspection: token not active", ErrInvalidToken)
	}
	allowed := append([]string{o.cfg.ClientID}, o.audiences...)
	cid, _ := m["client_id"].(string)
	ok := cid != "" && slices.Contains(allowed, cid)
	switch aud := m["aud"].(type) {
	case string:
		ok = ok || slices.Contains(allowed, aud)
	case []any:
		for _, a := range aud {
			if s, _ := a.(string); s != "" && slices.Contains(allowed, s) {
				ok = true
			}
		}
	}
	if !ok {
		return Claims{}, time.Time{}, fmt.Errorf("%w: introspection: token of client %q, audience %v: not for this gateway", ErrInvalidToken, cid, m["aud"])
	}
	expires := now.Add(maxTTL)
	if exp, isNum := m["exp"].(float64); isNum {
		e := time.Unix(int64(exp), 0)
		if !now.Before(e) {
			return Claims{}, time.Time{}, fmt.Errorf("%w: introspection: token expired", ErrInvalidToken)
		}
		if e.Before(expires) {
			expires = e
		}
	}
	c := o.claimsOf(m)
	if c.Subject == "" {
		return Claims{}, time.Time{}, fmt.Errorf("%w: introspection without sub", ErrInvalidToken)
	}
	if c.Username == "" && o.userinfoURL != "" {
		// Many IdPs (Hydra among them) answer introspection with sub and
		// client only: the profile claims come from userinfo.
		ui, err := o.Userinfo(ctx, tok)
		if err != nil {
			return Claims{}, time.Time{}, err
		}
		if ui.Subject != c.Subject {
			return Claims{}, time.Time{}, fmt.Errorf("%w: userinfo names another subject than introspection", ErrInvalidToken)
		}
		c = ui
	}
	return c, expires, nil
}

// introspect posts the token to the RFC 7662 endpoint, authenticating as
// this gateway's client (HTTP Basic with a secret, else client_id in the
// form).
func (o *OIDC) introspect(ctx context.Context, endpoint, tok string) (map[string]any, error) {
	form := url.Values{"token": {tok}, "token_type_hint": {"access_token"}}
	if o.cfg.ClientSecret == "" {
		form.Set("client_id", o.cfg.ClientID)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	if o.cfg.ClientSecret != "" {
		req.SetBasicAuth(url.QueryEscape(o.cfg.ClientID), url.QueryEscape(o.cfg.ClientSecret))
	}
	resp, err := o.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w: introspection: %v", ErrIdPUnavailable, err)
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode >= 500:
		return nil, fmt.Errorf("%w: introspection: status %d", ErrIdPUnavailable, resp.StatusCode)
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		// The IdP refused the gateway's own client credentials: nothing is
		// known about the token, and every opaque token will fail alike.
		return nil, fmt.Errorf("%w: introspection refused the gateway's client (status %d): check auth.oidc.client_id and client_secret", ErrIdPUnavailable, resp.StatusCode)
	case resp.StatusCode != http.StatusOK:
		return nil, fmt.Errorf("%w: introspection: status %d", ErrInvalidToken, resp.StatusCode)
	}
	var m map[string]any
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&m); err != nil {
		return nil, fmt.Errorf("%w: introspection: %v", ErrInvalidToken, err)
	}
	return m, nil
}
