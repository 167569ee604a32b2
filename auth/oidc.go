package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
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
	// name and the groups ("preferred_username", "groups" by default).
	UsernameClaim string
	GroupsClaim   string
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

	mu          sync.Mutex
	provider    *oidc.Provider
	userinfoURL string
	tokenAuth   []string // token_endpoint_auth_methods_supported
	jwksURL     string
	lastTry     time.Time
	lastErr     error
}

// NewOIDC checks cfg and returns an OIDC. It does not contact the IdP; ctx
// only carries values (go-oidc keeps it for background key fetches) and its
// cancellation is ignored.
func NewOIDC(ctx context.Context, cfg OIDCConfig) (*OIDC, error) {
	if cfg.Issuer == "" || cfg.ClientID == "" {
		return nil, errors.New("auth: OIDC needs an issuer and a client id")
	}
	if cfg.UsernameClaim == "" {
		cfg.UsernameClaim = "preferred_username"
	}
	if cfg.GroupsClaim == "" {
		cfg.GroupsClaim = "groups"
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
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
		Userinfo  string   `json:"userinfo_endpoint"`
		JWKS      string   `json:"jwks_uri"`
		Auth      string   `json:"authorization_endpoint"`
		Token     string   `json:"token_endpoint"`
		Algs      []string `json:"id_token_signing_alg_values_supported"`
		TokenAuth []string `json:"token_endpoint_auth_methods_supported"`
	}
	if err := p.Claims(&doc); err != nil {
		o.lastErr = fmt.Errorf("%w: discovery document: %v", ErrIdPUnavailable, err)
		return nil, o.lastErr
	}
	pc := &oidc.ProviderConfig{
		IssuerURL:   o.cfg.Issuer,
		AuthURL:     doc.Auth,
		TokenURL:    doc.Token,
		UserInfoURL: doc.Userinfo,
		JWKSURL:     doc.JWKS,
		Algorithms:  doc.Algs,
	}
	o.provider = pc.NewProvider(o.ctx)
	o.userinfoURL = doc.Userinfo
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

// VerifyJWT checks a JWT for signature, issuer, expiry and audience: aud
// must contain one of audiences (nil = the configured Bearer audiences).
// When nonce is not "", the token's nonce must equal it. It returns the
// claims and the expiry. Errors wrap ErrInvalidToken or ErrIdPUnavailable.
func (o *OIDC) VerifyJWT(ctx context.Context, raw string, audiences []string, nonce string) (Claims, time.Time, error) {
	p, err := o.getProvider(ctx)
	if err != nil {
		return Claims{}, time.Time{}, err
	}
	if audiences == nil {
		audiences = o.audiences
	}
	since := time.Now()
	v := p.Verifier(&oidc.Config{SkipClientIDCheck: true, Now: o.cfg.Now})
	tok, err := v.Verify(ctx, raw)
	if err != nil {
		if o.track.failedSince(since) {
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
	c := Claims{Subject: str("sub"), Username: str(o.cfg.UsernameClaim), Email: str("email")}
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

func (t *idpTransport) failedSince(since time.Time) bool {
	return t.lastFail.Load() >= since.UnixNano()
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
