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
// keep the time in their "mtime" metadata).
type IndexBatcher struct {
	// OnError reports pending entries given up on (a store that keeps
	// refusing the index write, an index that is full).
	OnError func(error)

	mu      sync.Mutex
	folders map[string]*batch // by index key
	total   int
	seq     uint64
	failing map[string]time.Time // index keys whose last batch write failed, and when
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
	// failingFor: after a batch write of a folder failed, its uploads
	// write their entries themselves for this long, so that an index that
	// cannot be written is answered honestly (no X-OC-Mtime: accepted).
	failingFor = time.Minute
)

// NewIndexBatcher returns a batcher; share one among all requests.
func NewIndexBatcher() *IndexBatcher {
	return &IndexBatcher{folders: map[string]*batch{}, failing: map[string]time.Time{}, stop: make(chan struct{})}
}

type batch struct {
	fs      *FS // the store, root and options to write through
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

// add queues an upload's entry; false means the batcher is full or closed
// and the caller writes the entry itself.
func (b *IndexBatcher) add(f *FS, folder, name string, p pendingEntry) bool {
	if b == nil {
		return false
	}
	key := f.dirPrefix(folder) + indexName
	b.mu.Lock()
	defer b.mu.Unlock()
	bt := b.folders[key]
	if at, ok := b.failing[key]; ok && time.Since(at) < failingFor {
		return false
	}
	if b.closed || b.total >= maxPendingEntries || (bt == nil && len(b.folders) >= maxPendingFolders) {
		return false
	}
	if bt == nil {
		bt = &batch{fs: f, folder: folder, entries: map[string]pendingEntry{}, kick: make(chan struct{}, 1)}
		b.folders[key] = bt
		b.wg.Add(1)
		go b.run(key, bt)
	}
	b.seq++
	p.seq = b.seq
	if _, had := bt.entries[name]; !had {
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
		n := bt.fs.opts.IndexCache.entriesOf(key)
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
// failure (updateIndex retried already) the entries are given up: the
// files are stored and show S3's time; the folder's next uploads write
// their entries themselves for a while, answering honestly.
func (b *IndexBatcher) write(ctx context.Context, key string, bt *batch) error {
	b.mu.Lock()
	bt.writing++
	b.mu.Unlock()
	f := New(bt.fs.store, bt.fs.root, bt.fs.opts)
	err := f.updateIndex(ctx, bt.folder, func(map[string]metaEntry) bool { return false })
	b.mu.Lock()
	defer b.mu.Unlock()
	bt.writing--
	select {
	case <-bt.kick: // a kick from before the write: due says again
	default:
	}
	if err == nil {
		delete(b.failing, key)
		return nil
	}
	lost := len(bt.entries)
	b.total -= lost
	clear(bt.entries)
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

// WriteUnder writes at once the pending entries of the indexes whose keys
// start with prefix ("" = all): before a folder tree is copied from its
// index objects, and for callers that must see S3 up to date.
func (b *IndexBatcher) WriteUnder(ctx context.Context, prefix string) error {
	if b == nil {
		return nil
	}
	b.mu.Lock()
	todo := map[string]*batch{}
	for key, bt := range b.folders {
		if strings.HasPrefix(key, prefix) && len(bt.entries) > 0 {
			todo[key] = bt
		}
	}
	b.mu.Unlock()
	var errs []error
	for key, bt := range todo {
		errs = append(errs, b.write(ctx, key, bt))
	}
	return errors.Join(errs...)
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

// written drops the pending entries an index write carried (those not
// replaced meanwhile).
func (b *IndexBatcher) written(key string, snap map[string]pendingEntry) {
	if b == nil || len(snap) == 0 {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
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

// indexEntry is the entry of name in folder's index li, as this gateway
// sees it (a pending upload's entry over the written one).
func (f *FS) indexEntry(folder string, li *loadedIndex, name string) (metaEntry, bool) {
	e, ok := li.entries[name]
	if p, pending := f.opts.Batcher.lookup(f.dirPrefix(folder)+indexName, name); pending {
		return p.over(e, ok), true
	}
	return e, ok
}
