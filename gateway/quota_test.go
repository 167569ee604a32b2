package gateway

import (
	"bytes"
	"context"
	"errors"
	"io"
	"sync"
	"testing"
	"time"
)

// TestQuotaReservations (issue 10, F13): concurrent writes see each
// other's reservations, a body past its declared length (or a chunked one)
// reserves as it arrives, and a failed write gives its bytes back.
func TestQuotaReservations(t *testing.T) {
	const root = "users/q/"
	q := &quotaTracker{limit: 1000, ttl: time.Hour, roots: map[string]*usage{root: {known: true, at: time.Now(), bytes: 100}}}
	ctx := context.Background()

	var wg sync.WaitGroup
	var mu sync.Mutex
	var held []*quotaReservation
	refused := 0
	for range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := q.reserve(ctx, root, 600, 0)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				held = append(held, res)
			case errors.Is(err, errQuotaExceeded):
				refused++
			default:
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if len(held) != 1 || refused != 9 {
		t.Fatalf("%d reservations of 600 granted within 900 left, %d refused", len(held), refused)
	}
	held[0].release()
	held[0].release() // twice is harmless
	if u := q.roots[root]; u.reserved != 0 || u.bytes != 100 {
		t.Fatalf("after release: %+v", *u)
	}

	// A chunked body reserves as it arrives; two at once share what is left.
	a, _ := q.reserve(ctx, root, -1, 0)
	b, _ := q.reserve(ctx, root, -1, 0)
	if _, err := io.Copy(io.Discard, a.reader(bytes.NewReader(make([]byte, 600)))); err != nil {
		t.Fatalf("first chunked body: %v", err)
	}
	if _, err := io.Copy(io.Discard, b.reader(bytes.NewReader(make([]byte, 600)))); !errors.Is(err, errQuotaExceeded) {
		t.Fatalf("second chunked body: %v, want errQuotaExceeded", err)
	}
	b.release()
	a.commit(600)
	if u := q.roots[root]; u.reserved != 0 || u.bytes != 700 {
		t.Fatalf("after commit: %+v", *u)
	}
	// Replacing a file reserves only the growth.
	c, err := q.reserve(ctx, root, 800, 600)
	if err != nil {
		t.Fatalf("replacing 600 bytes with 800: %v", err)
	}
	c.commit(800)
	if u := q.roots[root]; u.bytes != 900 {
		t.Fatalf("after the replacement: %d bytes", u.bytes)
	}
	// No quota: nothing to reserve, every method a no-op.
	var none *quotaTracker
	r, err := none.reserve(ctx, root, 1<<40, 0)
	if err != nil || r != nil {
		t.Fatal(r, err)
	}
	r.commit(1)
	r.release()
	if statusFor(errQuotaUnknown, 0) != 503 || statusFor(errQuotaExceeded, 0) != 507 {
		t.Fatal("quota errors do not map to 503 and 507")
	}
}
