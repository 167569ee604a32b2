package locks

import (
	"strings"
	"testing"
	"time"

	"golang.org/x/net/webdav"
)

func TestLocksAreScopedByRootAndTokensAreRandom(t *testing.T) {
	m := NewMemory(Limits{})
	alice, bob := m.ForRoot("users/alice/"), m.ForRoot("users/bob/")
	now := time.Now()
	tokA, err := alice.Create(now, webdav.LockDetails{Root: "/a.txt", Duration: time.Minute, ZeroDepth: true})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(tokA, "opaquelocktoken:") || len(tokA) != len("opaquelocktoken:")+36 {
		t.Fatalf("token %q is not an opaquelocktoken UUID", tokA)
	}
	tokB, err := bob.Create(now, webdav.LockDetails{Root: "/a.txt", Duration: time.Minute, ZeroDepth: true})
	if err != nil {
		t.Fatalf("bob's lock on his own /a.txt was blocked by alice's: %v", err)
	}
	if tokA == tokB {
		t.Fatal("two locks got the same token")
	}
	if _, err := alice.Create(now, webdav.LockDetails{Root: "/a.txt", Duration: time.Minute, ZeroDepth: true}); err != webdav.ErrLocked {
		t.Fatalf("second lock on alice's /a.txt: got %v, want ErrLocked", err)
	}
	if err := bob.Unlock(now, tokA); err != webdav.ErrNoSuchLock {
		t.Fatalf("bob unlocked alice's token: %v", err)
	}
	if _, err := bob.Confirm(now, "/a.txt", "", webdav.Condition{Token: tokA}); err == nil {
		t.Fatal("alice's token confirmed bob's resource")
	}
	rel, err := alice.Confirm(now, "/a.txt", "", webdav.Condition{Token: tokA})
	if err != nil {
		t.Fatalf("alice's own token did not confirm: %v", err)
	}
	rel()
	ld, err := alice.Refresh(now, tokA, time.Hour)
	if err != nil || ld.Root != "/a.txt" {
		t.Fatalf("refresh: %+v, %v", ld, err)
	}
	if err := alice.Unlock(now, tokA); err != nil {
		t.Fatalf("unlock: %v", err)
	}
	if err := alice.Unlock(now, tokA); err != webdav.ErrNoSuchLock {
		t.Fatalf("second unlock: %v", err)
	}
}
