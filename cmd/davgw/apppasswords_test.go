package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/davgw/davgw/auth"
)

func TestAppPasswordsCommandListsAndRevokes(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	store := filepath.Join(dir, "app-passwords")
	cfgPath := filepath.Join(dir, "config.toml")
	cfg := `[server]
public_url = "https://dav.example.com"
[s3]
bucket = "bkt"
[auth.oidc]
issuer = "https://login.example.com"
client_id = "davgw"
app_password_store = "local:` + store + `"
app_password_max_age = "720h"
`
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	st, err := auth.NewFileAppPasswords(store)
	if err != nil {
		t.Fatal(err)
	}
	ap := auth.NewAppPasswords(st, time.Nanosecond)
	secret, laptop, err := ap.Mint(ctx, auth.Claims{Subject: "s", Username: "alice"}, "laptop")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := ap.Mint(ctx, auth.Claims{Subject: "s", Username: "alice"}, "phone"); err != nil {
		t.Fatal(err)
	}
	cmd := func(args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		code := run(ctx, append([]string{"app-passwords"}, args...), nil, &out, &errb)
		return code, out.String(), errb.String()
	}
	code, out, _ := cmd("list", "-user", "Alice", "-config", cfgPath)
	if code != exitOK || !strings.Contains(out, laptop.ID) || !strings.Contains(out, `"phone"`) ||
		!strings.Contains(out, laptop.Created.Add(720*time.Hour).UTC().Format("2006-01-02 15:04Z")) {
		t.Fatalf("list: %d\n%s", code, out)
	}
	if code, _, _ := cmd("revoke", "-user", "alice", "-config", cfgPath); code != exitUsage {
		t.Fatalf("revoke without -name or -all: %d", code)
	}
	if code, out, errs := cmd("revoke", "-user", "alice", "-name", "laptop", "-config", cfgPath); code != exitOK || !strings.Contains(out, laptop.ID) {
		t.Fatalf("revoke -name: %d %s %s", code, out, errs)
	}
	if _, _, ok, _ := ap.Verify(ctx, "alice", secret); ok {
		t.Fatal("the revoked app password still works")
	}
	if code, out, _ := cmd("revoke", "-user", "alice", "-all", "-config", cfgPath); code != exitOK || !strings.Contains(out, "1 app password(s)") {
		t.Fatalf("revoke -all: %d %s", code, out)
	}
	if code, out, _ := cmd("list", "-user", "alice", "-config", cfgPath); code != exitOK || !strings.Contains(out, "no app passwords") {
		t.Fatalf("list after: %d %s", code, out)
	}
}
