package s3vfs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"
)

// stallingReader gives its bytes, then blocks until release is closed.
type stallingReader struct {
	data    []byte
	release chan struct{}
}

func (r *stallingReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		<-r.release
		return 0, io.ErrUnexpectedEOF
	}
	n := copy(p, r.data)
	r.data = r.data[n:]
	return n, nil
}

// TestUploadsTakePartMemoryOnlyForBytesAndWithinTheirShare: an upload
// whose body sent nothing yet holds no part memory; uploads that stall
// after a byte hold at most their share, the ones past it fail with
// ErrOverShare, and the Store's memory stays free for others.
func TestUploadsTakePartMemoryOnlyForBytesAndWithinTheirShare(t *testing.T) {
	const budget = 8 * MinPartSize
	s, _ := newTestStore(t, func(c *Config) { c.UploadMemory = budget; c.UploadConcurrency = 2 })
	s.budgetWait = 300 * time.Millisecond
	ctx := context.Background()
	share := NewMemoryShare(2 * MinPartSize)
	release := make(chan struct{})
	defer close(release)

	// A body with no bytes yet: no memory taken.
	silent := s.NewWriter(ctx, "silent", WriteOptions{Size: -1, Shares: []*MemoryShare{share}})
	go func() { _, _ = silent.ReadFrom(&stallingReader{release: release}) }()
	time.Sleep(100 * time.Millisecond)
	if !share.sem.TryAcquire(share.size) {
		t.Fatal("an upload that received no byte holds part memory")
	}
	share.sem.Release(share.size)

	// Three uploads that stall after one byte: two fit the share, the
	// third fails with ErrOverShare once the wait runs out.
	errs := make(chan error, 3)
	for i := range 3 {
		w := s.NewWriter(ctx, fmt.Sprintf("stall/%d", i), WriteOptions{Size: -1, Shares: []*MemoryShare{share}})
		go func() {
			_, err := w.ReadFrom(&stallingReader{data: []byte("x"), release: release})
			errs <- err
			_ = w.Abort()
		}()
	}
	select {
	case err := <-errs:
		if !errors.Is(err, ErrOverShare) {
			t.Fatalf("the upload past the share got %v, want ErrOverShare", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no upload past the share was refused")
	}
	// The Store's memory apart from the share is free for everyone else.
	if !s.memory.TryAcquire(budget - share.size) {
		t.Fatal("stalled uploads took Store memory beyond their share")
	}
	s.memory.Release(budget - share.size)
}

func TestSharePoolCountsUploadsPerKey(t *testing.T) {
	p := NewSharePool(MinPartSize, 2)
	a1, r1, ok1 := p.Acquire("alice")
	a2, r2, ok2 := p.Acquire("alice")
	_, _, ok3 := p.Acquire("alice")
	b1, rb, okb := p.Acquire("bob")
	if !ok1 || !ok2 || ok3 || !okb {
		t.Fatalf("acquire: %v %v %v %v, want true true false true", ok1, ok2, ok3, okb)
	}
	if a1 != a2 || a1 == b1 {
		t.Fatal("alice's uploads must share one share, apart from bob's")
	}
	r1()
	r1() // idempotent
	if got := p.Running("alice"); got != 1 {
		t.Fatalf("Running(alice) = %d, want 1", got)
	}
	r2()
	rb()
	if got := len(p.entries); got != 0 {
		t.Fatalf("%d entries left after every upload ended, want 0", got)
	}
}
