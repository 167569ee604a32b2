package auth

import (
	"sync"
	"time"
)

// Default limits of failed authentications: per user name and per client
// address, in a fixed window.
const (
	DefaultUserFailures = 10
	DefaultAddrFailures = 50
	DefaultFailWindow   = 5 * time.Minute
	limiterMaxKeys      = 100000
)

// Limiter counts failed authentications per key ("user:alice",
// "addr:192.0.2.1") in fixed windows. Once a key reaches its limit, Check
// refuses it until the window ends. Only failures count: missing
// credentials (a client's first, unauthenticated request) never do.
type Limiter struct {
	userMax, addrMax int
	window           time.Duration
	now              func() time.Time

	mu   sync.Mutex
	keys map[string]*failWindow
}

type failWindow struct {
	count int
	start time.Time
}

// NewLimiter returns a Limiter that allows userMax failures per user name
// and addrMax per client address in each window. Zero values take the
// defaults.
func NewLimiter(userMax, addrMax int, window time.Duration) *Limiter {
	if userMax <= 0 {
		userMax = DefaultUserFailures
	}
	if addrMax <= 0 {
		addrMax = DefaultAddrFailures
	}
	if window <= 0 {
		window = DefaultFailWindow
	}
	return &Limiter{userMax: userMax, addrMax: addrMax, window: window, now: time.Now, keys: map[string]*failWindow{}}
}

// Check returns a *RateLimitError when the user (if not "") or the address
// has used up its failures, else nil.
func (l *Limiter) Check(user, addr string) *RateLimitError {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	var wait time.Duration
	for _, k := range l.keysOf(user, addr) {
		w, ok := l.keys[k.key]
		if !ok {
			continue
		}
		end := w.start.Add(l.window)
		if !now.Before(end) {
			delete(l.keys, k.key)
			continue
		}
		if w.count >= k.max {
			wait = max(wait, end.Sub(now))
		}
	}
	if wait > 0 {
		return &RateLimitError{RetryAfter: wait}
	}
	return nil
}

// Fail records one failed attempt for the user (if not "") and the
// address.
func (l *Limiter) Fail(user, addr string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	if len(l.keys) >= limiterMaxKeys {
		l.prune(now)
	}
	for _, k := range l.keysOf(user, addr) {
		w, ok := l.keys[k.key]
		if !ok || !now.Before(w.start.Add(l.window)) {
			w = &failWindow{start: now}
			l.keys[k.key] = w
		}
		w.count++
	}
}

type limitKey struct {
	key string
	max int
}

func (l *Limiter) keysOf(user, addr string) []limitKey {
	ks := make([]limitKey, 0, 2)
	if user != "" {
		ks = append(ks, limitKey{"user:" + user, l.userMax})
	}
	if addr != "" {
		ks = append(ks, limitKey{"addr:" + addr, l.addrMax})
	}
	return ks
}

// prune drops ended windows, then arbitrary ones if still full, so that a
// flood of made-up user names cannot grow the map without bound.
func (l *Limiter) prune(now time.Time) {
	for k, w := range l.keys {
		if !now.Before(w.start.Add(l.window)) {
			delete(l.keys, k)
		}
	}
	for k := range l.keys {
		if len(l.keys) < limiterMaxKeys {
			break
		}
		delete(l.keys, k)
	}
}
