package web

import (
	"errors"
	"fmt"
	"testing"
	"time"
)

// TestPendingSignInsAreBoundedWithoutEviction (issue 10, F7): a flood
// from many addresses fills the table, then new sign-ins are refused
// (per address 429, in all 503) and the ones in progress all survive;
// expiry and completed sign-ins make room again.
func TestPendingSignInsAreBoundedWithoutEviction(t *testing.T) {
	now := time.Now()
	s := newPendingSignIns(3, 10)
	add := func(at time.Time, addr, state string) error {
		_, err := s.add(at, addr, state, &pending{expires: at.Add(loginTTL)})
		return err
	}
	if err := add(now, "192.0.2.1", "real"); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		err := add(now, "198.51.100.1", fmt.Sprint("a", i))
		if i < 3 && err != nil {
			t.Fatalf("flood %d: %v", i, err)
		}
	}
	if err := add(now, "198.51.100.1", "a3"); !errors.Is(err, errPendingPerAddress) {
		t.Fatalf("a fourth from one address: %v", err)
	}
	// An IPv6 /64 is one address.
	for i := range 3 {
		if err := add(now, fmt.Sprintf("2001:db8::%x", i+1), fmt.Sprint("v", i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := add(now, "2001:db8::ff", "v3"); !errors.Is(err, errPendingPerAddress) {
		t.Fatalf("a fourth from one /64: %v", err)
	}
	for i := range 3 { // 1 + 3 + 3 + 3 = 10: full
		if err := add(now, "203.0.113.9", fmt.Sprint("b", i)); err != nil {
			t.Fatal(err)
		}
	}
	retry, err := s.add(now, "203.0.113.77", "c", &pending{expires: now.Add(loginTTL)})
	if !errors.Is(err, errPendingFull) || retry <= 0 {
		t.Fatalf("a full table: %v, retry %v", err, retry)
	}
	if p := s.take(now.Add(time.Minute), "real"); p == nil {
		t.Fatal("the sign-in in progress was lost")
	}
	if err := add(now.Add(time.Minute), "203.0.113.77", "c"); err != nil {
		t.Fatalf("after a sign-in completed: %v", err)
	}
	if s.take(now, "real") != nil {
		t.Fatal("a state was taken twice")
	}
	later := now.Add(loginTTL + time.Second)
	if p := s.take(later, "a0"); p != nil {
		t.Fatal("an expired sign-in was taken")
	}
	for i := range 3 {
		if err := add(later, "198.51.100.1", fmt.Sprint("n", i)); err != nil {
			t.Fatalf("after expiry: %v", err)
		}
	}
	if len(s.byState) != 4 || len(s.count) != 2 {
		t.Fatalf("%d entries over %d addresses left, want 4 over 2", len(s.byState), len(s.count))
	}
}
