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
// The counters live in this process's memory (NewLimiter) or in Redis,
// shared by every gateway (SharedIn): guesses spread over several gateways
// count as if they had reached one.
//
// Memory is bounded: windows are kept in the order they started, so ended
// ones are dropped from the front as they age (amortised O(1) per
// failure). When the map is still full, the oldest window that has not
// reached its limit is evicted (looking at no more than evictScan
// windows); a blocking window is never evicted, and if none can go the new
// key is simply not counted. In Redis every counter expires with its
// window.
type Limiter struct {
	userMax, addrMax int
	window           time.Duration
	now              func() time.Time
	shared           *redisFailures // nil = mem

	mem memFailures
}

// memFailures are the in-memory windows of a Limiter.
type memFailures struct {
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
	return &Limiter{userMax: userMax, addrMax: addrMax, window: window, now: time.Now, mem: memFailures{keys: map[string]*failWindow{}}}
}

// Check returns a *RateLimitError when the user (if not "") at addr or the
// address has used up its failures, else nil. With the counters in Redis,
// an outage is an error wrapping redisstore.ErrUnavailable: the attempt
// cannot be checked (503).
func (l *Limiter) Check(user, addr string) error {
	ks := l.keysOf(user, addr)
	var wait time.Duration
	if l.shared != nil {
		var err error
		if wait, err = l.shared.check(ks); err != nil {
			return err
		}
	} else {
		wait = l.mem.check(l.now(), ks, l.window)
	}
	if wait > 0 {
		return &RateLimitError{RetryAfter: wait}
	}
	return nil
}

// Fail records one failed attempt for the user (if not "") at addr and for
// the address. With the counters in Redis, an outage loses the count (the
// error says so); Check refuses new attempts meanwhile.
func (l *Limiter) Fail(user, addr string) error {
	ks := l.keysOf(user, addr)
	if l.shared != nil {
		return l.shared.fail(ks, l.window)
	}
	l.mem.fail(l.now(), ks, l.window)
	return nil
}

func (m *memFailures) check(now time.Time, ks []limitKey, window time.Duration) time.Duration {
	m.mu.Lock()
	defer m.mu.Unlock()
	var wait time.Duration
	for _, k := range ks {
		w, ok := m.keys[k.key]
		if !ok {
			continue
		}
		end := w.start.Add(window)
		if !now.Before(end) {
			delete(m.keys, k.key)
			continue
		}
		if w.count >= k.max {
			wait = max(wait, end.Sub(now))
		}
	}
	return wait
}

func (m *memFailures) fail(now time.Time, ks []limitKey, window time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.dropEnded(now, window)
	for _, k := range ks {
		w, ok := m.keys[k.key]
		if !ok || !now.Before(w.start.Add(window)) {
			if !ok && len(m.keys) >= limiterMaxKeys && !m.evictOne() {
				continue // full of blocking windows: not counted
			}
			w = &failWindow{start: now, max: k.max}
			m.keys[k.key] = w
			m.order = append(m.order, orderItem{key: k.key, start: now})
		}
		w.count++
	}
}

// dropEnded removes ended windows from the front of the order.
func (m *memFailures) dropEnded(now time.Time, window time.Duration) {
	for m.head < len(m.order) {
		it := m.order[m.head]
		if now.Before(it.start.Add(window)) {
			break
		}
		if w, ok := m.keys[it.key]; ok && w.start.Equal(it.start) {
			delete(m.keys, it.key)
		}
		m.order[m.head] = orderItem{}
		m.head++
	}
	m.compact()
}

// evictOne removes the oldest live window that is not blocking, looking at
// no more than evictScan windows. It reports whether it removed one.
func (m *memFailures) evictOne() bool {
	seen := 0
	for i := m.head; i < len(m.order) && seen < evictScan; i++ {
		it := m.order[i]
		w, ok := m.keys[it.key]
		if !ok || !w.start.Equal(it.start) {
			continue // stale item
		}
		seen++
		if w.count < w.max {
			delete(m.keys, it.key)
			return true
		}
	}
	return false
}

// compact reclaims the consumed front of order once it is half of it.
func (m *memFailures) compact() {
	if m.head > 1024 && m.head*2 >= len(m.order) {
		n := copy(m.order, m.order[m.head:])
		clear(m.order[n:])
		m.order = m.order[:n]
		m.head = 0
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
