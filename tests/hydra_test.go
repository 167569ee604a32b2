package tests

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strconv"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/davgw/davgw/auth"
)

// hydraVersion is pinned in .ci/tools.sh too.
const hydraVersion = "v2.3.0"

// hydra is a running ORY Hydra (a real OpenID Connect provider) with a
// login and consent app that signs in whoever it is told to, through
// Hydra's admin API.
type hydra struct {
	issuer string // as Hydra's discovery document spells it
	admin  string // http://127.0.0.1:ADMIN
	user   struct {
		name   string
		groups []string
	}
}

// startHydra starts `hydra serve all --dev` on free ports with an
// in-memory database; it stops with the test.
func startHydra(t *testing.T) *hydra {
	t.Helper()
	bin, err := toolPath("DAVGW_HYDRA", "hydra", hydraVersion)
	requireTool(t, err)
	h := &hydra{}
	h.user.name = "alice"
	app := httptest.NewServer(http.HandlerFunc(h.loginConsent))
	t.Cleanup(app.Close)
	ports, err := freePorts(2)
	if err != nil {
		t.Fatal(err)
	}
	pub := "http://127.0.0.1:" + strconv.Itoa(ports[0])
	h.admin = "http://127.0.0.1:" + strconv.Itoa(ports[1])
	p, err := startProcess("hydra", t.TempDir(), bin, []string{
		"DSN=memory", "SECRETS_SYSTEM=davgw-test-system-secret-" + randHex(16),
		"URLS_SELF_ISSUER=" + pub + "/", "URLS_LOGIN=" + app.URL + "/login", "URLS_CONSENT=" + app.URL + "/consent",
		"SERVE_PUBLIC_HOST=127.0.0.1", "SERVE_ADMIN_HOST=127.0.0.1",
		"SERVE_PUBLIC_PORT=" + strconv.Itoa(ports[0]), "SERVE_ADMIN_PORT=" + strconv.Itoa(ports[1]),
		"LOG_LEVEL=warn",
	}, "serve", "all", "--dev", "--sqa-opt-out")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.stop(5 * time.Second) })
	if err := waitHTTP(context.Background(), p, h.admin+"/health/ready", 60*time.Second); err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Issuer string `json:"issuer"`
	}
	if err := getJSON(pub+"/.well-known/openid-configuration", &doc); err != nil {
		t.Fatalf("hydra discovery: %v\n%s", err, p.log.String())
	}
	h.issuer = doc.Issuer
	return h
}

// loginConsent is the IdP's login and consent UI: it accepts both at once
// for h.user through the admin API and sends the browser on.
func (h *hydra) loginConsent(w http.ResponseWriter, r *http.Request) {
	var redirect string
	var err error
	switch r.URL.Path {
	case "/login":
		ch := r.URL.Query().Get("login_challenge")
		redirect, err = h.accept("login", ch, map[string]any{"subject": "sub-" + h.user.name})
	case "/consent":
		ch := r.URL.Query().Get("consent_challenge")
		var req struct {
			Scope    []string `json:"requested_scope"`
			Audience []string `json:"requested_access_token_audience"`
		}
		if err = getJSON(h.admin+"/admin/oauth2/auth/requests/consent?consent_challenge="+url.QueryEscape(ch), &req); err == nil {
			claims := map[string]any{"preferred_username": h.user.name, "email": h.user.name + "@example.com", "groups": h.user.groups}
			redirect, err = h.accept("consent", ch, map[string]any{
				"grant_scope": req.Scope, "grant_access_token_audience": req.Audience,
				"session": map[string]any{"id_token": claims},
			})
		}
	default:
		http.NotFound(w, r)
		return
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	http.Redirect(w, r, redirect, http.StatusFound)
}

func (h *hydra) accept(kind, challenge string, body map[string]any) (string, error) {
	data, _ := json.Marshal(body)
	u := fmt.Sprintf("%s/admin/oauth2/auth/requests/%s/accept?%s_challenge=%s", h.admin, kind, kind, url.QueryEscape(challenge))
	req, _ := http.NewRequest(http.MethodPut, u, bytes.NewReader(data))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var out struct {
		RedirectTo string `json:"redirect_to"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || out.RedirectTo == "" {
		return "", fmt.Errorf("accept %s: status %d", kind, resp.StatusCode)
	}
	return out.RedirectTo, nil
}

// client registers an OAuth client with the given redirect URIs.
func (h *hydra) client(t *testing.T, redirects ...string) (id, secret string) {
	t.Helper()
	data, _ := json.Marshal(map[string]any{
		"client_name": "davgw-test", "redirect_uris": redirects,
		"grant_types": []string{"authorization_code", "refresh_token"}, "response_types": []string{"code", "id_token"},
		"scope": "openid profile email groups offline_access", "token_endpoint_auth_method": "client_secret_basic",
	})
	resp, err := http.Post(h.admin+"/admin/clients", "application/json", bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		ID     string `json:"client_id"`
		Secret string `json:"client_secret"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || out.ID == "" {
		t.Fatalf("create client: status %d, %v", resp.StatusCode, err)
	}
	return out.ID, out.Secret
}

func getJSON(u string, v any) error {
	resp, err := http.Get(u)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("GET %s: %d %.200s", u, resp.StatusCode, b)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

// hydraTokens runs the code flow for a test-side OAuth client (redirect to
// a local catcher) and returns Hydra's access token (opaque) and ID token.
func hydraTokens(t *testing.T, h *hydra, cfg *oauth2.Config, catcher string) (access, idToken string) {
	t.Helper()
	verifier := oauth2.GenerateVerifier()
	state := randHex(16)
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, CheckRedirect: func(r *http.Request, _ []*http.Request) error {
		if r.URL.String()[:len(catcher)] == catcher {
			return http.ErrUseLastResponse
		}
		return nil
	}}
	resp, err := c.Get(cfg.AuthCodeURL(state, oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("nonce", randHex(16))))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, _ := url.Parse(resp.Header.Get("Location"))
	if loc == nil || loc.Query().Get("state") != state || loc.Query().Get("code") == "" {
		t.Fatalf("code flow ended with %d at %v", resp.StatusCode, loc)
	}
	tok, err := cfg.Exchange(context.Background(), loc.Query().Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("exchange: %v", err)
	}
	idt, _ := tok.Extra("id_token").(string)
	return tok.AccessToken, idt
}

func TestHydraSignInAndBearerTokens(t *testing.T) {
	b := getBackend(t, "versitygw")
	h := startHydra(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gwURL := "http://" + ln.Addr().String()
	catcher := httptest.NewServer(http.NotFoundHandler())
	t.Cleanup(catcher.Close)
	id, secret := h.client(t, gwURL+"/callback", catcher.URL+"/cb")
	// Hydra serves token introspection on its ADMIN port only and does not
	// advertise it in the public discovery document, so its opaque access
	// tokens are checked at userinfo: opaque_tokens = "userinfo", set
	// explicitly (the default, "introspect", would refuse them).
	e := newSignInEnv(t, b, signInOptions{issuer: h.issuer, clientID: id, clientSecret: secret, listener: ln, opaqueTokens: auth.OpaqueUserinfo})
	dir := "hydra-" + randHex(4)

	t.Run("a browser-style sign-in through Hydra lands on the app-password page", func(t *testing.T) {
		c := browserSignIn(t, e.URL)
		pw, _ := mintAppPassword(t, c, e.URL, "rclone")
		expect(t, "MKCOL with the app password", e.call(t, "MKCOL", "/dav/"+dir+"/", basicOf("alice", pw), nil, ""), http.StatusCreated)
	})
	cfg := &oauth2.Config{ClientID: id, ClientSecret: secret, RedirectURL: catcher.URL + "/cb",
		Endpoint: oauth2.Endpoint{AuthURL: h.issuer + "oauth2/auth", TokenURL: h.issuer + "oauth2/token"},
		Scopes:   []string{"openid", "profile", "email"}}
	if h.issuer[len(h.issuer)-1] != '/' {
		cfg.Endpoint = oauth2.Endpoint{AuthURL: h.issuer + "/oauth2/auth", TokenURL: h.issuer + "/oauth2/token"}
	}
	access, idToken := hydraTokens(t, h, cfg, catcher.URL)
	t.Run("Hydra's opaque access token is checked at userinfo and writes", func(t *testing.T) {
		expect(t, "PUT", e.call(t, "PUT", "/dav/"+dir+"/opaque.txt", bearerOf(access), nil, "x"), http.StatusCreated)
	})
	t.Run("Hydra's ID token is verified as a JWT and writes", func(t *testing.T) {
		expect(t, "PUT", e.call(t, "PUT", "/dav/"+dir+"/jwt.txt", bearerOf(idToken), nil, "x"), http.StatusCreated)
	})
	t.Run("the objects are in alice's root", func(t *testing.T) {
		for _, k := range []string{"opaque.txt", "jwt.txt"} {
			if _, _, _, ok := (&davEnv{b: b}).headS3(t, "users/alice/"+dir+"/"+k); !ok {
				t.Errorf("users/alice/%s/%s missing", dir, k)
			}
		}
	})
	t.Run("a made-up opaque token is refused by Hydra", func(t *testing.T) {
		expect(t, "PROPFIND", e.call(t, "PROPFIND", "/dav/", "Bearer ory_at_"+randHex(20), map[string]string{"Depth": "0"}, ""), http.StatusUnauthorized)
	})
}
