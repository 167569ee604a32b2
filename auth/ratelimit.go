package auth

import (
	"net/netip"
	"strings"
	"sync"
	"time"
)

// Default limits of failed authentications: per user name at one client
// address and per client address, in a fixed window.
const (
	DefaultUserFailures = 10
	DefaultAddrFailures = 50
	DefaultFailWindow   = 5 * time.Minute
	limiterMaxKeys      = 100000
	// evictScan bounds how many of the oldest windows one Fail looks at
	// for a non-blocking one to evict when the map is full of live ones.
	evictScan = 64
)

// Limiter counts failed authentications per key in fixed windows. Once a
// key reaches its limit, Check refuses it until the window ends. Only
// failures count: missing credentials (a client's first, unauthenticated
// request) never do.
//
// Keys: "addr:<address>" and "user:<lower-case user>|<address>", where an
// IPv6 address counts as its /64 (one machine usually holds a whole /64).
// A user's counter is tied to the address, so an attacker's wrong
// passwords lock out the attacker, never the real user elsewhere; the
// per-address limit still bounds guessing from one place.
//
// Memory is bounded: windows are kept in the order they started, so ended
// ones are dropped from the front as they age (amortised O(1) per
// failure). When the map is still full, the oldest window that has not
// reached its limit is evicted (looking at no more than evictScan
// windows); a blocking window is never evicted, and if none can go the new
// key is simply not counted.
type Limiter struct {
	userMax, addrMax int
	window           time.Duration
	now              func() time.Time

	mu    sync.Mutex
	keys  map[string]*failWindow
	order []orderItem // by window start; stale items are skipped
	head  int         // first live item of order
}

type failWindow struct {
	count int
	max   int
	start time.Time
}

type orderItem struct {
	key   string
	start time.Time
}

// NewLimiter returns a Limiter that allows userMax failures per user name
// (at one address) and addrMax per client address in each window. Zero
// values take the defaults.
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

// Check returns a *RateLimitError when the user (if not "") at addr or the
// address has used up its failures, else nil.
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

// Fail records one failed attempt for the user (if not "") at addr and for
// the address.
func (l *Limiter) Fail(user, addr string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	l.dropEnded(now)
	for _, k := range l.keysOf(user, addr) {
		w, ok := l.keys[k.key]
		if !ok || !now.Before(w.start.Add(l.window)) {
			if !ok && len(l.keys) >= limiterMaxKeys && !l.evictOne() {
				continue // full of blocking windows: not counted
			}
			w = &failWindow{start: now, max: k.max}
			l.keys[k.key] = w
			l.order = append(l.order, orderItem{key: k.key, start: now})
		}
		w.count++
	}
}

// dropEnded removes ended windows from the front of the order.
func (l *Limiter) dropEnded(now time.Time) {
	for l.head < len(l.order) {
		it := l.order[l.head]
		if now.Before(it.start.Add(l.window)) {
			break
		}
		if w, ok := l.keys[it.key]; ok && w.start.Equal(it.start) {
			delete(l.keys, it.key)
		}
		l.order[l.head] = orderItem{}
		l.head++
	}
	l.compact()
}

// evictOne removes the oldest live window that is not blocking, looking at
// no more than evictScan windows. It reports whether it removed one.
func (l *Limiter) evictOne() bool {
	seen := 0
	for i := l.head; i < len(l.order) && seen < evictScan; i++ {
		it := l.order[i]
		w, ok := l.keys[it.key]
		if !ok || !w.start.Equal(it.start) {
			continue // stale item
		}
		seen++
		if w.count < w.max {
			delete(l.keys, it.key)
			return true
		}
	}
	return false
}

// compact reclaims the consumed front of order once it is half of it.
func (l *Limiter) compact() {
	if l.head > 1024 && l.head*2 >= len(l.order) {
		n := copy(l.order, l.order[l.head:])
		clear(l.order[n:])
		l.order = l.order[:n]
		l.head = 0
	}
}

type limitKey struct {
	key string
	max int
}

func (l *Limiter) keysOf(user, addr string) []limitKey {
	ks := make([]limitKey, 0, 2)
	a := AddrKey(addr)
	if user != "" {
		ks = append(ks, limitKey{"user:" + strings.ToLower(user) + "|" + a, l.userMax})
	}
	if a != "" {
		ks = append(ks, limitKey{"addr:" + a, l.addrMax})
	}
	return ks
}

// AddrKey is the rate-limit key of a client address: an IPv4 address as
// is, an IPv6 address as its /64 (an IPv4-mapped one as the IPv4
// address), anything else unchanged.
func AddrKey(addr string) string {
	ip, err := netip.ParseAddr(addr)
	if err != nil {
		return addr
	}
	ip = ip.Unmap()
	if ip.Is4() {
		return ip.String()
	}
	p, err := ip.WithZone("").Prefix(64)
	if err != nil {
		return addr
	}
	return p.String()
}
