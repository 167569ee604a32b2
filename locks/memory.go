package locks

import (
	"context"
	"fmt"
	"sync"
	"time"

	"golang.org/x/net/webdav"
)

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

func newMemLocks() *memLocks {
	return &memLocks{inner: webdav.NewMemLS(), tokens: make(map[string]lockRef), byRoot: make(map[string]map[string]struct{})}
}

func (m *memLocks) ping(context.Context) error { return nil }
func (m *memLocks) close() error               { return nil }

type lockRef struct {
	inner  string
	root   string
	user   string    // the creator: only its requests use the token
	expiry time.Time // zero = infinite
	// What lockdiscovery reports (x/net/webdav keeps it but cannot list it).
	name      string // scoped
	zeroDepth bool
	owner     string
	temporary bool // a request's own short lock (If header checks)
	// pending is a refresh that came while a request held the lock
	// (MemLS refuses those): it reaches MemLS when that request is done.
	pending *pendingRefresh
}

type pendingRefresh struct {
	now      time.Time
	duration time.Duration
}

func (m *memLocks) ref(root, user, token string) (lockRef, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	ref, ok := m.tokens[token]
	if !ok || ref.root != root || ref.user != user {
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

func (m *memLocks) confirm(now time.Time, root, user, name0, name1 string, conditions []webdav.Condition) (func(), error) {
	mapped := make([]webdav.Condition, 0, len(conditions))
	var public []string
	for _, c := range conditions {
		if c.Token != "" {
			ref, ok := m.ref(root, user, c.Token)
			if !ok {
				continue // unknown here, or another user's: it can match nothing
			}
			public = append(public, c.Token)
			c.Token = ref.inner
		}
		mapped = append(mapped, c)
	}
	release, err := m.inner.Confirm(now, name0, name1, mapped...)
	if err != nil || len(public) == 0 {
		return release, err
	}
	return func() {
		release()
		m.applyPending(public)
	}, nil
}

// applyPending hands MemLS the refreshes of tokens that came while a
// request held their locks, at the time each was asked for. One still
// held (by another request) stays pending for that request's release.
func (m *memLocks) applyPending(tokens []string) {
	for _, t := range tokens {
		m.mu.Lock()
		ref, ok := m.tokens[t]
		m.mu.Unlock()
		if !ok || ref.pending == nil {
			continue
		}
		p := ref.pending
		if _, err := m.inner.Refresh(p.now, ref.inner, p.duration); err == webdav.ErrLocked {
			continue
		}
		m.mu.Lock()
		if cur, ok := m.tokens[t]; ok && cur.pending == p {
			cur.pending = nil
			m.tokens[t] = cur
		}
		m.mu.Unlock()
	}
}

func (m *memLocks) create(now time.Time, root, user string, details webdav.LockDetails, maxLocks int) (string, error) {
	temporary := details.Duration < 0
	m.create1.Lock()
	defer m.create1.Unlock()
	if !temporary {
		m.mu.Lock()
		n := m.liveLocks(now, root, maxLocks)
		m.mu.Unlock()
		if n >= maxLocks {
			return "", fmt.Errorf("%w: %d held, at most %d", ErrTooMany, n, maxLocks)
		}
	}
	tok, err := m.inner.Create(now, details)
	if err != nil {
		return "", err
	}
	public, err := newToken()
	if err != nil {
		_ = m.inner.Unlock(now, tok)
		return "", err
	}
	ref := lockRef{inner: tok, root: root, user: user, name: details.Root,
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

func (m *memLocks) refresh(now time.Time, root, user, token string, duration time.Duration) (webdav.LockDetails, error) {
	ref, ok := m.ref(root, user, token)
	if !ok {
		return webdav.LockDetails{}, webdav.ErrNoSuchLock
	}
	// MemLS pauses a lock's expiry while a request holds it, and refuses
	// to refresh it then; the refresh is kept and applied on release (see
	// confirm), so that a client refreshing during its own long upload
	// gets its lock refreshed rather than a failure.
	ld, err := m.inner.Refresh(now, ref.inner, duration)
	held := err == webdav.ErrLocked
	switch {
	case err == webdav.ErrNoSuchLock:
		m.drop(token)
		return ld, err
	case held:
		ld = webdav.LockDetails{Root: ref.name, Duration: duration, OwnerXML: ref.owner, ZeroDepth: ref.zeroDepth}
	case err != nil:
		return ld, err
	}
	m.mu.Lock()
	if cur, ok := m.tokens[token]; ok {
		ref = cur
	}
	if duration >= 0 {
		ref.expiry = now.Add(duration)
	} else {
		ref.expiry = time.Time{}
	}
	ref.pending = nil
	if held {
		ref.pending = &pendingRefresh{now: now, duration: duration}
	}
	m.tokens[token] = ref
	m.mu.Unlock()
	if held {
		// The holder may have released it since: then nobody else would.
		m.applyPending([]string{token})
	}
	return ld, nil
}

func (m *memLocks) unlock(now time.Time, root, user, token string) error {
	ref, ok := m.ref(root, user, token)
	if !ok {
		return webdav.ErrNoSuchLock
	}
	err := m.inner.Unlock(now, ref.inner)
	if err == nil || err == webdav.ErrNoSuchLock {
		m.drop(token)
	}
	return err
}

func (m *memLocks) discover(now time.Time, root, name string) ([]Active, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []Active
	for tok, ref := range m.tokens {
		if ref.root != root || ref.temporary || (!ref.expiry.IsZero() && now.After(ref.expiry)) {
			continue
		}
		if covers(ref.name, ref.zeroDepth, name) {
			out = append(out, Active{Token: tok, Name: ref.name, ZeroDepth: ref.zeroDepth, Owner: ref.owner, Left: ref.expiry.Sub(now)})
		}
	}
	return out, nil
}
