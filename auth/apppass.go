package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// App-password limits and timings.
const (
	// AppPasswordCacheTTL bounds how long a gateway trusts its cached copy
	// of a user's app passwords: a revocation on one gateway is seen by
	// every other gateway sharing the store within this time.
	AppPasswordCacheTTL = 30 * time.Second
	// maxAppPasswords per user.
	maxAppPasswords = 50
	// touchEvery throttles "last used" writes per app password.
	touchEvery = 10 * time.Minute
	// appPasswordBytes of crypto/rand entropy: 25 bytes = 200 bits = 40
	// base32 characters.
	appPasswordBytes = 25
	maxNameLen       = 64
	maxCachedUsers   = 10000
)

// ErrTooManyAppPasswords is returned by Mint when the user already has the
// maximum number of app passwords.
var ErrTooManyAppPasswords = errors.New("auth: too many app passwords; revoke one first")

// AppPassword is one stored app password. The secret itself is never
// stored: only Hash.
type AppPassword struct {
	// ID identifies it in URLs and keys (16 hex characters).
	ID string `json:"id"`
	// Name is the user's label ("Windows laptop").
	Name string `json:"name"`
	// Created is when it was minted.
	Created time.Time `json:"created"`
	// LastUsed is when it last signed in ("zero" = never), precise to
	// touchEvery.
	LastUsed time.Time `json:"-"`
	// Hash is hex SHA-256 of the domain-separated user name and secret;
	// see hashAppPassword.
	Hash string `json:"hash"`
	// Claims are the user's claims when it was minted; the Principal is
	// computed from them on every use, so changed rules apply at once.
	Claims Claims `json:"claims"`
}

// AppPasswordStore keeps app passwords. Implementations: FileAppPasswords
// (local disk) and BucketAppPasswords (the bucket, shared by every gateway).
type AppPasswordStore interface {
	// List returns the user's app passwords (with LastUsed), none for an
	// unknown user.
	List(ctx context.Context, user string) ([]AppPassword, error)
	// Create stores a new app password.
	Create(ctx context.Context, user string, p AppPassword) error
	// Delete removes one; deleting a missing one is not an error.
	Delete(ctx context.Context, user, id string) error
	// Touch records that id was used at t.
	Touch(ctx context.Context, user, id string, t time.Time) error
}

// AppPasswords mints, lists, revokes and verifies app passwords over an
// AppPasswordStore.
//
// Hashing: the secrets are 200 random bits from crypto/rand, so a fast
// hash is enough. SHA-256 over ("davgw app password v1", user, secret)
// cannot be reversed by guessing (2^200 tries), needs no server-wide key
// that every gateway would have to share, and costs microseconds, so
// Windows' per-request Basic does not pay a slow hash. A slow hash
// (bcrypt/argon2) only helps low-entropy human passwords.
type AppPasswords struct {
	store AppPasswordStore
	ttl   time.Duration
	now   func() time.Time

	mu      sync.Mutex
	users   map[string]cachedList
	touched map[string]time.Time // id -> last Touch written by this gateway
}

type cachedList struct {
	list    []AppPassword
	fetched time.Time
}

// NewAppPasswords returns AppPasswords over store. ttl bounds the cache of
// each user's list (0 = AppPasswordCacheTTL; at most 60 s makes sense).
func NewAppPasswords(store AppPasswordStore, ttl time.Duration) *AppPasswords {
	if ttl <= 0 {
		ttl = AppPasswordCacheTTL
	}
	return &AppPasswords{store: store, ttl: ttl, now: time.Now, users: map[string]cachedList{}, touched: map[string]time.Time{}}
}

// Mint creates an app password for the user in c (c.Username must be a
// safe claim value) and returns the secret, to be shown once.
func (a *AppPasswords) Mint(ctx context.Context, c Claims, name string) (secret string, p AppPassword, err error) {
	if err := SafeClaimValue(c.Username); err != nil {
		return "", AppPassword{}, fmt.Errorf("auth: user name: %w", err)
	}
	name = strings.TrimSpace(name)
	if name == "" {
		name = "app password"
	}
	if !utf8.ValidString(name) || len(name) > maxNameLen || strings.ContainsFunc(name, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return "", AppPassword{}, errors.New("auth: name must be up to 64 printable characters")
	}
	list, err := a.store.List(ctx, c.Username)
	if err != nil {
		return "", AppPassword{}, err
	}
	if len(list) >= maxAppPasswords {
		return "", AppPassword{}, ErrTooManyAppPasswords
	}
	var raw [appPasswordBytes]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", AppPassword{}, err
	}
	secret = strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(raw[:]))
	var id [8]byte
	if _, err := rand.Read(id[:]); err != nil {
		return "", AppPassword{}, err
	}
	p = AppPassword{
		ID:      hex.EncodeToString(id[:]),
		Name:    name,
		Created: a.now().UTC().Truncate(time.Second),
		Hash:    hashAppPassword(c.Username, secret),
		Claims:  c,
	}
	if err := a.store.Create(ctx, c.Username, p); err != nil {
		return "", AppPassword{}, err
	}
	a.forget(c.Username)
	return secret, p, nil
}

// List returns the user's app passwords, read from the store (not the
// cache), newest first.
func (a *AppPasswords) List(ctx context.Context, user string) ([]AppPassword, error) {
	list, err := a.store.List(ctx, user)
	if err != nil {
		return nil, err
	}
	sortNewestFirst(list)
	return list, nil
}

// Revoke deletes the user's app password id. This gateway forgets it at
// once; others within their cache TTL.
func (a *AppPasswords) Revoke(ctx context.Context, user, id string) error {
	if !validID(id) {
		return errors.New("auth: bad app password id")
	}
	err := a.store.Delete(ctx, user, id)
	a.forget(user)
	return err
}

// Verify checks user and secret against the user's app passwords (cached
// for the TTL). It returns the claims stored with the matching one and
// the entry's id. Unknown users and wrong secrets cost the same: the hash
// is compared against every entry, and against a dummy when there is none.
func (a *AppPasswords) Verify(ctx context.Context, user, secret string) (c Claims, fresh, ok bool, err error) {
	if SafeClaimValue(user) != nil || len(secret) > 256 {
		return Claims{}, false, false, nil
	}
	list, err := a.cached(ctx, user)
	if err != nil {
		return Claims{}, false, false, err
	}
	want := hashAppPassword(user, secret)
	match := -1
	if len(list) == 0 {
		subtle.ConstantTimeCompare([]byte(want), []byte(dummyHash))
	}
	for i := range list {
		if subtle.ConstantTimeCompare([]byte(want), []byte(list[i].Hash)) == 1 {
			match = i
		}
	}
	if match < 0 {
		return Claims{}, false, false, nil
	}
	p := list[match]
	fresh = a.touch(ctx, user, p.ID)
	return p.Claims, fresh, true, nil
}

// dummyHash is compared against when a user has no app passwords.
var dummyHash = strings.Repeat("0", 64)

func (a *AppPasswords) cached(ctx context.Context, user string) ([]AppPassword, error) {
	now := a.now()
	a.mu.Lock()
	e, ok := a.users[user]
	a.mu.Unlock()
	if ok && now.Sub(e.fetched) < a.ttl {
		return e.list, nil
	}
	list, err := a.store.List(ctx, user)
	if err != nil {
		return nil, err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.users) >= maxCachedUsers {
		for k, v := range a.users {
			if now.Sub(v.fetched) >= a.ttl || len(a.users) >= maxCachedUsers {
				delete(a.users, k)
			}
		}
	}
	a.users[user] = cachedList{list: list, fetched: now}
	return list, nil
}

func (a *AppPasswords) forget(user string) {
	a.mu.Lock()
	delete(a.users, user)
	a.mu.Unlock()
}

// touch writes "last used" at most once per touchEvery per app password,
// during the request (its failure only loses the date). It reports whether
// it wrote.
func (a *AppPasswords) touch(ctx context.Context, user, id string) bool {
	now := a.now()
	a.mu.Lock()
	last := a.touched[id]
	if now.Sub(last) < touchEvery {
		a.mu.Unlock()
		return false
	}
	if len(a.touched) >= maxCachedUsers {
		clear(a.touched)
	}
	a.touched[id] = now
	a.mu.Unlock()
	tctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	_ = a.store.Touch(tctx, user, id, now)
	return true
}

// hashAppPassword is hex SHA-256 over a domain tag, the user name and the
// secret, each length-prefixed so that no two pairs collide.
func hashAppPassword(user, secret string) string {
	h := sha256.New()
	fmt.Fprintf(h, "davgw app password v1\x00%d:%s\x00%d:%s", len(user), user, len(secret), secret)
	return hex.EncodeToString(h.Sum(nil))
}

func validID(id string) bool {
	if len(id) != 16 {
		return false
	}
	_, err := hex.DecodeString(id)
	return err == nil
}

func sortNewestFirst(list []AppPassword) {
	slices.SortStableFunc(list, func(x, y AppPassword) int { return y.Created.Compare(x.Created) })
}
