package gateway

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"path"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/webdav"
)

// LockManager is the gateway's one lock table, shared by every request and
// user. Its default backend wraps x/net/webdav's in-memory LockSystem; a
// Redis backend (NewRedisLockManager) shares the table between gateways.
// Either way:
//
//   - names are scoped by the user's key root, so alice's lock on "/a.txt"
//     does not block bob's "/a.txt", while two users sharing a root (a group
//     rule) do share locks;
//   - tokens are unguessable (opaquelocktoken with a random UUID), where
//     MemLS hands out a counter, and a token only works for the root that
//     created it.
//
// Limits (LockLimits) bound what one user root may keep in the table: the
// size of each lock's owner XML (which lockdiscovery repeats in every
// answer) and the number of client locks, so no client can fill the
// gateway's memory or Redis with locks.
type LockManager struct {
	b      lockBackend
	close  func() error
	ping   func(context.Context) error // nil for the memory store
	limits LockLimits
}

// LockLimits bound the locks of one user root ([limits]); zero fields take
// the defaults. Users who share a root (a group rule) share its count.
type LockLimits struct {
	// OwnerBytes caps a lock's DAV:owner XML (default
	// DefaultLockOwnerBytes): a LOCK with a larger one answers 413.
	OwnerBytes int
	// PerUser caps the client locks of one root (default
	// DefaultLocksPerUser): one more answers 429 with Retry-After until a
	// lock is unlocked or expires. A request's own short locks (If header
	// checks) do not count.
	PerUser int
}

// Defaults of LockLimits. Clients send an owner of a few dozen bytes (a
// user name or a URL), and hold a handful of locks at a time.
const (
	DefaultLockOwnerBytes = 4 << 10
	DefaultLocksPerUser   = 1000
)

func (l LockLimits) withDefaults() LockLimits {
	if l.OwnerBytes <= 0 {
		l.OwnerBytes = DefaultLockOwnerBytes
	}
	if l.PerUser <= 0 {
		l.PerUser = DefaultLocksPerUser
	}
	return l
}

// ErrLockOwnerTooLarge: a LOCK's owner XML is past LockLimits.OwnerBytes
// (413).
var ErrLockOwnerTooLarge = errors.New("lock owner too large")

// ErrTooManyLocks: the user root holds LockLimits.PerUser client locks
// already (429 with Retry-After).
var ErrTooManyLocks = errors.New("too many locks")

// lockBackend is a lock table in scoped names (see rootLocks.scope). Every
// method checks that a token belongs to root. An error other than the
// webdav.Err* values is an outage of the store and wraps
// ErrLockStoreUnavailable.
type lockBackend interface {
	confirm(now time.Time, root, name0, name1 string, conditions []webdav.Condition) (func(), error)
	// create treats a negative Duration as a request's temporary lock. It
	// fails with ErrTooManyLocks when root already holds maxLocks client
	// (not temporary) locks.
	create(now time.Time, root string, details webdav.LockDetails, maxLocks int) (string, error)
	refresh(now time.Time, root, token string, duration time.Duration) (webdav.LockDetails, error)
	unlock(now time.Time, root, token string) error
	// discover lists root's client (not temporary) locks covering name.
	discover(now time.Time, root, name string) ([]activeLock, error)
}

// ErrLockStoreUnavailable marks a failure of a shared lock store (Redis):
// the gateway answers 503 with Retry-After.
var ErrLockStoreUnavailable = errors.New("lock store unavailable")

// NewLockManager returns an empty in-memory lock table with limits (zero
// fields take the defaults).
func NewLockManager(limits LockLimits) *LockManager {
	return &LockManager{limits: limits.withDefaults(),
		b: &memLocks{inner: webdav.NewMemLS(), tokens: make(map[string]lockRef), byRoot: make(map[string]map[string]struct{})}}
}

// Close releases the lock store's resources (the Redis connections).
func (m *LockManager) Close() error {
	if m == nil || m.close == nil {
		return nil
	}
	return m.close()
}

// Ping checks that the lock store answers (nil for the memory store).
func (m *LockManager) Ping(ctx context.Context) error {
	if m.ping == nil {
		return nil
	}
	return m.ping(ctx)
}

// ForRoot returns the LockSystem seen by requests whose file system is
// rooted at root (a key prefix). A store outage is an error wrapping
// ErrLockStoreUnavailable, returned by the method that met it.
func (m *LockManager) ForRoot(root string) *rootLocks {
	return &rootLocks{m: m, root: root}
}

// rootLocks is the LockManager as seen from one key root.
type rootLocks struct {
	m    *LockManager
	root string
}

var _ webdav.LockSystem = (*rootLocks)(nil)

// scope maps a name of the user's namespace into the shared table.
func (l *rootLocks) scope(name string) string {
	if name == "" {
		return ""
	}
	return path.Join("/", l.root, path.Clean("/"+name))
}

func (l *rootLocks) unscope(name string) string {
	base := path.Join("/", l.root)
	if base == "/" {
		return name
	}
	rest := strings.TrimPrefix(name, base)
	if rest == "" {
		return "/"
	}
	return rest
}

// Confirm implements webdav.LockSystem.
func (l *rootLocks) Confirm(now time.Time, name0, name1 string, conditions ...webdav.Condition) (func(), error) {
	return l.m.b.confirm(now, l.root, l.scope(name0), l.scope(name1), conditions)
}

// Create implements webdav.LockSystem.
func (l *rootLocks) Create(now time.Time, details webdav.LockDetails) (string, error) {
	if len(details.OwnerXML) > l.m.limits.OwnerBytes {
		return "", fmt.Errorf("%w: %d bytes, at most %d", ErrLockOwnerTooLarge, len(details.OwnerXML), l.m.limits.OwnerBytes)
	}
	details.Root = l.scope(details.Root)
	return l.m.b.create(now, l.root, details, l.m.limits.PerUser)
}

// Refresh implements webdav.LockSystem.
func (l *rootLocks) Refresh(now time.Time, token string, duration time.Duration) (webdav.LockDetails, error) {
	ld, err := l.m.b.refresh(now, l.root, token, duration)
	if err != nil {
		return ld, err
	}
	ld.Root = l.unscope(ld.Root)
	return ld, nil
}

// Unlock implements webdav.LockSystem.
func (l *rootLocks) Unlock(now time.Time, token string) error {
	return l.m.b.unlock(now, l.root, token)
}

// discover lists the clients' locks that cover name (a lock on name, or a
// depth-infinity lock on a folder above it), in the user's namespace. A
// store outage lists none.
func (l *rootLocks) discover(now time.Time, name string) []activeLock {
	locks, err := l.m.b.discover(now, l.root, l.scope(name))
	if err != nil {
		return nil
	}
	for i := range locks {
		locks[i].name = l.unscope(locks[i].name)
	}
	return locks
}

// memLocks is the in-memory backend: x/net/webdav's MemLS behind a table of
// public tokens.
type memLocks struct {
	inner webdav.LockSystem

	create1 sync.Mutex // one create at a time: the count and the lock agree
	mu      sync.Mutex
	tokens  map[string]lockRef             // public token -> MemLS token
	byRoot  map[string]map[string]struct{} // root -> its client locks' public tokens
	sweeps  int
}

type lockRef struct {
	inner  string
	root   string
	expiry time.Time // zero = infinite
	// What lockdiscovery reports (x/net/webdav keeps it but cannot list it).
	name      string // scoped
	zeroDepth bool
	owner     string
	temporary bool // a request's own short lock (If header checks)
}

func (m *memLocks) ref(root, token string) (lockRef, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	ref, ok := m.tokens[token]
	if !ok || ref.root != root {
		return lockRef{}, false
	}
	return ref, true
}

func (m *memLocks) drop(token string) {
	m.mu.Lock()
	m.forget(token)
	m.mu.Unlock()
}

// forget removes a token from both tables; m.mu is held.
func (m *memLocks) forget(token string) {
	ref, ok := m.tokens[token]
	if !ok {
		return
	}
	delete(m.tokens, token)
	if set := m.byRoot[ref.root]; set != nil {
		delete(set, token)
		if len(set) == 0 {
			delete(m.byRoot, ref.root)
		}
	}
}

// liveLocks counts root's client locks, dropping expired ones when the
// count reaches maxLocks (so the sweep costs O(maxLocks) at most, and only
// for a root at its limit); m.mu is held.
func (m *memLocks) liveLocks(now time.Time, root string, maxLocks int) int {
	set := m.byRoot[root]
	if len(set) < maxLocks {
		return len(set)
	}
	for t := range set {
		if r := m.tokens[t]; !r.expiry.IsZero() && now.After(r.expiry) {
			m.forget(t)
		}
	}
	return len(m.byRoot[root])
}

func (m *memLocks) confirm(now time.Time, root, name0, name1 string, conditions []webdav.Condition) (func(), error) {
	mapped := make([]webdav.Condition, 0, len(conditions))
	for _, c := range conditions {
		if c.Token != "" {
			ref, ok := m.ref(root, c.Token)
			if !ok {
				continue // unknown here: it can match nothing
			}
			c.Token = ref.inner
		}
		mapped = append(mapped, c)
	}
	return m.inner.Confirm(now, name0, name1, mapped...)
}

func (m *memLocks) create(now time.Time, root string, details webdav.LockDetails, maxLocks int) (string, error) {
	temporary := details.Duration < 0
	m.create1.Lock()
	defer m.create1.Unlock()
	if !temporary {
		m.mu.Lock()
		n := m.liveLocks(now, root, maxLocks)
		m.mu.Unlock()
		if n >= maxLocks {
			return "", fmt.Errorf("%w: %d held, at most %d", ErrTooManyLocks, n, maxLocks)
		}
	}
	tok, err := m.inner.Create(now, details)
	if err != nil {
		return "", err
	}
	public, err := newLockToken()
	if err != nil {
		_ = m.inner.Unlock(now, tok)
		return "", err
	}
	ref := lockRef{inner: tok, root: root, name: details.Root,
		zeroDepth: details.ZeroDepth, owner: details.OwnerXML, temporary: temporary}
	if !temporary {
		ref.expiry = now.Add(details.Duration)
	}
	m.mu.Lock()
	m.tokens[public] = ref
	if !temporary {
		set := m.byRoot[root]
		if set == nil {
			set = make(map[string]struct{})
			m.byRoot[root] = set
		}
		set[public] = struct{}{}
	}
	m.sweeps++
	if m.sweeps%1024 == 0 {
		for t, r := range m.tokens {
			if !r.expiry.IsZero() && now.After(r.expiry) {
				m.forget(t)
			}
		}
	}
	m.mu.Unlock()
	return public, nil
}

func (m *memLocks) refresh(now time.Time, root, token string, duration time.Duration) (webdav.LockDetails, error) {
	ref, ok := m.ref(root, token)
	if !ok {
		return webdav.LockDetails{}, webdav.ErrNoSuchLock
	}
	ld, err := m.inner.Refresh(now, ref.inner, duration)
	if err == webdav.ErrNoSuchLock {
		m.drop(token)
		return ld, err
	}
	if err != nil {
		return ld, err
	}
	m.mu.Lock()
	if duration >= 0 {
		ref.expiry = now.Add(duration)
	} else {
		ref.expiry = time.Time{}
	}
	m.tokens[token] = ref
	m.mu.Unlock()
	return ld, nil
}

func (m *memLocks) unlock(now time.Time, root, token string) error {
	ref, ok := m.ref(root, token)
	if !ok {
		return webdav.ErrNoSuchLock
	}
	err := m.inner.Unlock(now, ref.inner)
	if err == nil || err == webdav.ErrNoSuchLock {
		m.drop(token)
	}
	return err
}

func (m *memLocks) discover(now time.Time, root, name string) ([]activeLock, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []activeLock
	for tok, ref := range m.tokens {
		if ref.root != root || ref.temporary || (!ref.expiry.IsZero() && now.After(ref.expiry)) {
			continue
		}
		if lockCovers(ref.name, ref.zeroDepth, name) {
			out = append(out, activeLock{token: tok, name: ref.name, zeroDepth: ref.zeroDepth, owner: ref.owner, left: ref.expiry.Sub(now)})
		}
	}
	return out, nil
}

// lockCovers reports whether a lock on lockName covers name.
func lockCovers(lockName string, zeroDepth bool, name string) bool {
	return lockName == name || (!zeroDepth && (lockName == "/" || strings.HasPrefix(name, lockName+"/")))
}

// newLockToken returns an opaquelocktoken URI with a random (version 4) UUID.
func newLockToken() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("opaquelocktoken:%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:]), nil
}

// activeLock is one lock as lockdiscovery reports it.
type activeLock struct {
	token     string
	name      string
	zeroDepth bool
	owner     string
	left      time.Duration
}
