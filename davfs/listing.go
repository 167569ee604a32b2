package davfs

import (
	"context"
	"errors"
	"io/fs"
	"iter"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/davgw/davgw/s3vfs"
)

// Listing is one folder level read page by page, for a Depth 1 PROPFIND
// that writes its answer while S3's pages arrive: its memory does not grow
// with the folder. OpenListing reads the first page (a failure there still
// gets an honest status); Entries yields the rest while the next page is
// already being fetched.
//
// Entries come in S3's key order, which S3 guarantees (UTF-8 binary order).
// That order is what applies "the file wins" (see Lookup) without
// remembering every name: an object "a" comes before every other key that
// starts with "a", and the prefix "a/" comes after all of them, so only
// the files whose names begin the current key need remembering (a stack
// no deeper than a name is long).
type Listing struct {
	fs      *FS
	name    string
	prefix  string
	next    func() (s3vfs.Page, error, bool)
	stop    func()
	first   s3vfs.Page
	index   map[string]metaEntry    // the folder's index entries (kept times, dead properties)
	pending map[string]pendingEntry // uploads' entries not written yet (IndexBatcher)
	start   uint64                  // DirCache clock when the listing began
	at      time.Time

	open   []string    // emitted file names that begin the current key (the file wins)
	count  int         // entries yielded
	keep   []*FileInfo // what the DirCache may keep, while the folder is small enough
	opaque []string
	marker bool
	tooBig bool // more entries than the DirCache keeps
}

// OpenListing finds name for a Depth 1 PROPFIND and, when it is a folder,
// opens its listing. The first page shows that the folder exists, so the
// folder costs no request of its own. Unless slash (the name was written
// with a trailing slash: a folder's, see Lookup), a HEAD runs alongside the
// first page: the file wins, and then the Listing is nil. The caller
// closes a Listing it gets.
//
// The folder comes with its kept time and dead properties (see LoadMeta):
// they are in its parent's index, which is read alongside the first page
// rather than after it, so that they add no round trip before the first
// byte of the answer.
func (f *FS) OpenListing(ctx context.Context, name string, slash bool) (*FileInfo, *Listing, error) {
	return f.openListing(ctx, name, slash, true)
}

// openListing is OpenListing; withMeta false leaves the folder's own kept
// time and dead properties unread (ReadDir needs only the entries).
func (f *FS) openListing(ctx context.Context, name string, slash, withMeta bool) (*FileInfo, *Listing, error) {
	name = Clean(name)
	if f.Reserved(name) {
		return nil, nil, &fs.PathError{Op: "stat", Path: name, Err: fs.ErrNotExist}
	}
	prefix := f.dirPrefix(name)
	l := &Listing{fs: f, name: name, prefix: prefix, start: f.opts.DirCache.begin(), at: time.Now()}
	gen := f.opts.IndexCache.generation(prefix + indexName)
	var (
		wg      sync.WaitGroup
		head    s3vfs.ObjectInfo
		headErr = s3vfs.ErrNotFound
	)
	if !slash && name != "/" {
		wg.Add(1)
		go func() {
			defer wg.Done()
			head, headErr = f.store.Head(ctx, f.key(name))
		}()
	}
	var parentErr error
	if withMeta {
		// The parent's index lands in this request's cache (f.indexes),
		// where the LoadMeta below finds it.
		wg.Add(1)
		go func() {
			defer wg.Done()
			parent, _ := entryName(name, true)
			_, parentErr = f.loadIndex(ctx, parent, false)
		}()
	}
	l.next, l.stop = iter.Pull2(f.store.ListPages(ctx, s3vfs.ListOptions{Prefix: prefix, Delimiter: "/", Prefetch: true}))
	first, err, ok := l.next()
	for ok && err == nil && len(first.Entries) == 0 && !first.Last {
		first, err, ok = l.next() // S3 may send empty pages before the keys
	}
	if !ok && err == nil {
		err = errListingEnded
	}
	wg.Wait()
	switch {
	case headErr == nil:
		l.Close()
		return f.foundFile(name, head), nil, nil
	case !errors.Is(headErr, s3vfs.ErrNotFound):
		l.Close()
		return nil, nil, pathError("stat", name, headErr)
	case err != nil:
		l.Close()
		return nil, nil, pathError("readdir", name, err)
	}
	if len(first.Entries) == 0 && first.Last && name != "/" {
		l.Close()
		if slash {
			fi, err := folderNamed(name)(f.statMode(ctx, name, onlyFile))
			return fi, nil, err
		}
		f.remember(name, nil)
		return nil, nil, &fs.PathError{Op: "stat", Path: name, Err: fs.ErrNotExist}
	}
	l.first = first

	dir := &FileInfo{name: path.Base(name), dir: true, key: prefix, direct: true, modTime: f.now}
	if name == "/" {
		dir.name = "/"
	} else if len(first.Entries) > 0 {
		if m := first.Entries[0].Object; m != nil && m.Key == prefix {
			dir.modTime, dir.etag, dir.hasMarker = m.LastModified, m.ETag, true
		}
	}
	f.remember(name, dir)
	if withMeta && parentErr == nil {
		// Its failure is the caller's to meet (LoadMeta), not the listing's.
		_ = f.LoadMeta(ctx, dir, name)
	}

	// The index: the first page shows it, or shows there is none (it ends
	// past where the index would sort). Only a first page of names that all
	// sort before ".davgw-" leaves it open: then it is read by name.
	idxKey := prefix + indexName
	l.pending = f.opts.Batcher.snapshot(idxKey) // before the index: a batch written in between shows in one
	var li *loadedIndex
	hasIndex, idxETag := false, ""
	for _, e := range first.Entries {
		if e.Object != nil && e.Object.Key == idxKey {
			hasIndex, idxETag = true, e.Object.ETag
		}
	}
	switch {
	case hasIndex:
		li, err = f.loadIndexListed(ctx, name, false, idxETag, true)
	case first.Last || entryKey(first.Entries[len(first.Entries)-1]) > idxKey:
		f.noIndex(name, gen)
	default:
		li, err = f.loadIndex(ctx, name, false)
	}
	if err != nil {
		l.Close()
		return nil, nil, pathError("readdir", name, err)
	}
	if li != nil {
		l.index = li.entries
	}
	return dir, l, nil
}

// errListingEnded: the page iterator stopped without a last page.
var errListingEnded = errors.New("davfs: the listing ended before its last page")

func entryKey(e s3vfs.Entry) string {
	if e.Object != nil {
		return e.Object.Key
	}
	return e.Prefix
}

// Close stops the listing (a page in flight is abandoned).
func (l *Listing) Close() {
	if l.stop != nil {
		l.stop()
	}
}

// Entries yields the folder's entries with their kept times and dead
// properties, in key order, then tells the DirCache what it saw. It stops
// at the first error, which it yields last, and past Options.MaxEntries
// (when set) with ErrTooManyEntries. Call it once.
func (l *Listing) Entries() iter.Seq2[*FileInfo, error] {
	return func(yield func(*FileInfo, error) bool) {
		page := l.first
		l.first = s3vfs.Page{}
		for {
			for _, e := range page.Entries {
				fi := l.entry(e)
				if fi == nil {
					continue
				}
				if max := l.fs.opts.MaxEntries; max > 0 && l.count >= max {
					yield(nil, pathError("readdir", l.name, ErrTooManyEntries))
					return
				}
				l.count++
				if !yield(fi, nil) {
					return
				}
			}
			if page.Last {
				l.finished()
				return
			}
			var (
				err error
				ok  bool
			)
			page, err, ok = l.next()
			switch {
			case !ok:
				yield(nil, pathError("readdir", l.name, errListingEnded))
				return
			case err != nil:
				yield(nil, pathError("readdir", l.name, err))
				return
			}
		}
	}
}

// entry turns one listed key into the FileInfo to show, or nil for keys
// that are not shown (the folder's marker, its index, hidden names, a
// folder shadowed by a file of the same name).
func (l *Listing) entry(e s3vfs.Entry) *FileInfo {
	f := l.fs
	var (
		child string
		dir   bool
	)
	if e.Object == nil {
		child, dir = strings.TrimSuffix(strings.TrimPrefix(e.Prefix, l.prefix), "/"), true
	} else {
		child = strings.TrimPrefix(e.Object.Key, l.prefix)
		switch {
		case e.Object.Key == l.prefix:
			l.marker = true
			return nil
		case child == indexName:
			return nil
		}
	}
	sortKey := child
	if dir {
		sortKey += "/"
	}
	for len(l.open) > 0 && !strings.HasPrefix(sortKey, l.open[len(l.open)-1]) {
		l.open = l.open[:len(l.open)-1]
	}
	if !validName(child) || (f.opts.Hide != nil && f.opts.Hide(child)) {
		l.seen(nil, child)
		return nil
	}
	var fi *FileInfo
	if dir {
		if len(l.open) > 0 && l.open[len(l.open)-1] == child {
			return nil // the file wins
		}
		fi = &FileInfo{name: child, dir: true, key: e.Prefix, modTime: f.now}
		fi.applyMeta(l.meta(child + "/"))
	} else {
		l.open = append(l.open, child)
		fi = fileInfoFromObject(child, *e.Object)
		fi.applyMeta(l.meta(child))
	}
	l.seen(fi, "")
	return fi
}

// meta is an entry's index entry, a pending upload's over the written one.
func (l *Listing) meta(name string) (metaEntry, bool) {
	e, ok := l.index[name]
	if p, pending := l.pending[name]; pending {
		return p.over(e, ok), true
	}
	return e, ok
}

// seen collects a shown entry (or an opaque name) for the DirCache while
// the folder stays small enough for it to keep.
func (l *Listing) seen(fi *FileInfo, opaque string) {
	if l.tooBig {
		return
	}
	if len(l.keep)+len(l.opaque) >= l.fs.opts.DirCache.keeps() {
		l.tooBig, l.keep, l.opaque = true, nil, nil
		return
	}
	if fi != nil {
		l.keep = append(l.keep, fi)
	} else {
		l.opaque = append(l.opaque, opaque)
	}
}

// finished tells the DirCache what a complete listing saw.
func (l *Listing) finished() {
	c := l.fs.opts.DirCache
	if l.tooBig {
		c.probed(l.prefix, l.start)
		return
	}
	c.listed(l.prefix, l.keep, l.opaque, l.marker, l.start, l.at)
	l.keep, l.opaque = nil, nil
}

// ReadDir lists a whole folder level (at most Options.MaxEntries entries,
// or maxReadDir) in key order: for webdav.File's Readdir. PROPFIND streams
// with OpenListing instead.
func (f *FS) ReadDir(ctx context.Context, name string) ([]*FileInfo, error) {
	name = Clean(name)
	fi, l, err := f.openListing(ctx, name, true, false)
	if errors.Is(err, ErrFileNamedAsFolder) {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: ErrNotDir}
	}
	if err != nil {
		return nil, err
	}
	if l == nil || !fi.dir {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: ErrNotDir}
	}
	defer l.Close()
	limit := f.opts.MaxEntries
	if limit <= 0 {
		limit = maxReadDir
	}
	var list []*FileInfo
	for fi, err := range l.Entries() {
		if err != nil {
			return nil, err
		}
		if len(list) == limit {
			return nil, pathError("readdir", name, ErrTooManyEntries)
		}
		list = append(list, fi)
	}
	return list, nil
}

// maxReadDir bounds ReadDir when Options.MaxEntries is not set.
const maxReadDir = 100000
