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
	"time"
	"unicode/utf8"

	"github.com/davgw/davgw/internal/ttlcache"
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
	// DefaultAppPasswordMaxAge is how long an app password works after it
	// was minted ([auth.oidc].app_password_max_age, 90 days).
	DefaultAppPasswordMaxAge = 90 * 24 * time.Hour
)

// ErrAppPasswordExpired is returned by Verify for a matching app password
// that is past its expiry: the caller answers 401 and audits it.
var ErrAppPasswordExpired = errors.New("auth: app password expired")

// ErrTooManyAppPasswords is returned by Mint when the user already has the
// maximum number of app passwords.
var ErrTooManyAppPasswords = errors.New("auth: too many app passwords; revoke one first")

// ErrAppPasswordName is returned by Mint for a name that is too long or
// holds control characters.
var ErrAppPasswordName = errors.New("auth: name must be up to 64 printable characters")

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
	// Expires is when it stops working (zero = never). An app password
	// also stops at Created + the configured maximum age, whichever comes
	// first, so lowering app_password_max_age applies to existing ones.
	Expires time.Time `json:"expires,omitzero"`
	// Hash is hex SHA-256 of the domain-separated user name and secret;
	// see hashAppPassword.
	Hash string `json:"hash"`
	// Claims are the user's claims when it was minted, replaced by those
	// of the user's latest browser sign-in (see RefreshClaims); the
	// Principal is computed from them on every use, so changed rules apply
	// at once and changed groups at the next browser sign-in.
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
	// SetClaims records the claims of the user's latest browser sign-in;
	// List then returns them in place of the stored claims of every entry
	// of the same subject (see applyUserClaims).
	SetClaims(ctx context.Context, user string, c Claims) error
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
	store  AppPasswordStore
	ttl    time.Duration
	maxAge time.Duration // 0 = never expire
	now    func() time.Time

	users   *ttlcache.Cache[string, cachedList] // user -> list, for the TTL
	touched *ttlcache.Cache[string, struct{}]   // ids this gateway touched within touchEvery
	marks   *changeMarks                        // nil = none: other gateways see changes within the TTL
}

// cachedList is a user's list as this gateway read it, with the change
// mark it read it with.
type cachedList struct {
	list []AppPassword
	mark string
}

// NewAppPasswords returns AppPasswords over store. ttl bounds the cache of
// each user's list (0 = AppPasswordCacheTTL; at most 60 s makes sense).
func NewAppPasswords(store AppPasswordStore, ttl time.Duration) *AppPasswords {
	if ttl <= 0 {
		ttl = AppPasswordCacheTTL
	}
	return &AppPasswords{store: store, ttl: ttl, maxAge: DefaultAppPasswordMaxAge, now: time.Now,
		users:   ttlcache.New[string, cachedList](maxCachedUsers),
		touched: ttlcache.New[string, struct{}](maxCachedUsers),
	}
}

// SetMaxAge sets how long an app password works after it was minted (0 =
// forever; the default is DefaultAppPasswordMaxAge). Call it before use.
func (a *AppPasswords) SetMaxAge(d time.Duration) {
	a.maxAge = max(d, 0)
}

// MaxAge returns the configured maximum age (0 = forever).
func (a *AppPasswords) MaxAge() time.Duration { return a.maxAge }

// ExpiresAt returns when p stops working: the earlier of its stored expiry
// and Created + the maximum age; zero = never.
func (a *AppPasswords) ExpiresAt(p AppPassword) time.Time {
	e := p.Expires
	if a.maxAge > 0 {
		if byAge := p.Created.Add(a.maxAge); e.IsZero() || byAge.Before(e) {
			e = byAge
		}
	}
	return e
}

func (a *AppPasswords) expired(p AppPassword, now time.Time) bool {
	e := a.ExpiresAt(p)
	return !e.IsZero() && !now.Before(e)
}

// RefreshClaims records c (from a browser sign-in) as the claims of all of
// the user's app passwords minted for the same subject, so that group
// changes at the IdP reach them at the user's next sign-in.
func (a *AppPasswords) RefreshClaims(ctx context.Context, c Claims) error {
	user := strings.ToLower(c.Username)
	if err := SafeClaimValue(user); err != nil {
		return fmt.Errorf("auth: user name: %w", err)
	}
	c.Username = user
	err := a.store.SetClaims(ctx, user, c)
	return errors.Join(err, a.changed(ctx, user))
}

// Mint creates an app password for the user in c (c.Username must be a
// safe claim value) and returns the secret, to be shown once.
func (a *AppPasswords) Mint(ctx context.Context, c Claims, name string) (secret string, p AppPassword, err error) {
	c.Username = strings.ToLower(c.Username)
	if err := SafeClaimValue(c.Username); err != nil {
		return "", AppPassword{}, fmt.Errorf("auth: user name: %w", err)
	}
	name = strings.TrimSpace(name)
	if name == "" {
		name = "app password"
	}
	if !utf8.ValidString(name) || len(name) > maxNameLen || strings.ContainsFunc(name, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return "", AppPassword{}, ErrAppPasswordName
	}
	list, err := a.store.List(ctx, c.Username)
	if err != nil {
		return "", AppPassword{}, err
	}
	// Expired ones only take room: remove them.
	now := a.now()
	live := list[:0]
	for _, x := range list {
		if a.expired(x, now) {
			if err := a.store.Delete(ctx, c.Username, x.ID); err != nil {
				return "", AppPassword{}, err
			}
			continue
		}
		live = append(live, x)
	}
	list = live
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
		Created: now.UTC().Truncate(time.Second),
		Hash:    hashAppPassword(c.Username, secret),
		Claims:  c,
	}
	if a.maxAge > 0 {
		p.Expires = p.Created.Add(a.maxAge)
	}
	if err := a.store.Create(ctx, c.Username, p); err != nil {
		return "", AppPassword{}, err
	}
	// Without the mark another gateway may refuse the new password until
	// its copy of the list expires; the password itself is made.
	_ = a.changed(ctx, c.Username)
	return secret, p, nil
}

// List returns the user's app passwords, read from the store (not the
// cache), newest first, each with its effective Expires (see ExpiresAt).
func (a *AppPasswords) List(ctx context.Context, user string) ([]AppPassword, error) {
	list, err := a.store.List(ctx, strings.ToLower(user))
	if err != nil {
		return nil, err
	}
	for i := range list {
		list[i].Expires = a.ExpiresAt(list[i])
	}
	sortNewestFirst(list)
	return list, nil
}

// Revoke deletes the user's app password id. This gateway forgets it at
// once, and so do the others sharing its change marks (SharedIn); without
// them, others within their cache TTL. An error after the deletion (no
// mark written: Redis down) says that others may accept it for up to the
// TTL.
func (a *AppPasswords) Revoke(ctx context.Context, user, id string) error {
	if !validID(id) {
		return errors.New("auth: bad app password id")
	}
	user = strings.ToLower(user)
	if err := a.store.Delete(ctx, user, id); err != nil {
		a.forget(user)
		return err
	}
	return a.changed(ctx, user)
}

// Verify checks user (ignoring case) and secret against the user's app
// passwords (cached for the TTL). It returns the claims of the matching
// one (see RefreshClaims). A matching but expired one gives
// ErrAppPasswordExpired. Unknown users and wrong secrets cost the same:
// the hash is compared against every entry, and against a dummy when there
// is none.
func (a *AppPasswords) Verify(ctx context.Context, user, secret string) (c Claims, fresh, ok bool, err error) {
	user = strings.ToLower(user)
	if SafeClaimValue(user) != nil || len(secret) > 256 {
		return Claims{}, false, false, nil
	}
	list, err := a.cached(ctx, user)
	if err != nil {
		return Claims{}, false, false, err
	}
	p, found := matchAppPassword(list, user, secret)
	if !found {
		return Claims{}, false, false, nil
	}
	if a.expired(p, a.now()) {
		return Claims{}, false, false, fmt.Errorf("%w: %q (%s), expired %s", ErrAppPasswordExpired, p.Name, p.ID, a.ExpiresAt(p).UTC().Format(time.RFC3339))
	}
	fresh = a.touch(ctx, user, p.ID)
	return p.Claims, fresh, true, nil
}

// Cached is Verify from this gateway's in-memory copy only: it never asks
// the store and never fails. It reports ok only for a live (unexpired)
// match in a copy younger than the TTL and, with change marks, read with
// the user's current mark (one GET in Redis; while Redis is down, any
// copy younger than the TTL).
func (a *AppPasswords) Cached(ctx context.Context, user, secret string) (Claims, bool) {
	user = strings.ToLower(user)
	if SafeClaimValue(user) != nil || len(secret) > 256 {
		return Claims{}, false
	}
	now := a.now()
	e, ok := a.users.Get(user, now)
	if !ok {
		return Claims{}, false
	}
	p, found := matchAppPassword(e.list, user, secret)
	// The mark last: a static user's name (the chain asks here first)
	// costs no call to Redis.
	if !found || a.expired(p, now) || !a.current(ctx, user, e) {
		return Claims{}, false
	}
	return p.Claims, true
}

// matchAppPassword compares the secret's hash with every entry (and with a
// dummy when there is none), in constant time per entry.
func matchAppPassword(list []AppPassword, user, secret string) (AppPassword, bool) {
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
		return AppPassword{}, false
	}
	return list[match], true
}

// dummyHash is compared against when a user has no app passwords.
var dummyHash = strings.Repeat("0", 64)

func (a *AppPasswords) cached(ctx context.Context, user string) ([]AppPassword, error) {
	now := a.now()
	mark, markErr := "", error(nil)
	if a.marks != nil {
		if mark, markErr = a.marks.current(ctx, user); markErr != nil {
			mark = unknownMark
		}
	}
	if e, ok := a.users.Get(user, now); ok && (markErr != nil || e.mark == mark) {
		return e.list, nil
	}
	list, err := a.store.List(ctx, user)
	if err != nil {
		return nil, err
	}
	a.users.Put(user, cachedList{list: list, mark: mark}, now.Add(a.ttl), now)
	return list, nil
}

// current reports whether the cached copy e may be used: without change
// marks always (it is younger than the TTL), with them if it was read
// with the user's mark, or Redis is down.
func (a *AppPasswords) current(ctx context.Context, user string, e cachedList) bool {
	if a.marks == nil {
		return true
	}
	mark, err := a.marks.current(ctx, user)
	return err != nil || e.mark == mark
}

func (a *AppPasswords) forget(user string) { a.users.Delete(user) }

// changed forgets this gateway's copy of user's list and, with change
// marks, tells the other gateways to forget theirs.
func (a *AppPasswords) changed(ctx context.Context, user string) error {
	a.forget(user)
	if a.marks == nil {
		return nil
	}
	return a.marks.change(ctx, user)
}

// touch writes "last used" at most once per touchEvery per app password,
// during the request (its failure only loses the date). It reports whether
// it wrote.
func (a *AppPasswords) touch(ctx context.Context, user, id string) bool {
	now := a.now()
	if !a.touched.Add(id, struct{}{}, now.Add(touchEvery), now) {
		return false
	}
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

// applyUserClaims replaces the claims of every entry minted for c's
// subject by c (the latest browser sign-in). Entries of another subject
// keep theirs, so that the identity binding still refuses them.
func applyUserClaims(list []AppPassword, c Claims) {
	for i := range list {
		if c.Subject != "" && list[i].Claims.Subject == c.Subject {
			list[i].Claims = c
		}
	}
}

func sortNewestFirst(list []AppPassword) {
	slices.SortStableFunc(list, func(x, y AppPassword) int { return y.Created.Compare(x.Created) })
}
