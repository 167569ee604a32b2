package s3vfs

import "sync"

// bufferPool recycles part buffers across the uploads of one Store. It is a
// bounded free list rather than a sync.Pool: a sync.Pool drops its buffers
// at garbage collections, and every dropped 16 MiB buffer is re-allocated
// while the old one still counts as heap until the next collection, which
// is how a steady upload's heap drifts past part_size x concurrency. The
// list keeps at most maxFree bytes of idle buffers (one upload's worth by
// default); beyond that, returned buffers are left to the collector.
type bufferPool struct {
	mu        sync.Mutex
	free      map[int64][][]byte
	freeBytes int64
	maxFree   int64
}

func newBufferPool(maxFree int64) *bufferPool {
	return &bufferPool{free: make(map[int64][][]byte), maxFree: maxFree}
}

// get returns a buffer of length 0 and capacity size.
func (p *bufferPool) get(size int64) []byte {
	p.mu.Lock()
	if l := p.free[size]; len(l) > 0 {
		b := l[len(l)-1]
		l[len(l)-1] = nil
		p.free[size] = l[:len(l)-1]
		p.freeBytes -= size
		p.mu.Unlock()
		return b[:0]
	}
	p.mu.Unlock()
	return make([]byte, 0, size)
}

// put returns b to the pool, or drops it if the pool holds enough.
func (p *bufferPool) put(b []byte) {
	if b == nil {
		return
	}
	size := int64(cap(b))
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.freeBytes+size > p.maxFree {
		return
	}
	p.free[size] = append(p.free[size], b[:0])
	p.freeBytes += size
}
