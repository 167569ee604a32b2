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
// the HEAD and LIST of the name, a DELETE or MOVE of a listed file its
// HEAD, and a file COPY or MOVE destination with Overwrite: F (asked of
// S3 by a HEAD) the LIST that tells whether it is a folder. Keys are
// whole S3 prefixes, so users never share entries. Share one among all
// requests; nil works (it knows nothing).
//
// The gateway's own operations keep it current, and it errs only on the
// safe side for them: a change (a DELETE, MOVE, COPY, MKCOL) makes the
// name unknown and the folder and its ancestors unproven (S3 drops a
// prefix with its last key). A listing under way while names in its
// folder changed is kept with those names unknown (it may predate their
// change); one under way while the folder itself or an ancestor was
// replaced or removed is not stored at all, and neither is a probe that
// a removal in its folder may have overrun.
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
	marks   map[string]dirMark   // when each prefix last went as a whole
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
	recent   []recentChange      // this gateway's last changes of the folder's names, oldest first
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

// recentChange is a name of the folder that this gateway wrote (a file)
// or removed, replaced or changed below (removal), at a clock value.
type recentChange struct {
	name    string
	clock   uint64
	removal bool
}

// maxRecent bounds dirEntry.recent: a listing overlapped by more changes
// than this in its folder is not stored.
const maxRecent = 64

// dirMark is when (in DirCache.clock) the prefix was last removed,
// replaced or changed as a whole (the name it is the folder of changed).
type dirMark struct {
	gone uint64
	at   time.Time
}

// during returns the changes of e's names after start, and ok false when
// more changed than e remembers (some may be missing).
func (e *dirEntry) during(start uint64) (changes []recentChange, ok bool) {
	for i, w := range e.recent {
		if w.clock > start {
			if i == 0 && len(e.recent) == maxRecent {
				return nil, false
			}
			changes = append(changes, w)
		}
	}
	return changes, true
}

// record appends a change of name at clock to e.recent, forgetting the
// oldest past maxRecent.
func (e *dirEntry) record(name string, clock uint64, removal bool) {
	if len(e.recent) == maxRecent {
		copy(e.recent, e.recent[1:])
		e.recent = e.recent[:maxRecent-1]
	}
	e.recent = append(e.recent, recentChange{name: name, clock: clock, removal: removal})
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

// goneSince reports whether the folder at prefix or one of its ancestors
// was removed, replaced or changed as a whole after start. c.mu is held.
func (c *DirCache) goneSince(prefix string, start uint64) bool {
	if start < c.floor {
		return true
	}
	for p := prefix; ; p = parentPrefixOf(p) {
		if m, ok := c.marks[p]; ok && m.gone > start {
			return true
		}
		if p == "" {
			return false
		}
	}
}

// removedSince reports whether a name of the folder at prefix was
// removed or changed below after start (anything else that changed is
// unknown to a listing begun then, not a reason to drop it), or, with
// name, whether that name was. c.mu is held.
func (c *DirCache) removedSince(prefix, name string, start uint64) bool {
	e := c.folders[prefix]
	if e == nil {
		return start < c.floor
	}
	changes, ok := e.during(start)
	if !ok {
		return true
	}
	for _, ch := range changes {
		if ch.removal && (name == "" || ch.name == name) {
			return true
		}
	}
	return false
}

// markGone records that the prefix sub went as a whole: work on it or
// below, begun before now, predates the change. c.mu is held.
func (c *DirCache) markGone(sub string) {
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
	c.marks[sub] = dirMark{gone: c.clock, at: now}
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
// when the name is free. A name this gateway has since found to be a
// folder (probed, listed or written into: made elsewhere after the
// listing) is not answered either: the listing no longer tells it.
func (c *DirCache) child(prefix, name string) (fi *FileInfo, known bool) {
	if c == nil {
		return nil, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.folders[prefix]
	now := time.Now()
	if e == nil || !c.fresh(e.listedAt, now) {
		return nil, false
	}
	if _, changed := e.unknown[name]; changed || e.opaque[name] {
		return nil, false
	}
	if d := c.folders[prefix+name+"/"]; d != nil && (c.fresh(d.seen, now) || (c.fresh(d.listedAt, now) && d.holdsKeys())) {
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
	if !c.goneSince(prefix, start) && !c.removedSince(prefix, "", start) {
		c.entry(prefix).seen = time.Now()
	}
}

// listed records a complete listing of the folder at prefix begun at start
// (clock) and at (time): its files, and the names it does not answer for
// (folders, hidden names). marker tells whether it showed the folder's own
// marker. A listing during which the folder or an ancestor went as a
// whole is dropped; names this gateway wrote or removed there meanwhile
// (which it may or may not show) stay unknown, and one overlapped by more
// changes than the folder remembers is dropped. One overlapped by a
// removal proves the folder only by the keys it shows that did not change.
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
	if c.goneSince(prefix, start) {
		return
	}
	e := c.entry(prefix)
	during, ok := e.during(start)
	if !ok {
		return // more changes than remembered: some may be missing
	}
	removal := false
	for _, ch := range during {
		removal = removal || ch.removal
	}
	c.dropListing(e)
	if !removal {
		e.seen = at
	}
	if len(files)+len(op) > c.keeps() || time.Since(at) > c.ttl/2 {
		return // too large to keep; the folder is known to exist (unless a removal overran it)
	}
	e.listedAt, e.files, e.opaque, e.marker = at, files, op, marker
	if len(during) > 0 {
		e.unknown = make(map[string]struct{}, len(during))
		for _, ch := range during {
			e.unknown[ch.name] = struct{}{}
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
	c.clock++
	c.markGone(sub)
	now := time.Now()
	for p, n := prefix, name; ; {
		// Each folder on the way up may have lost the name leading here
		// (S3 drops a prefix with its last key): work under way there
		// learns it from the record.
		c.entry(p).record(n, c.clock, true)
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
// file, unless the folder went as a whole or this name was removed since
// (then the name stays unknown and the folder unproven).
func (c *DirCache) wroteFile(prefix, name string, fi *FileInfo, start uint64) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	// A removal of a sibling does not matter: the key just written proves
	// the folder, unless the folder went or this very name was removed.
	removed := c.goneSince(prefix, start) || c.removedSince(prefix, name, start)
	c.clock++
	e := c.entry(prefix)
	e.record(name, c.clock, false)
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
			c.drop(p, e)
			dropped = true
		}
	}
	if dropped {
		return true
	}
	for p, e := range c.folders {
		if p != keep {
			c.drop(p, e)
			return true
		}
	}
	return false
}

// drop forgets the entry of prefix. Its record of recent changes goes
// with it: work begun before the newest of them counts as overrun (the
// floor). c.mu is held.
func (c *DirCache) drop(prefix string, e *dirEntry) {
	if n := len(e.recent); n > 0 {
		c.floor = max(c.floor, e.recent[n-1].clock)
	}
	c.entries -= e.names()
	delete(c.folders, prefix)
}

// parentPrefix is the folder prefix and base name of a clean name.
func (f *FS) parentPrefix(name string) (prefix, base string) {
	return f.dirPrefix(path.Dir(name)), path.Base(name)
}
