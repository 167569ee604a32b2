package web

import (
	"errors"
	"time"

	"github.com/davgw/davgw/auth"
)

// Defaults of the pending sign-ins: begun at /login, not yet back at
// /callback.
const (
	DefaultPendingPerAddress = 10
	DefaultMaxPending        = 10000
)

// errPendingPerAddress and errPendingFull refuse a new sign-in (429 and
// 503); sign-ins in progress are never pushed out to make room.
var (
	errPendingPerAddress = errors.New("too many sign-ins in progress from this address")
	errPendingFull       = errors.New("too many sign-ins in progress")
)

// pendingSignIns holds the state of sign-ins in progress, bounded per
// client address (an IPv6 /64) and in total. A full table refuses new
// sign-ins rather than evicting: a flood from many addresses can delay
// other people's new sign-ins until its entries expire (loginTTL), but
// never breaks one in progress. Not safe for concurrent use: the Handler's
// mutex guards it.
type pendingSignIns struct {
	perAddr, total int
	byState        map[string]*pending
	count          map[string]int // address key -> its pending sign-ins
	// queue lists entries in the order they were made, which is the order
	// they expire (one TTL for all); entries consumed since are skipped.
	queue []queued
}

type pending struct {
	nonce, verifier string
	addr            string // auth.AddrKey of the client that began it
	expires         time.Time
}

type queued struct {
	state   string
	expires time.Time
}

func newPendingSignIns(perAddr, total int) *pendingSignIns {
	if perAddr <= 0 {
		perAddr = DefaultPendingPerAddress
	}
	if total <= 0 {
		total = DefaultMaxPending
	}
	return &pendingSignIns{perAddr: perAddr, total: total, byState: map[string]*pending{}, count: map[string]int{}}
}

// add records a sign-in begun by addr, or refuses it. retry is when an
// entry of the table (the oldest) expires.
func (s *pendingSignIns) add(now time.Time, addr, state string, p *pending) (retry time.Duration, err error) {
	s.expire(now)
	p.addr = auth.AddrKey(addr)
	switch {
	case s.count[p.addr] >= s.perAddr:
		err = errPendingPerAddress
	case len(s.byState) >= s.total:
		err = errPendingFull
	}
	if err != nil {
		retry = loginTTL
		if len(s.queue) > 0 {
			retry = max(s.queue[0].expires.Sub(now), time.Second)
		}
		return retry, err
	}
	s.byState[state] = p
	s.count[p.addr]++
	s.queue = append(s.queue, queued{state: state, expires: p.expires})
	return 0, nil
}

// take removes and returns the sign-in of state (nil if none or expired).
func (s *pendingSignIns) take(now time.Time, state string) *pending {
	p := s.byState[state]
	if p == nil {
		return nil
	}
	s.remove(state, p)
	if now.After(p.expires) {
		return nil
	}
	return p
}

func (s *pendingSignIns) remove(state string, p *pending) {
	delete(s.byState, state)
	if s.count[p.addr]--; s.count[p.addr] <= 0 {
		delete(s.count, p.addr)
	}
}

// expire drops the expired entries from the front of the queue (amortised
// O(1) per sign-in) and compacts the queue once most of it is stale.
func (s *pendingSignIns) expire(now time.Time) {
	i := 0
	for ; i < len(s.queue) && now.After(s.queue[i].expires); i++ {
		q := s.queue[i]
		if p := s.byState[q.state]; p != nil && p.expires.Equal(q.expires) {
			s.remove(q.state, p)
		}
	}
	s.queue = s.queue[i:]
	if len(s.queue) > 2*len(s.byState)+1024 {
		live := make([]queued, 0, len(s.byState))
		for _, q := range s.queue {
			if p := s.byState[q.state]; p != nil && p.expires.Equal(q.expires) {
				live = append(live, q)
			}
		}
		s.queue = live
	}
}
