package s3vfs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

// TestUploadMemoryBudgetIsSharedWithoutDeadlock runs several multipart
// Writers at once under a budget of two part buffers: they take turns,
// all complete with the right bytes, and every byte of the budget is
// given back.
func TestUploadMemoryBudgetIsSharedWithoutDeadlock(t *testing.T) {
	const budget = 2 * MinPartSize
	s, gw := newTestStore(t, func(c *Config) { c.UploadMemory = budget; c.UploadConcurrency = 3 })
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const writers = 5
	bodies := make([][]byte, writers)
	errs := make([]error, writers)
	var wg sync.WaitGroup
	for i := range writers {
		bodies[i] = randomBytes(17*MiB+i, uint64(i+10))
		wg.Add(1)
		go func() {
			defer wg.Done()
			w := s.NewWriter(ctx, fmt.Sprintf("budget/%d", i), WriteOptions{Size: -1})
			for off := 0; off < len(bodies[i]); off += 300 * 1024 {
				if _, err := w.Write(bodies[i][off:min(off+300*1024, len(bodies[i]))]); err != nil {
					errs[i] = errors.Join(err, w.Abort())
					return
				}
			}
			_, errs[i] = w.Commit()
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(90 * time.Second):
		t.Fatal("writers deadlocked under the memory budget")
	}
	for i, err := range errs {
		if err != nil {
			t.Fatalf("writer %d: %v", i, err)
		}
		if got := gw.objectBytes(t, fmt.Sprintf("budget/%d", i)); !bytes.Equal(got, bodies[i]) {
			t.Fatalf("writer %d stored %d bytes, want %d", i, len(got), len(bodies[i]))
		}
	}
	if !s.memory.TryAcquire(budget) {
		t.Fatal("part buffers were not all given back to the budget")
	}
	s.memory.Release(budget)
}

// TestUploadMemoryBudgetRefusesAPartLargerThanItself: an upload whose
// declared length needs parts larger than its share of the budget fails
// with ErrTooLarge instead of waiting forever (a budget below one part of
// the configured size is refused by Validate); a small body still fits.
func TestUploadMemoryBudgetRefusesAPartLargerThanItself(t *testing.T) {
	s, gw := newTestStore(t, func(c *Config) { c.UploadMemory = 6 * MiB; c.PartSize = 6 * MiB })
	ctx := context.Background()
	w := s.NewWriter(ctx, "big", WriteOptions{Size: 100 * GiB}) // parts of 11 MiB
	if _, err := w.Write([]byte("x")); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("Write = %v, want ErrTooLarge", err)
	}
	_ = w.Abort()
	w = s.NewWriter(ctx, "small", WriteOptions{Size: 5})
	if _, err := w.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	if got := gw.objectBytes(t, "small"); string(got) != "hello" {
		t.Fatalf("stored %q", got)
	}
}

func TestAnUploadWaitsForMemoryOnlyABoundedTime(t *testing.T) {
	const budget = 2 * MinPartSize
	s, _ := newTestStore(t, func(c *Config) { c.UploadMemory = budget; c.UploadConcurrency = 1 })
	s.budgetWait = 300 * time.Millisecond
	ctx := context.Background()
	// Two uploads whose clients stalled after a few bytes hold the budget.
	var stalled []*Writer
	for i := range 2 {
		w := s.NewWriter(ctx, fmt.Sprintf("stalled/%d", i), WriteOptions{Size: -1})
		if _, err := w.Write([]byte("a few bytes")); err != nil {
			t.Fatal(err)
		}
		stalled = append(stalled, w)
	}
	start := time.Now()
	w := s.NewWriter(ctx, "blocked", WriteOptions{Size: -1})
	_, err := w.Write([]byte("x"))
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("a third upload got %v, want ErrUnavailable once the wait ran out", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("the third upload waited %v", d)
	}
	_ = w.Abort()
	for _, w := range stalled {
		_ = w.Abort()
	}
	if !s.memory.TryAcquire(budget) {
		t.Fatal("aborted uploads did not give their memory back")
	}
}

func TestAHugeDeclaredLengthCannotTakeTheWholeBudget(t *testing.T) {
	s, _ := newTestStore(t, func(c *Config) { c.UploadMemory = 64 * MiB; c.UploadConcurrency = 4 })
	w := s.NewWriter(context.Background(), "huge", WriteOptions{Size: 4 << 40})
	if _, err := w.Write([]byte("x")); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("a 4 TiB upload with a 64 MiB budget: %v, want ErrTooLarge", err)
	}
	_ = w.Abort()
}
