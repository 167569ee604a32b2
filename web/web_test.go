package web

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/oauth2-proxy/mockoidc"

	"github.com/davgw/davgw/auth"
)

func newTestHandler(t *testing.T, ap *auth.AppPasswords) *Handler {
	t.Helper()
	m, err := mockoidc.Run()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Shutdown() })
	oc, err := auth.NewOIDC(context.Background(), auth.OIDCConfig{Issuer: m.Issuer(), ClientID: m.ClientID, ClientSecret: m.ClientSecret})
	if err != nil {
		t.Fatal(err)
	}
	mapper, _ := auth.NewMapper("users/{username}/", "", nil)
	h, err := New(Options{OIDC: oc, Mapper: mapper, AppPasswords: ap, PublicURL: "http://127.0.0.1:1", Logger: slog.New(slog.DiscardHandler), LoginRate: 3})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestLoginIsRateLimitedPerAddress(t *testing.T) {
	h := newTestHandler(t, nil)
	get := func(addr string) *httptest.ResponseRecorder {
		r := httptest.NewRequest("GET", "/login", nil)
		r.RemoteAddr = addr
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w
	}
	for n := range 3 {
		if w := get("192.0.2.1:1"); w.Code != http.StatusFound {
			t.Fatalf("login %d: %d", n, w.Code)
		}
	}
	w := get("192.0.2.1:2")
	if w.Code != http.StatusTooManyRequests || w.Header().Get("Retry-After") == "" {
		t.Fatalf("fourth login: %d, Retry-After %q", w.Code, w.Header().Get("Retry-After"))
	}
	if w := get("[2001:db8::1]:1"); w.Code != http.StatusFound {
		t.Fatalf("another address: %d", w.Code)
	}
}

func TestSessionsEvictExpiredBeforeLive(t *testing.T) {
	now := time.Now()
	m := map[string]*session{}
	for n := range maxSessions {
		exp := now.Add(time.Minute + time.Duration(n)*time.Millisecond)
		if n%2 == 0 {
			exp = now.Add(-time.Second)
		}
		m[fmt.Sprint(n)] = &session{Expires: exp}
	}
	evict(m, maxSessions, now, func(p *session) time.Time { return p.Expires })
	if len(m) != maxSessions/2 {
		t.Fatalf("%d left; want the %d live ones", len(m), maxSessions/2)
	}
	for k, p := range m {
		if now.After(p.Expires) {
			t.Fatalf("expired %s kept", k)
		}
	}
	for n := range maxSessions / 2 { // full of live ones: only the oldest goes
		m[fmt.Sprint("x", n)] = &session{Expires: now.Add(time.Hour)}
	}
	evict(m, maxSessions, now, func(p *session) time.Time { return p.Expires })
	if _, ok := m["1"]; ok || len(m) != maxSessions-1 {
		t.Fatalf("%d left, oldest kept: %v", len(m), ok)
	}
}

func TestThePageShowsWhenAppPasswordsExpire(t *testing.T) {
	st, _ := auth.NewFileAppPasswords(t.TempDir())
	ap := auth.NewAppPasswords(st, 0)
	h := newTestHandler(t, ap)
	c := auth.Claims{Subject: "s", Username: "alice"}
	_, p, err := ap.Mint(context.Background(), c, "laptop")
	if err != nil {
		t.Fatal(err)
	}
	s := &session{Claims: c, P: auth.Principal{Username: "alice", Root: "users/alice/"}, Expires: time.Now().Add(time.Hour)}
	if err := h.sessions.put(context.Background(), sessionKey("cookie"), s); err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest("GET", "/", nil)
	r.AddCookie(&http.Cookie{Name: h.cookie, Value: "cookie"})
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	body := w.Body.String()
	if !strings.Contains(body, "expires 90 days after") || !strings.Contains(body, p.Expires.UTC().Format("2006-01-02 15:04 UTC")) {
		t.Fatalf("page without the expiry:\n%s", body)
	}
}
