package locks

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"golang.org/x/net/webdav"

	"github.com/davgw/davgw/internal/redisstore"
	"github.com/davgw/davgw/internal/redisstore/redistest"
)

func startRedis(t *testing.T) *redistest.Server { return redistest.Start(t) }

func newTestRedisLocks(t *testing.T, url string, tempTTL time.Duration) *Table {
	t.Helper()
	opts, err := redisstore.Options(url)
	if err != nil {
		t.Fatal(err)
	}
	r := newRedisLocks(redis.NewClient(opts), "davgw:locks:", tempTTL, slog.New(slog.DiscardHandler))
	r.owns = true
	m := newTable(r, Limits{})
	t.Cleanup(func() { _ = m.Close() })
	return m
}

// lockBackends runs f on the memory store and on two gateways' Redis
// stores sharing one redis-server (a and b differ for Redis only).
func lockBackends(t *testing.T, f func(t *testing.T, a, b *Table)) {
	t.Run("memory", func(t *testing.T) {
		m := NewMemory(Limits{})
		f(t, m, m)
	})
	t.Run("redis", func(t *testing.T) {
		s := startRedis(t)
		f(t, newTestRedisLocks(t, s.URL, time.Minute), newTestRedisLocks(t, s.URL, time.Minute))
	})
}

func TestLockConflictRules(t *testing.T) {
	const zero, inf = true, false
	tests := []struct {
		name         string
		held         string
		heldZero     bool
		want         string
		wantZero     bool
		wantConflict bool
	}{
		{"same name, both zero depth", "/a/f", zero, "/a/f", zero, true},
		{"same name, infinite on zero", "/a", zero, "/a", inf, true},
		{"same name, zero on infinite", "/a", inf, "/a", zero, true},
		{"infinite ancestor", "/a", inf, "/a/b/c", zero, true},
		{"infinite root", "/", inf, "/a/b", zero, true},
		{"zero-depth ancestor", "/a", zero, "/a/b", zero, false},
		{"zero-depth ancestor, deep request", "/a", zero, "/a/b", inf, false},
		{"descendant, deep request", "/a/b/c", zero, "/a", inf, true},
		{"descendant of root, deep request", "/a/b", zero, "/", inf, true},
		{"descendant, zero-depth request", "/a/b/c", zero, "/a", zero, false},
		{"sibling", "/a/b", inf, "/a/c", inf, false},
		{"name prefix is no ancestor", "/a/b", inf, "/a/bc", inf, false},
		{"name prefix is no descendant", "/a/bc", inf, "/a/b", inf, false},
	}
	lockBackends(t, func(t *testing.T, a, b *Table) {
		for i, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				root := fmt.Sprintf("rules%d/", i)
				now := time.Now()
				tok, err := a.ForRoot(root).Create(now, webdav.LockDetails{Root: tt.held, ZeroDepth: tt.heldZero, Duration: time.Minute})
				if err != nil {
					t.Fatal(err)
				}
				_, err = b.ForRoot(root).Create(now, webdav.LockDetails{Root: tt.want, ZeroDepth: tt.wantZero, Duration: time.Minute})
				if tt.wantConflict != (err == webdav.ErrLocked) || (err != nil && err != webdav.ErrLocked) {
					t.Fatalf("second Create: err = %v, want conflict %v", err, tt.wantConflict)
				}
				// Another root never conflicts.
				if _, err := b.ForRoot("other"+root).Create(now, webdav.LockDetails{Root: tt.want, ZeroDepth: tt.wantZero, Duration: time.Minute}); err != nil {
					t.Fatalf("another root: %v", err)
				}
				if err := a.ForRoot(root).Unlock(now, tok); err != nil {
					t.Fatal(err)
				}
			})
		}
	})
}

func TestLockTokensAreRootBound(t *testing.T) {
	tokenRE := regexp.MustCompile(`^opaquelocktoken:[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	lockBackends(t, func(t *testing.T, a, b *Table) {
		now := time.Now()
		alice, bob := a.ForRoot("alice/"), b.ForRoot("bob/")
		tok, err := alice.Create(now, webdav.LockDetails{Root: "/f", ZeroDepth: true, Duration: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		tok2, err := alice.Create(now, webdav.LockDetails{Root: "/g", ZeroDepth: true, Duration: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		if !tokenRE.MatchString(tok) || tok == tok2 {
			t.Fatalf("tokens %q, %q: want distinct random UUIDs", tok, tok2)
		}
		if err := bob.Unlock(now, tok); err != webdav.ErrNoSuchLock {
			t.Fatalf("bob's Unlock: %v", err)
		}
		if _, err := bob.Refresh(now, tok, time.Minute); err != webdav.ErrNoSuchLock {
			t.Fatalf("bob's Refresh: %v", err)
		}
		if _, err := bob.Confirm(now, "/f", "", webdav.Condition{Token: tok}); err != webdav.ErrConfirmationFailed {
			t.Fatalf("bob's Confirm: %v", err)
		}
		// A guessed token is no lock.
		if err := alice.Unlock(now, "opaquelocktoken:00000000-0000-4000-8000-000000000000"); err != webdav.ErrNoSuchLock {
			t.Fatalf("a guessed token: %v", err)
		}
		// The other gateway serves alice's token.
		rel, err := b.ForRoot("alice/").Confirm(now, "/f", "", webdav.Condition{Token: tok})
		if err != nil {
			t.Fatal(err)
		}
		rel()
		if err := b.ForRoot("alice/").Unlock(now, tok); err != nil {
			t.Fatal(err)
		}
		if err := a.ForRoot("alice/").Unlock(now, tok); err != webdav.ErrNoSuchLock {
			t.Fatalf("second Unlock: %v", err)
		}
	})
}

func TestLockConfirmAndHold(t *testing.T) {
	lockBackends(t, func(t *testing.T, a, b *Table) {
		now := time.Now()
		la := a.ForRoot("hold/")
		tok, err := la.Create(now, webdav.LockDetails{Root: "/dir", Duration: time.Minute, OwnerXML: "<D:href>me</D:href>"})
		if err != nil {
			t.Fatal(err)
		}
		// A deep lock covers members, both names at once.
		rel, err := la.Confirm(now, "/dir/x", "/dir/y/z", webdav.Condition{Token: tok})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := la.Confirm(now, "/dir/x", "", webdav.Condition{Token: tok}); err != webdav.ErrConfirmationFailed {
			t.Fatalf("Confirm while held: %v", err)
		}
		if err := la.Unlock(now, tok); err != webdav.ErrLocked {
			t.Fatalf("Unlock while held: %v", err)
		}
		rel()
		if _, err := la.Confirm(now, "/other", "", webdav.Condition{Token: tok}); err != webdav.ErrConfirmationFailed {
			t.Fatalf("Confirm outside the lock: %v", err)
		}
		// lockdiscovery, from the other gateway.
		got := b.ForRoot("hold/").Discover(now, "/dir/x")
		if len(got) != 1 || got[0].Token != tok || got[0].Name != "/dir" || got[0].ZeroDepth || got[0].Owner != "<D:href>me</D:href>" || got[0].Left <= 0 || got[0].Left > time.Minute {
			t.Fatalf("discover = %+v", got)
		}
		if got := b.ForRoot("other/").Discover(now, "/dir/x"); len(got) != 0 {
			t.Fatalf("another root discovers %+v", got)
		}
		ld, err := b.ForRoot("hold/").Refresh(now, tok, 30*time.Second)
		if err != nil || ld.Root != "/dir" || ld.ZeroDepth || ld.Duration != 30*time.Second {
			t.Fatalf("Refresh = %+v, %v", ld, err)
		}
		if err := la.Unlock(now, tok); err != nil {
			t.Fatal(err)
		}
	})
}

// TestRedisLockExpiry: locks vanish when they time out; Refresh extends.
func TestRedisLockExpiry(t *testing.T) {
	s := startRedis(t)
	a, b := newTestRedisLocks(t, s.URL, time.Minute), newTestRedisLocks(t, s.URL, time.Minute)
	la, lb := a.ForRoot("exp/"), b.ForRoot("exp/")
	now := time.Now()
	short, err := la.Create(now, webdav.LockDetails{Root: "/short", Duration: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	kept, err := la.Create(now, webdav.LockDetails{Root: "/kept", Duration: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lb.Refresh(now, kept, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if _, err := lb.Create(now, webdav.LockDetails{Root: "/short/x", ZeroDepth: true, Duration: time.Minute}); err != webdav.ErrLocked {
		t.Fatalf("before expiry: %v", err)
	}
	time.Sleep(500 * time.Millisecond)
	if _, err := lb.Create(now, webdav.LockDetails{Root: "/short/x", ZeroDepth: true, Duration: time.Minute}); err != nil {
		t.Fatalf("after expiry: %v", err)
	}
	if _, err := lb.Create(now, webdav.LockDetails{Root: "/kept", ZeroDepth: true, Duration: time.Minute}); err != webdav.ErrLocked {
		t.Fatalf("refreshed lock: %v", err)
	}
	if _, err := la.Refresh(now, short, time.Minute); err != webdav.ErrNoSuchLock {
		t.Fatalf("Refresh of an expired lock: %v", err)
	}
	if got := lb.Discover(now, "/short"); len(got) != 0 {
		t.Fatalf("expired lock discovered: %+v", got)
	}
}

// TestRedisTemporaryLocks: a request's temporary lock on one gateway
// blocks the other, is never listed, lives while renewed and is gone at
// release; a gateway that stops renewing loses it after the safety TTL.
func TestRedisTemporaryLocks(t *testing.T) {
	s := startRedis(t)
	a, b := newTestRedisLocks(t, s.URL, 400*time.Millisecond), newTestRedisLocks(t, s.URL, time.Minute)
	la, lb := a.ForRoot("tmp/"), b.ForRoot("tmp/")
	now := time.Now()
	tok, err := la.Create(now, webdav.LockDetails{Root: "/f", ZeroDepth: true, Duration: -1})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second) // past the TTL: renewed meanwhile
	if _, err := lb.Create(now, webdav.LockDetails{Root: "/f", ZeroDepth: true, Duration: time.Minute}); err != webdav.ErrLocked {
		t.Fatalf("Create over a temporary lock: %v", err)
	}
	if got := lb.Discover(now, "/f"); len(got) != 0 {
		t.Fatalf("temporary lock discovered: %+v", got)
	}
	if err := la.Unlock(now, tok); err != nil {
		t.Fatal(err)
	}
	c2, err := lb.Create(now, webdav.LockDetails{Root: "/f", ZeroDepth: true, Duration: time.Minute})
	if err != nil {
		t.Fatalf("after release: %v", err)
	}
	_ = lb.Unlock(now, c2)

	// A gateway gone (no more renewals): its lock expires.
	if _, err := la.Create(now, webdav.LockDetails{Root: "/g", Duration: -1}); err != nil {
		t.Fatal(err)
	}
	_ = a.Close()
	time.Sleep(700 * time.Millisecond)
	if _, err := lb.Create(now, webdav.LockDetails{Root: "/g", Duration: time.Minute}); err != nil {
		t.Fatalf("after the safety TTL: %v", err)
	}
}

// TestRedisLockCreateIsAtomic: gateways racing for one name get one lock.
func TestRedisLockCreateIsAtomic(t *testing.T) {
	s := startRedis(t)
	ms := []*Table{newTestRedisLocks(t, s.URL, time.Minute), newTestRedisLocks(t, s.URL, time.Minute)}
	for round := range 20 {
		var wg sync.WaitGroup
		var mu sync.Mutex
		won := 0
		for i := range 16 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				// Half ask for the folder (deep), half for a member.
				name := fmt.Sprintf("/r%d", round)
				zd := i%2 == 1
				if zd {
					name += "/m"
				}
				_, err := ms[i%2].ForRoot("race/").Create(time.Now(), webdav.LockDetails{Root: name, ZeroDepth: zd, Duration: time.Minute})
				switch {
				case err == nil:
					mu.Lock()
					won++
					mu.Unlock()
				case err != webdav.ErrLocked:
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		if won != 1 {
			t.Fatalf("round %d: %d conflicting locks granted", round, won)
		}
	}
}

// TestRedisLockOutage: with Redis gone every operation fails with
// ErrStoreUnavailable, and errors never show the URL's password.
func TestRedisLockOutage(t *testing.T) {
	s := startRedis(t)
	m := newTestRedisLocks(t, s.URL, time.Minute)
	l := m.ForRoot("out/")
	now := time.Now()
	tok, err := l.Create(now, webdav.LockDetails{Root: "/f", Duration: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	s.Stop()
	if _, err := l.Create(now, webdav.LockDetails{Root: "/g", Duration: time.Minute}); !errors.Is(err, ErrStoreUnavailable) {
		t.Fatalf("Create: %v", err)
	}
	if _, err := l.Confirm(now, "/f", "", webdav.Condition{Token: tok}); !errors.Is(err, ErrStoreUnavailable) {
		t.Fatalf("Confirm: %v", err)
	}
	if _, err := l.Refresh(now, tok, time.Minute); !errors.Is(err, ErrStoreUnavailable) {
		t.Fatalf("Refresh: %v", err)
	}
	if err := l.Unlock(now, tok); !errors.Is(err, ErrStoreUnavailable) {
		t.Fatalf("Unlock: %v", err)
	}
	if err := m.Ping(context.Background()); !errors.Is(err, ErrStoreUnavailable) {
		t.Fatalf("Ping: %v", err)
	}

	for _, bad := range []string{"redis://:s3cret@127.0.0.1:bad/0", "redis://user:s3cret@127.0.0.1:6379/x", "http://:s3cret@h/"} {
		_, err := NewRedis(bad, Limits{}, nil)
		if err == nil || regexp.MustCompile("s3cret").MatchString(err.Error()) {
			t.Errorf("%s: err = %v", bad, err)
		}
	}
}
