package davfs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"path"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/davgw/davgw/s3vfs"
)

// Kept modification times and dead properties live in one index object per
// folder, ".davgw-index.json" inside the folder's prefix, beside the objects
// it describes. S3 listings return no user metadata, so keeping them only as
// object metadata would cost a HEAD per entry in every listing (what rclone
// serve webdav does); the index costs one GET per listed folder that has
// one, and nothing for folders that do not (the listing shows whether the
// index exists).
//
// A file's entry carries the ETag the object had when the entry was
// written. An object changed outside the gateway has another ETag, so its
// entry no longer applies and S3's own LastModified shows through. Entries
// are updated read-modify-write with S3 conditional writes (If-Match on the
// index's ETag, If-None-Match: * to create it), retried on conflict, so
// concurrent gateways do not lose each other's updates on stores that honour
// conditional writes.
//
// Every resource's entry is in its parent folder's index: a file under its
// name, a folder under its name plus "/", the root under ".".

// reservedPrefix starts the names the gateway keeps for itself (indexes,
// staged copies): listings hide them and WebDAV paths cannot name them.
const reservedPrefix = ".davgw-"

// indexName is the per-folder index object's name.
const indexName = reservedPrefix + "index.json"

// maxIndexBytes bounds an index read into memory.
const maxIndexBytes = 64 << 20

// maxEntryProps bounds one resource's encoded dead properties, and
// maxEntryPropsJSON the same properties uncompressed (what a read of them
// decodes): a PROPPATCH past either is refused with 507, never stored to
// be unreadable later.
const (
	maxEntryProps     = 64 << 10
	maxEntryPropsJSON = 1 << 20
)

// metaKey is the user metadata key of a kept modification time on the
// object itself (seconds since the epoch with a fraction, as rclone's S3
// backend writes it), set when the time is known at upload.
const metaKey = "mtime"

// IsReserved reports whether a clean path names something of the gateway's
// own (a segment starting with ".davgw-", or ".davgw", where the sign-in
// keeps app passwords): such paths are not WebDAV resources.
func IsReserved(name string) bool {
	for _, seg := range strings.Split(name, "/") {
		if strings.HasPrefix(seg, reservedPrefix) || seg == ".davgw" {
			return true
		}
	}
	return false
}

type metaEntry struct {
	ETag  string `json:"e,omitempty"` // files: the object's ETag when written
	MTime int64  `json:"m,omitempty"` // kept modification time, Unix nanoseconds; 0 = none
	Props string `json:"p,omitempty"` // encoded dead properties
}

func (e metaEntry) empty() bool { return e.MTime == 0 && e.Props == "" }

type folderIndex struct {
	Version int                  `json:"v"`
	Entries map[string]metaEntry `json:"entries"`
}

type loadedIndex struct {
	entries    map[string]metaEntry
	etag       string // of the index object; "" = it does not exist
	unwritable bool   // unreadable: it must not be overwritten
	size       int    // bytes of its JSON, for the shared cache's budget
}

// entryName is the name of fi's entry in its parent's index.
func entryName(name string, dir bool) (parent, entry string) {
	if name == "/" {
		return "/", "."
	}
	entry = path.Base(name)
	if dir {
		entry += "/"
	}
	return path.Dir(name), entry
}

// loadIndex returns a folder's index, from this request's cache or with one
// GET. An index that cannot be read (corrupt, from a newer davgw, larger
// than maxIndexBytes) reads as empty and is never overwritten.
func (f *FS) loadIndex(ctx context.Context, folder string, fresh bool) (*loadedIndex, error) {
	return f.loadIndexListed(ctx, folder, fresh, "", false)
}

// loadIndexListed is loadIndex for a folder whose listing just showed its
// index with ETag listedETag (listed = true): a copy in the shared cache
// with that ETag is used without a request. Without a listing, a shared
// copy younger than the cache's TTL is used.
func (f *FS) loadIndexListed(ctx context.Context, folder string, fresh bool, listedETag string, listed bool) (*loadedIndex, error) {
	folder = Clean(folder)
	key := f.dirPrefix(folder) + indexName
	if !fresh {
		f.mu.Lock()
		li, ok := f.indexes[folder]
		f.mu.Unlock()
		if ok {
			return li, nil
		}
		if li, ok := f.opts.IndexCache.get(key, listedETag, listed); ok {
			f.mu.Lock()
			f.indexes[folder] = li
			f.mu.Unlock()
			return li, nil
		}
	}
	gen := f.opts.IndexCache.generation(key)
	li, err := f.fetchIndex(ctx, folder, key)
	if err != nil {
		return nil, err
	}
	f.opts.IndexCache.putIfCurrent(key, li, gen)
	f.mu.Lock()
	f.indexes[folder] = li
	f.mu.Unlock()
	return li, nil
}

// fetchIndex GETs a folder's index.
func (f *FS) fetchIndex(ctx context.Context, folder, key string) (*loadedIndex, error) {
	body, info, err := f.store.GetSmall(ctx, key, maxIndexBytes)
	li := &loadedIndex{entries: map[string]metaEntry{}}
	switch {
	case errors.Is(err, s3vfs.ErrNotFound):
	case errors.Is(err, s3vfs.ErrTooLarge):
		li.etag, li.unwritable = info.ETag, true
		f.warn(fmt.Errorf("index of %s: %w", folder, err))
	case err != nil:
		return nil, err
	default:
		li.etag, li.size = info.ETag, len(body)
		var idx folderIndex
		if json.Unmarshal(body, &idx) != nil || idx.Version != indexVersion {
			li.unwritable = true
			f.warn(fmt.Errorf("index of %s: unreadable or of another version; left as it is", folder))
		} else if idx.Entries != nil {
			li.entries = idx.Entries
		}
	}
	return li, nil
}

// noIndex records that a folder has no index (its listing showed none).
func (f *FS) noIndex(folder string, gen uint64) {
	li := &loadedIndex{entries: map[string]metaEntry{}}
	f.mu.Lock()
	if _, ok := f.indexes[folder]; !ok {
		f.indexes[folder] = li
	}
	f.mu.Unlock()
	f.opts.IndexCache.putIfCurrent(f.dirPrefix(folder)+indexName, li, gen)
}

// indexVersion is the format this code reads and writes.
const indexVersion = 1

// maxIndexWrite bounds an index this gateway writes; past it, updates that
// would grow it fail with ErrIndexFull (PROPPATCH answers 507).
const maxIndexWrite = 16 << 20

// ErrIndexFull: the folder's index would grow past its size budget.
var ErrIndexFull = errors.New("davfs: the folder's property index is full")

// errIndexBusy: the index kept changing under us; the caller answers 503.
var errIndexBusy = fmt.Errorf("davfs: the folder's index is being updated concurrently: %w", s3vfs.ErrUnavailable)

// updateIndex applies mutate to a folder's index entries and writes the
// index back conditionally, retrying with a fresh copy when another writer
// got there first. Updates of one folder are serialised within the process
// (Options.IndexLocks), so conditional-write conflicts only come from other
// gateways. mutate reports whether it changed anything.
func (f *FS) updateIndex(ctx context.Context, folder string, mutate func(entries map[string]metaEntry) bool) error {
	return f.updateIndexWith(ctx, folder, false, nil, mutate)
}

// updateIndexWith is updateIndex; batch (the IndexBatcher's own writes)
// creates no index in a folder that is gone (it would bring the folder
// back: a folder is a key prefix), and leaves out the pending entries in
// superseded (their objects were replaced since: see supersededEntries).
func (f *FS) updateIndexWith(ctx context.Context, folder string, batch bool, superseded map[string]uint64, mutate func(entries map[string]metaEntry) bool) error {
	folder = Clean(folder)
	key := f.dirPrefix(folder) + indexName
	unlock, err := f.opts.IndexLocks.lock(ctx, key)
	if err != nil {
		return err
	}
	defer unlock()
	// The uploads' entries waiting in the batcher are written with this
	// update: taken under the folder's lock, so no batch write of them is
	// under way.
	pending := f.opts.Batcher.snapshot(key)
	resets := 0 // connection failures retried (S3's own refusals never are)
	for attempt := 0; attempt < 10; attempt++ {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(time.Duration(attempt*attempt)*10*time.Millisecond + time.Duration(rand.Int64N(20))*time.Millisecond):
			}
		}
		var li *loadedIndex
		if li, err = f.loadIndex(ctx, folder, attempt > 0 || f.opts.IndexLocks != nil); err != nil {
			return err
		}
		if li.unwritable {
			return fmt.Errorf("index of %s cannot be updated: %w", folder, ErrIndexFull)
		}
		entries := make(map[string]metaEntry, len(li.entries)+1)
		for k, v := range li.entries {
			entries[k] = v
		}
		changed := false
		for n, p := range pending {
			cur, ok := entries[n]
			if seq, stale := superseded[n]; stale && seq == p.seq {
				continue // the object was replaced since (another gateway's entry, then): ours never applies
			}
			if e := p.over(cur, ok); !ok || e != cur {
				entries[n], changed = e, true
			}
		}
		if mutate(entries) {
			changed = true
		}
		if !changed {
			f.opts.Batcher.written(key, pending)
			return nil
		}
		for k, v := range entries {
			if v.empty() {
				delete(entries, k)
			}
		}
		body, _ := json.Marshal(folderIndex{Version: indexVersion, Entries: entries})
		if len(body) > maxIndexWrite && len(entries) >= len(li.entries) {
			if len(pending) > 0 && !batch {
				pending = nil // this update alone (a DELETE, a smaller property) may still fit
				attempt--
				continue
			}
			return fmt.Errorf("index of %s: %d bytes: %w", folder, len(body), ErrIndexFull)
		}
		opts := s3vfs.WriteOptions{Size: int64(len(body)), ContentType: "application/json"}
		if li.etag == "" {
			opts.IfNoneMatch = "*"
			if batch && folder != "/" {
				if found, _, err := f.probeDir(ctx, f.dirPrefix(folder)); err != nil {
					return err
				} else if !found {
					f.opts.Batcher.written(key, pending) // the folder is gone, and its files with it
					return nil
				}
			}
		} else {
			opts.IfMatch = li.etag
		}
		var info s3vfs.ObjectInfo
		info, err = f.store.PutObject(ctx, key, body, opts)
		switch {
		case err == nil:
			li := &loadedIndex{entries: entries, etag: info.ETag, size: len(body)}
			f.opts.IndexCache.put(key, li)
			f.opts.Batcher.written(key, pending)
			f.mu.Lock()
			f.indexes[folder] = li
			f.mu.Unlock()
			return nil
		case errors.Is(err, s3vfs.ErrPreconditionFailed), errors.Is(err, s3vfs.ErrConflict):
			continue // another writer got there first
		case errors.Is(err, s3vfs.ErrUnavailable) && !s3vfs.Refused(err) && resets == 0 && ctx.Err() == nil:
			// A store that resets the connection of a refused conditional
			// upload: read the index again, once. Throttling or an outage
			// that S3 answered was retried by the SDK already: stacking
			// retries here made a PROPPATCH take 30 PUTs, 10 GETs and 16 s
			// to answer 503 (issue 10 F16).
			resets++
			continue
		default:
			return err
		}
	}
	return errors.Join(errIndexBusy, err)
}

// IndexCache keeps recently read folder indexes for every request of the
// process, so that a burst of requests in one folder (a listing followed by
// GETs, Finder's probes) reads its index once. A listing revalidates a
// cached copy for free (it shows the index's ETag); other requests use a
// copy younger than TTL, so another gateway's update can take up to TTL to
// show there. This gateway's own updates replace the cached copy at once.
// The zero value is not usable; nil disables caching.
type IndexCache struct {
	TTL      time.Duration
	MaxBytes int

	mu     sync.Mutex
	items  map[string]cachedIndex
	gens   map[string]uint64 // bumped by every update of a key
	bytes  int
	stores int
}

type cachedIndex struct {
	li   *loadedIndex
	at   time.Time
	size int
}

// NewIndexCache returns a cache of at most maxBytes (counted as the
// indexes' JSON sizes) whose copies serve requests without a listing for
// ttl.
func NewIndexCache(ttl time.Duration, maxBytes int) *IndexCache {
	return &IndexCache{TTL: ttl, MaxBytes: maxBytes, items: make(map[string]cachedIndex), gens: make(map[string]uint64)}
}

// peek returns the cached copy of key's index, however old.
func (c *IndexCache) peek(key string) (*loadedIndex, bool) {
	if c == nil {
		return nil, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	it, ok := c.items[key]
	return it.li, ok
}

// entriesOf returns the number of entries of the cached copy of key's
// index, however old (0 if none): the size the batcher sizes its writes by.
func (c *IndexCache) entriesOf(key string) int {
	if c == nil {
		return 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if it, ok := c.items[key]; ok {
		return len(it.li.entries)
	}
	return 0
}

func (c *IndexCache) get(key, listedETag string, listed bool) (*loadedIndex, bool) {
	if c == nil {
		return nil, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	it, ok := c.items[key]
	switch {
	case !ok || it.li.unwritable:
		return nil, false
	case listed:
		return it.li, it.li.etag == listedETag
	default:
		return it.li, time.Since(it.at) < c.TTL
	}
}

// generation returns a key's update count, to be passed to putIfCurrent
// by a reader that started then.
func (c *IndexCache) generation(key string) uint64 {
	if c == nil {
		return 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.gens[key]
}

// putIfCurrent stores what a reader fetched, unless an update of the key
// landed since the reader started (its copy would be older than the
// cached one).
func (c *IndexCache) putIfCurrent(key string, li *loadedIndex, gen uint64) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gens[key] != gen {
		return
	}
	c.store(key, li)
}

// put stores the index this process just wrote.
func (c *IndexCache) put(key string, li *loadedIndex) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gens[key]++
	c.store(key, li)
}

func (c *IndexCache) store(key string, li *loadedIndex) {
	size := 256 + li.size
	if old, ok := c.items[key]; ok {
		delete(c.items, key)
		c.bytes -= old.size
	}
	if size > c.MaxBytes {
		return
	}
	now := time.Now()
	c.stores++
	if c.stores%256 == 0 { // now and then, drop copies long expired
		for k, it := range c.items {
			if now.Sub(it.at) > 10*c.TTL {
				delete(c.items, k)
				c.bytes -= it.size
			}
		}
	}
	for k, it := range c.items { // then arbitrary ones until it fits
		if c.bytes+size <= c.MaxBytes {
			break
		}
		delete(c.items, k)
		c.bytes -= it.size
	}
	if len(c.gens) > 100000 {
		// Bounded: after a reset a reader that started before it may cache
		// one stale copy, for TTL at most.
		clear(c.gens)
	}
	c.items[key] = cachedIndex{li: li, at: now, size: size}
	c.bytes += size
}

// IndexLocks serialises index updates per folder within one process. Share
// one among all requests (nil works, without the serialisation). Waiting
// for a lock gives up when the request's context ends.
type IndexLocks struct {
	once    sync.Once
	stripes [256]chan struct{}
}

func (l *IndexLocks) lock(ctx context.Context, key string) (unlock func(), err error) {
	if l == nil {
		return func() {}, nil
	}
	l.once.Do(func() {
		for i := range l.stripes {
			l.stripes[i] = make(chan struct{}, 1)
		}
	})
	h := fnv.New32a()
	_, _ = h.Write([]byte(key))
	ch := l.stripes[h.Sum32()%uint32(len(l.stripes))]
	select {
	case ch <- struct{}{}:
		return func() { <-ch }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// applyMeta sets what the index (or the object's metadata) keeps for fi.
func (fi *FileInfo) applyMeta(e metaEntry, ok bool) {
	fi.metaLoaded = true
	if !ok || (!fi.dir && e.ETag != fi.etag) {
		return // no entry, or the object changed outside the gateway
	}
	if e.MTime != 0 {
		fi.modTime = time.Unix(0, e.MTime).UTC()
	}
	fi.props = e.Props
}

// LoadMeta makes sure a resource's kept modification time and dead
// properties are known: for entries of a listing they already are; for a
// resource found by Stat it costs one GET of its parent's index (once per
// request and folder).
func (f *FS) LoadMeta(ctx context.Context, fi *FileInfo, name string) error {
	if fi == nil || fi.metaLoaded {
		return nil
	}
	parent, entry := entryName(Clean(name), fi.dir)
	pending := f.pendingFor(parent, entry)
	li, err := f.loadIndex(ctx, parent, false)
	if err != nil {
		return pathError("stat", name, err)
	}
	e, ok := pending.entry(li, entry)
	fi.applyMeta(e, ok)
	return nil
}

// entryOf returns the valid index entry of a resource (zero if none).
func (f *FS) entryOf(ctx context.Context, fi *FileInfo, name string) (metaEntry, error) {
	parent, entry := entryName(Clean(name), fi.dir)
	pending := f.pendingFor(parent, entry)
	li, err := f.loadIndex(ctx, parent, false)
	if err != nil {
		return metaEntry{}, err
	}
	e, ok := pending.entry(li, entry)
	if !ok || (!fi.dir && e.ETag != fi.etag) {
		return metaEntry{}, nil
	}
	return e, nil
}

// maxSupersededChecks bounds the HEADs of one batch write.
const maxSupersededChecks = 64

// supersededEntries finds, before a batch write takes the folder's lock,
// the pending entries whose object was replaced since their upload: the
// index (as cached or read) holds an entry for a third version (another
// gateway's upload, or an object changed outside), and a HEAD shows the
// object no longer has the upload's ETag. At most maxSupersededChecks
// HEADs, 8 at a time; past that bound, or when a HEAD fails, the upload's
// entry is written (it applies only while the object keeps its ETag).
func (f *FS) supersededEntries(ctx context.Context, folder string, pending map[string]pendingEntry) map[string]uint64 {
	li, err := f.loadIndex(ctx, folder, false)
	if err != nil || len(pending) == 0 {
		return nil
	}
	var check []string
	for n, p := range pending {
		if cur, ok := li.entries[n]; ok && cur.ETag != p.prevETag && cur.ETag != p.e.ETag && len(check) < maxSupersededChecks {
			check = append(check, n)
		}
	}
	var (
		mu  sync.Mutex
		out = map[string]uint64{}
		sem = make(chan struct{}, 8)
		wg  sync.WaitGroup
	)
	for _, n := range check {
		p := pending[n]
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			info, err := f.store.Head(ctx, p.key)
			if (err == nil && info.ETag != p.e.ETag) || errors.Is(err, s3vfs.ErrNotFound) {
				mu.Lock()
				out[n] = p.seq
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return out
}

// setEntry writes a resource's entry into its parent's index.
func (f *FS) setEntry(ctx context.Context, name string, dir bool, e metaEntry) error {
	parent, entry := entryName(Clean(name), dir)
	return f.updateIndex(ctx, parent, func(m map[string]metaEntry) bool {
		old, ok := m[entry]
		switch {
		case e.empty() && !ok:
			return false
		case e.empty():
			delete(m, entry)
			return true
		case ok && old == e:
			return false
		}
		m[entry] = e
		return true
	})
}

// dropEntry removes a resource's entry from its parent's index. The
// shared copy of the index (read or written by this gateway in the last
// few seconds; every write of this gateway replaces it) without an entry
// for it spares the update; otherwise a folder without an index costs one
// GET.
func (f *FS) dropEntry(ctx context.Context, name string, dir bool) error {
	parent, entry := entryName(Clean(name), dir)
	pending := f.pendingFor(parent, entry)
	if li, ok := f.opts.IndexCache.get(f.dirPrefix(parent)+indexName, "", false); ok {
		if _, has := pending.entry(li, entry); !has {
			return nil
		}
	}
	return f.updateIndex(ctx, parent, func(m map[string]metaEntry) bool {
		if _, ok := m[entry]; !ok {
			return false
		}
		delete(m, entry)
		return true
	})
}

// formatMTime writes a time as rclone's S3 backend does in "mtime" metadata.
func formatMTime(t time.Time) string {
	return strconv.FormatFloat(float64(t.UnixNano())/1e9, 'f', -1, 64)
}

// parseMTime reads Unix seconds with an optional fraction ("1700000000",
// "1700000000.5"), as X-OC-Mtime and rclone's "mtime" metadata carry them.
func parseMTime(s string) (time.Time, bool) {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, false
	}
	sec, frac, _ := strings.Cut(s, ".")
	n, err := strconv.ParseInt(sec, 10, 64)
	if err != nil || n < 0 || n > 1<<40 {
		return time.Time{}, false
	}
	var ns int64
	if frac != "" {
		if len(frac) > 9 {
			frac = frac[:9]
		}
		f, err := strconv.ParseInt(frac+strings.Repeat("0", 9-len(frac)), 10, 64)
		if err != nil {
			return time.Time{}, false
		}
		ns = f
	}
	return time.Unix(n, ns).UTC(), true
}

// ParseMTime reads the value of an X-OC-Mtime header.
func ParseMTime(s string) (time.Time, bool) { return parseMTime(s) }
