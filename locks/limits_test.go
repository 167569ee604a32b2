package locks

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/webdav"
)

// TestLockLimits: one root's client locks are counted and capped, an owner
// past the cap is refused, and neither touches another root or a
// request's temporary locks; unlocking or expiry makes room again.
func TestLockLimits(t *testing.T) {
	lockBackends(t, func(t *testing.T, a, b *Table) {
		for _, m := range []*Table{a, b} {
			m.SetLimits(Limits{OwnerBytes: 64, PerUser: 3})
		}
		now := time.Now()
		alice := a.ForRoot("limits-alice/")
		var toks []string
		for i := range 3 {
			tok, err := alice.Create(now, webdav.LockDetails{Root: fmt.Sprintf("/f%d", i), Duration: time.Minute, OwnerXML: "<D:href>alice</D:href>"})
			if err != nil {
				t.Fatalf("lock %d: %v", i, err)
			}
			toks = append(toks, tok)
		}
		// Through the other gateway too: the count is shared.
		over := b.ForRoot("limits-alice/")
		if _, err := over.Create(now, webdav.LockDetails{Root: "/f3", Duration: time.Minute}); !errors.Is(err, ErrTooMany) {
			t.Fatalf("a fourth lock: %v, want ErrTooMany", err)
		}
		// A request's own short lock is not a client lock.
		tmp, err := alice.Create(now, webdav.LockDetails{Root: "/g", Duration: -1})
		if err != nil {
			t.Fatalf("temporary lock at the limit: %v", err)
		}
		_ = alice.Unlock(now, tmp)
		if _, err := b.ForRoot("limits-bob/").Create(now, webdav.LockDetails{Root: "/f3", Duration: time.Minute}); err != nil {
			t.Fatalf("bob's lock, alice at her limit: %v", err)
		}
		if _, err := b.ForRoot("limits-bob/").Create(now, webdav.LockDetails{Root: "/big", Duration: time.Minute, OwnerXML: strings.Repeat("x", 65)}); !errors.Is(err, ErrOwnerTooLarge) {
			t.Fatalf("a 65-byte owner: %v, want ErrOwnerTooLarge", err)
		}
		if err := alice.Unlock(now, toks[0]); err != nil {
			t.Fatal(err)
		}
		if _, err := over.Create(now, webdav.LockDetails{Root: "/f3", Duration: time.Minute}); err != nil {
			t.Fatalf("after an unlock: %v", err)
		}
		// Expired locks do not count (memory only: Redis follows its own clock).
		if a == b {
			later := now.Add(2 * time.Minute)
			if _, err := alice.Create(later, webdav.LockDetails{Root: "/f9", Duration: time.Minute}); err != nil {
				t.Fatalf("after the locks expired: %v", err)
			}
		}
	})
}

// TestOnlyTheCreatorUsesALock: users who share a root (a group rule) see
// each other's locks and conflict on names, but a lock's token confirms,
// refreshes and unlocks only for the user who made it (RFC 4918 6.4).
func TestOnlyTheCreatorUsesALock(t *testing.T) {
	lockBackends(t, func(t *testing.T, a, b *Table) {
		now := time.Now()
		alice, bob := a.ForRoot("shared-team/").By("alice"), b.ForRoot("shared-team/").By("bob")
		tok, err := alice.Create(now, webdav.LockDetails{Root: "/plan.txt", Duration: time.Minute, ZeroDepth: true})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := bob.Create(now, webdav.LockDetails{Root: "/plan.txt", Duration: time.Minute, ZeroDepth: true}); err != webdav.ErrLocked {
			t.Fatalf("bob locking alice's locked name: %v, want ErrLocked", err)
		}
		if got := bob.Discover(now, "/plan.txt"); len(got) != 1 || got[0].Token != tok {
			t.Fatalf("bob's lockdiscovery: %+v, want alice's lock", got)
		}
		if _, err := bob.Confirm(now, "/plan.txt", "", webdav.Condition{Token: tok}); err != webdav.ErrConfirmationFailed {
			t.Fatalf("bob writing with alice's token: %v, want ErrConfirmationFailed", err)
		}
		if _, err := bob.Refresh(now, tok, time.Hour); err != webdav.ErrNoSuchLock {
			t.Fatalf("bob refreshing alice's lock: %v, want ErrNoSuchLock", err)
		}
		if err := bob.Unlock(now, tok); err != webdav.ErrNoSuchLock {
			t.Fatalf("bob unlocking alice's lock: %v, want ErrNoSuchLock", err)
		}
		release, err := alice.Confirm(now, "/plan.txt", "", webdav.Condition{Token: tok})
		if err != nil {
			t.Fatalf("alice writing with her token: %v", err)
		}
		release()
		if _, err := alice.Refresh(now, tok, time.Minute); err != nil {
			t.Fatalf("alice refreshing: %v", err)
		}
		if err := alice.Unlock(now, tok); err != nil {
			t.Fatalf("alice unlocking: %v", err)
		}
	})
}
