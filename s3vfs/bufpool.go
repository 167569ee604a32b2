package s3vfs

import "sync"

// bufferPool recycles part buffers across the uploads of one Store, one
// sync.Pool per buffer size (part sizes are whole MiB, so few sizes exist).
type bufferPool struct {
	mu    sync.Mutex
	pools map[int64]*sync.Pool
}

func newBufferPool() *bufferPool {
	return &bufferPool{pools: make(map[int64]*sync.Pool)}
}

// get returns a buffer of length 0 and capacity size.
func (p *bufferPool) get(size int64) []byte {
	if b, ok := p.pool(size).Get().(*[]byte); ok {
		return (*b)[:0]
	}
	return make([]byte, 0, size)
}

// put returns b (of capacity size) to the pool.
func (p *bufferPool) put(b []byte) {
	if b == nil {
		return
	}
	b = b[:0]
	p.pool(int64(cap(b))).Put(&b)
}

func (p *bufferPool) pool(size int64) *sync.Pool {
	p.mu.Lock()
	defer p.mu.Unlock()
	sp, ok := p.pools[size]
	if !ok {
		sp = new(sync.Pool)
		p.pools[size] = sp
	}
	return sp
}
