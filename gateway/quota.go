package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/davgw/davgw/s3vfs"
)

// quotaTracker knows how many bytes each user root holds, for RFC 4331's
// quota properties and for refusing uploads past [webdav].quota_bytes. The
// usage of a root is computed by listing it in the background (never by a
// request) and cached; it counts every object under the root, the hidden
// per-folder indexes of kept times and dead properties included. Uploads,
// copies, PROPPATCHes and deletes through this gateway adjust it in
// between. Until the first computation finishes, the quota properties are
// not reported, and writes wait for it (at most quotaWait, then 503).
//
// A write reserves its bytes before it starts (reserve): the declared
// length of a PUT, grown as the body arrives past it (a chunked body), and
// released if the write fails. Concurrent writes therefore never store
// more than the quota together: each sees the others' reservations.
type quotaTracker struct {
	limit int64
	store *s3vfs.Store
	log   *slog.Logger
	ttl   time.Duration

	mu    sync.Mutex
	roots map[string]*usage
	sem   chan struct{} // bounds concurrent background listings
}

type usage struct {
	bytes      int64
	reserved   int64 // held by writes under way (quotaReservation)
	known      bool
	at         time.Time
	refreshing bool
	changed    time.Time     // last adjustment by a request
	counted    chan struct{} // closed when the running count ends
}

func newQuotaTracker(limit int64, store *s3vfs.Store, log *slog.Logger) *quotaTracker {
	return &quotaTracker{limit: limit, store: store, log: log, ttl: time.Minute,
		roots: make(map[string]*usage), sem: make(chan struct{}, 2)}
}

// used returns the cached usage of root and starts a background
// recomputation when it is missing or older than the TTL.
func (q *quotaTracker) used(root string) (bytes int64, known bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	u := q.entry(root)
	return u.bytes, u.known
}

// entry returns root's usage, starting a background count when it is
// missing or older than the TTL; q.mu is held.
func (q *quotaTracker) entry(root string) *usage {
	u, ok := q.roots[root]
	if !ok {
		if len(q.roots) > 10000 {
			// Bounded; entries are cheap to recompute, but not those
			// that writes under way or a count still use.
			for r, v := range q.roots {
				if v.reserved == 0 && !v.refreshing {
					delete(q.roots, r)
				}
			}
		}
		u = &usage{}
		q.roots[root] = u
	}
	if !u.refreshing && (!u.known || time.Since(u.at) > q.ttl) {
		u.refreshing = true
		u.counted = make(chan struct{})
		go q.refresh(root, u.counted)
	}
	return u
}

// quotaWait bounds how long a write waits for the first count of its
// root's usage.
const quotaWait = 10 * time.Second

// errQuotaUnknown: the usage of the root could not be counted in time
// (503 with Retry-After).
var errQuotaUnknown = fmt.Errorf("%w: the usage of the quota is not counted yet", s3vfs.ErrUnavailable)

// quotaReservation holds the quota bytes of one write while it runs. Its
// methods are safe on a nil reservation (no quota), and once done.
type quotaReservation struct {
	q        *quotaTracker
	u        *usage
	replaced int64 // bytes of the file the write replaces
	held     int64 // reserved in u
	read     int64 // body bytes seen by the reader
	done     bool
}

// reserve waits until root's usage is known (at most quotaWait, while ctx
// lasts) and reserves size bytes (a declared length; < 0 = unknown, 0
// reserved) less the replaced file's size. It fails with errQuotaExceeded
// when they do not fit beside the usage and the other writes'
// reservations. A nil tracker reserves nothing.
func (q *quotaTracker) reserve(ctx context.Context, root string, size, replaced int64) (*quotaReservation, error) {
	if q == nil {
		return nil, nil
	}
	timer := time.NewTimer(quotaWait)
	defer timer.Stop()
	for {
		q.mu.Lock()
		u := q.entry(root)
		if u.known {
			defer q.mu.Unlock()
			res := &quotaReservation{q: q, u: u, replaced: replaced}
			if need := size - replaced; size >= 0 && need > 0 {
				if u.bytes+u.reserved+need > q.limit {
					return nil, errQuotaExceeded
				}
				u.reserved += need
				res.held = need
			}
			return res, nil
		}
		counted := u.counted
		q.mu.Unlock()
		select {
		case <-counted:
			q.mu.Lock()
			failed := !u.known && !u.refreshing
			q.mu.Unlock()
			if failed {
				return nil, errQuotaUnknown // the count failed: S3 trouble
			}
		case <-timer.C:
			return nil, errQuotaUnknown
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// grow accounts n more body bytes, reserving what passes the declared
// length; errQuotaExceeded when that does not fit.
func (r *quotaReservation) grow(n int64) error {
	if r == nil {
		return nil
	}
	r.read += n
	need := r.read - r.replaced
	if need <= r.held {
		return nil
	}
	q := r.q
	q.mu.Lock()
	defer q.mu.Unlock()
	extra := need - r.held
	if r.done || r.u.bytes+r.u.reserved+extra > q.limit {
		return errQuotaExceeded
	}
	r.u.reserved += extra
	r.held += extra
	return nil
}

// commit turns the reservation into usage: the write stored size bytes in
// place of the replaced file.
func (r *quotaReservation) commit(size int64) {
	if r == nil {
		return
	}
	r.q.mu.Lock()
	defer r.q.mu.Unlock()
	if r.done {
		return
	}
	r.done = true
	r.u.reserved -= r.held
	r.u.bytes = max(0, r.u.bytes+size-r.replaced)
	r.u.changed = time.Now()
}

// release gives the reservation back (the write failed); after commit it
// does nothing.
func (r *quotaReservation) release() {
	if r == nil {
		return
	}
	r.q.mu.Lock()
	defer r.q.mu.Unlock()
	if !r.done {
		r.done = true
		r.u.reserved -= r.held
	}
}

// reader counts body bytes against the reservation: a body that grows
// past what fits fails with errQuotaExceeded.
func (r *quotaReservation) reader(body io.Reader) io.Reader {
	if r == nil {
		return body
	}
	return &quotaReader{r: body, res: r}
}

// add adjusts a root's usage after a change made through the gateway.
func (q *quotaTracker) add(root string, delta int64) {
	q.mu.Lock()
	if u, ok := q.roots[root]; ok && u.known {
		u.bytes = max(0, u.bytes+delta)
		u.changed = time.Now()
	}
	q.mu.Unlock()
}

// invalidate makes the next used call recount root in the background.
func (q *quotaTracker) invalidate(root string) {
	q.mu.Lock()
	if u, ok := q.roots[root]; ok {
		u.at = time.Time{}
	}
	q.mu.Unlock()
}

func (q *quotaTracker) refresh(root string, counted chan struct{}) {
	defer close(counted)
	q.sem <- struct{}{}
	defer func() { <-q.sem }()
	started := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	var total int64
	var err error
	for e, lerr := range q.store.List(ctx, s3vfs.ListOptions{Prefix: root}) {
		if lerr != nil {
			err = lerr
			break
		}
		if e.Object != nil {
			total += e.Object.Size // the .davgw- indexes (dead properties) too
		}
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	u, ok := q.roots[root]
	if !ok {
		return
	}
	u.refreshing = false
	if err != nil {
		q.log.Warn("quota: cannot compute usage", slog.String("root", root), slog.String("error", err.Error()))
		return
	}
	if u.known && u.changed.After(started) {
		// A request changed the usage while the listing ran, which may or
		// may not have seen it: keep the adjusted count and count again.
		u.at = time.Time{}
		return
	}
	u.bytes, u.known, u.at = total, true, time.Now()
}

// errQuotaExceeded: the upload does not fit the user's quota (507).
var errQuotaExceeded = errors.New("quota exceeded")

// quotaReader fails a body that grows past the bytes left in the quota.
type quotaReader struct {
	r   io.Reader
	res *quotaReservation
}

func (q *quotaReader) Read(p []byte) (int, error) {
	n, err := q.r.Read(p)
	if gerr := q.res.grow(int64(n)); gerr != nil {
		return n, gerr
	}
	return n, err
}
