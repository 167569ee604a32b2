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
// are free. The gateway's own writes keep it current; anything it did not
// see itself (a change made directly in S3 or by another gateway) is
// missed for at most TTL. It spares a PUT into a known folder the LIST of
// the parent and the HEAD and LIST of the name, and a DELETE or MOVE of a
// listed file its HEAD. Folders found in a listing are not answered from
// it (their own request tells their time); only their names are known to
// be taken. Keys are whole S3 prefixes, so users never share entries.
// Share one among all requests; nil works (it knows nothing).
type DirCache struct {
	ttl        time.Duration
	maxFolders int
	maxEntries int

	mu      sync.Mutex
	folders map[string]*dirEntry // by folder prefix ("root/a/b/")
	entries int                  // listed children, all folders together
}

type dirEntry struct {
	seen     time.Time // the folder was known to exist then
	listedAt time.Time // zero: no complete listing
	files    map[string]*FileInfo
	dirs     map[string]bool     // child folder names of the listing
	unknown  map[string]struct{} // children changed since the listing
	marker   bool                // the listing showed the folder's marker
}

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
	for name := range e.dirs {
		if _, changed := e.unknown[name]; !changed {
			return true
		}
	}
	return false
}

// NewDirCache returns a cache trusting what it learned for ttl, with at
// most maxEntries listed children in all.
func NewDirCache(ttl time.Duration, maxEntries int) *DirCache {
	return &DirCache{ttl: ttl, maxFolders: 4096, maxEntries: maxEntries, folders: make(map[string]*dirEntry)}
}

func (c *DirCache) fresh(t time.Time, now time.Time) bool {
	return !t.IsZero() && now.Sub(t) < c.ttl
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
// TTL: known is false when there is none or name changed since; then fi
// is a copy of the file's info, or nil when the name is free. A name that
// is a folder is not answered (known is false).
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
	if _, changed := e.unknown[name]; changed || e.dirs[name] {
		return nil, false
	}
	if f := e.files[name]; f != nil {
		cp := *f
		return &cp, true
	}
	return nil, true
}

// sawFolder records that the folder at prefix exists now.
func (c *DirCache) sawFolder(prefix string) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.entry(prefix).seen = time.Now()
}

// listed records a complete listing of the folder at prefix, taken at;
// marker tells whether it showed the folder's own marker.
func (c *DirCache) listed(prefix string, list []*FileInfo, at time.Time, marker bool) {
	if c == nil || len(list) > c.maxEntries/4 {
		if c != nil {
			c.sawFolder(prefix)
		}
		return
	}
	files := make(map[string]*FileInfo, len(list))
	dirs := make(map[string]bool)
	for _, fi := range list {
		if fi.dir {
			dirs[fi.name] = true
		} else {
			cp := *fi
			files[fi.name] = &cp
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.entry(prefix)
	c.entries -= len(e.files) + len(e.dirs)
	e.seen, e.listedAt, e.files, e.dirs, e.unknown, e.marker = at, at, files, dirs, nil, marker
	c.entries += len(files) + len(dirs)
	c.trim(prefix)
}

// changed records that name in the folder at prefix (and, for a folder,
// everything below sub, its prefix) may have changed: it is no longer
// answered from the cache until learned again. The folder itself may be
// gone too (S3 drops a prefix with its last key), until a write into it
// proves it again.
func (c *DirCache) changed(prefix, name, sub string) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if e := c.folders[prefix]; e != nil {
		e.seen = time.Time{}
		if !e.listedAt.IsZero() {
			if e.unknown == nil {
				e.unknown = make(map[string]struct{})
			}
			e.unknown[name] = struct{}{}
		}
	}
	for p, e := range c.folders {
		if strings.HasPrefix(p, sub) {
			c.entries -= len(e.files) + len(e.dirs)
			delete(c.folders, p)
		}
	}
}

// wroteFile records a file this gateway just stored as name in the folder
// at prefix: the folder exists, and the name is that file.
func (c *DirCache) wroteFile(prefix, name string, fi *FileInfo) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.entry(prefix)
	e.seen = time.Now()
	if e.listedAt.IsZero() {
		return
	}
	if _, ok := e.files[name]; !ok {
		c.entries++
	}
	cp := *fi
	e.files[name] = &cp
	delete(e.unknown, name)
	c.trim(prefix)
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

// trim drops entries until the listed children fit, sparing keep. c.mu is
// held.
func (c *DirCache) trim(keep string) {
	for c.entries > c.maxEntries && len(c.folders) > 1 {
		c.evict(keep)
	}
}

// evict drops expired entries, else one arbitrary entry other than keep.
// c.mu is held.
func (c *DirCache) evict(keep string) {
	now := time.Now()
	dropped := false
	for p, e := range c.folders {
		if !c.fresh(e.seen, now) && !c.fresh(e.listedAt, now) {
			c.entries -= len(e.files) + len(e.dirs)
			delete(c.folders, p)
			dropped = true
		}
	}
	if dropped {
		return
	}
	for p, e := range c.folders {
		if p != keep {
			c.entries -= len(e.files) + len(e.dirs)
			delete(c.folders, p)
			return
		}
	}
}

// parentPrefix is the folder prefix and base name of a clean name.
func (f *FS) parentPrefix(name string) (prefix, base string) {
	return f.dirPrefix(path.Dir(name)), path.Base(name)
}
