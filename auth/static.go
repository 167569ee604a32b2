package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"net/http"
	"runtime"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/bcrypt"
	"golang.org/x/sync/singleflight"

	"github.com/davgw/davgw/internal/ttlcache"
)

// DefaultHashCost is the bcrypt cost of HashPassword (about 250 ms on a
// current core).
const DefaultHashCost = 12

// Cache bounds of Static: a successful verification is remembered while
// it is in use, until cacheIdle passes without a request that presents
// it, so that clients that send Basic credentials with every request
// (Windows' Mini-Redirector, rclone, Finder) pay bcrypt once per session,
// not once a minute. Static users change only with the config, which
// takes a restart: the cache starts empty then.
const (
	cacheIdle    = 15 * time.Minute
	cacheMaxSize = 1024
)

// ErrPasswordTooLong is returned by HashPassword for passwords over 72
// bytes, bcrypt's limit.
var ErrPasswordTooLong = errors.New("auth: password longer than 72 bytes")

// HashPassword returns a bcrypt hash of pw with DefaultHashCost, for the
// password_hash of an [[auth.users]] entry.
func HashPassword(pw string) (string, error) {
	return HashPasswordCost(pw, DefaultHashCost)
}

// HashPasswordCost is HashPassword with an explicit bcrypt cost (tests use
// bcrypt.MinCost to stay fast).
func HashPasswordCost(pw string, cost int) (string, error) {
	if pw == "" {
		return "", errors.New("auth: empty password")
	}
	if len(pw) > 72 {
		return "", ErrPasswordTooLong
	}
	h, err := bcrypt.GenerateFromPassword([]byte(pw), cost)
	if err != nil {
		return "", fmt.Errorf("auth: hash password: %w", err)
	}
	return string(h), nil
}

// StaticUser is one configured user with a bcrypt password hash.
type StaticUser struct {
	// Name is the sign-in name; see ValidUsername.
	Name string
	// PasswordHash is a bcrypt hash (from HashPassword).
	PasswordHash string
	// Root, when set, overrides the root template for this user. It may use
	// the {username} placeholder.
	Root string
}

// Static authenticates HTTP Basic credentials against a fixed list of
// users. Unknown users cost one bcrypt comparison against a dummy hash of
// the same cost as the real ones, so timing does not reveal which names
// exist.
type Static struct {
	// users is replaced whole by Replace (a SIGHUP reload); checks
	// already running finish with the set they began with.
	users atomic.Pointer[staticUsers]

	salt  [32]byte // per-process salt of cache keys
	now   func() time.Time
	cache *ttlcache.Cache[[32]byte, staticHit]

	// flight makes concurrent checks of the same credentials share one
	// bcrypt; slots bounds the bcrypt comparisons running at once, so
	// that a burst of sign-ins (or of guesses) cannot take every core.
	flight     singleflight.Group
	slots      chan struct{}
	maxWaiting int64        // DefaultWaitingChecks unless LimitChecks
	waiting    atomic.Int64 // checks waiting for a slot
	bcryptRuns atomic.Int64 // for tests
}

// DefaultWaitingChecks bounds the password checks waiting for a bcrypt
// slot: past it a check answers ErrBusy at once (503 with Retry-After)
// instead of queueing behind a flood of guesses (issue 10, F9).
const DefaultWaitingChecks = 64

// LimitChecks sets the bcrypt comparisons run at once (0 = one per CPU
// less one, at least one: a flood of guesses leaves a core to signed-in
// users, whose verified credentials need no bcrypt) and the checks that
// may wait for one (0 = DefaultWaitingChecks): the [limits]
// password_checks keys. Call it before the first check.
func (s *Static) LimitChecks(running, waiting int) {
	if running <= 0 {
		running = max(1, runtime.GOMAXPROCS(0)-1)
	}
	if waiting <= 0 {
		waiting = DefaultWaitingChecks
	}
	s.slots = make(chan struct{}, running)
	s.maxWaiting = int64(waiting)
}

// ErrBusy: too many password checks are waiting; the caller answers 503.
var ErrBusy = errors.New("auth: too many password checks at once")

var _ Authenticator = (*Static)(nil)

type staticEntry struct {
	hash  []byte
	store string
	root  string
}

// staticUsers is one configured set of users.
type staticUsers struct {
	m     map[string]*staticEntry
	dummy []byte // bcrypt hash of a random password, for unknown users
}

// staticHit is a cached success: valid while the user's entry is still
// the one it was verified against (a reload that changes the user's hash
// or root, or removes the user, ends it at once).
type staticHit struct {
	p     Principal
	entry *staticEntry
}

// NewStatic builds a Static authenticator. rootTemplate is [auth].root
// ("users/{username}/" by default); a user's own Root wins over it.
// {username} and {sub} are replaced by the user name; {email} is not
// available for static users. Every user name, hash and resulting root is
// checked; the error names the user.
func NewStatic(users []StaticUser, rootTemplate string) (*Static, error) {
	s := &Static{
		now:   time.Now,
		cache: ttlcache.New[[32]byte, staticHit](cacheMaxSize),
	}
	s.LimitChecks(0, 0)
	if _, err := rand.Read(s.salt[:]); err != nil {
		return nil, err
	}
	set, err := buildStaticUsers(users, rootTemplate, nil)
	if err != nil {
		return nil, err
	}
	s.users.Store(set)
	return s, nil
}

// Replace swaps in a new set of users (a config reload), checked as
// NewStatic checks them; on an error nothing changes. Users whose hash
// and root stay the same keep their cached sign-ins; a changed or removed
// user's cached sign-ins end at once.
func (s *Static) Replace(users []StaticUser, rootTemplate string) error {
	set, err := buildStaticUsers(users, rootTemplate, s.users.Load())
	if err != nil {
		return err
	}
	s.users.Store(set)
	return nil
}

// buildStaticUsers checks and expands users; entries equal to old's are
// reused, so that their cached sign-ins stay valid.
func buildStaticUsers(users []StaticUser, rootTemplate string, old *staticUsers) (*staticUsers, error) {
	set := &staticUsers{m: make(map[string]*staticEntry, len(users))}
	cost := bcrypt.MinCost
	for _, u := range users {
		if err := ValidUsername(u.Name); err != nil {
			return nil, fmt.Errorf("auth: user %q: %w", u.Name, err)
		}
		if _, dup := set.m[u.Name]; dup {
			return nil, fmt.Errorf("auth: user %q: listed twice", u.Name)
		}
		c, err := bcrypt.Cost([]byte(u.PasswordHash))
		if err != nil {
			return nil, fmt.Errorf("auth: user %q: password hash is not a bcrypt hash", u.Name)
		}
		cost = max(cost, c)
		tmpl := rootTemplate
		if u.Root != "" {
			tmpl = u.Root
		}
		store, tmpl := SplitRoot(tmpl)
		if store != "" {
			if err := CheckStoreName(store); err != nil {
				return nil, fmt.Errorf("auth: user %q: root: %w", u.Name, err)
			}
		}
		root, err := ExpandRoot(tmpl, u.Name)
		if err != nil {
			return nil, fmt.Errorf("auth: user %q: root: %w", u.Name, err)
		}
		if strings.HasPrefix(root, ReservedPrefix) {
			return nil, fmt.Errorf("auth: user %q: root must not be inside the reserved prefix %s", u.Name, ReservedPrefix)
		}
		e := &staticEntry{hash: []byte(u.PasswordHash), store: store, root: root}
		if old != nil {
			if prev, ok := old.m[u.Name]; ok && prev.store == store && prev.root == root && string(prev.hash) == u.PasswordHash {
				e = prev
			}
		}
		set.m[u.Name] = e
	}
	if old != nil {
		if c, err := bcrypt.Cost(old.dummy); err == nil && c == cost {
			set.dummy = old.dummy
			return set, nil
		}
	}
	var pw [18]byte
	if _, err := rand.Read(pw[:]); err != nil {
		return nil, err
	}
	dummy, err := bcrypt.GenerateFromPassword(pw[:], cost)
	if err != nil {
		return nil, err
	}
	set.dummy = dummy
	return set, nil
}

// Authenticate checks the request's Basic credentials. Missing or wrong
// credentials and unknown users give ok == false with a nil error.
func (s *Static) Authenticate(r *http.Request) (Principal, bool, error) {
	name, pw, ok := r.BasicAuth()
	if !ok {
		return Principal{}, false, nil
	}
	return s.VerifyContext(r.Context(), name, pw)
}

// Cached returns the Principal of a recent successful Verify with exactly
// this name and password; it never runs bcrypt.
func (s *Static) Cached(name, pw string) (Principal, bool) {
	return s.lookup(s.cacheKey(name, pw))
}

// lookup returns a cached success and keeps it for another cacheIdle.
func (s *Static) lookup(key [32]byte) (Principal, bool) {
	now := s.now()
	hit, ok := s.cache.Update(key, now, func(_ *staticHit, expires *time.Time) { *expires = now.Add(cacheIdle) })
	if !ok {
		return Principal{}, false
	}
	if s.users.Load().m[hit.p.Username] != hit.entry {
		s.cache.Delete(key) // the user changed or left in a reload
		return Principal{}, false
	}
	return hit.p, true
}

// Names returns the configured user names.
func (s *Static) Names() []string {
	users := s.users.Load().m
	out := make([]string, 0, len(users))
	for n := range users {
		out = append(out, n)
	}
	return out
}

// Verify checks a user name and password (VerifyContext without a
// deadline; busy counts as a refusal).
func (s *Static) Verify(name, pw string) (Principal, bool) {
	p, ok, _ := s.VerifyContext(context.Background(), name, pw)
	return p, ok
}

// VerifyContext checks a user name and password. A cached success answers
// at once; otherwise the check waits for a bcrypt slot while ctx lasts,
// and fails with ErrBusy when too many checks are waiting already.
func (s *Static) VerifyContext(ctx context.Context, name, pw string) (Principal, bool, error) {
	key := s.cacheKey(name, pw)
	if p, ok := s.lookup(key); ok {
		return p, true, nil
	}
	v, err, _ := s.flight.Do(string(key[:]), func() (any, error) {
		if p, ok := s.lookup(key); ok {
			return &p, nil
		}
		p, ok, err := s.verify(ctx, key, name, pw)
		if err != nil || !ok {
			return (*Principal)(nil), err
		}
		return &p, nil
	})
	if err != nil {
		return Principal{}, false, err
	}
	if p := v.(*Principal); p != nil {
		return *p, true, nil
	}
	return Principal{}, false, nil
}

// verify runs bcrypt (bounded by slots) and caches a success.
func (s *Static) verify(ctx context.Context, key [32]byte, name, pw string) (Principal, bool, error) {
	if s.waiting.Add(1) > s.maxWaiting {
		s.waiting.Add(-1)
		return Principal{}, false, ErrBusy
	}
	select {
	case s.slots <- struct{}{}:
		s.waiting.Add(-1)
	case <-ctx.Done():
		s.waiting.Add(-1)
		return Principal{}, false, ctx.Err()
	}
	defer func() { <-s.slots }()
	s.bcryptRuns.Add(1)
	set := s.users.Load()
	u, known := set.m[name]
	hash := set.dummy
	if known {
		hash = u.hash
	}
	// The comparison runs for unknown users too, against the dummy hash of
	// the same cost, so the answer takes the same time either way.
	err := bcrypt.CompareHashAndPassword(hash, []byte(pw))
	if err != nil || !known {
		return Principal{}, false, nil
	}
	p := Principal{Username: name, Store: u.store, Root: u.root}
	now := s.now()
	s.cache.Put(key, staticHit{p: p, entry: u}, now.Add(cacheIdle), now)
	return p, true, nil
}

// cacheKey is SHA-256(salt, len(name), name, password): the cache never
// holds a password or an unsalted hash of one.
func (s *Static) cacheKey(name, pw string) [32]byte {
	h := sha256.New()
	h.Write(s.salt[:])
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(len(name)))
	h.Write(n[:])
	h.Write([]byte(name))
	h.Write([]byte(pw))
	var k [32]byte
	copy(k[:], h.Sum(nil))
	return k
}

// ValidUsername checks a user name: 1 to 64 characters from
// [A-Za-z0-9._@-], not starting with ".". Such a name is safe as a key
// prefix segment.
func ValidUsername(name string) error {
	if name == "" || len(name) > 64 {
		return errors.New("user name must be 1 to 64 characters")
	}
	if name[0] == '.' {
		return errors.New(`user name must not start with "."`)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '.', c == '_', c == '@', c == '-':
		default:
			return errors.New("user name may only contain letters, digits, '.', '_', '@' and '-'")
		}
	}
	return nil
}

// ExpandRoot fills {username} (and {sub}, which is the user name for static
// users) into a root template and cleans the result with CleanRoot. The
// name must pass ValidUsername. {email} is refused.
func ExpandRoot(template, username string) (string, error) {
	if err := ValidUsername(username); err != nil {
		return "", err
	}
	if strings.Contains(template, "{email}") {
		return "", errors.New("{email} is not available for static users")
	}
	r := strings.NewReplacer("{username}", username, "{sub}", username).Replace(template)
	if strings.ContainsAny(r, "{}") {
		return "", errors.New("unknown placeholder: use {username}, {sub} or {email}")
	}
	return CleanRoot(r)
}

// CleanRoot checks a user root (a key prefix below [s3].prefix) and
// returns it in canonical form: "" (the whole prefix) or segments ending in
// "/". A single leading "/" is dropped and a missing trailing "/" added;
// empty, "." and ".." segments, backslashes and control characters are
// refused.
func CleanRoot(root string) (string, error) {
	r := strings.TrimPrefix(root, "/")
	if r == "" {
		return "", nil
	}
	if !strings.HasSuffix(r, "/") {
		r += "/"
	}
	for _, seg := range strings.Split(strings.TrimSuffix(r, "/"), "/") {
		if seg == "" || seg == "." || seg == ".." {
			return "", errors.New(`root must not have empty, "." or ".." segments`)
		}
	}
	for _, c := range r {
		if c == '\\' || c < 0x20 || c == 0x7f {
			return "", errors.New("root must not contain backslashes or control characters")
		}
	}
	return r, nil
}
