package web

import (
	"context"
	"sync"
	"time"

	"github.com/davgw/davgw/auth"
)

// The sign-in state of the pages lives in this process's memory, or in
// Redis (Options.Shared) so that a browser can be served by any gateway
// behind a load balancer: a sign-in begun on one completes on another,
// and its session works on all. An error of a store is an outage of Redis
// (it wraps redisstore.ErrUnavailable): the page answers 503.

// sessionStore keeps browser sessions by the SHA-256 of their cookie.
type sessionStore interface {
	get(ctx context.Context, key string) (*session, error)
	put(ctx context.Context, key string, s *session) error
	// remove deletes the session and returns it (nil if there was none).
	remove(ctx context.Context, key string) (*session, error)
}

// pendingStore keeps the sign-ins in progress, bounded per address and
// in all (see pendingSignIns).
type pendingStore interface {
	// add records a sign-in begun by addr, or refuses it with
	// errPendingPerAddress or errPendingFull and when to retry.
	add(ctx context.Context, now time.Time, addr, state string, p *pending) (retry time.Duration, err error)
	// take removes and returns the live sign-in of state (nil if none).
	take(ctx context.Context, now time.Time, state string) (*pending, error)
}

var (
	_ sessionStore = (*memSessions)(nil)
	_ pendingStore = (*memPending)(nil)
)

// session is one signed-in browser.
type session struct {
	Claims  auth.Claims    `json:"claims"`
	P       auth.Principal `json:"principal"`
	Expires time.Time      `json:"expires"`
}

// memSessions are the sessions of one process, at most maxSessions.
type memSessions struct {
	mu sync.Mutex
	m  map[string]*session
}

func newMemSessions() *memSessions { return &memSessions{m: map[string]*session{}} }

func (s *memSessions) get(_ context.Context, k string) (*session, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v := s.m[k]
	if v != nil && time.Now().After(v.Expires) {
		delete(s.m, k)
		return nil, nil
	}
	return v, nil
}

func (s *memSessions) put(_ context.Context, k string, v *session) error {
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.m) >= maxSessions {
		evict(s.m, maxSessions, now, func(s *session) time.Time { return s.Expires })
	}
	s.m[k] = v
	return nil
}

func (s *memSessions) remove(_ context.Context, k string) (*session, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v := s.m[k]
	delete(s.m, k)
	return v, nil
}

// memPending is pendingSignIns behind a mutex.
type memPending struct {
	mu sync.Mutex
	t  *pendingSignIns
}

func (m *memPending) add(_ context.Context, now time.Time, addr, state string, p *pending) (time.Duration, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.t.add(now, addr, state, p)
}

func (m *memPending) take(_ context.Context, now time.Time, state string) (*pending, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.t.take(now, state), nil
}
