// Package davfs is a webdav.FileSystem over one S3 key prefix.
//
// A path "/a/b.txt" maps to the key root+"a/b.txt"; paths are in key form
// (EncodeName, names.go: the gateway escapes what keys cannot hold). Folders are key prefixes;
// MKCOL writes an empty marker object "a/" so that empty folders exist. S3
// lets an object "a" and a prefix "a/" exist together (versitygw refuses it,
// AWS and SeaweedFS do not); davfs resolves that deterministically: the
// file wins (see Lookup). The path "/a" is the object, listings show only
// the file, and the keys under "a/" stay reachable by their own paths.
//
// An FS is made per request: it caches what it learns (Stat results, folder
// indexes) for the life of that request; a PROPFIND Depth 1 over N objects
// streams (see Listing) and costs ceil(N/1000) ListObjectsV2 calls and
// nothing per entry.
//
// Security notes: every name is cleaned with path.Clean("/"+name) before it
// becomes a key, so no name can reach outside the root prefix. davfs knows
// nothing about users; the caller chooses the root.
package davfs

import (
	"context"
	"errors"
	"io/fs"
	"mime"
	"os"
	"path"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/webdav"

	"github.com/davgw/davgw/s3vfs"
)

var _ webdav.FileSystem = (*FS)(nil)

// Options tune an FS.
type Options struct {
	// MaxEntries caps one folder listing; beyond it a listing fails with
	// ErrTooManyEntries. 0 = no cap (a PROPFIND streams in bounded memory;
	// ReadDir stops at 100,000).
	MaxEntries int
	// CopyConcurrency bounds parallel server-side copies and deletes of a
	// folder tree. 0 = 8.
	CopyConcurrency int
	// Hide, if set, leaves names for which it returns true out of listings
	// (they stay reachable by name).
	Hide func(base string) bool
	// IndexLocks, shared by all requests, serialises index updates of a
	// folder within the process.
	IndexLocks *IndexLocks
	// IndexCache, shared by all requests, keeps recently read indexes.
	IndexCache *IndexCache
	// DirCache, shared by all requests, keeps what was learned about
	// folders for a few seconds (nil: every request asks S3).
	DirCache *DirCache
	// Moves, shared by all requests, remembers MOVEs left half done, so
	// that repeating one completes it (nil: a repeat with Overwrite: F
	// answers 412).
	Moves *MoveLog
	// Batcher, shared by all requests, writes the kept times of uploads to
	// their folders' indexes in batches (nil: each upload writes its own).
	Batcher *IndexBatcher
	// ETagsNotMD5 tells that the store's ETags are not the MD5 of the
	// bytes even for single-part objects (SSE-KMS, SSE-C): no MD5 is
	// offered as a checksum.
	ETagsNotMD5 bool
	// ReservedKeys is a key prefix ending in ".davgw/" that no name may
	// reach: the reserved area of the default store (<prefix>.davgw/) when
	// this FS is over the same bucket. A name inside it is reserved as by
	// IsReserved (listings already hide every ".davgw"), and a folder that
	// holds it cannot be deleted, copied, moved or replaced: each would
	// reach the keys inside. "" = none.
	ReservedKeys string
}

// FS is a webdav.FileSystem over the keys below one root prefix.
type FS struct {
	store Store
	root  string
	opts  Options

	mu       sync.Mutex
	stats    map[string]*FileInfo    // by clean name; nil value = known absent
	listed   map[string]bool         // names of stats answered from a DirCache listing
	indexes  map[string]*loadedIndex // folder indexes by clean name
	now      time.Time               // the time of folders S3 keeps none for
	warnings []error                 // what went wrong without failing the request
}

// New returns an FS over the keys that start with root ("" or ending in "/").
func New(store Store, root string, opts Options) *FS {
	if opts.CopyConcurrency <= 0 {
		opts.CopyConcurrency = 8
	}
	return &FS{
		store:   store,
		root:    root,
		opts:    opts,
		stats:   make(map[string]*FileInfo),
		listed:  make(map[string]bool),
		indexes: make(map[string]*loadedIndex),
		// A folder without a marker (a bare prefix) has no time in S3; it
		// shows the request's time, the same for every entry of an answer.
		now: time.Now().UTC().Truncate(time.Second),
	}
}

// Clean returns the canonical form of a WebDAV path: rooted, no dot segments,
// no trailing slash ("/" for the root).
func Clean(name string) string {
	return path.Clean("/" + name)
}

// key returns the object key of a clean name ("" names the root prefix).
func (f *FS) key(name string) string {
	return f.root + strings.TrimPrefix(name, "/")
}

// dirPrefix returns the key prefix of a folder (its marker key).
func (f *FS) dirPrefix(name string) string {
	if name == "/" {
		return f.root
	}
	return f.key(name) + "/"
}

// Reserved reports whether the clean name is the gateway's own: IsReserved,
// or a key inside Options.ReservedKeys (as a file or a folder).
func (f *FS) Reserved(name string) bool {
	return IsReserved(name) || (f.opts.ReservedKeys != "" && f.folderKeyHasPrefix(name, f.opts.ReservedKeys))
}

// folderKeyHasPrefix reports whether dirPrefix(name) starts with r,
// without building the key (every Stat asks).
func (f *FS) folderKeyHasPrefix(name, r string) bool {
	if len(r) <= len(f.root) {
		return strings.HasPrefix(f.root, r)
	}
	if !strings.HasPrefix(r, f.root) || name == "/" {
		return false
	}
	rest, r := strings.TrimPrefix(name, "/"), r[len(f.root):]
	if len(r) <= len(rest) {
		return strings.HasPrefix(rest, r)
	}
	return len(r) == len(rest)+1 && strings.HasPrefix(r, rest) && r[len(rest)] == '/'
}

// holdsReserved reports whether the folder name holds Options.ReservedKeys.
func (f *FS) holdsReserved(name string) bool {
	r := f.opts.ReservedKeys
	return r != "" && strings.HasPrefix(r, f.dirPrefix(name))
}

// Warnings returns what went wrong without failing the request (index
// upkeep after the data operation succeeded), for the request's log line.
func (f *FS) Warnings() []error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]error(nil), f.warnings...)
}

func (f *FS) warn(err error) {
	if err != nil {
		f.mu.Lock()
		f.warnings = append(f.warnings, err)
		f.mu.Unlock()
	}
}

func (f *FS) cached(name string) (*FileInfo, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fi, ok := f.stats[name]
	return fi, ok
}

// cachedFor is cached for a lookup of mode that uses listings as use
// tells: a name this request took from a DirCache listing is known only
// to a lookup that would have taken it from one itself (not to a
// destination check, MKCOL, or a folder that must exist).
func (f *FS) cachedFor(name string, mode statMode, use listingUse) (*FileInfo, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.listed[name] && (mode != expectAny || use != listingAnswers) {
		return nil, false
	}
	fi, ok := f.stats[name]
	return fi, ok
}

func (f *FS) remember(name string, fi *FileInfo) {
	f.mu.Lock()
	f.stats[name] = fi
	delete(f.listed, name)
	f.mu.Unlock()
}

// rememberListed is remember for what a DirCache listing told.
func (f *FS) rememberListed(name string, fi *FileInfo) {
	f.mu.Lock()
	f.stats[name] = fi
	f.listed[name] = true
	f.mu.Unlock()
}

// forget drops what the FS knows about name, everything below it and its
// parent's listing.
func (f *FS) forget(name string) {
	pp, base := f.parentPrefix(name)
	f.opts.DirCache.changed(pp, base, f.dirPrefix(name))
	f.forgetLocal(name)
}

// forgetLocal is forget for this request's caches alone, for a write whose
// outcome the caller then tells the DirCache itself.
func (f *FS) forgetLocal(name string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for n := range f.stats {
		if n == name || strings.HasPrefix(n, name+"/") {
			delete(f.stats, n)
		}
	}
	for n := range f.indexes {
		if n == name || strings.HasPrefix(n, name+"/") {
			delete(f.indexes, n)
		}
	}
}

// validName reports whether a listed key segment can be served as a WebDAV
// name: non-empty, at most MaxSegmentBytes, not a dot segment, not one of
// the gateway's own (an index, a staged copy), and canonical
// (CanonicalKeyName: the key of the name it decodes to, so that name opens
// it again; this leaves out keys that are not UTF-8 or hold control
// characters).
func validName(s string) bool {
	if s == "" || len(s) > MaxSegmentBytes || strings.HasPrefix(s, reservedPrefix) || s == ".davgw" || s == "." || s == ".." || strings.Contains(s, "/") {
		return false
	}
	return CanonicalKeyName(s)
}

// Mkdir creates a folder marker. It fails with fs.ErrExist if name exists
// (as a file or folder) and with fs.ErrNotExist if its parent is missing.
func (f *FS) Mkdir(ctx context.Context, name string, _ os.FileMode) error {
	name = Clean(name)
	if f.Reserved(name) {
		return &fs.PathError{Op: "mkdir", Path: name, Err: fs.ErrPermission}
	}
	if name == "/" {
		return &fs.PathError{Op: "mkdir", Path: name, Err: fs.ErrExist}
	}
	if _, err := f.statFrom(ctx, name, expectAny, listingNever); err == nil {
		return &fs.PathError{Op: "mkdir", Path: name, Err: fs.ErrExist}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if _, err := f.StatDir(ctx, path.Dir(name)); err != nil {
		return err
	}
	_, err := f.store.PutObject(ctx, f.dirPrefix(name), nil, s3vfs.WriteOptions{Size: 0, ContentType: "application/x-directory"})
	f.forget(name)
	if err != nil {
		return pathError("mkdir", name, err)
	}
	// A folder of that name deleted outside the gateway may have left its
	// entry: the new folder must not inherit its properties.
	f.warn(f.dropEntry(ctx, name, true))
	return nil
}

// OpenFile opens name. Read-only opens cost nothing beyond the Stat.
//
// Opens for writing exist for x/net/webdav's LOCK of a missing name (RFC
// 4918 7.3): they create an empty file at once, conditionally
// (If-None-Match: *), and never truncate an existing one, so a LOCK racing
// a PUT cannot wipe the upload, and a failed create is reported here rather
// than lost in a Close whose error x/net ignores. Uploads go through Create.
func (f *FS) OpenFile(ctx context.Context, name string, flag int, _ os.FileMode) (webdav.File, error) {
	name = Clean(name)
	// x/net/webdav opens with O_RDWR alone to PROPPATCH: that is a read
	// handle whose Patch rewrites metadata.
	if f.Reserved(name) {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	}
	if flag&(os.O_WRONLY|os.O_CREATE|os.O_TRUNC|os.O_APPEND) != 0 {
		if flag&os.O_CREATE == 0 {
			return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrPermission}
		}
		if err := f.createEmpty(ctx, name, flag&os.O_EXCL != 0); err != nil {
			return nil, err
		}
	}
	fi, err := f.stat(ctx, name)
	if err != nil {
		return nil, err
	}
	return &File{fs: f, ctx: ctx, path: name, info: fi}, nil
}

// createEmpty creates an empty file unless name exists.
func (f *FS) createEmpty(ctx context.Context, name string, excl bool) error {
	fi, err := f.CreateTarget(ctx, name)
	switch {
	case err != nil:
		return err
	case fi != nil && excl:
		return &fs.PathError{Op: "create", Path: name, Err: fs.ErrExist}
	case fi != nil:
		return nil
	}
	start := f.opts.DirCache.begin()
	obj, err := f.store.PutObject(ctx, f.key(name), nil, s3vfs.WriteOptions{Size: 0, ContentType: contentTypeFor(name), IfNoneMatch: "*"})
	if err != nil {
		f.forget(name)
	} else {
		f.forgetLocal(name)
	}
	switch {
	case errors.Is(err, s3vfs.ErrPreconditionFailed):
		return nil // it appeared meanwhile: keep it
	case err != nil:
		return pathError("create", name, err)
	}
	fi = fileInfoFromObject(path.Base(name), obj)
	fi.direct, fi.hasMeta = true, true
	f.remember(name, fi)
	pp, base := f.parentPrefix(name)
	f.opts.DirCache.wroteFile(pp, base, fi, start)
	return nil
}

// RemoveAll deletes a file, or a folder with everything below it. The root
// itself cannot be removed, nor a folder that holds Options.ReservedKeys.
func (f *FS) RemoveAll(ctx context.Context, name string) error {
	name = Clean(name)
	if name == "/" {
		return &fs.PathError{Op: "remove", Path: name, Err: fs.ErrPermission}
	}
	fi, err := f.stat(ctx, name)
	if err != nil {
		return err
	}
	if fi.dir && f.holdsReserved(name) {
		return &fs.PathError{Op: "remove", Path: name, Err: fs.ErrPermission}
	}
	if fi.dir {
		err = f.deletePrefix(ctx, f.dirPrefix(name))
	} else {
		err = f.store.Delete(ctx, []string{f.key(name)})
	}
	f.forget(name)
	if err != nil {
		return pathError("remove", name, err)
	}
	// A stale entry would apply again to a new object with the same ETag
	// (the same bytes uploaded again without a time). The delete succeeded
	// either way: failing to tidy the index is only logged.
	f.warn(f.dropEntry(ctx, name, fi.dir))
	return nil
}

// Rename moves a file (see Move). Folders cannot be renamed: S3 has no
// folder rename, so that is fs.ErrPermission.
func (f *FS) Rename(ctx context.Context, oldName, newName string) error {
	_, err := f.Move(ctx, oldName, newName, true)
	return err
}

// contentTypeFor guesses a content type from a name's extension.
func contentTypeFor(name string) string {
	if t := mime.TypeByExtension(path.Ext(name)); t != "" {
		return t
	}
	return "application/octet-stream"
}

// modTimeOrNow avoids the zero time in listings of objects whose store did
// not report one.
func modTimeOrNow(t time.Time) time.Time {
	if t.IsZero() {
		return time.Now().UTC()
	}
	return t
}
