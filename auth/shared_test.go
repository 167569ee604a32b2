package auth

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/davgw/davgw/internal/redisstore"
	"github.com/davgw/davgw/internal/redisstore/redistest"
)

// requireTTLs fails unless every key in Redis expires.
func requireTTLs(t *testing.T, c *redisstore.Client) {
	t.Helper()
	ctx := context.Background()
	keys, err := c.R.Keys(ctx, "*").Result()
	if err != nil || len(keys) == 0 {
		t.Fatalf("keys: %v %v", keys, err)
	}
	for _, k := range keys {
		if ttl := c.R.PTTL(ctx, k).Val(); ttl <= 0 {
			t.Errorf("key %q has no TTL (%v)", k, ttl)
		}
	}
}

// TestSharedLimiterCountsEveryGatewaysFailures: two gateways' limiters on
// one Redis count one set of failures; every counter expires with its
// window; an outage is an error, never a pass.
func TestSharedLimiterCountsEveryGatewaysFailures(t *testing.T) {
	rs := redistest.Start(t)
	ca, cb := rs.Client(t), rs.Client(t)
	a := NewLimiter(4, 6, time.Minute).SharedIn(ca, "failures")
	b := NewLimiter(4, 6, time.Minute).SharedIn(cb, "failures")
	for i := range 3 {
		g := []*Limiter{a, b}[i%2]
		if err := g.Fail("Mallory", "192.0.2.1"); err != nil {
			t.Fatal(err)
		}
		if err := a.Check("mallory", "192.0.2.1"); err != nil {
			t.Fatalf("limited after %d failures: %v", i+1, err)
		}
	}
	if err := b.Fail("mallory", "192.0.2.1"); err != nil {
		t.Fatal(err)
	}
	for name, l := range map[string]*Limiter{"A": a, "B": b} {
		var lim *RateLimitError
		if err := l.Check("mallory", "192.0.2.1"); !errors.As(err, &lim) || lim.RetryAfter <= 0 || lim.RetryAfter > time.Minute {
			t.Fatalf("%s: the 4th failure over two gateways does not limit: %v", name, err)
		}
		if err := l.Check("mallory", "192.0.2.2"); err != nil {
			t.Fatalf("%s: the user is limited at another address: %v", name, err)
		}
	}
	// The address: 4 failures of mallory, 2 more of others.
	_ = a.Fail("x", "192.0.2.1")
	if err := b.Check("y", "192.0.2.1"); err != nil {
		t.Fatalf("address limited after 5 of 6: %v", err)
	}
	_ = b.Fail("y", "192.0.2.1")
	if err := a.Check("z", "192.0.2.1"); err == nil {
		t.Fatal("address not limited after 6 failures over two gateways")
	}
	requireTTLs(t, ca)
	// A long user name makes a short key.
	_ = a.Fail(fmt.Sprintf("%01000d", 7), "192.0.2.9")
	for _, k := range ca.R.Keys(context.Background(), "*").Val() {
		if len(k) > 100 {
			t.Fatalf("key of %d bytes", len(k))
		}
	}

	rs.Stop()
	if err := a.Check("mallory", "192.0.2.3"); !errors.Is(err, redisstore.ErrUnavailable) {
		t.Fatalf("Check with Redis down: %v", err)
	}
	if err := b.Fail("mallory", "192.0.2.3"); !errors.Is(err, redisstore.ErrUnavailable) {
		t.Fatalf("Fail with Redis down: %v", err)
	}
}

// TestSharedAppPasswordRevocationIsSeenAtOnce: gateway B holds a cached
// copy of the user's list; a revocation on A makes B refuse at once with
// change marks, where without them B accepts it until its copy expires.
// With Redis down, B trusts its copy for the TTL only.
func TestSharedAppPasswordRevocationIsSeenAtOnce(t *testing.T) {
	ctx := context.Background()
	rs := redistest.Start(t)
	c := Claims{Subject: "s-u", Username: "u"}
	for _, shared := range []bool{true, false} {
		st, err := NewFileAppPasswords(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		a, b := NewAppPasswords(st, 0), NewAppPasswords(st, 0)
		if shared {
			a.SharedIn(rs.Client(t))
			b.SharedIn(rs.Client(t))
		}
		secret, p, err := a.Mint(ctx, c, "laptop")
		if err != nil {
			t.Fatal(err)
		}
		if _, _, ok, err := b.Verify(ctx, "u", secret); !ok || err != nil {
			t.Fatalf("shared=%v: B does not accept it: %v %v", shared, ok, err)
		}
		if _, ok := b.Cached(ctx, "u", secret); !ok {
			t.Fatalf("shared=%v: B holds no copy", shared)
		}
		if err := a.Revoke(ctx, "u", p.ID); err != nil {
			t.Fatal(err)
		}
		_, cached := b.Cached(ctx, "u", secret)
		_, _, ok, _ := b.Verify(ctx, "u", secret)
		if shared && (cached || ok) {
			t.Fatalf("B accepts the revoked password: cached %v, verified %v", cached, ok)
		}
		if !shared && !(cached && ok) {
			t.Fatal("without marks B should use its copy until the TTL (this test would prove nothing)")
		}
	}

	// Redis down: a copy is used for the TTL, then read again.
	st, _ := NewFileAppPasswords(t.TempDir())
	b := NewAppPasswords(st, 0).SharedIn(rs.Client(t))
	now := time.Now()
	b.now = func() time.Time { return now }
	secret, _, err := b.Mint(ctx, c, "phone")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, ok, err := b.Verify(ctx, "u", secret); !ok || err != nil {
		t.Fatal(ok, err)
	}
	rs.Stop()
	if _, ok := b.Cached(ctx, "u", secret); !ok {
		t.Fatal("with Redis down a fresh copy is not used")
	}
	now = now.Add(AppPasswordCacheTTL)
	if _, ok := b.Cached(ctx, "u", secret); ok {
		t.Fatal("with Redis down a copy is used past its TTL")
	}
	if _, _, ok, err := b.Verify(ctx, "u", secret); !ok || err != nil {
		t.Fatalf("with Redis down the store is not read again: %v %v", ok, err)
	}
	if err := b.Revoke(ctx, "u", "0123456789abcdef"); !errors.Is(err, redisstore.ErrUnavailable) {
		t.Fatalf("a revocation that cannot tell the others: %v", err)
	}
}
