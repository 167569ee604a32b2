package davfs

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
)

// Kept times of uploads are written to their folder's index in batches.
// Rewriting the whole index for every upload that carries a time (rclone's
// X-OC-Mtime) costs O(N^2) bytes to fill a folder with N files: 10,000
// files rewrote an index growing to 800 KB 10,000 times. An IndexBatcher
// keeps such entries pending, per folder, and writes each folder's index
// once for many of them: when the pending entries reach a quarter of the
// index (so each write grows it by a quarter or more, and all the writes
// of a fill add up to about 5 times its final size) or when the oldest has
// waited longer than a delay that grows with the index (4 ms an entry,
// from 250 ms to 30 s: a client that uploads 50 files a second, as rclone
// does by default, then adds 20% or more to the index between writes).
//
// Pending entries are part of the index for this gateway at once: every
// read of an index (listings, GET, HEAD, PROPFIND) sees them, and every
// index update of the folder (PROPPATCH, DELETE, MOVE, COPY) writes them
// with its own change. Other gateways see them once written (the delay,
// plus their IndexCache's TTL). A gateway that stops gracefully writes
// what is pending (Close); one that crashes loses the kept times of the
// uploads of the last seconds (the files are stored, show S3's time, and
// keep the time in their "mtime" metadata). Deleting or overwriting a
// folder drops its pending entries first (DropUnder): a batch written
// later must not bring a deleted folder back with its index.
type IndexBatcher struct {
	// OnError reports pending entries given up on (a store that refuses
	// the index write, an index that is full) and what went wrong without
	// failing a batch.
	OnError func(error)

	mu      sync.Mutex
	folders map[string]*batch    // by index key
	failing map[string]time.Time // index keys whose last batch write failed: their uploads write themselves
	total   int
	seq     uint64
	closed  bool
	stop    chan struct{}
	wg      sync.WaitGroup
}

// Bounds of the batcher: past them an upload writes its entry itself.
const (
	maxPendingEntries = 100000
	maxPendingFolders = 4096
	minBatchDelay     = 250 * time.Millisecond
	maxBatchDelay     = 30 * time.Second
	batchDelayPerItem = 4 * time.Millisecond
	minBatchTrigger   = 64 // pending entries that always justify a write
	// batchedIndexMax: an index larger than this (three quarters of what
	// an index may grow to) takes no more batched entries, so that an
	// upload that cannot be kept is told so (no X-OC-Mtime: accepted).
	batchedIndexMax = maxIndexWrite / 4 * 3
)

// NewIndexBatcher returns a batcher; share one among all requests.
func NewIndexBatcher() *IndexBatcher {
	return &IndexBatcher{folders: map[string]*batch{}, failing: map[string]time.Time{}, stop: make(chan struct{})}
}

type batch struct {
	store   Store // where, and how, to write (not the request's FS: its caches stay with it)
	root    string
	opts    Options
	folder  string
	entries map[string]pendingEntry
	kick    chan struct{} // write now
	writing int           // index writes under way (their entries are still in entries)
}

// due reports whether enough entries wait to write now. b.mu is held.
func (bt *batch) due(indexEntries int) bool {
	return bt.writing == 0 && len(bt.entries) >= max(minBatchTrigger, indexEntries/4)
}

// pendingEntry is an upload's entry waiting to be written: the rule is the
// one a direct update applies (dead properties stay with the resource if
// the entry was the previous version's or this one's).
type pendingEntry struct {
	e        metaEntry
	prevETag string
	key      string // the object's key
	seq      uint64
}

// over returns the entry as it reads over the index's current one.
func (p pendingEntry) over(cur metaEntry, ok bool) metaEntry {
	e := p.e
	if ok && (cur.ETag == p.prevETag || cur.ETag == e.ETag) {
		e.Props = cur.Props
	}
	return e
}

func batchDelay(indexEntries int) time.Duration {
	return min(max(time.Duration(indexEntries)*batchDelayPerItem, minBatchDelay), maxBatchDelay)
}

// add queues an upload's entry; false means the caller writes the entry
// itself: the batcher is full or closed, or the folder's index failed its
// last batch write or is near its size limit (the caller's own write then
// answers honestly whether the time was kept).
func (b *IndexBatcher) add(f *FS, folder, name string, p pendingEntry) bool {
	if b == nil {
		return false
	}
	key := f.dirPrefix(folder) + indexName
	if li, ok := f.opts.IndexCache.peek(key); ok && (li.unwritable || li.size > batchedIndexMax) {
		return false
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	bt := b.folders[key]
	if _, failed := b.failing[key]; failed {
		return false
	}
	if b.closed || b.total >= maxPendingEntries || (bt == nil && len(b.folders) >= maxPendingFolders) {
		return false
	}
	if bt == nil {
		bt = &batch{store: f.store, root: f.root, opts: f.opts, folder: folder,
			entries: map[string]pendingEntry{}, kick: make(chan struct{}, 1)}
		b.folders[key] = bt
		b.wg.Add(1)
		go b.run(key, bt)
	}
	b.seq++
	p.seq = b.seq
	if old, had := bt.entries[name]; had {
		if old.e.ETag == p.prevETag {
			// Replacing an upload whose entry is not written yet: its
			// predecessor's properties still belong to the resource.
			p.prevETag = old.prevETag
		}
	} else {
		b.total++
	}
	bt.entries[name] = p
	if bt.due(f.opts.IndexCache.entriesOf(key)) {
		select {
		case bt.kick <- struct{}{}:
		default:
		}
	}
	return true
}

// run writes a folder's pending entries until none are left.
func (b *IndexBatcher) run(key string, bt *batch) {
	defer b.wg.Done()
	for {
		n := bt.opts.IndexCache.entriesOf(key)
		b.mu.Lock()
		due := bt.due(n)
		b.mu.Unlock()
		if !due {
			t := time.NewTimer(batchDelay(n))
			select {
			case <-bt.kick:
			case <-t.C:
			case <-b.stop:
			}
			t.Stop()
		}
		b.mu.Lock()
		if len(bt.entries) == 0 { // another update of the folder wrote them
			delete(b.folders, key)
			b.mu.Unlock()
			return
		}
		b.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		_ = b.write(ctx, key, bt)
		cancel()
		b.mu.Lock()
		if len(bt.entries) == 0 {
			delete(b.folders, key)
			b.mu.Unlock()
			return
		}
		b.mu.Unlock()
	}
}

// write writes a batch's pending entries (updateIndex takes them all). On
// failure (updateIndex retried already) the entries it tried are given
// up: the files are stored and show S3's time; the folder's next uploads
// write their entries themselves until an index write there succeeds. A
// write cut short by its context gives nothing up.
func (b *IndexBatcher) write(ctx context.Context, key string, bt *batch) error {
	b.mu.Lock()
	bt.writing++
	b.mu.Unlock()
	tried := b.snapshot(key)
	f := New(bt.store, bt.root, bt.opts)
	superseded := f.supersededEntries(ctx, bt.folder, tried) // before the lock: HEADs never hold it
	err := f.updateIndexWith(ctx, bt.folder, true, superseded, func(map[string]metaEntry) bool { return false })
	for _, w := range f.Warnings() {
		b.report(w)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	bt.writing--
	select {
	case <-bt.kick: // a kick from before the write: due says again
	default:
	}
	if err == nil || ctx.Err() != nil {
		return err
	}
	lost := 0
	for n, p := range tried {
		if cur, ok := bt.entries[n]; ok && cur.seq == p.seq {
			delete(bt.entries, n)
			b.total--
			lost++
		}
	}
	if len(b.failing) >= maxPendingFolders {
		clear(b.failing)
	}
	b.failing[key] = time.Now()
	err = fmt.Errorf("kept times of %d uploads in %s not written: %w", lost, key, err)
	if b.OnError != nil {
		b.OnError(err)
	}
	return err
}

func (b *IndexBatcher) report(err error) {
	if err != nil && b.OnError != nil {
		b.OnError(err)
	}
}

// WriteUnder writes at once the pending entries of the indexes whose keys
// start with prefix ("" = all): before a folder tree is copied from its
// index objects, and for callers that must see S3 up to date. The writes
// outlive the caller's context (a client gone mid-COPY must not cost
// other uploads their accepted times).
func (b *IndexBatcher) WriteUnder(ctx context.Context, prefix string) error {
	if b == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	var errs []error
	for key, bt := range b.under(prefix) {
		errs = append(errs, b.write(ctx, key, bt))
	}
	return errors.Join(errs...)
}

// DropUnder forgets the pending entries of the indexes whose keys start
// with prefix, waiting (under each folder's index lock) for a batch write
// of them that is under way: a folder about to be deleted or replaced
// must not get its index back from a late batch.
func (b *IndexBatcher) DropUnder(ctx context.Context, locks *IndexLocks, prefix string) error {
	if b == nil {
		return nil
	}
	for key, bt := range b.under(prefix) {
		unlock, err := locks.lock(ctx, key)
		if err != nil {
			return err
		}
		b.mu.Lock()
		b.total -= len(bt.entries)
		clear(bt.entries)
		b.mu.Unlock()
		unlock()
	}
	return nil
}

// deletePrefix deletes the keys under prefix (a folder), after dropping
// the pending kept times of the indexes there (see DropUnder).
func (f *FS) deletePrefix(ctx context.Context, prefix string) error {
	if err := f.opts.Batcher.DropUnder(ctx, f.opts.IndexLocks, prefix); err != nil {
		return err
	}
	return f.store.DeletePrefix(ctx, prefix)
}

// under returns the batches with entries whose keys start with prefix.
func (b *IndexBatcher) under(prefix string) map[string]*batch {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := map[string]*batch{}
	for key, bt := range b.folders {
		if strings.HasPrefix(key, prefix) && len(bt.entries) > 0 {
			out[key] = bt
		}
	}
	return out
}

// lookup returns a pending entry of the index at key.
func (b *IndexBatcher) lookup(key, name string) (pendingEntry, bool) {
	if b == nil {
		return pendingEntry{}, false
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	bt := b.folders[key]
	if bt == nil {
		return pendingEntry{}, false
	}
	p, ok := bt.entries[name]
	return p, ok
}

// snapshot returns a copy of the pending entries of the index at key.
func (b *IndexBatcher) snapshot(key string) map[string]pendingEntry {
	if b == nil {
		return nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	bt := b.folders[key]
	if bt == nil || len(bt.entries) == 0 {
		return nil
	}
	out := make(map[string]pendingEntry, len(bt.entries))
	for n, p := range bt.entries {
		out[n] = p
	}
	return out
}

// written records a successful write of the index at key: the pending
// entries it carried (those not replaced meanwhile) are done, and the
// folder takes batched entries again.
func (b *IndexBatcher) written(key string, snap map[string]pendingEntry) {
	if b == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.failing, key)
	bt := b.folders[key]
	if bt == nil {
		return
	}
	for n, p := range snap {
		if cur, ok := bt.entries[n]; ok && cur.seq == p.seq {
			delete(bt.entries, n)
			b.total--
		}
	}
}

// Pending returns the number of entries waiting to be written.
func (b *IndexBatcher) Pending() int {
	if b == nil {
		return 0
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.total
}

// Close writes what is pending, without waiting for the delays, and makes
// later uploads write their entries themselves. It returns when every
// folder is written (or given up on) or ctx ends.
func (b *IndexBatcher) Close(ctx context.Context) error {
	if b == nil {
		return nil
	}
	b.mu.Lock()
	if !b.closed {
		b.closed = true
		close(b.stop)
	}
	b.mu.Unlock()
	done := make(chan struct{})
	go func() {
		b.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("kept times of %d uploads not written before shutdown: %w", b.Pending(), ctx.Err())
	}
}

// pendingRef is a pending entry looked up before its index was read, so
// that a batch written in between shows in one or the other.
type pendingRef struct {
	p  pendingEntry
	ok bool
}

// pendingFor looks up name's pending entry in folder's index.
func (f *FS) pendingFor(folder, name string) pendingRef {
	p, ok := f.opts.Batcher.lookup(f.dirPrefix(folder)+indexName, name)
	return pendingRef{p, ok}
}

// entry is name's entry in li as this gateway sees it: the pending
// upload's over the written one.
func (r pendingRef) entry(li *loadedIndex, name string) (metaEntry, bool) {
	e, ok := li.entries[name]
	if r.ok {
		return r.p.over(e, ok), true
	}
	return e, ok
}
