package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"time"

	"github.com/davgw/davgw/auth"
	"github.com/davgw/davgw/config"
	"github.com/davgw/davgw/internal/redisstore"
	"github.com/davgw/davgw/s3vfs"
	"github.com/davgw/davgw/web"
)

// oidcStartupWait bounds the discovery attempt at start-up; a failure
// there is logged and retried on demand (the gateway starts anyway, serves
// static users and cached sessions, and /readyz reports the IdP).
const oidcStartupWait = 5 * time.Second

// signIn is what [auth.oidc] adds to the gateway.
type signIn struct {
	auth   auth.Authenticator
	web    http.Handler
	ready  func() error
	mapper *auth.Mapper // nil without OIDC
	static bool         // the static users sign in through auth
}

// buildSignIn assembles the authenticator from the static users and, when
// [auth.oidc].issuer is set, OIDC Bearer tokens, app passwords and the
// sign-in pages.
// With shared (Redis) the failure limits, sessions, sign-ins in progress
// and app-password changes are shared with the other gateways.
func buildSignIn(ctx context.Context, cfg *config.Config, store *s3vfs.Store, static *auth.Static, shared *redisstore.Client, log *slog.Logger) (*signIn, error) {
	o := cfg.Auth.OIDC
	limiter := auth.NewLimiter(0, 0, 0)
	if shared != nil {
		limiter.SharedIn(shared, "failures")
	}
	if o.Issuer == "" {
		// Static users only, still with the failed-attempt limits.
		return &signIn{auth: auth.NewChain(auth.ChainConfig{Static: static, Limiter: limiter, Audit: log}), static: true}, nil
	}
	oc, err := auth.NewOIDC(ctx, auth.OIDCConfig{
		Issuer:        o.Issuer,
		ClientID:      o.ClientID,
		ClientSecret:  o.ClientSecret,
		Audiences:     o.Audiences,
		UsernameClaim: o.UsernameClaim,
		GroupsClaim:   o.GroupsClaim,
		OpaqueTokens:  o.OpaqueTokens,
	})
	if err != nil {
		return nil, err
	}
	mapper, err := auth.NewMapper(cfg.Auth.Root, o.UsernameClaim, authRules(cfg))
	if err != nil {
		return nil, err
	}
	// An IdP account never gets a static user's name (ignoring case).
	mapper.ReserveNames(userNames(cfg))
	st, ids, err := signInStores(cfg, store)
	if err != nil {
		return nil, err
	}
	identities := auth.NewIdentities(ids, o.Issuer)
	var ap *auth.AppPasswords
	if o.AppPasswords == nil || *o.AppPasswords {
		ap = auth.NewAppPasswords(st, 0)
		ap.SetMaxAge(cfg.AppPasswordMaxAge())
		if shared != nil {
			ap.SharedIn(shared)
		}
	}
	cc := auth.ChainConfig{OIDC: oc, Mapper: mapper, AppPasswords: ap, Identities: identities, Limiter: limiter, Audit: log}
	if o.PasswordGrant {
		if cc.PasswordGrant, err = auth.NewPasswordGrant(oc, 0); err != nil {
			return nil, err
		}
	}
	if len(cfg.Auth.Users) > 0 {
		cc.Static = static
	}
	chain := auth.NewChain(cc)
	pages, err := web.New(web.Options{
		OIDC: oc, Mapper: mapper, AppPasswords: ap, Identities: identities,
		PublicURL: cfg.Server.PublicURL, DAVPrefix: cfg.Server.DAVPrefix, Logger: log,
		PendingPerAddress: cfg.Limits.PendingSignInsPerAddress, MaxPending: cfg.Limits.PendingSignIns,
		Shared: shared,
	})
	if err != nil {
		return nil, err
	}
	dctx, cancel := context.WithTimeout(ctx, oidcStartupWait)
	defer cancel()
	if err := oc.Discover(dctx); err != nil {
		log.Warn("OIDC: identity provider not reachable yet; Bearer and browser sign-in answer 503 until it is", "issuer", o.Issuer, "err", err)
	} else {
		log.Info("OIDC", "issuer", o.Issuer, "app_passwords", ap != nil, "app_password_max_age", cfg.AppPasswordMaxAge().String(), "password_grant", o.PasswordGrant, "sign_in", strings.TrimSuffix(cfg.Server.PublicURL, "/")+"/")
		logOpaqueTokens(oc, log)
	}
	return &signIn{auth: chain, web: pages, ready: oc.Ready, mapper: mapper, static: cc.Static != nil}, nil
}

// logOpaqueTokens says at start-up how opaque Bearer tokens will be checked,
// loudly when they will all be refused.
func logOpaqueTokens(oc *auth.OIDC, log *slog.Logger) {
	endpoint, mode := oc.IntrospectionEndpoint()
	switch {
	case endpoint != "" && mode == auth.OpaqueIntrospect:
		log.Info("OIDC: opaque Bearer tokens are checked at the introspection endpoint", "endpoint", endpoint)
	case endpoint != "":
		log.Info("OIDC: opaque Bearer tokens are checked at the introspection endpoint (opaque_tokens = \"userinfo\" only applies without one)", "endpoint", endpoint)
	case mode == auth.OpaqueUserinfo:
		log.Warn("OIDC: the IdP advertises no introspection_endpoint: opaque Bearer tokens are checked at userinfo only, which accepts tokens issued to any client (auth.oidc.opaque_tokens = \"userinfo\")")
	default:
		log.Warn("OIDC: the IdP advertises no introspection_endpoint: opaque (non-JWT) Bearer tokens will be REFUSED; use JWT access tokens, or set auth.oidc.opaque_tokens = \"userinfo\" to accept any token the userinfo endpoint accepts")
	}
}

// signInStores opens the configured app-password store and the store of
// identity bindings next to it: in the bucket under <prefix>.davgw/, or
// for "local:DIR" in DIR/ and DIR/.identities/.
func signInStores(cfg *config.Config, store *s3vfs.Store) (auth.AppPasswordStore, auth.IdentityStore, error) {
	if dir, ok := strings.CutPrefix(cfg.Auth.OIDC.AppPasswordStore, "local:"); ok {
		fs, err := auth.NewFileAppPasswords(dir)
		if err != nil {
			return nil, nil, fmt.Errorf("app password store: %w", err)
		}
		ids, err := auth.NewFileIdentities(filepath.Join(dir, ".identities"))
		if err != nil {
			return nil, nil, fmt.Errorf("identity store: %w", err)
		}
		return fs, ids, nil
	}
	return auth.NewBucketAppPasswords(store, cfg.Prefix()), auth.NewBucketIdentities(store, cfg.Prefix()), nil
}

// probeOIDC is `davgw check`'s OIDC part: discovery, then one JWKS fetch.
func probeOIDC(ctx context.Context, c *checker, cfg *config.Config) {
	o := cfg.Auth.OIDC
	oc, err := auth.NewOIDC(ctx, auth.OIDCConfig{Issuer: o.Issuer, ClientID: o.ClientID})
	if err != nil {
		c.fail("OIDC", err, "set auth.oidc.issuer and client_id")
		return
	}
	cctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if err := oc.Discover(cctx); err != nil {
		c.fail("OIDC discovery at "+o.Issuer, err, "check auth.oidc.issuer: it must equal the \"issuer\" of "+strings.TrimSuffix(o.Issuer, "/")+"/.well-known/openid-configuration, and the IdP must be reachable from here")
		return
	}
	c.pass("OIDC discovery at %s", o.Issuer)
	if err := oc.CheckKeys(cctx); err != nil {
		c.fail("OIDC signing keys (JWKS)", err, "the IdP's jwks_uri must be reachable and list at least one key")
		return
	}
	c.pass("OIDC signing keys (JWKS) fetched")
}
