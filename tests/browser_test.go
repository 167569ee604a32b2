package tests

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/oauth2-proxy/mockoidc"
)

// testsDir is this package's folder (tests/), resolved at package start,
// before the embedded store changes the working directory.
var testsDir = func() string {
	wd, _ := os.Getwd()
	return wd
}()

// artifactDir is tests/artifacts/, what tests leave for people to look at
// (gitignored).
var artifactDir = filepath.Join(testsDir, "artifacts")

// TestBrowserMintsAndRevokesAnAppPassword drives headless Chromium through
// the sign-in page: sign in (mockoidc), mint an app password, use it for a
// WebDAV PUT with Basic, revoke it, see 401. A screenshot of the page with
// the new password is saved in tests/artifacts/.
func TestBrowserMintsAndRevokesAnAppPassword(t *testing.T) {
	chrome, err := toolPath("DAVGW_CHROMIUM", "chromium", "")
	requireTool(t, err)
	b := getBackend(t, "versitygw")
	m := startMockIdP(t)
	e := newSignInEnv(t, b, signInOptions{issuer: m.Issuer(), clientID: m.ClientID, clientSecret: m.ClientSecret})
	m.QueueUser(&mockoidc.MockUser{Subject: "sub-alice", PreferredUsername: "alice", Email: "alice@example.com"})

	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chrome),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1000, 900),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	ctx, cancelT := context.WithTimeout(ctx, 60*time.Second)
	defer cancelT()

	q := func(sel string) chromedp.CSS { return chromedp.CSS(sel) }
	err = chromedp.Do(ctx,
		chromedp.Navigate(e.URL+"/"),
		chromedp.WaitVisible(q("#signin")),
		chromedp.Click(q("#signin")),
		chromedp.WaitVisible(q("#user")),
	)
	if err != nil {
		t.Fatalf("sign in: %v", err)
	}
	user, err := chromedp.Run(ctx, chromedp.Text(q("#user")))
	if err != nil {
		t.Fatal(err)
	}
	err = chromedp.Do(ctx,
		chromedp.SendKeys(q("#name"), "Work laptop"),
		chromedp.Click(q("#create")),
		chromedp.WaitVisible(q("#secret")),
	)
	if err != nil {
		t.Fatalf("mint: %v", err)
	}
	secret, err := chromedp.Run(ctx, chromedp.Text(q("#secret")))
	if err != nil {
		t.Fatal(err)
	}
	shot, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(artifactDir, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(artifactDir, "browser-app-password.png")
	if err := os.WriteFile(path, shot, 0o644); err != nil {
		t.Fatal(err)
	}
	report(t, "browser: signed in as %s in Chromium, minted an app password of %d characters; screenshot %s", user, len(secret), path)
	if user != "alice" || len(strings.TrimSpace(secret)) < 24 {
		t.Fatalf("user %q, secret of %d characters", user, len(secret))
	}
	basic := basicOf("alice", strings.TrimSpace(secret))
	expect(t, "PUT with the app password", e.call(t, "PUT", "/dav/browser-"+randHex(4)+".txt", basic, nil, "from the browser test"), http.StatusCreated)

	err = chromedp.Do(ctx,
		chromedp.Navigate(e.URL+"/"),
		chromedp.WaitVisible(q("button.danger")),
		chromedp.Click(q("button.danger")),
		chromedp.WaitVisible(q("#none")),
	)
	if err != nil {
		t.Fatalf("revoke: %v", err)
	}
	expect(t, "PUT after revocation", e.call(t, "PUT", "/dav/after-revoke.txt", basic, nil, "x"), http.StatusUnauthorized)
}
