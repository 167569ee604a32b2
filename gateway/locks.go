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
type LockManager struct {
	b     lockBackend
	close func() error
	ping  func(context.Context) error // nil for the memory store
}

// lockBackend is a lock table in scoped names (see rootLocks.scope). Every
// method checks that a token belongs to root. An error other than the
// webdav.Err* values is an outage of the store and wraps
// ErrLockStoreUnavailable.
type lockBackend interface {
	confirm(now time.Time, root, name0, name1 string, conditions []webdav.Condition) (func(), error)
	// create treats a negative Duration as a request's temporary lock.
	create(now time.Time, root string, details webdav.LockDetails) (string, error)
	refresh(now time.Time, root, token string, duration time.Duration) (webdav.LockDetails, error)
	unlock(now time.Time, root, token string) error
	// discover lists root's client (not temporary) locks covering name.
	discover(now time.Time, root, name string) ([]activeLock, error)
}

// ErrLockStoreUnavailable marks a failure of a shared lock store (Redis):
// the gateway answers 503 with Retry-After.
var ErrLockStoreUnavailable = errors.New("lock store unavailable")

// NewLockManager returns an empty in-memory lock table.
func NewLockManager() *LockManager {
	return &LockManager{b: &memLocks{inner: webdav.NewMemLS(), tokens: make(map[string]lockRef)}}
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
	details.Root = l.scope(details.Root)
	return l.m.b.create(now, l.root, details)
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

	mu     sync.Mutex
	tokens map[string]lockRef // public token -> MemLS token
	sweeps int
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
	delete(m.tokens, token)
	m.mu.Unlock()
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

func (m *memLocks) create(now time.Time, root string, details webdav.LockDetails) (string, error) {
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
		zeroDepth: details.ZeroDepth, owner: details.OwnerXML, temporary: details.Duration < 0}
	if details.Duration >= 0 {
		ref.expiry = now.Add(details.Duration)
	}
	m.mu.Lock()
	m.tokens[public] = ref
	m.sweeps++
	if m.sweeps%1024 == 0 {
		for t, r := range m.tokens {
			if !r.expiry.IsZero() && now.After(r.expiry) {
				delete(m.tokens, t)
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
