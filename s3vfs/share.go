package s3vfs

import (
	"errors"
	"sync"

	"golang.org/x/sync/semaphore"
)

// ErrOverShare: an upload could not get part memory within its caller's
// share (WriteOptions.Shares: one user's or one client address's uploads)
// in time. The upload failed; nothing was stored. Callers answer 429 with
// Retry-After: the caller's own uploads hold the memory, not everyone's.
var ErrOverShare = errors.New("s3vfs: the caller's uploads use all of their upload memory share")

// A MemoryShare caps the part memory of a group of uploads (one user's,
// one client address's) inside the Store's upload memory, so that one
// user's stalled or huge uploads cannot take the memory every other
// user's upload needs. An upload takes part memory from each of its
// shares and from the Store, and gives it back when the part is uploaded.
type MemoryShare struct {
	sem  *semaphore.Weighted
	size int64
}

// NewMemoryShare returns a share of size bytes.
func NewMemoryShare(size int64) *MemoryShare {
	return &MemoryShare{sem: semaphore.NewWeighted(size), size: size}
}

// Size is the share's capacity in bytes.
func (m *MemoryShare) Size() int64 { return m.size }

// SharePool hands out one MemoryShare per key (a user name, a client
// address) while uploads with that key run, and counts them: at most
// maxUploads at once per key. An entry lives only while it is in use, so
// the pool's size follows the number of uploads running.
type SharePool struct {
	size       int64
	maxUploads int

	mu      sync.Mutex
	entries map[string]*shareEntry
}

type shareEntry struct {
	share *MemoryShare
	users int
}

// NewSharePool returns a pool of shares of size bytes, with at most
// maxUploads concurrent uploads per key (0 = no count limit).
func NewSharePool(size int64, maxUploads int) *SharePool {
	return &SharePool{size: size, maxUploads: maxUploads, entries: make(map[string]*shareEntry)}
}

// Acquire returns key's share and a function that gives it back when the
// upload ends, or ok = false when key already runs maxUploads uploads.
func (p *SharePool) Acquire(key string) (share *MemoryShare, release func(), ok bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	e := p.entries[key]
	if e == nil {
		e = &shareEntry{share: NewMemoryShare(p.size)}
		p.entries[key] = e
	}
	if p.maxUploads > 0 && e.users >= p.maxUploads {
		return nil, nil, false
	}
	e.users++
	var once sync.Once
	return e.share, func() {
		once.Do(func() {
			p.mu.Lock()
			defer p.mu.Unlock()
			if e.users--; e.users == 0 {
				delete(p.entries, key)
			}
		})
	}, true
}

// Running returns the number of uploads running for key.
func (p *SharePool) Running(key string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if e := p.entries[key]; e != nil {
		return e.users
	}
	return 0
}
