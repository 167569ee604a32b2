package gateway

import (
	"crypto/rand"
	"fmt"
	"path"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/webdav"
)

// LockManager is the gateway's one lock table, shared by every request and
// user. It wraps x/net/webdav's in-memory LockSystem with two fixes:
//
//   - names are scoped by the user's key root, so alice's lock on "/a.txt"
//     does not block bob's "/a.txt", while two users sharing a root (a group
//     rule) do share locks;
//   - tokens are unguessable (opaquelocktoken with a random UUID), where
//     MemLS hands out a counter, and a token only works for the root that
//     created it.
type LockManager struct {
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
	name      string // in the user's namespace
	zeroDepth bool
	owner     string
	temporary bool // a request's own short lock (If header checks)
}

// NewLockManager returns an empty in-memory lock table.
func NewLockManager() *LockManager {
	return &LockManager{inner: webdav.NewMemLS(), tokens: make(map[string]lockRef)}
}

// ForRoot returns the LockSystem seen by requests whose file system is
// rooted at root (a key prefix).
func (m *LockManager) ForRoot(root string) webdav.LockSystem {
	return &rootLocks{m: m, root: root}
}

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

func (l *rootLocks) inner(token string) (lockRef, bool) {
	l.m.mu.Lock()
	defer l.m.mu.Unlock()
	ref, ok := l.m.tokens[token]
	if !ok || ref.root != l.root {
		return lockRef{}, false
	}
	return ref, true
}

func (l *rootLocks) drop(token string) {
	l.m.mu.Lock()
	delete(l.m.tokens, token)
	l.m.mu.Unlock()
}

// Confirm implements webdav.LockSystem.
func (l *rootLocks) Confirm(now time.Time, name0, name1 string, conditions ...webdav.Condition) (func(), error) {
	mapped := make([]webdav.Condition, 0, len(conditions))
	for _, c := range conditions {
		if c.Token != "" {
			ref, ok := l.inner(c.Token)
			if !ok {
				continue // unknown here: it can match nothing
			}
			c.Token = ref.inner
		}
		mapped = append(mapped, c)
	}
	return l.m.inner.Confirm(now, l.scope(name0), l.scope(name1), mapped...)
}

// Create implements webdav.LockSystem.
func (l *rootLocks) Create(now time.Time, details webdav.LockDetails) (string, error) {
	details.Root = l.scope(details.Root)
	tok, err := l.m.inner.Create(now, details)
	if err != nil {
		return "", err
	}
	public, err := newLockToken()
	if err != nil {
		_ = l.m.inner.Unlock(now, tok)
		return "", err
	}
	ref := lockRef{inner: tok, root: l.root, name: l.unscope(details.Root),
		zeroDepth: details.ZeroDepth, owner: details.OwnerXML, temporary: details.Duration < 0}
	if details.Duration >= 0 {
		ref.expiry = now.Add(details.Duration)
	}
	l.m.mu.Lock()
	l.m.tokens[public] = ref
	l.m.sweeps++
	if l.m.sweeps%1024 == 0 {
		for t, r := range l.m.tokens {
			if !r.expiry.IsZero() && now.After(r.expiry) {
				delete(l.m.tokens, t)
			}
		}
	}
	l.m.mu.Unlock()
	return public, nil
}

// Refresh implements webdav.LockSystem.
func (l *rootLocks) Refresh(now time.Time, token string, duration time.Duration) (webdav.LockDetails, error) {
	ref, ok := l.inner(token)
	if !ok {
		return webdav.LockDetails{}, webdav.ErrNoSuchLock
	}
	ld, err := l.m.inner.Refresh(now, ref.inner, duration)
	if err == webdav.ErrNoSuchLock {
		l.drop(token)
		return ld, err
	}
	if err != nil {
		return ld, err
	}
	l.m.mu.Lock()
	if duration >= 0 {
		ref.expiry = now.Add(duration)
	} else {
		ref.expiry = time.Time{}
	}
	l.m.tokens[token] = ref
	l.m.mu.Unlock()
	ld.Root = l.unscope(ld.Root)
	return ld, nil
}

// Unlock implements webdav.LockSystem.
func (l *rootLocks) Unlock(now time.Time, token string) error {
	ref, ok := l.inner(token)
	if !ok {
		return webdav.ErrNoSuchLock
	}
	err := l.m.inner.Unlock(now, ref.inner)
	if err == nil || err == webdav.ErrNoSuchLock {
		l.drop(token)
	}
	return err
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

// discover lists the clients' locks that cover name (a lock on name, or a
// depth-infinity lock on a folder above it), in the user's namespace.
func (l *rootLocks) discover(now time.Time, name string) []activeLock {
	l.m.mu.Lock()
	defer l.m.mu.Unlock()
	var out []activeLock
	for tok, ref := range l.m.tokens {
		if ref.root != l.root || ref.temporary || (!ref.expiry.IsZero() && now.After(ref.expiry)) {
			continue
		}
		covers := ref.name == name || (!ref.zeroDepth && (ref.name == "/" || strings.HasPrefix(name, ref.name+"/")))
		if covers {
			out = append(out, activeLock{token: tok, name: ref.name, zeroDepth: ref.zeroDepth, owner: ref.owner, left: ref.expiry.Sub(now)})
		}
	}
	return out
}
