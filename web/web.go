// Package web serves davgw's browser pages outside the WebDAV namespace:
// OpenID Connect sign-in at "/" (authorization code flow with PKCE, state
// and nonce), and a page that lists, mints and revokes the user's app
// passwords for WebDAV clients that cannot run a browser flow.
//
// Security notes: the session cookie is random (256 bits), HttpOnly,
// SameSite=Lax, Secure (and __Host- prefixed) under HTTPS; sessions live in
// this process's memory, or in Redis under the SHA-256 of the cookie
// (Options.Shared), never the cookie itself. Every state-changing request
// is a POST checked by net/http.CrossOriginProtection. A new app password
// is shown once in the answer to the POST that minted it (Cache-Control:
// no-store) and never logged. Pages carry a strict Content-Security-Policy,
// no framing and no Referer.
package web

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"errors"
	"html/template"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"golang.org/x/oauth2"

	"github.com/davgw/davgw/auth"
	"github.com/davgw/davgw/gateway"
	"github.com/davgw/davgw/internal/redisstore"
)

//go:embed templates/*.html static/*
var files embed.FS

var pageTmpl = template.Must(template.ParseFS(files, "templates/page.html"))

// Defaults.
const (
	DefaultSessionTTL = 8 * time.Hour
	loginTTL          = 10 * time.Minute
	maxSessions       = 10000
	// DefaultLoginRate is how many sign-ins (/login) one client address
	// (an IPv6 /64) may start per minute.
	DefaultLoginRate = 20
)

// Options configure a Handler.
type Options struct {
	// OIDC is the identity provider; Mapper turns its claims into a
	// Principal (so a user whose claims are refused cannot sign in here
	// either).
	OIDC   *auth.OIDC
	Mapper *auth.Mapper
	// AppPasswords, when set, lets users mint and revoke app passwords;
	// each sign-in refreshes the claims of the user's app passwords.
	AppPasswords *auth.AppPasswords
	// Identities, when set, binds the user name to the {iss, sub} of the
	// first sign-in and refuses other subjects under that name.
	Identities *auth.Identities
	// LoginRate is how many sign-ins one client address may start per
	// minute (0 = DefaultLoginRate).
	LoginRate int
	// PendingPerAddress and MaxPending bound the sign-ins in progress
	// (begun at /login, not yet back): per client address (an IPv6 /64;
	// one more answers 429) and in all (one more answers 503); 0 =
	// DefaultPendingPerAddress, DefaultMaxPending. A sign-in in progress
	// is never evicted to make room.
	PendingPerAddress, MaxPending int
	// PublicURL is how browsers reach the gateway ("https://dav.example.com");
	// the redirect URL is PublicURL + "/callback".
	PublicURL string
	// DAVPrefix is the WebDAV namespace (gateway.DefaultDAVPrefix when
	// ""), shown in the instructions.
	DAVPrefix string
	// Logger receives the audit lines; nil = slog.Default().
	Logger *slog.Logger
	// SessionTTL is how long a browser session lasts (DefaultSessionTTL).
	SessionTTL time.Duration
	// Shared, when set, keeps sessions, sign-ins in progress and the
	// /login rate in Redis, shared with every gateway whose client has the
	// same scope (bucket and prefix); nil = this process's memory. While Redis is down the pages
	// answer 503 with Retry-After.
	Shared *redisstore.Client
}

// Handler serves the pages.
type Handler struct {
	opts     Options
	pub      *url.URL
	secure   bool
	cookie   string
	log      *slog.Logger
	handler  http.Handler
	logins   *auth.Limiter // /login per client address
	sessions sessionStore  // by SHA-256 of the cookie value
	pending  pendingStore
}

var _ http.Handler = (*Handler)(nil)

// New checks opts and returns a Handler.
func New(opts Options) (*Handler, error) {
	if opts.OIDC == nil || opts.Mapper == nil {
		return nil, errors.New("web: OIDC and Mapper are required")
	}
	pub, err := url.Parse(strings.TrimSuffix(opts.PublicURL, "/"))
	if err != nil || (pub.Scheme != "http" && pub.Scheme != "https") || pub.Host == "" {
		return nil, errors.New("web: PublicURL must be an absolute http(s) URL")
	}
	if opts.DAVPrefix == "" {
		opts.DAVPrefix = gateway.DefaultDAVPrefix
	}
	if opts.SessionTTL <= 0 {
		opts.SessionTTL = DefaultSessionTTL
	}
	if opts.LoginRate <= 0 {
		opts.LoginRate = DefaultLoginRate
	}
	h := &Handler{
		opts:     opts,
		pub:      pub,
		secure:   pub.Scheme == "https",
		cookie:   "davgw_session",
		log:      opts.Logger,
		sessions: newMemSessions(),
		pending:  &memPending{t: newPendingSignIns(opts.PendingPerAddress, opts.MaxPending)},
		logins:   auth.NewLimiter(1, opts.LoginRate, time.Minute),
	}
	if opts.Shared != nil {
		h.sessions = newRedisSessions(opts.Shared)
		h.pending = newRedisPending(opts.Shared, opts.PendingPerAddress, opts.MaxPending)
		h.logins.SharedIn(opts.Shared, "logins")
	}
	if h.secure {
		h.cookie = "__Host-davgw_session"
	}
	if h.log == nil {
		h.log = slog.Default()
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", h.home)
	mux.HandleFunc("GET /login", h.login)
	mux.HandleFunc("GET /callback", h.callback)
	mux.HandleFunc("POST /logout", h.logout)
	mux.HandleFunc("POST /app-passwords", h.mint)
	mux.HandleFunc("POST /app-passwords/revoke", h.revoke)
	mux.Handle("GET /static/", http.FileServerFS(files))
	h.handler = http.NewCrossOriginProtection().Handler(mux)
	return h, nil
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hd := w.Header()
	hd.Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	hd.Set("X-Frame-Options", "DENY")
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Referrer-Policy", "no-referrer")
	if !strings.HasPrefix(r.URL.Path, "/static/") {
		hd.Set("Cache-Control", "no-store")
	}
	h.handler.ServeHTTP(w, r)
}

// pageData is what templates/page.html shows.
type pageData struct {
	Signed    bool
	User      string
	Root      string
	ReadOnly  bool
	AppPass   bool
	List      []auth.AppPassword
	NewSecret string
	NewName   string
	MaxAge    string // "" = app passwords never expire
	Now       time.Time
	DAVURL    string
	WinPath   string
	Error     string
}

func (h *Handler) render(w http.ResponseWriter, status int, d pageData) {
	d.DAVURL = h.pub.String() + h.opts.DAVPrefix
	d.Now = time.Now()
	host := h.pub.Host
	ssl := ""
	if h.secure {
		ssl = "@SSL"
	}
	d.WinPath = `\\` + strings.ReplaceAll(host, ":", "@") + ssl + strings.ReplaceAll(strings.TrimSuffix(h.opts.DAVPrefix, "/"), "/", `\`)
	if h.secure && strings.Contains(host, ":") {
		// \\host@SSL@port\dav is Windows' spelling with a port.
		name, port, _ := strings.Cut(host, ":")
		d.WinPath = `\\` + name + "@SSL@" + port + strings.ReplaceAll(strings.TrimSuffix(h.opts.DAVPrefix, "/"), "/", `\`)
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	if err := pageTmpl.Execute(w, d); err != nil {
		h.log.Warn("web: render", "err", err)
	}
}

func (h *Handler) home(w http.ResponseWriter, r *http.Request) {
	s, err := h.session(r)
	if err != nil {
		h.unavailable(w, err)
		return
	}
	if s == nil {
		h.render(w, http.StatusOK, pageData{})
		return
	}
	h.renderSigned(w, r, s, http.StatusOK, "", "", "")
}

// renderSigned shows the signed-in page; secret (shown once) and errMsg
// may be "".
func (h *Handler) renderSigned(w http.ResponseWriter, r *http.Request, s *session, status int, secret, name, errMsg string) {
	d := pageData{Signed: true, User: s.P.Username, Root: s.P.Root, ReadOnly: s.P.ReadOnly, NewSecret: secret, NewName: name, Error: errMsg}
	if h.opts.AppPasswords != nil {
		d.AppPass = true
		d.MaxAge = humanAge(h.opts.AppPasswords.MaxAge())
		list, err := h.opts.AppPasswords.List(r.Context(), s.P.Username)
		if err != nil {
			h.log.Error("web: list app passwords", "user", s.P.Username, "err", err)
			d.Error = "Your app passwords cannot be listed right now; try again shortly."
			status = http.StatusServiceUnavailable
		}
		d.List = list
	}
	h.render(w, status, d)
}

// login starts the authorization code flow with PKCE (S256), state and
// nonce. The state is also set in a short-lived cookie, which binds the
// callback to this browser.
func (h *Handler) login(w http.ResponseWriter, r *http.Request) {
	addr := peer(r)
	var lim *auth.RateLimitError
	if err := h.logins.Check("", addr); errors.As(err, &lim) {
		h.log.Warn("audit: sign-in refused", "method", "browser", "addr", addr, "reason", "too many sign-ins started")
		w.Header().Set("Retry-After", strconv.Itoa(int(lim.RetryAfter.Seconds())+1))
		h.render(w, http.StatusTooManyRequests, pageData{Error: "Too many sign-ins from your address. Please wait a minute."})
		return
	} else if err != nil {
		h.unavailable(w, err)
		return
	}
	if err := h.logins.Fail("", addr); err != nil { // counts every start, not only failures
		h.unavailable(w, err)
		return
	}
	cfg, err := h.opts.OIDC.OAuth2Config(r.Context(), h.pub.String()+"/callback")
	if err == nil {
		// Do not send the browser to an IdP that is known to be down.
		err = h.opts.OIDC.Ready()
	}
	if err != nil {
		h.log.Error("web: sign-in: identity provider unavailable", "err", err)
		h.render(w, http.StatusServiceUnavailable, pageData{Error: "The identity provider cannot be reached right now. Please try again in a minute."})
		return
	}
	state, nonce, verifier := randomToken(), randomToken(), oauth2.GenerateVerifier()
	now := time.Now()
	retry, err := h.pending.add(r.Context(), now, addr, state, &pending{nonce: nonce, verifier: verifier, expires: now.Add(loginTTL)})
	if err != nil && !errors.Is(err, errPendingPerAddress) && !errors.Is(err, errPendingFull) {
		h.unavailable(w, err)
		return
	}
	if err != nil {
		status := http.StatusServiceUnavailable
		if errors.Is(err, errPendingPerAddress) {
			status = http.StatusTooManyRequests
		}
		h.log.Warn("audit: sign-in refused", "method", "browser", "addr", addr, "reason", err.Error())
		w.Header().Set("Retry-After", strconv.Itoa(int((retry+time.Second-1)/time.Second)))
		h.render(w, status, pageData{Error: "Too many sign-ins are in progress right now. Please try again in a few minutes."})
		return
	}
	http.SetCookie(w, &http.Cookie{
		Name: "davgw_login", Value: state, Path: "/callback", MaxAge: int(loginTTL / time.Second),
		HttpOnly: true, Secure: h.secure, SameSite: http.SameSiteLaxMode,
	})
	u := cfg.AuthCodeURL(state, oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("nonce", nonce))
	http.Redirect(w, r, u, http.StatusFound)
}

func (h *Handler) callback(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	state := q.Get("state")
	c, cerr := r.Cookie("davgw_login")
	http.SetCookie(w, &http.Cookie{Name: "davgw_login", Path: "/callback", MaxAge: -1, HttpOnly: true, Secure: h.secure, SameSite: http.SameSiteLaxMode})
	var p *pending
	if state != "" {
		var err error
		if p, err = h.pending.take(r.Context(), time.Now(), state); err != nil {
			h.unavailable(w, err)
			return
		}
	}
	fail := func(status int, reason, msg string) {
		h.log.Warn("audit: sign-in refused", "method", "browser", "addr", peer(r), "reason", reason)
		h.render(w, status, pageData{Error: msg})
	}
	switch {
	case q.Get("error") != "":
		fail(http.StatusUnauthorized, "identity provider: "+q.Get("error"), "The identity provider did not sign you in.")
		return
	case cerr != nil || state == "" || c.Value != state || p == nil:
		fail(http.StatusBadRequest, "bad or expired state", "This sign-in link expired or was opened in another browser. Please sign in again.")
		return
	}
	cfg, err := h.opts.OIDC.OAuth2Config(r.Context(), h.pub.String()+"/callback")
	if err != nil {
		h.render(w, http.StatusServiceUnavailable, pageData{Error: "The identity provider cannot be reached right now. Please try again in a minute."})
		return
	}
	ctx := context.WithValue(r.Context(), oauth2.HTTPClient, h.opts.OIDC.Client())
	tok, err := cfg.Exchange(ctx, q.Get("code"), oauth2.VerifierOption(p.verifier))
	if err != nil {
		var re *oauth2.RetrieveError
		if errors.As(err, &re) && re.Response != nil && re.Response.StatusCode < 500 {
			fail(http.StatusUnauthorized, "code exchange refused", "The identity provider refused the sign-in. Please try again.")
			return
		}
		h.log.Error("web: code exchange", "err", err)
		h.render(w, http.StatusServiceUnavailable, pageData{Error: "The identity provider cannot be reached right now. Please try again in a minute."})
		return
	}
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		fail(http.StatusUnauthorized, "no id_token", "The identity provider sent no ID token.")
		return
	}
	claims, _, err := h.opts.OIDC.VerifyJWT(r.Context(), raw, []string{cfg.ClientID}, p.nonce)
	if errors.Is(err, auth.ErrIdPUnavailable) {
		h.render(w, http.StatusServiceUnavailable, pageData{Error: "The identity provider cannot be reached right now. Please try again in a minute."})
		return
	}
	if err != nil {
		fail(http.StatusUnauthorized, err.Error(), "The ID token was not valid.")
		return
	}
	if claims.Username == "" && tok.AccessToken != "" {
		// Some IdPs put profile claims only in userinfo.
		if ui, err := h.opts.OIDC.Userinfo(r.Context(), tok.AccessToken); err == nil && ui.Subject == claims.Subject {
			claims.Username, claims.Email, claims.EmailVerified, claims.Groups = ui.Username, ui.Email, ui.EmailVerified, ui.Groups
		}
	}
	pr, err := h.opts.Mapper.Principal(claims)
	if err != nil {
		fail(http.StatusUnauthorized, err.Error(), "Your account cannot be mapped to a folder (its user name is empty, has characters that are not allowed, is reserved, or uses an unverified e-mail address). Ask your administrator.")
		return
	}
	if h.opts.Identities != nil {
		err := h.opts.Identities.Check(r.Context(), claims)
		if errors.Is(err, auth.ErrIdentityMismatch) {
			fail(http.StatusUnauthorized, err.Error(), "Your user name belongs to another account. Ask your administrator.")
			return
		}
		if err != nil {
			h.log.Error("web: identity binding", "user", pr.Username, "err", err)
			h.render(w, http.StatusServiceUnavailable, pageData{Error: "Sign-in is not possible right now; try again shortly."})
			return
		}
	}
	claims.Username = pr.Username
	if h.opts.AppPasswords != nil {
		// The user's app passwords map with these claims from now on.
		if err := h.opts.AppPasswords.RefreshClaims(r.Context(), claims); err != nil {
			h.log.Warn("web: refresh the claims of the app passwords", "user", pr.Username, "err", err)
		}
	}
	id := randomToken()
	s := &session{Claims: claims, P: pr, Expires: time.Now().Add(h.opts.SessionTTL)}
	if err := h.sessions.put(r.Context(), sessionKey(id), s); err != nil {
		h.unavailable(w, err)
		return
	}
	http.SetCookie(w, &http.Cookie{
		Name: h.cookie, Value: id, Path: "/", MaxAge: int(h.opts.SessionTTL / time.Second),
		HttpOnly: true, Secure: h.secure, SameSite: http.SameSiteLaxMode,
	})
	h.log.Info("audit: sign-in", "method", "browser", "user", pr.Username, "root", pr.Root, "read_only", pr.ReadOnly, "addr", peer(r))
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

func (h *Handler) mint(w http.ResponseWriter, r *http.Request) {
	s, err := h.session(r)
	if err != nil {
		h.unavailable(w, err)
		return
	}
	if s == nil {
		http.Redirect(w, r, "/", http.StatusSeeOther)
		return
	}
	if h.opts.AppPasswords == nil {
		http.Error(w, "app passwords are turned off", http.StatusNotFound)
		return
	}
	name := r.PostFormValue("name")
	secret, p, err := h.opts.AppPasswords.Mint(r.Context(), s.Claims, name)
	if err != nil {
		h.log.Warn("web: mint app password", "user", s.P.Username, "err", err)
		msg, status := "The app password could not be created; try again shortly.", http.StatusServiceUnavailable
		if errors.Is(err, auth.ErrTooManyAppPasswords) {
			msg, status = "You have too many app passwords: revoke one first.", http.StatusConflict
		} else if errors.Is(err, auth.ErrAppPasswordName) {
			msg, status = "The name must be up to 64 printable characters.", http.StatusBadRequest
		}
		h.renderSigned(w, r, s, status, "", "", msg)
		return
	}
	h.log.Info("audit: app password created", "user", s.P.Username, "id", p.ID, "name", p.Name, "addr", peer(r))
	h.renderSigned(w, r, s, http.StatusOK, secret, p.Name, "")
}

func (h *Handler) revoke(w http.ResponseWriter, r *http.Request) {
	s, err := h.session(r)
	if err != nil {
		h.unavailable(w, err)
		return
	}
	if s == nil {
		http.Redirect(w, r, "/", http.StatusSeeOther)
		return
	}
	if h.opts.AppPasswords == nil {
		http.Error(w, "app passwords are turned off", http.StatusNotFound)
		return
	}
	id := r.PostFormValue("id")
	if err := h.opts.AppPasswords.Revoke(r.Context(), s.P.Username, id); err != nil {
		h.log.Warn("web: revoke app password", "user", s.P.Username, "err", err)
		h.renderSigned(w, r, s, http.StatusServiceUnavailable, "", "", "The app password could not be revoked; try again shortly.")
		return
	}
	h.log.Info("audit: app password revoked", "user", s.P.Username, "id", id, "addr", peer(r))
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

func (h *Handler) logout(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{Name: h.cookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, Secure: h.secure, SameSite: http.SameSiteLaxMode})
	if c, err := r.Cookie(h.cookie); err == nil {
		s, err := h.sessions.remove(r.Context(), sessionKey(c.Value))
		if err != nil {
			// The cookie is gone from this browser; the session itself
			// lives on in Redis until it expires.
			h.unavailable(w, err)
			return
		}
		if s != nil {
			h.log.Info("audit: sign-out", "user", s.P.Username, "addr", peer(r))
		}
	}
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

// session returns the request's live session, nil if none; an error is
// an outage of the shared store.
func (h *Handler) session(r *http.Request) (*session, error) {
	c, err := r.Cookie(h.cookie)
	if err != nil || c.Value == "" {
		return nil, nil
	}
	return h.sessions.get(r.Context(), sessionKey(c.Value))
}

// storeRetry is the Retry-After of a page while the shared store is down.
const storeRetry = 5 * time.Second

// unavailable answers 503 for an outage of the shared store (Redis).
func (h *Handler) unavailable(w http.ResponseWriter, err error) {
	h.log.Error("web: the shared store is unavailable", "err", err)
	w.Header().Set("Retry-After", strconv.Itoa(int(storeRetry/time.Second)))
	h.render(w, http.StatusServiceUnavailable, pageData{Error: "Sign-in is not possible right now; please try again in a minute."})
}

// evict makes room in a full map: every expired entry goes, and only if
// none has expired the one that expires first (the oldest), so that a
// flood cannot push out live entries while expired ones remain.
func evict[V any](m map[string]V, limit int, now time.Time, expires func(V) time.Time) {
	oldest, first := "", time.Time{}
	for k, v := range m {
		e := expires(v)
		if now.After(e) {
			delete(m, k)
			continue
		}
		if oldest == "" || e.Before(first) {
			oldest, first = k, e
		}
	}
	if len(m) >= limit && oldest != "" {
		delete(m, oldest)
	}
}

// humanAge shows a maximum age in days or hours ("" for 0 = never).
func humanAge(d time.Duration) string {
	switch {
	case d <= 0:
		return ""
	case d%(24*time.Hour) == 0:
		if n := d / (24 * time.Hour); n != 1 {
			return strconv.Itoa(int(n)) + " days"
		}
		return "1 day"
	default:
		return d.String()
	}
}

// sessionKey is the map key of a session cookie value: its SHA-256, so the
// map never holds the cookie itself.
func sessionKey(v string) string {
	sum := sha256.Sum256([]byte(v))
	return string(sum[:])
}

// randomToken is 32 random bytes, base64url.
func randomToken() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// peer is the client address the gateway decided (TrustedProxies.ClientAddr)
// and left in RemoteAddr.
func peer(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}
