package web

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/davgw/davgw/auth"
	"github.com/davgw/davgw/internal/redisstore"
	"github.com/davgw/davgw/internal/redisstore/redistest"
)

// TestRedisPendingSignInsAreSharedAndBounded: a sign-in added through one
// gateway is taken (once) through another; the per-address and total
// bounds hold across gateways without evicting; every key expires.
func TestRedisPendingSignInsAreSharedAndBounded(t *testing.T) {
	ctx := context.Background()
	rs := redistest.Start(t)
	ca := rs.Client(t)
	a, b := newRedisPending(ca, 2, 5), newRedisPending(rs.Client(t), 2, 5)
	now := time.Now()
	add := func(s *redisPending, addr, state string) error {
		_, err := s.add(ctx, now, addr, state, &pending{nonce: "n-" + state, verifier: "v-" + state})
		return err
	}
	if err := add(a, "192.0.2.1", "s1"); err != nil {
		t.Fatal(err)
	}
	if err := add(b, "192.0.2.1", "s2"); err != nil {
		t.Fatal(err)
	}
	if err := add(a, "192.0.2.1", "s3"); !errors.Is(err, errPendingPerAddress) {
		t.Fatalf("a third from one address over two gateways: %v", err)
	}
	for i := range 3 {
		if err := add([]*redisPending{a, b}[i%2], fmt.Sprintf("2001:db8:%d::1", i), fmt.Sprint("o", i)); err != nil {
			t.Fatal(err)
		}
	}
	retry, err := b.add(ctx, now, "198.51.100.1", "full", &pending{})
	if !errors.Is(err, errPendingFull) || retry < time.Second || retry > loginTTL {
		t.Fatalf("a sixth in all: %v, retry %v", err, retry)
	}
	p, err := b.take(ctx, now, "s1")
	if err != nil || p == nil || p.nonce != "n-s1" || p.verifier != "v-s1" {
		t.Fatalf("B takes A's sign-in: %+v %v", p, err)
	}
	if p, err := a.take(ctx, now, "s1"); p != nil || err != nil {
		t.Fatalf("taken twice: %+v %v", p, err)
	}
	if err := add(a, "192.0.2.1", "s4"); err != nil {
		t.Fatalf("room after a completed sign-in: %v", err)
	}
	for _, k := range ca.R.Keys(ctx, "*").Val() {
		if ttl := ca.R.PTTL(ctx, k).Val(); ttl <= 0 || ttl > loginTTL {
			t.Errorf("key %q: TTL %v", k, ttl)
		}
	}
	rs.Stop()
	if _, err := a.add(ctx, now, "192.0.2.7", "x", &pending{}); !errors.Is(err, redisstore.ErrUnavailable) {
		t.Fatalf("add with Redis down: %v", err)
	}
}

// TestRedisSessionsAreShared: a session stored through one gateway is
// read and removed through another; it expires with its lifetime, and
// Redis holds neither the cookie nor a key that is the cookie.
func TestRedisSessionsAreShared(t *testing.T) {
	ctx := context.Background()
	rs := redistest.Start(t)
	ca := rs.Client(t)
	a, b := newRedisSessions(ca), newRedisSessions(rs.Client(t))
	cookie := randomToken()
	s := &session{Claims: auth.Claims{Subject: "s", Username: "u"}, P: auth.Principal{Username: "u", Root: "users/u/"}, Expires: time.Now().Add(time.Hour)}
	if err := a.put(ctx, sessionKey(cookie), s); err != nil {
		t.Fatal(err)
	}
	got, err := b.get(ctx, sessionKey(cookie))
	if err != nil || got == nil || got.P != s.P || got.Claims.Subject != "s" {
		t.Fatalf("B reads A's session: %+v %v", got, err)
	}
	for _, k := range ca.R.Keys(ctx, "*").Val() {
		v := ca.R.Get(ctx, k).Val()
		if ttl := ca.R.PTTL(ctx, k).Val(); ttl <= 0 || ttl > time.Hour {
			t.Errorf("key %q: TTL %v", k, ttl)
		}
		if strings.Contains(k, cookie) || strings.Contains(v, cookie) {
			t.Fatalf("the cookie is in Redis: %q", k)
		}
	}
	if got, err := b.remove(ctx, sessionKey(cookie)); err != nil || got == nil {
		t.Fatalf("remove: %+v %v", got, err)
	}
	if got, err := a.get(ctx, sessionKey(cookie)); got != nil || err != nil {
		t.Fatalf("after sign-out on B, A has %+v %v", got, err)
	}
	rs.Stop()
	if _, err := a.get(ctx, sessionKey(cookie)); !errors.Is(err, redisstore.ErrUnavailable) {
		t.Fatalf("get with Redis down: %v", err)
	}
}
