package gateway

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/davgw/davgw/s3vfs"
)

// quotaTracker knows how many bytes each user root holds, for RFC 4331's
// quota properties and for refusing uploads past [webdav].quota_bytes. The
// usage of a root is computed by listing it in the background (never by a
// request) and cached; uploads and deletes through this gateway adjust it
// in between. Until the first computation finishes, the quota properties
// are not reported and uploads are not limited.
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
	known      bool
	at         time.Time
	refreshing bool
	changed    time.Time // last adjustment by a request
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
	u, ok := q.roots[root]
	if !ok {
		if len(q.roots) > 10000 {
			q.roots = make(map[string]*usage) // bounded; entries are cheap to recompute
		}
		u = &usage{}
		q.roots[root] = u
	}
	if !u.refreshing && (!u.known || time.Since(u.at) > q.ttl) {
		u.refreshing = true
		go q.refresh(root)
	}
	return u.bytes, u.known
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

func (q *quotaTracker) refresh(root string) {
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
		if e.Object != nil && !strings.Contains(e.Object.Key, "/.davgw-") {
			total += e.Object.Size
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
	r    io.Reader
	left int64
}

func (q *quotaReader) Read(p []byte) (int, error) {
	n, err := q.r.Read(p)
	q.left -= int64(n)
	if q.left < 0 {
		return n, errQuotaExceeded
	}
	return n, err
}
