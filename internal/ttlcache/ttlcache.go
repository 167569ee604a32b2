// Package ttlcache is a bounded map whose entries expire: the one cache
// behind auth's remembered sign-ins (Bearer tokens, static users, the
// password grant, app-password lists, identity bindings, verified
// credentials).
//
// The caller passes the time to every call, so that each owner keeps its
// own clock (and its tests their fake one). An entry is live while now is
// before its expiry. Memory is bounded: a Put drops the expired entries,
// and when the cache is still full it evicts the entry that expires first
// (for entries renewed on use, the least recently used one; of entries
// that expire at the same time, the one put or renewed first). Expiries are
// kept in a heap, so every call is O(log n).
//
// Security notes: the cache keeps keys and values as given; callers key
// it by a keyed hash of credentials, never by the credentials themselves.
package ttlcache

import (
	"container/heap"
	"sync"
	"time"
)

// Cache is a bounded map with per-entry expiry, safe for concurrent use.
type Cache[K comparable, V any] struct {
	max int

	mu    sync.Mutex
	items map[K]*item[K, V]
	byExp expiryHeap[K, V]
	seq   uint64
}

type item[K comparable, V any] struct {
	key     K
	val     V
	expires time.Time
	seq     uint64 // order of Put: breaks ties of expiry
	index   int    // in byExp
}

// New returns a Cache that holds at most size entries (at least one).
func New[K comparable, V any](size int) *Cache[K, V] {
	return &Cache[K, V]{max: max(size, 1), items: map[K]*item[K, V]{}}
}

// Get returns the live value of k. An expired entry is dropped.
func (c *Cache[K, V]) Get(k K, now time.Time) (V, bool) {
	return c.Update(k, now, nil)
}

// Update calls f, unless nil, on the live entry of k under the cache's
// lock (f may change the value and the expiry; it must not call the
// cache) and returns the value after f. An expired entry is dropped and f
// is not called.
func (c *Cache[K, V]) Update(k K, now time.Time, f func(v *V, expires *time.Time)) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	it, ok := c.items[k]
	if !ok {
		var zero V
		return zero, false
	}
	if !now.Before(it.expires) {
		c.remove(it)
		var zero V
		return zero, false
	}
	if f != nil {
		was := it.expires
		f(&it.val, &it.expires)
		if !it.expires.Equal(was) {
			c.seq++
			it.seq = c.seq
			heap.Fix(&c.byExp, it.index)
		}
	}
	return it.val, true
}

// Put stores v under k until expires, replacing any entry of k.
func (c *Cache[K, V]) Put(k K, v V, expires, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.put(k, v, expires, now)
}

// Add stores v under k until expires unless k has a live entry; it
// reports whether it stored v.
func (c *Cache[K, V]) Add(k K, v V, expires, now time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if it, ok := c.items[k]; ok && now.Before(it.expires) {
		return false
	}
	c.put(k, v, expires, now)
	return true
}

func (c *Cache[K, V]) put(k K, v V, expires, now time.Time) {
	c.dropExpired(now)
	c.seq++
	if it, ok := c.items[k]; ok {
		it.val, it.expires, it.seq = v, expires, c.seq
		heap.Fix(&c.byExp, it.index)
		return
	}
	for len(c.items) >= c.max {
		c.remove(c.byExp[0]) // the one that expires first
	}
	it := &item[K, V]{key: k, val: v, expires: expires, seq: c.seq}
	c.items[k] = it
	heap.Push(&c.byExp, it)
}

// Delete removes k; removing a missing key does nothing.
func (c *Cache[K, V]) Delete(k K) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if it, ok := c.items[k]; ok {
		c.remove(it)
	}
}

// Len returns the number of entries, expired ones not yet dropped
// included.
func (c *Cache[K, V]) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.items)
}

// dropExpired removes the entries whose expiry is not after now.
func (c *Cache[K, V]) dropExpired(now time.Time) {
	for len(c.byExp) > 0 && !now.Before(c.byExp[0].expires) {
		c.remove(c.byExp[0])
	}
}

func (c *Cache[K, V]) remove(it *item[K, V]) {
	heap.Remove(&c.byExp, it.index)
	delete(c.items, it.key)
}

// expiryHeap orders items by expiry, the soonest first (of equal ones,
// the one put or renewed first).
type expiryHeap[K comparable, V any] []*item[K, V]

func (h expiryHeap[K, V]) Len() int { return len(h) }
func (h expiryHeap[K, V]) Less(i, j int) bool {
	if c := h[i].expires.Compare(h[j].expires); c != 0 {
		return c < 0
	}
	return h[i].seq < h[j].seq
}
func (h expiryHeap[K, V]) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index, h[j].index = i, j
}

func (h *expiryHeap[K, V]) Push(x any) {
	it := x.(*item[K, V])
	it.index = len(*h)
	*h = append(*h, it)
}

func (h *expiryHeap[K, V]) Pop() any {
	old := *h
	it := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return it
}
