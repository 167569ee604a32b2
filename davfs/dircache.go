package davfs

import (
	"path"
	"strings"
	"sync"
	"time"
)

// DefaultDirCacheTTL is how long the gateway trusts what it learned about a
// folder without asking S3 again: a folder created, changed or removed
// directly in S3 or through another gateway may be missed for this long.
const DefaultDirCacheTTL = 5 * time.Second

// DirCache remembers, gateway-wide and for TTL, what this gateway learned
// about folders: that a folder exists (it was listed, probed or written
// into) and, from a complete listing, which files it holds and which names
// are free. It spares a PUT into a known folder the LIST of the parent and
// the HEAD and LIST of the name, and a DELETE or MOVE of a listed file its
// HEAD. Keys are whole S3 prefixes, so users never share entries. Share
// one among all requests; nil works (it knows nothing).
//
// The gateway's own operations keep it current, and it errs only on the
// safe side for them: a change (a DELETE, MOVE, COPY, MKCOL) makes the
// name unknown and the folder and its ancestors unproven (S3 drops a
// prefix with its last key); a listing or probe that was under way while
// the folder changed is not stored at all (it may predate the change).
// Names a listing leaves out (hidden Apple files, names WebDAV cannot
// show) and folders are never answered from it. What it cannot see is a
// change made directly in S3 or by another gateway: missed for at most TTL.
type DirCache struct {
	ttl        time.Duration
	maxFolders int
	maxEntries int

	mu      sync.Mutex
	folders map[string]*dirEntry // by folder prefix ("root/a/b/")
	entries int                  // names held by listings, all folders together
	clock   uint64               // counts changes
	marks   map[string]dirMark   // the last changes of each folder prefix
	floor   uint64               // work begun before it may predate a forgotten mark
	relists chan struct{}        // background listings under way (bounded)
}

type dirEntry struct {
	seen     time.Time // the folder was known to exist then
	listedAt time.Time // zero: no complete listing
	files    map[string]*FileInfo
	opaque   map[string]bool     // listed names never answered (folders, hidden names)
	unknown  map[string]struct{} // children changed since the listing
	marker   bool                // the listing showed the folder's marker
	recent   []recentWrite       // this gateway's last writes into the folder, oldest first
	window   time.Time           // start of the current TTL window of writes
	writes   int                 // this gateway's writes into the folder in that window
	relistAt time.Time           // a background listing was claimed then
	pages    int                 // pages the last background listing took
	tooBig   time.Time           // a background listing found more names than the cache keeps
}

// busyWrites is how many writes within one TTL make a folder busy enough
// to be listed whole in the background (and at least twice the pages the
// last such listing took: the listing must cost less than it saves).
const busyWrites = 4

// recentWrite is a file this gateway wrote, at a clock value.
type recentWrite struct {
	name  string
	clock uint64
}

// maxRecent bounds dirEntry.recent: a listing overlapped by more writes
// than this into its folder is not stored.
const maxRecent = 64

// dirMark is when (in DirCache.clock) a folder last changed, and last lost
// something.
type dirMark struct {
	changed, removed uint64
	at               time.Time
}

// names is the number of names an entry holds, for the bound.
func (e *dirEntry) names() int { return len(e.files) + len(e.opaque) + len(e.unknown) }

// holdsKeys reports whether the listing shows keys this gateway has not
// changed since: the folder exists as long as they do. c.mu is held.
func (e *dirEntry) holdsKeys() bool {
	if e.marker {
		return true
	}
	for name := range e.files {
		if _, changed := e.unknown[name]; !changed {
			return true
		}
	}
	for name := range e.opaque {
		if _, changed := e.unknown[name]; !changed {
			return true
		}
	}
	return false
}

// NewDirCache returns a cache trusting what it learned for ttl, with at
// most maxEntries listed names in all.
func NewDirCache(ttl time.Duration, maxEntries int) *DirCache {
	return &DirCache{ttl: ttl, maxFolders: 4096, maxEntries: maxEntries, relists: make(chan struct{}, 2),
		folders: make(map[string]*dirEntry), marks: make(map[string]dirMark)}
}

// claimRelist decides whether the folder at prefix should be listed whole
// in the background now: it is known to exist, has no fresh complete
// listing, took at least busyWrites writes (and twice the pages of its
// last such listing) within TTL, was not claimed within TTL, and was not
// found too big for the cache in the last 10 TTLs; and fewer than
// cap(relists) such listings run. release ends the claim.
func (c *DirCache) claimRelist(prefix string) (release func(), ok bool) {
	if c == nil {
		return nil, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.folders[prefix]
	now := time.Now()
	if e == nil || !c.fresh(e.window, now) || e.writes < max(busyWrites, 2*e.pages) || !c.fresh(e.seen, now) ||
		c.fresh(e.listedAt, now) || c.fresh(e.relistAt, now) || now.Sub(e.tooBig) < 10*c.ttl {
		return nil, false
	}
	select {
	case c.relists <- struct{}{}:
	default:
		return nil, false
	}
	e.relistAt = now
	return func() { <-c.relists }, true
}

// relisted records what a background listing of prefix found: how many
// pages it took, and whether the folder holds more names than the cache
// keeps (then it is not listed again for a while).
func (c *DirCache) relisted(prefix string, names int) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.entry(prefix)
	e.pages = (names + 999) / 1000
	if names > c.keeps() {
		e.tooBig = time.Now()
	}
}

// keeps is how many names a listing may hold for the cache to keep it.
func (c *DirCache) keeps() int {
	if c == nil {
		return 0
	}
	return c.maxEntries / 4
}

func (c *DirCache) fresh(t time.Time, now time.Time) bool {
	return !t.IsZero() && now.Sub(t) < c.ttl
}

// begin returns the clock to pass to listed, probed or wroteFile by work
// that starts now.
func (c *DirCache) begin() uint64 {
	if c == nil {
		return 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.clock
}

// parentPrefixOf is the prefix of the folder holding prefix ("" at the top).
func parentPrefixOf(prefix string) string {
	p := strings.TrimSuffix(prefix, "/")
	i := strings.LastIndexByte(p, '/')
	if i < 0 {
		return ""
	}
	return p[:i+1]
}

// since reports whether the folder at prefix or one of its ancestors
// changed (with removals, lost something) after start. c.mu is held.
func (c *DirCache) since(prefix string, start uint64, removals bool) bool {
	if start < c.floor {
		return true
	}
	for p := prefix; ; p = parentPrefixOf(p) {
		if m, ok := c.marks[p]; ok {
			v := m.changed
			if removals {
				v = m.removed
			}
			if v > start {
				return true
			}
		}
		if p == "" {
			return false
		}
	}
}

// touch records a change of the folder at prefix (and so of each of its
// ancestors). c.mu is held.
func (c *DirCache) touch(prefix string, removal bool) {
	c.clock++
	now := time.Now()
	if len(c.marks) > 4*c.maxFolders {
		for p, m := range c.marks {
			if now.Sub(m.at) > 2*c.ttl {
				delete(c.marks, p)
			}
		}
		if len(c.marks) > 4*c.maxFolders {
			// Too many recent changes to remember: everything begun before
			// now counts as predating a change.
			clear(c.marks)
			c.floor = c.clock
		}
	}
	for p := prefix; ; p = parentPrefixOf(p) {
		m := c.marks[p]
		m.changed, m.at = c.clock, now
		if removal {
			m.removed = c.clock
		}
		c.marks[p] = m
		if p == "" {
			return
		}
	}
}

// exists reports whether the folder at prefix was known to exist within TTL.
func (c *DirCache) exists(prefix string) bool {
	if c == nil {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.folders[prefix]
	if e == nil {
		return false
	}
	now := time.Now()
	return c.fresh(e.seen, now) || (c.fresh(e.listedAt, now) && e.holdsKeys())
}

// child answers from a complete listing of the folder at prefix within
// TTL: known is false when there is none or name is not answered from it;
// then fi is a copy of the file's info (without dead properties), or nil
// when the name is free.
func (c *DirCache) child(prefix, name string) (fi *FileInfo, known bool) {
	if c == nil {
		return nil, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.folders[prefix]
	if e == nil || !c.fresh(e.listedAt, time.Now()) {
		return nil, false
	}
	if _, changed := e.unknown[name]; changed || e.opaque[name] {
		return nil, false
	}
	if f := e.files[name]; f != nil {
		cp := *f
		return &cp, true
	}
	return nil, true
}

// probed records that a probe begun at start found the folder at prefix,
// unless something was removed there since.
func (c *DirCache) probed(prefix string, start uint64) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.since(prefix, start, true) {
		c.entry(prefix).seen = time.Now()
	}
}

// listed records a complete listing of the folder at prefix begun at start
// (clock) and at (time): its files, and the names it does not answer for
// (folders, hidden names). marker tells whether it showed the folder's own
// marker. A listing during which something was removed there is dropped;
// files this gateway wrote meanwhile (which it may or may not show) stay
// unknown, and one overlapped by more writes than it remembers is dropped.
func (c *DirCache) listed(prefix string, list []*FileInfo, opaque []string, marker bool, start uint64, at time.Time) {
	if c == nil {
		return
	}
	files := make(map[string]*FileInfo, len(list))
	op := make(map[string]bool, len(opaque))
	for _, n := range opaque {
		op[n] = true
	}
	for _, fi := range list {
		if fi.dir {
			op[fi.name] = true
		} else {
			files[fi.name] = stripped(fi)
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.since(prefix, start, true) {
		return
	}
	e := c.entry(prefix)
	var during []string
	for i, w := range e.recent {
		if w.clock > start {
			if i == 0 && len(e.recent) == maxRecent {
				return // more writes than remembered: some may be missing
			}
			during = append(during, w.name)
		}
	}
	c.dropListing(e)
	e.seen = at
	if len(files)+len(op) > c.keeps() || time.Since(at) > c.ttl/2 {
		return // too large to keep; the folder is known to exist
	}
	e.listedAt, e.files, e.opaque, e.marker = at, files, op, marker
	if len(during) > 0 {
		e.unknown = make(map[string]struct{}, len(during))
		for _, n := range during {
			e.unknown[n] = struct{}{}
		}
	}
	c.entries += e.names()
	c.trim(prefix)
}

// stripped is a copy of a listed file's info without what the listing
// cannot vouch for a while later: its dead properties are read again.
func stripped(fi *FileInfo) *FileInfo {
	cp := *fi
	cp.props, cp.metaLoaded = "", false
	return &cp
}

// changed records that name in the folder at prefix (and, for a folder,
// everything below sub, its prefix) may have changed: it is no longer
// answered from the cache, and neither the folder nor its ancestors are
// known to exist until shown again (S3 drops a prefix with its last key).
func (c *DirCache) changed(prefix, name, sub string) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.touch(prefix, true)
	now := time.Now()
	for p, n := prefix, name; ; {
		if e := c.folders[p]; e != nil {
			e.seen = time.Time{}
			if c.fresh(e.listedAt, now) {
				if e.unknown == nil {
					e.unknown = make(map[string]struct{})
				}
				if _, ok := e.unknown[n]; !ok {
					e.unknown[n] = struct{}{}
					c.entries++
				}
			} else {
				c.dropListing(e)
			}
		}
		if p == "" {
			break
		}
		n, p = path.Base(strings.TrimSuffix(p, "/")), parentPrefixOf(p)
	}
	for p, e := range c.folders {
		if strings.HasPrefix(p, sub) {
			c.entries -= e.names()
			delete(c.folders, p)
		}
	}
	c.trim(prefix)
}

// wroteFile records a file this gateway stored as name in the folder at
// prefix, by work begun at start: the folder exists and the name is that
// file, unless something was removed there since (then the name stays
// unknown and the folder unproven).
func (c *DirCache) wroteFile(prefix, name string, fi *FileInfo, start uint64) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	removed := c.since(prefix, start, true)
	c.touch(prefix, false)
	e := c.entry(prefix)
	if len(e.recent) == maxRecent {
		copy(e.recent, e.recent[1:])
		e.recent = e.recent[:maxRecent-1]
	}
	e.recent = append(e.recent, recentWrite{name: name, clock: c.clock})
	if now := time.Now(); c.fresh(e.window, now) {
		e.writes++
	} else {
		e.window, e.writes = now, 1
	}
	if !removed {
		e.seen = time.Now()
	}
	if !c.fresh(e.listedAt, time.Now()) {
		c.dropListing(e)
		return
	}
	before := e.names()
	if removed {
		if e.unknown == nil {
			e.unknown = make(map[string]struct{})
		}
		e.unknown[name] = struct{}{}
	} else {
		delete(e.unknown, name)
		e.files[name] = stripped(fi)
	}
	c.entries += e.names() - before
	if e.names() > c.maxEntries/4 {
		c.dropListing(e)
	}
	c.trim(prefix)
}

// dropListing forgets what an entry's listing showed. c.mu is held.
func (c *DirCache) dropListing(e *dirEntry) {
	c.entries -= e.names()
	e.listedAt, e.files, e.opaque, e.unknown, e.marker = time.Time{}, nil, nil, nil, false
}

// entry returns the entry of prefix, creating it. c.mu is held.
func (c *DirCache) entry(prefix string) *dirEntry {
	e := c.folders[prefix]
	if e == nil {
		if len(c.folders) >= c.maxFolders {
			c.evict("")
		}
		e = &dirEntry{}
		c.folders[prefix] = e
	}
	return e
}

// trim drops entries until the listed names fit, sparing keep while
// others are left. c.mu is held.
func (c *DirCache) trim(keep string) {
	for c.entries > c.maxEntries && len(c.folders) > 0 {
		if !c.evict(keep) {
			if e := c.folders[keep]; e != nil {
				c.dropListing(e)
			}
			return
		}
	}
}

// evict drops expired entries, else one arbitrary entry other than keep;
// it reports whether it dropped anything. c.mu is held.
func (c *DirCache) evict(keep string) bool {
	now := time.Now()
	dropped := false
	for p, e := range c.folders {
		if !c.fresh(e.seen, now) && !c.fresh(e.listedAt, now) {
			c.entries -= e.names()
			delete(c.folders, p)
			dropped = true
		}
	}
	if dropped {
		return true
	}
	for p, e := range c.folders {
		if p != keep {
			c.entries -= e.names()
			delete(c.folders, p)
			return true
		}
	}
	return false
}

// parentPrefix is the folder prefix and base name of a clean name.
func (f *FS) parentPrefix(name string) (prefix, base string) {
	return f.dirPrefix(path.Dir(name)), path.Base(name)
}
