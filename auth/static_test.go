package auth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

func mustHash(t *testing.T, pw string) string {
	t.Helper()
	h, err := HashPasswordCost(pw, bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestStaticAuthenticate(t *testing.T) {
	s, err := NewStatic([]StaticUser{
		{Name: "alice", PasswordHash: mustHash(t, "wonderland")},
		{Name: "bob@example.com", PasswordHash: mustHash(t, "builder"), Root: "shared/bob/"},
		{Name: "carol", PasswordHash: mustHash(t, "c"), Root: "/teams/{username}"},
	}, "users/{username}/")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		user, pw string
		noAuth   bool
		wantOK   bool
		wantRoot string
	}{
		{name: "a known user with the right password gets the template root", user: "alice", pw: "wonderland", wantOK: true, wantRoot: "users/alice/"},
		{name: "a user's own root wins over the template", user: "bob@example.com", pw: "builder", wantOK: true, wantRoot: "shared/bob/"},
		{name: "an override root is cleaned and expanded", user: "carol", pw: "c", wantOK: true, wantRoot: "teams/carol/"},
		{name: "a wrong password is refused", user: "alice", pw: "Wonderland"},
		{name: "an unknown user is refused", user: "mallory", pw: "wonderland"},
		{name: "an invalid user name is refused", user: "../alice", pw: "wonderland"},
		{name: "an empty password is refused", user: "alice", pw: ""},
		{name: "a request without credentials is refused", noAuth: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("PROPFIND", "/dav/", nil)
			if !tt.noAuth {
				r.SetBasicAuth(tt.user, tt.pw)
			}
			p, ok, err := s.Authenticate(r)
			if err != nil {
				t.Fatalf("err = %v", err)
			}
			if ok != tt.wantOK {
				t.Fatalf("ok = %v, want %v", ok, tt.wantOK)
			}
			if ok && (p.Root != tt.wantRoot || p.Username != tt.user || p.ReadOnly) {
				t.Fatalf("principal = %+v, want root %q", p, tt.wantRoot)
			}
		})
	}
}

func TestNewStaticRefusesBadUsers(t *testing.T) {
	good := mustHash(t, "pw")
	tests := []struct {
		name  string
		users []StaticUser
		tmpl  string
	}{
		{name: "a name with a slash is refused", users: []StaticUser{{Name: "a/b", PasswordHash: good}}, tmpl: "users/{username}/"},
		{name: "a name starting with a dot is refused", users: []StaticUser{{Name: ".hidden", PasswordHash: good}}, tmpl: "users/{username}/"},
		{name: "a name with a space is refused", users: []StaticUser{{Name: "a b", PasswordHash: good}}, tmpl: "users/{username}/"},
		{name: "an empty name is refused", users: []StaticUser{{Name: "", PasswordHash: good}}, tmpl: "users/{username}/"},
		{name: "a duplicate name is refused", users: []StaticUser{{Name: "a", PasswordHash: good}, {Name: "a", PasswordHash: good}}, tmpl: "users/{username}/"},
		{name: "a hash that is not bcrypt is refused", users: []StaticUser{{Name: "a", PasswordHash: "plain"}}, tmpl: "users/{username}/"},
		{name: "a root with .. is refused", users: []StaticUser{{Name: "a", PasswordHash: good, Root: "users/../admin/"}}, tmpl: "users/{username}/"},
		{name: "a root with an empty segment is refused", users: []StaticUser{{Name: "a", PasswordHash: good}}, tmpl: "users//{username}/"},
		{name: "a root with a backslash is refused", users: []StaticUser{{Name: "a", PasswordHash: good}}, tmpl: `users\{username}/`},
		{name: "a root with a control character is refused", users: []StaticUser{{Name: "a", PasswordHash: good}}, tmpl: "users/\x01{username}/"},
		{name: "the email placeholder is refused for static users", users: []StaticUser{{Name: "a", PasswordHash: good}}, tmpl: "users/{email}/"},
		{name: "an unknown placeholder is refused", users: []StaticUser{{Name: "a", PasswordHash: good}}, tmpl: "users/{name}/"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := NewStatic(tt.users, tt.tmpl); err == nil {
				t.Fatal("NewStatic succeeded, want an error")
			}
		})
	}
}

func TestStaticCache(t *testing.T) {
	t.Run("a verified password stays cached while in use and goes after it idles", func(t *testing.T) {
		s, err := NewStatic([]StaticUser{{Name: "alice", PasswordHash: mustHash(t, "pw")}}, "users/{username}/")
		if err != nil {
			t.Fatal(err)
		}
		now := time.Unix(1000, 0)
		s.now = func() time.Time { return now }
		if _, ok := s.Verify("alice", "pw"); !ok {
			t.Fatal("first verification failed")
		}
		// Swap the hash: a cache hit does not look at it.
		s.users.Load().m["alice"].hash = []byte(mustHash(t, "other"))
		if _, ok := s.Verify("alice", "pw"); !ok {
			t.Fatal("cached verification failed")
		}
		// A client in steady use (a request every 10 minutes, for hours)
		// never pays bcrypt again.
		for range 30 {
			now = now.Add(10 * time.Minute)
			if _, ok := s.Verify("alice", "pw"); !ok {
				t.Fatalf("verification at %v of steady use missed the cache", now.Sub(time.Unix(1000, 0)))
			}
		}
		if got := s.bcryptRuns.Load(); got != 1 {
			t.Fatalf("%d bcrypt runs over 5 hours of steady use, want 1", got)
		}
		now = now.Add(cacheIdle + time.Second)
		if _, ok := s.Verify("alice", "pw"); ok {
			t.Fatal("verification after the idle time used the stale cache entry")
		}
	})
	t.Run("concurrent checks of the same credentials share one bcrypt", func(t *testing.T) {
		s, err := NewStatic([]StaticUser{{Name: "alice", PasswordHash: mustHash(t, "pw")}}, "users/{username}/")
		if err != nil {
			t.Fatal(err)
		}
		// Hold every bcrypt slot so that all the checks queue up together.
		for range cap(s.slots) {
			s.slots <- struct{}{}
		}
		var wg sync.WaitGroup
		var failed atomic.Int64
		for range 32 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, ok := s.Verify("alice", "pw"); !ok {
					failed.Add(1)
				}
			}()
		}
		time.Sleep(100 * time.Millisecond)
		for range cap(s.slots) {
			<-s.slots
		}
		wg.Wait()
		if failed.Load() != 0 {
			t.Fatalf("%d of 32 checks failed", failed.Load())
		}
		if got := s.bcryptRuns.Load(); got != 1 {
			t.Fatalf("%d bcrypt runs for 32 concurrent checks of the same credentials, want 1", got)
		}
	})
	t.Run("a wrong password is never cached", func(t *testing.T) {
		s, err := NewStatic([]StaticUser{{Name: "alice", PasswordHash: mustHash(t, "pw")}}, "")
		if err != nil {
			t.Fatal(err)
		}
		s.Verify("alice", "nope")
		if n := s.cache.Len(); n != 0 {
			t.Fatalf("cache has %d entries after a failure", n)
		}
	})
	t.Run("the cache stays bounded", func(t *testing.T) {
		s, err := NewStatic(nil, "")
		if err != nil {
			t.Fatal(err)
		}
		for i := range cacheMaxSize + 10 {
			now := time.Now()
			s.cache.Put(s.cacheKey("u", strings.Repeat("x", i)), staticHit{}, now.Add(cacheIdle), now)
		}
		if n := s.cache.Len(); n > cacheMaxSize {
			t.Fatalf("cache has %d entries, max %d", n, cacheMaxSize)
		}
	})
	t.Run("cache keys differ between user and password splits", func(t *testing.T) {
		s, err := NewStatic(nil, "")
		if err != nil {
			t.Fatal(err)
		}
		if s.cacheKey("ab", "c") == s.cacheKey("a", "bc") {
			t.Fatal("cache keys collide")
		}
	})
}

func TestStaticUnknownUsersUseADummyOfTheSameCost(t *testing.T) {
	s, err := NewStatic([]StaticUser{{Name: "alice", PasswordHash: mustHash(t, "pw")}}, "")
	if err != nil {
		t.Fatal(err)
	}
	c, err := bcrypt.Cost(s.users.Load().dummy)
	if err != nil || c != bcrypt.MinCost {
		t.Fatalf("dummy cost = %d, %v; want %d", c, err, bcrypt.MinCost)
	}
}

func TestHashPassword(t *testing.T) {
	tests := []struct {
		name    string
		pw      string
		wantErr bool
	}{
		{name: "a normal password hashes", pw: "correct horse battery staple"},
		{name: "an empty password is refused", pw: "", wantErr: true},
		{name: "a password over 72 bytes is refused", pw: strings.Repeat("a", 73), wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, err := HashPasswordCost(tt.pw, bcrypt.MinCost)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if err == nil && bcrypt.CompareHashAndPassword([]byte(h), []byte(tt.pw)) != nil {
				t.Fatal("hash does not verify")
			}
		})
	}
}

func TestCleanRoot(t *testing.T) {
	tests := []struct {
		name, in, want string
		wantErr        bool
	}{
		{name: "an empty root is the whole prefix", in: "", want: ""},
		{name: "a slash alone is the whole prefix", in: "/", want: ""},
		{name: "a missing trailing slash is added", in: "a/b", want: "a/b/"},
		{name: "a leading slash is dropped", in: "/a/", want: "a/"},
		{name: "dot dot is refused", in: "a/../b/", wantErr: true},
		{name: "a single dot is refused", in: "./a/", wantErr: true},
		{name: "a double slash is refused", in: "a//b/", wantErr: true},
		{name: "a backslash is refused", in: `a\b/`, wantErr: true},
		{name: "a newline is refused", in: "a\nb/", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := CleanRoot(tt.in)
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Fatalf("CleanRoot(%q) = %q, %v", tt.in, got, err)
			}
		})
	}
}

func TestStaticPasswordChecksAreBoundedAndFollowTheRequest(t *testing.T) {
	s, err := NewStatic([]StaticUser{{Name: "alice", PasswordHash: mustHash(t, "pw")}}, "users/{username}/")
	if err != nil {
		t.Fatal(err)
	}
	for range cap(s.slots) { // every bcrypt slot busy
		s.slots <- struct{}{}
	}
	defer func() {
		for range cap(s.slots) {
			<-s.slots
		}
	}()
	// A check whose request ends stops waiting.
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, ok, err := s.VerifyContext(ctx, "alice", "pw"); ok || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a check whose request ended: ok=%v err=%v", ok, err)
	}
	// Past DefaultWaitingChecks waiting checks, the next answers ErrBusy at once.
	s.waiting.Store(DefaultWaitingChecks)
	if _, ok, err := s.VerifyContext(context.Background(), "bob", "guess"); ok || !errors.Is(err, ErrBusy) {
		t.Fatalf("a check past the waiting bound: ok=%v err=%v, want ErrBusy", ok, err)
	}
	s.waiting.Store(0)
}

func TestLimitChecksSetsTheRunningAndWaitingBounds(t *testing.T) {
	s, err := NewStatic([]StaticUser{{Name: "alice", PasswordHash: mustHash(t, "pw")}}, "users/{username}/")
	if err != nil {
		t.Fatal(err)
	}
	s.LimitChecks(1, 2)
	if cap(s.slots) != 1 {
		t.Fatalf("running checks: %d, want 1", cap(s.slots))
	}
	s.slots <- struct{}{} // the one slot busy
	ctx, cancel := context.WithCancel(context.Background())
	errs := make(chan error, 2)
	for i := range 2 { // two distinct checks wait (no shared flight)
		go func() {
			_, _, err := s.VerifyContext(ctx, "alice", fmt.Sprint("guess", i))
			errs <- err
		}()
	}
	deadline := time.Now().Add(5 * time.Second)
	for s.waiting.Load() != 2 {
		if time.Now().After(deadline) {
			t.Fatalf("waiting checks: %d, want 2", s.waiting.Load())
		}
		time.Sleep(time.Millisecond)
	}
	if _, ok, err := s.VerifyContext(context.Background(), "alice", "guess3"); ok || !errors.Is(err, ErrBusy) {
		t.Fatalf("a third check with 2 waiting: ok=%v err=%v, want ErrBusy", ok, err)
	}
	cancel()
	for range 2 {
		if err := <-errs; !errors.Is(err, context.Canceled) {
			t.Fatalf("a waiting check whose request ended: %v", err)
		}
	}
	<-s.slots
	if _, ok, err := s.VerifyContext(context.Background(), "alice", "pw"); !ok || err != nil {
		t.Fatalf("a check with the slot free: ok=%v err=%v", ok, err)
	}
}

func TestABusyPasswordCheckCountsAsAFailure(t *testing.T) {
	s, err := NewStatic([]StaticUser{{Name: "alice", PasswordHash: mustHash(t, "pw")}}, "users/{username}/")
	if err != nil {
		t.Fatal(err)
	}
	s.waiting.Store(DefaultWaitingChecks) // every check finds the queue full
	c := NewChain(ChainConfig{Static: s, Limiter: NewLimiter(3, 100, time.Minute), Audit: slog.New(slog.DiscardHandler)})
	for i := range 3 {
		if _, ok, err := c.Authenticate(basicReq("alice", "guess")); ok || !errors.Is(err, ErrBusy) {
			t.Fatalf("guess %d with the checks busy: ok=%v err=%v, want ErrBusy", i, ok, err)
		}
	}
	var limited *RateLimitError
	if _, ok, err := c.Authenticate(basicReq("alice", "guess")); ok || !errors.As(err, &limited) {
		t.Fatalf("a fourth guess: ok=%v err=%v, want the rate limit", ok, err)
	}
}

func TestReplaceKeepsUnchangedUsersSignedInAndEndsChangedOnes(t *testing.T) {
	alice, bob := mustHash(t, "a-pw"), mustHash(t, "b-pw")
	s, err := NewStatic([]StaticUser{{Name: "alice", PasswordHash: alice}, {Name: "bob", PasswordHash: bob}}, "users/{username}/")
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range [][2]string{{"alice", "a-pw"}, {"bob", "b-pw"}} {
		if _, ok := s.Verify(u[0], u[1]); !ok {
			t.Fatalf("%s: first sign-in failed", u[0])
		}
	}
	runs := s.bcryptRuns.Load()
	// A bad set changes nothing.
	if err := s.Replace([]StaticUser{{Name: "alice", PasswordHash: "not bcrypt"}}, "users/{username}/"); err == nil {
		t.Fatal("a bad hash was accepted")
	}
	if _, ok := s.Verify("bob", "b-pw"); !ok || s.bcryptRuns.Load() != runs {
		t.Fatal("a refused reload changed the users")
	}
	// alice unchanged, bob's password changed, carol new.
	if err := s.Replace([]StaticUser{{Name: "alice", PasswordHash: alice}, {Name: "bob", PasswordHash: mustHash(t, "b-new")}, {Name: "carol", PasswordHash: mustHash(t, "c-pw")}}, "users/{username}/"); err != nil {
		t.Fatal(err)
	}
	if p, ok := s.Verify("alice", "a-pw"); !ok || p.Root != "users/alice/" || s.bcryptRuns.Load() != runs {
		t.Fatalf("an unchanged user: ok=%v root=%q, bcrypt runs %d -> %d (want her cached sign-in kept)", ok, p.Root, runs, s.bcryptRuns.Load())
	}
	if _, ok := s.Verify("bob", "b-pw"); ok {
		t.Fatal("bob's old password still works after the reload")
	}
	if _, ok := s.Verify("bob", "b-new"); !ok {
		t.Fatal("bob's new password does not work")
	}
	if _, ok := s.Verify("carol", "c-pw"); !ok {
		t.Fatal("a user added by the reload cannot sign in")
	}
	// A new root template moves alice (her cached sign-in ends); removing
	// carol ends hers.
	if err := s.Replace([]StaticUser{{Name: "alice", PasswordHash: alice}}, "home/{username}/"); err != nil {
		t.Fatal(err)
	}
	if p, ok := s.Verify("alice", "a-pw"); !ok || p.Root != "home/alice/" {
		t.Fatalf("after a root change: ok=%v root=%q, want home/alice/", ok, p.Root)
	}
	if _, ok := s.Verify("carol", "c-pw"); ok {
		t.Fatal("a removed user can still sign in")
	}
}
