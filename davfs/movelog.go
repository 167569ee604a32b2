package davfs

import (
	"sync"
	"time"
)

// MoveLog remembers, for a while, the file MOVEs whose copy landed but
// whose delete of the source failed (the client got 503), so that the same
// MOVE repeated completes even with Overwrite: F: the destination is then
// known to be that copy (same source key and ETag, same destination key,
// the copy's ETag still there), not a file someone else put there. Share
// one among all requests of a gateway; nil remembers nothing (a repeated
// MOVE with Overwrite: F then answers 412). A repeat that reaches another
// gateway is not recognised either.
type MoveLog struct {
	ttl time.Duration
	max int

	mu    sync.Mutex
	items map[string]moveRecord // by source key
}

type moveRecord struct {
	srcETag, dstKey, dstETag string
	at                       time.Time
}

// DefaultMoveLogTTL is how long a half-done MOVE is remembered.
const DefaultMoveLogTTL = time.Hour

// NewMoveLog returns a MoveLog keeping at most max half-done moves for ttl.
func NewMoveLog(ttl time.Duration, max int) *MoveLog {
	return &MoveLog{ttl: ttl, max: max, items: make(map[string]moveRecord)}
}

// halfDone records a move whose copy dstKey (with dstETag) landed while
// srcKey (with srcETag) could not be deleted.
func (l *MoveLog) halfDone(srcKey, srcETag, dstKey, dstETag string) {
	if l == nil || dstETag == "" {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	if len(l.items) >= l.max {
		for k, r := range l.items { // expired first, then arbitrary ones
			if now.Sub(r.at) > l.ttl || len(l.items) >= l.max {
				delete(l.items, k)
			}
			if len(l.items) < l.max/2 {
				break
			}
		}
	}
	l.items[srcKey] = moveRecord{srcETag: srcETag, dstKey: dstKey, dstETag: dstETag, at: now}
}

// isCopy reports whether dstKey, now with dstETag, is the copy a
// half-done move of srcKey (still with srcETag) left.
func (l *MoveLog) isCopy(srcKey, srcETag, dstKey, dstETag string) bool {
	if l == nil {
		return false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	r, ok := l.items[srcKey]
	return ok && time.Since(r.at) <= l.ttl && r.srcETag == srcETag && r.dstKey == dstKey && r.dstETag == dstETag
}

// forget drops what is remembered of a move of srcKey.
func (l *MoveLog) forget(srcKey string) {
	if l == nil {
		return
	}
	l.mu.Lock()
	delete(l.items, srcKey)
	l.mu.Unlock()
}
