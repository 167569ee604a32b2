package davfs

// Finding what a name is: Stat and its modes, the lookups the HTTP edge
// uses, and the one-request read of a file. The file wins over a folder of
// the same name (see Lookup); a recent listing (DirCache) answers only
// plain lookups.

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/davgw/davgw/s3vfs"
)

// Stat returns the FileInfo of name. A folder is found by a one-key listing
// of its prefix (marker or any child); a file by HEAD. Both run concurrently,
// so a Stat costs one round trip and at most two requests.
func (f *FS) Stat(ctx context.Context, name string) (os.FileInfo, error) {
	fi, err := f.stat(ctx, name)
	if err != nil {
		return nil, err
	}
	return fi, nil
}

// statMode says what a caller expects a name to be, to save requests.
type statMode int

const (
	// expectAny: LIST and HEAD run concurrently (one round trip, two requests).
	expectAny statMode = iota
	// expectDir: LIST first; HEAD only if no folder was found.
	expectDir
	// onlyDir: LIST only; a name that is not a folder is reported missing
	// and nothing is cached about it.
	onlyDir
	// onlyFile: HEAD only (a listing already showed the prefix is empty).
	onlyFile
)

func (f *FS) stat(ctx context.Context, name string) (*FileInfo, error) {
	return f.statMode(ctx, name, expectAny)
}

func (f *FS) statMode(ctx context.Context, name string, mode statMode) (*FileInfo, error) {
	return f.statFrom(ctx, name, mode, listingAnswers)
}

// listingUse says how much a recent listing of the parent (DirCache) may
// answer for a name.
type listingUse int

const (
	// listingAnswers: a file or a free name is answered from the listing.
	listingAnswers listingUse = iota
	// listingNoFolder: the listing may only tell that the name is no
	// folder; whether it is a file is asked of S3 (a file COPY or MOVE
	// destination with Overwrite: F: no file made elsewhere is replaced
	// on the cache's word).
	listingNoFolder
	// listingNever: S3 is asked for both (a Depth 0 PROPFIND, MKCOL).
	listingNever
)

// statFrom is statMode, with use saying what a recent listing of the
// parent may answer.
func (f *FS) statFrom(ctx context.Context, name string, mode statMode, use listingUse) (*FileInfo, error) {
	name = Clean(name)
	if f.Reserved(name) {
		return nil, &fs.PathError{Op: "stat", Path: name, Err: fs.ErrNotExist}
	}
	if name == "/" {
		return &FileInfo{name: "/", dir: true, key: f.root, direct: true, modTime: f.now}, nil
	}
	if fi, ok := f.cachedFor(name, mode, use); ok {
		if fi == nil {
			return nil, &fs.PathError{Op: "stat", Path: name, Err: fs.ErrNotExist}
		}
		return fi, nil
	}

	key, prefix := f.key(name), f.dirPrefix(name)
	// A listing of the parent within the last few seconds tells files and
	// free names (not folders: their own request tells their time). Only a
	// plain lookup uses it: a folder that must exist (a parent) is never
	// refused on its word, and a URL ending in "/" asks S3 for the folder.
	// A destination check (listingNoFolder) still takes from it that the
	// name is no folder, and asks S3 only whether it is a file: one HEAD
	// instead of a HEAD and a LIST.
	if pp, base := f.parentPrefix(name); mode == expectAny && use != listingNever {
		if fi, known := f.opts.DirCache.child(pp, base); known {
			switch {
			case use == listingNoFolder:
				mode = onlyFile
			case fi == nil:
				f.rememberListed(name, nil)
				return nil, &fs.PathError{Op: "stat", Path: name, Err: fs.ErrNotExist}
			default:
				f.rememberListed(name, fi)
				return fi, nil
			}
		}
	}
	var (
		head    s3vfs.ObjectInfo
		headErr error
		isDir   bool
		marker  *s3vfs.ObjectInfo
		listErr error
		probed  bool
	)
	probeStart := f.opts.DirCache.begin()
	if mode == expectAny {
		// The file wins (see Lookup): a HEAD first, and a LIST only when
		// there is no such object. A fresh check (a destination, MKCOL)
		// is usually of a free name, which needs both: they run side by
		// side, one round trip instead of two.
		type probeResult struct {
			isDir  bool
			marker *s3vfs.ObjectInfo
			err    error
		}
		var (
			probe  chan probeResult
			cancel context.CancelFunc
		)
		if use != listingAnswers {
			probe = make(chan probeResult, 1)
			var pctx context.Context
			pctx, cancel = context.WithCancel(ctx)
			defer cancel()
			go func() {
				var r probeResult
				r.isDir, r.marker, r.err = f.probeDir(pctx, prefix)
				probe <- r
			}()
		}
		head, headErr = f.store.Head(ctx, key)
		if probe != nil {
			if headErr != nil && errors.Is(headErr, s3vfs.ErrNotFound) {
				r := <-probe
				isDir, marker, listErr, probed = r.isDir, r.marker, r.err, true
			} else {
				// A found file or a failed HEAD decides: the probe is not
				// needed, but it ends before the lookup does, so that its
				// request never outlives the one that counts it.
				cancel()
				<-probe
			}
		}
		switch {
		case headErr == nil:
			return f.foundFile(name, head), nil
		case !errors.Is(headErr, s3vfs.ErrNotFound):
			return nil, pathError("stat", name, headErr)
		}
	}
	if mode != onlyFile && !probed {
		isDir, marker, listErr = f.probeDir(ctx, prefix)
	}

	switch {
	case listErr != nil:
		return nil, pathError("stat", name, listErr)
	case isDir:
		f.opts.DirCache.probed(prefix, probeStart)
		fi := &FileInfo{name: path.Base(name), dir: true, key: prefix, direct: true, modTime: f.now}
		if marker != nil {
			fi.modTime = marker.LastModified
			fi.etag = marker.ETag
			fi.hasMarker = true
		}
		f.remember(name, fi)
		return fi, nil
	case mode == onlyDir:
		return nil, &fs.PathError{Op: "stat", Path: name, Err: errors.Join(fs.ErrNotExist, ErrNotDir)}
	case mode == expectDir || mode == onlyFile:
		head, headErr = f.store.Head(ctx, key)
	}
	switch {
	case headErr == nil:
		return f.foundFile(name, head), nil
	case errors.Is(headErr, s3vfs.ErrNotFound):
		f.remember(name, nil)
		return nil, &fs.PathError{Op: "stat", Path: name, Err: fs.ErrNotExist}
	default:
		return nil, pathError("stat", name, headErr)
	}
}

// foundFile caches and returns the info of an object found by name.
func (f *FS) foundFile(name string, o s3vfs.ObjectInfo) *FileInfo {
	fi := fileInfoFromObject(path.Base(name), o)
	fi.direct = true
	f.remember(name, fi)
	return fi
}

// OpenRead opens a file for reading with one request: a GetObject of rng
// (as s3vfs.Store.Get; "" = all of it), or with headOnly a HeadObject and
// a Reader that reads lazily. The parent's index (the kept time) is read
// alongside, from the shared cache or with one GET in parallel, so a read
// never waits for two round trips one after the other. A name with no
// object is probed as a folder: then fi is the folder and File is nil.
// Never a LIST when the object exists: the file wins (see Lookup).
func (f *FS) OpenRead(ctx context.Context, name, rng string, headOnly bool) (*FileInfo, *File, error) {
	name = Clean(name)
	if name == "/" || f.Reserved(name) {
		fi, err := f.stat(ctx, name)
		return fi, nil, err
	}
	var (
		wg      sync.WaitGroup
		li      *loadedIndex
		liErr   error
		parent  string
		entry   string
		info    s3vfs.ObjectInfo
		rd      ObjectReader
		readErr error
	)
	parent, entry = entryName(name, false)
	pending := f.pendingFor(parent, entry)
	wg.Add(1)
	go func() {
		defer wg.Done()
		li, liErr = f.loadIndex(ctx, parent, false)
	}()
	if headOnly {
		info, readErr = f.store.Head(ctx, f.key(name))
	} else {
		info, rd, readErr = f.store.Get(ctx, f.key(name), rng)
	}
	wg.Wait()
	if readErr != nil {
		if !errors.Is(readErr, s3vfs.ErrNotFound) {
			return nil, nil, pathError("open", name, readErr)
		}
		// What this request learned of the name before (a HEAD of an
		// object deleted since, when a GET is read again) no longer holds.
		f.mu.Lock()
		delete(f.stats, name)
		f.mu.Unlock()
		fi, err := f.statMode(ctx, name, onlyDir) // a folder, or nothing
		if errors.Is(err, fs.ErrNotExist) {
			f.remember(name, nil)
			return nil, nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
		}
		return fi, nil, err
	}
	fi := f.foundFile(name, info)
	switch {
	case liErr != nil && ctx.Err() != nil: // the client is gone
		if rd != nil {
			_ = rd.Close()
		}
		return nil, nil, pathError("open", name, liErr)
	case liErr != nil:
		// The bytes do not depend on the index: the file is served, only
		// its kept time is unknown (KeptTimeUnknown), and that is logged
		// rather than the request's failure.
		f.warn(fmt.Errorf("index of %s unreadable; %s served without its kept time: %w", parent, name, liErr))
		fi.keptUnknown = true
	default:
		e, ok := pending.entry(li, entry)
		fi.applyMeta(e, ok)
	}
	if rd == nil {
		rd = f.store.NewReader(ctx, fi.key, fi.Object())
	}
	return fi, &File{fs: f, ctx: ctx, path: name, info: fi, reader: rd}, nil
}

// probeDir tells with one LIST of at most one key whether prefix holds
// anything (then it is a folder), and returns its marker if that is the key.
func (f *FS) probeDir(ctx context.Context, prefix string) (isDir bool, marker *s3vfs.ObjectInfo, err error) {
	for e, err := range f.store.List(ctx, s3vfs.ListOptions{Prefix: prefix, MaxKeys: 1, Limit: 1}) {
		if err != nil {
			return false, nil, err
		}
		isDir = true
		if e.Object != nil && e.Object.Key == prefix {
			marker = e.Object
		}
	}
	return isDir, marker, nil
}

// StatDir is Stat for a name that must be a folder (a parent): it costs one
// LIST. A missing name or a file yields an error matching fs.ErrNotExist and
// ErrNotDir (the caller's 409).
func (f *FS) StatDir(ctx context.Context, name string) (*FileInfo, error) {
	name = Clean(name)
	prefix := f.dirPrefix(name)
	if name != "/" && f.opts.DirCache != nil && !f.Reserved(name) {
		if f.opts.DirCache.exists(prefix) {
			// Listed, probed or written into within the last few seconds.
			return &FileInfo{name: path.Base(name), dir: true, key: prefix, modTime: f.now}, nil
		}
		if fi, ok := f.cached(name); !ok || fi == nil || !fi.dir {
			found, err := f.learnDir(ctx, name, learnLimit)
			switch {
			case err != nil:
				return nil, pathError("stat", name, err)
			case !found:
				return nil, &fs.PathError{Op: "stat", Path: name, Err: errors.Join(fs.ErrNotExist, ErrNotDir)}
			}
			return &FileInfo{name: path.Base(name), dir: true, key: prefix, modTime: f.now}, nil
		}
	}
	fi, err := f.statMode(ctx, name, onlyDir)
	if err != nil {
		return nil, err
	}
	if !fi.dir {
		return nil, &fs.PathError{Op: "stat", Path: name, Err: errors.Join(fs.ErrNotExist, ErrNotDir)}
	}
	return fi, nil
}

// learnLimit is how many entries StatDir lists of a folder it must prove:
// for the price of the one-key probe (one LIST), a folder of fewer
// entries is listed whole, so that the writes that follow know its names
// for a few seconds (a PUT of a new name is then one PutObject).
const learnLimit = 1000

// learnDir lists up to limit entries of a folder (found: it holds
// anything) and gives what it saw to the DirCache: the whole listing when
// it is complete, else only that the folder exists. It reads no index.
func (f *FS) learnDir(ctx context.Context, name string, limit int) (found bool, err error) {
	n, err := f.learnDirCount(ctx, name, limit)
	return n > 0, err
}

// learnDirCount is learnDir returning how many entries it saw.
func (f *FS) learnDirCount(ctx context.Context, name string, limit int) (n int, err error) {
	prefix := f.dirPrefix(name)
	start, at := f.opts.DirCache.begin(), time.Now()
	var (
		files  []*FileInfo
		opaque []string
		marker bool
	)
	for e, err := range f.store.List(ctx, s3vfs.ListOptions{Prefix: prefix, Delimiter: "/", Limit: limit}) {
		if err != nil {
			return n, err
		}
		n++
		switch {
		case e.Object == nil:
			opaque = append(opaque, strings.TrimSuffix(strings.TrimPrefix(e.Prefix, prefix), "/"))
		case e.Object.Key == prefix:
			marker = true
		default:
			child := strings.TrimPrefix(e.Object.Key, prefix)
			if child == indexName {
				continue
			}
			if !validName(child) || (f.opts.Hide != nil && f.opts.Hide(child)) {
				opaque = append(opaque, child)
				continue
			}
			files = append(files, fileInfoFromObject(child, *e.Object))
		}
	}
	switch {
	case n > 0 && n < limit:
		f.opts.DirCache.listed(prefix, files, opaque, marker, start, at)
	case n > 0:
		f.opts.DirCache.probed(prefix, start)
	}
	return n, nil
}

// relistBusyFolder starts, in the background, a whole listing of a folder
// too large for learnDir that this gateway keeps writing into (a sync
// filling it): at least 4 writes within the DirCache's TTL, and twice as
// many as the last such listing had pages, so that it costs fewer LISTs
// than the HEAD and LIST pairs it saves; at most once per TTL and folder,
// two at a time gateway-wide. Its PUTs then cost one PutObject each. A
// folder found larger than the DirCache keeps is left alone for 10 TTLs,
// and a listing that took more than half the TTL is not kept.
func (f *FS) relistBusyFolder(name string) {
	prefix := f.dirPrefix(name)
	release, ok := f.opts.DirCache.claimRelist(prefix)
	if !ok {
		return
	}
	go func() {
		defer release()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		names, _ := f.learnDirCount(ctx, name, f.opts.DirCache.keeps()+1) // an optimisation: its failure costs nothing
		f.opts.DirCache.relisted(prefix, names)
	}()
}

// LookupFresh is Lookup that never answers from a recent listing (the
// DirCache): for a Depth 0 PROPFIND (a file's stored content type and
// metadata take its own HEAD) and the size of a file a COPY replaces (the
// quota). MoveEmptyDir checks its destination itself. A file COPY or MOVE with
// Overwrite: F checks its destination inside davfs (listingNoFolder).
func (f *FS) LookupFresh(ctx context.Context, name string, slash bool) (*FileInfo, error) {
	if slash {
		return folderNamed(name)(f.statFrom(ctx, name, expectDir, listingNever))
	}
	return f.statFrom(ctx, name, expectAny, listingNever)
}

// Lookup is Stat returning the concrete *FileInfo. slash (the name was
// written with a trailing slash) names a folder: the folder is asked for
// first, and a file found instead is ErrFileNamedAsFolder.
//
// When an object "a" and keys under "a/" both exist (AWS and SeaweedFS
// allow it), the file wins: "/a" is the object for every method and in
// listings, so reading a file never needs a LIST; the keys under "a/"
// stay reachable by their own paths, and "/a/" (with its slash) still
// names the folder.
func (f *FS) Lookup(ctx context.Context, name string, slash bool) (*FileInfo, error) {
	if slash {
		return folderNamed(name)(f.statMode(ctx, name, expectDir))
	}
	return f.stat(ctx, name)
}

// folderNamed applies the rule of a name written with a trailing slash to
// what a lookup found: a file is ErrFileNamedAsFolder.
func folderNamed(name string) func(*FileInfo, error) (*FileInfo, error) {
	return func(fi *FileInfo, err error) (*FileInfo, error) {
		if err == nil && !fi.dir {
			return nil, &fs.PathError{Op: "stat", Path: Clean(name) + "/", Err: ErrFileNamedAsFolder}
		}
		return fi, err
	}
}
