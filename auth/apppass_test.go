package auth

import (
	"context"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestAppPasswordsOnLocalDisk(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st, err := NewFileAppPasswords(dir)
	if err != nil {
		t.Fatal(err)
	}
	a := NewAppPasswords(st, time.Second)
	alice := Claims{Subject: "s-a", Username: "alice", Groups: []string{"staff"}}
	secret, p, err := a.Mint(ctx, alice, "Work laptop")
	if err != nil {
		t.Fatal(err)
	}
	if len(secret) < 24 || p.Name != "Work laptop" {
		t.Fatalf("secret of %d characters, entry %+v", len(secret), p)
	}
	t.Run("the secret is not stored, only its hash", func(t *testing.T) {
		data, err := os.ReadFile(filepath.Join(dir, "alice", p.ID+".json"))
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(data), secret) {
			t.Fatal("the store holds the secret")
		}
	})
	wrong := secret[:len(secret)-1] + "x"
	if wrong == secret { // 1 in 32
		wrong = secret[:len(secret)-1] + "y"
	}
	tests := []struct {
		name, user, secret string
		want               bool
	}{
		{"the owner with the secret signs in", "alice", secret, true},
		{"a wrong secret is refused", "alice", wrong, false},
		{"alice's app password used as bob is refused", "bob", secret, false},
		{"an unsafe user name is refused", "../alice", secret, false},
		{"an empty secret is refused", "alice", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, _, ok, err := a.Verify(ctx, tt.user, tt.secret)
			if err != nil || ok != tt.want || (ok && c.Username != "alice") {
				t.Fatalf("got %+v ok=%v err=%v; want ok=%v", c, ok, err, tt.want)
			}
		})
	}
	t.Run("it survives a restart and shows when it was last used", func(t *testing.T) {
		b := NewAppPasswords(st, time.Second)
		if _, _, ok, _ := b.Verify(ctx, "alice", secret); !ok {
			t.Fatal("refused after restart")
		}
		list, err := b.List(ctx, "alice")
		if err != nil || len(list) != 1 || list[0].LastUsed.IsZero() {
			t.Fatalf("list %+v, %v", list, err)
		}
	})
	t.Run("a revocation on another gateway is seen once the cache expires", func(t *testing.T) {
		other := NewAppPasswords(st, time.Second)
		now := time.Now()
		a.now = func() time.Time { return now }
		if _, _, ok, _ := a.Verify(ctx, "alice", secret); !ok {
			t.Fatal("refused before revocation")
		}
		if err := other.Revoke(ctx, "alice", p.ID); err != nil {
			t.Fatal(err)
		}
		if _, _, ok, _ := other.Verify(ctx, "alice", secret); ok {
			t.Fatal("the revoking gateway still accepts it")
		}
		a.now = func() time.Time { return now.Add(1100 * time.Millisecond) }
		if _, _, ok, _ := a.Verify(ctx, "alice", secret); ok {
			t.Fatal("still accepted after the cache TTL")
		}
	})
}

func TestAppPasswordOfAliceIsRefusedForBobThroughTheChain(t *testing.T) {
	ctx := context.Background()
	st, _ := NewFileAppPasswords(t.TempDir())
	ap := NewAppPasswords(st, 0)
	secret, _, err := ap.Mint(ctx, Claims{Subject: "s-a", Username: "alice"}, "x")
	if err != nil {
		t.Fatal(err)
	}
	m, _ := NewMapper("users/{username}/", "", nil)
	c := NewChain(ChainConfig{Mapper: m, AppPasswords: ap, Limiter: NewLimiter(2, 100, time.Minute)})
	basic := func(u, pw string) (Principal, bool, error) {
		r := httptest.NewRequest("GET", "/dav/", nil)
		r.SetBasicAuth(u, pw)
		return c.Authenticate(r)
	}
	if p, ok, err := basic("alice", secret); !ok || err != nil || p.Root != "users/alice/" {
		t.Fatalf("alice: %+v ok=%v err=%v", p, ok, err)
	}
	for range 2 {
		if _, ok, err := basic("bob", secret); ok || err != nil {
			t.Fatalf("bob with alice's password: ok=%v err=%v", ok, err)
		}
	}
	if _, _, err := basic("bob", secret); err == nil {
		t.Fatal("bob's third failure is not rate limited")
	}
	if _, ok, err := basic("alice", secret); !ok || err != nil {
		t.Fatalf("alice is limited by bob's failures: ok=%v err=%v", ok, err)
	}
}

func TestLimiterWindows(t *testing.T) {
	l := NewLimiter(2, 3, time.Minute)
	now := time.Now()
	l.now = func() time.Time { return now }
	l.Fail("u", "a")
	if l.Check("u", "a") != nil {
		t.Fatal("limited after one failure")
	}
	l.Fail("U", "a") // user names count ignoring case
	if e, _ := l.Check("u", "a").(*RateLimitError); e == nil || e.RetryAfter != time.Minute {
		t.Fatalf("user not limited after two failures: %v", e)
	}
	if e := l.Check("u", "b"); e != nil {
		t.Fatalf("user limited at another address (anyone could lock the user out): %v", e)
	}
	if l.Check("v", "a") != nil {
		t.Fatal("address limited after two of three failures")
	}
	l.now = func() time.Time { return now.Add(time.Minute) }
	if l.Check("u", "a") != nil {
		t.Fatal("still limited after the window")
	}
}

func TestRootTemplatesNeverReachTheReservedPrefix(t *testing.T) {
	for _, tmpl := range []string{"", "/", ".davgw/", ".davgw/{username}/", "/.davgw/x/"} {
		if err := CheckRootTemplate(tmpl); err == nil {
			t.Errorf("template %q accepted", tmpl)
		}
	}
	for _, tmpl := range []string{"users/{username}/", "{sub}/", "x/.davgw/"} {
		if err := CheckRootTemplate(tmpl); err != nil {
			t.Errorf("template %q refused: %v", tmpl, err)
		}
	}
}
