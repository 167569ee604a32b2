package davfs

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/davgw/davgw/s3vfs"
)

// Copy copies src to dst entirely inside S3 (CopyObject, UploadPartCopy for
// large objects): no byte passes through the gateway. recursive selects
// Depth infinity for folders (Depth 0 copies the folder alone).
//
// With overwrite, an existing destination is replaced, and the order is
// chosen so that a failed copy loses as little as possible: new objects are
// written first, and what the destination held beyond them is deleted only
// after every copy succeeded. The source is never changed.
//
// It returns created = true when dst did not exist. Errors: src missing ->
// fs.ErrNotExist; dst's parent missing -> ErrNotDir (joined with
// fs.ErrNotExist); dst exists without overwrite -> fs.ErrExist; dst inside
// src -> fs.ErrPermission.
func (f *FS) Copy(ctx context.Context, src, dst string, overwrite, recursive bool) (created bool, err error) {
	created, _, err = f.copyTo(ctx, src, dst, overwrite, recursive)
	return created, err
}

// copyTo is Copy, also returning the new object when src is a file.
func (f *FS) copyTo(ctx context.Context, src, dst string, overwrite, recursive bool) (created bool, copied s3vfs.ObjectInfo, err error) {
	src, dst = Clean(src), Clean(dst)
	srcFi, err := f.CheckCopy(ctx, src, dst, false)
	if err != nil {
		return false, copied, err
	}
	// Without overwrite, "free" must not come from a listing's word: a
	// file made there meanwhile by someone else would be replaced. For a
	// file, the listing may still tell that the name is no folder (a
	// missed one gets the file next to it); a folder is copied into a
	// folder the listing missed, replacing its files: S3 is asked both.
	use := listingNoFolder
	switch {
	case overwrite:
		use = listingAnswers
	case srcFi.dir:
		use = listingNever
	}
	dstFi, err := f.statFrom(ctx, dst, expectAny, use)
	switch {
	case err == nil && !overwrite:
		return false, copied, &fs.PathError{Op: "copy", Path: dst, Err: fs.ErrExist}
	case err != nil && !errors.Is(err, fs.ErrNotExist):
		return false, copied, err
	}
	created = dstFi == nil
	defer f.forget(dst)

	srcEntry, err := f.entryOf(ctx, srcFi, src)
	if err != nil {
		return false, copied, pathError("copy", src, err)
	}
	if !srcFi.dir {
		obj, err := f.copyFileOnto(ctx, srcFi, dst, dstFi)
		if err != nil {
			return created, copied, err
		}
		copied = obj
		// The copy keeps the source's kept time and dead properties. The
		// bytes are copied either way: index upkeep failures are logged.
		if !srcEntry.empty() || dstFi != nil {
			srcEntry.ETag = obj.ETag
			f.warn(f.setEntry(ctx, dst, false, srcEntry))
		}
		if dstFi != nil && dstFi.dir {
			f.warn(f.dropEntry(ctx, dst, true))
		}
		return created, copied, nil
	}
	if err := f.copyDirOnto(ctx, src, dst, dstFi, recursive); err != nil {
		return created, copied, err
	}
	if !srcEntry.empty() || dstFi != nil {
		f.warn(f.setEntry(ctx, dst, true, srcEntry))
	}
	if dstFi != nil && !dstFi.dir {
		f.warn(f.dropEntry(ctx, dst, false))
	}
	return created, copied, nil
}

// copyFileOnto copies one object onto dst, which may be absent, a file or a
// folder, and returns the new object.
func (f *FS) copyFileOnto(ctx context.Context, srcFi *FileInfo, dst string, dstFi *FileInfo) (s3vfs.ObjectInfo, error) {
	dstKey := f.key(dst)
	copyOnce := func() (s3vfs.ObjectInfo, error) {
		return f.store.Copy(ctx, srcFi.key, srcFi.Object(), dstKey, s3vfs.CopyOptions{SourceETag: srcFi.etag})
	}
	if dstFi == nil || !dstFi.dir {
		obj, err := copyOnce()
		return obj, pathError("copy", dst, err)
	}
	// A file replaces a folder. Stores like AWS allow "dst" next to "dst/":
	// copy first, then delete the folder.
	obj, err := copyOnce()
	if err == nil {
		return obj, pathError("copy", dst, f.deletePrefix(ctx, f.dirPrefix(dst)))
	}
	if !errors.Is(err, s3vfs.ErrConflict) {
		return obj, pathError("copy", dst, err)
	}
	// Stricter stores (versitygw) cannot hold both names. Stage the copy
	// under a hidden name first, so that a copy that cannot succeed fails
	// before the folder is touched; then replace the folder.
	obj, err = f.replaceDirWithFile(ctx, srcFi, dst)
	return obj, pathError("copy", dst, err)
}

// stagingPrefix starts the hidden names of staged copies; listings skip them.
const stagingPrefix = reservedPrefix + "staging-"

// MaxHiddenNameBytes is the longest name the gateway writes inside a folder
// of its own accord (a staged copy: stagingPrefix and 16 hex digits; the
// index's name is shorter): a folder's key must leave room for it, else
// its index or a staged copy would pass S3's key limit.
const MaxHiddenNameBytes = len(stagingPrefix) + 16

func (f *FS) replaceDirWithFile(ctx context.Context, srcFi *FileInfo, dst string) (s3vfs.ObjectInfo, error) {
	var rnd [8]byte
	_, _ = rand.Read(rnd[:])
	staged := f.key(path.Join(path.Dir(dst), stagingPrefix+hex.EncodeToString(rnd[:])))
	obj, err := f.store.Copy(ctx, srcFi.key, srcFi.Object(), staged, s3vfs.CopyOptions{SourceETag: srcFi.etag})
	if err != nil {
		return obj, err
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		_ = f.store.Delete(cctx, []string{staged})
	}()
	if err := f.deletePrefix(ctx, f.dirPrefix(dst)); err != nil {
		return s3vfs.ObjectInfo{}, err
	}
	return f.store.Copy(ctx, staged, obj, f.key(dst), s3vfs.CopyOptions{})
}

// copyDirOnto copies a folder (and with recursive everything below it) onto
// dst, which may be absent, a file or a folder.
func (f *FS) copyDirOnto(ctx context.Context, src, dst string, dstFi *FileInfo, recursive bool) error {
	srcPrefix, dstPrefix := f.dirPrefix(src), f.dirPrefix(dst)
	err := f.ensureMarker(ctx, srcPrefix, dstPrefix)
	if err == nil && dstFi != nil && !dstFi.dir {
		// A folder replaces a file: the file goes once the marker is in
		// place. Where the store cannot hold both names the marker write
		// conflicted, and nothing was changed.
		err = f.store.Delete(ctx, []string{dstFi.key})
	}
	if err != nil {
		return pathError("copy", dst, err)
	}
	written := map[string]bool{dstPrefix: true}
	if recursive {
		// The tree's indexes are copied as objects: pending kept times go
		// into them first. The destination's own pending entries are for
		// objects the copy replaces or prunes: dropped, so that no late
		// batch writes them over the copied indexes.
		if err := f.opts.Batcher.WriteUnder(ctx, srcPrefix); err != nil {
			f.warn(err)
		}
		if err := f.opts.Batcher.DropUnder(ctx, f.opts.IndexLocks, dstPrefix); err != nil {
			return pathError("copy", dst, err)
		}
		var (
			mu        sync.Mutex
			srcETags  = map[string]string{} // source key -> ETag, from the listing
			newETags  = map[string]string{} // destination key -> ETag of the copy
			indexKeys []string              // the tree's folder indexes
		)
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(f.opts.CopyConcurrency)
		for e, err := range f.store.List(gctx, s3vfs.ListOptions{Prefix: srcPrefix}) {
			if err != nil {
				if werr := g.Wait(); werr != nil {
					err = werr // the copy that failed, not the cancelled listing
				}
				return pathError("copy", dst, err)
			}
			if e.Object == nil || e.Object.Key == srcPrefix {
				continue
			}
			obj := *e.Object
			rel := strings.TrimPrefix(obj.Key, srcPrefix)
			target := dstPrefix + rel
			if path.Base(rel) == indexName {
				// Copied ETags can differ (multipart sources, encryption):
				// the index is rewritten for the copies below.
				indexKeys = append(indexKeys, obj.Key)
				continue
			}
			written[target] = true
			srcETags[obj.Key] = obj.ETag
			g.Go(func() error {
				if strings.HasSuffix(obj.Key, "/") {
					return f.ensureMarker(gctx, obj.Key, target)
				}
				out, err := f.store.Copy(gctx, obj.Key, obj, target, s3vfs.CopyOptions{})
				if err == nil {
					mu.Lock()
					newETags[target] = out.ETag
					mu.Unlock()
				}
				return err
			})
		}
		if err := g.Wait(); err != nil {
			return pathError("copy", dst, err)
		}
		for _, k := range indexKeys {
			wrote, err := f.copyIndex(ctx, k, srcPrefix, dstPrefix, srcETags, newETags)
			f.warn(err)
			if wrote != "" {
				written[wrote] = true
			}
		}
	}
	if dstFi == nil || !dstFi.dir {
		return nil
	}
	// Overwrite of a folder: prune what the destination held beyond the copy.
	var stale []string
	for e, err := range f.store.List(ctx, s3vfs.ListOptions{Prefix: dstPrefix}) {
		if err != nil {
			return pathError("copy", dst, err)
		}
		if e.Object != nil && !written[e.Object.Key] {
			stale = append(stale, e.Object.Key)
		}
	}
	if len(stale) > 0 {
		return pathError("copy", dst, f.store.Delete(ctx, stale))
	}
	return nil
}

// copyIndex writes the copy of one folder index of a copied tree, its file
// entries re-keyed to the copies' ETags (entries no longer valid for the
// source are dropped).
func (f *FS) copyIndex(ctx context.Context, srcKey, srcPrefix, dstPrefix string, srcETags, newETags map[string]string) (wrote string, err error) {
	body, _, err := f.store.GetSmall(ctx, srcKey, maxIndexBytes)
	if err != nil {
		return "", err
	}
	var idx folderIndex
	if err := json.Unmarshal(body, &idx); err != nil || idx.Version != indexVersion {
		return "", fmt.Errorf("index %s unreadable; not copied", srcKey)
	}
	folderKey := strings.TrimSuffix(srcKey, indexName) // "<src>/sub/"
	dstFolderKey := dstPrefix + strings.TrimPrefix(folderKey, srcPrefix)
	out := folderIndex{Version: indexVersion, Entries: map[string]metaEntry{}}
	for name, e := range idx.Entries {
		if strings.HasSuffix(name, "/") || name == "." {
			out.Entries[name] = e
			continue
		}
		if etag, ok := srcETags[folderKey+name]; !ok || etag != e.ETag {
			continue
		}
		if etag, ok := newETags[dstFolderKey+name]; ok {
			e.ETag = etag
			out.Entries[name] = e
		}
	}
	if len(out.Entries) == 0 {
		return "", nil
	}
	nb, _ := json.Marshal(out)
	info, err := f.store.PutObject(ctx, dstFolderKey+indexName, nb, s3vfs.WriteOptions{Size: int64(len(nb)), ContentType: "application/json"})
	if err != nil {
		f.opts.IndexCache.put(dstFolderKey+indexName, &loadedIndex{entries: map[string]metaEntry{}, unwritable: true}) // unknown now: read again
		return "", err
	}
	// The shared copy must follow this gateway's own writes (a DELETE
	// trusts it to know which entries exist).
	f.opts.IndexCache.put(dstFolderKey+indexName, &loadedIndex{entries: out.Entries, etag: info.ETag, size: len(nb)})
	return dstFolderKey + indexName, nil
}

// ensureMarker gives dstPrefix a folder marker carrying srcPrefix's marker
// metadata (its dead properties) when there is one. Markers are written, not
// copied: they hold no data, and versitygw refuses CopyObject onto a folder
// key.
func (f *FS) ensureMarker(ctx context.Context, srcPrefix, dstPrefix string) error {
	var meta map[string]string
	marker, err := f.store.Head(ctx, srcPrefix)
	switch {
	case err == nil:
		meta = marker.Metadata
	case !errors.Is(err, s3vfs.ErrNotFound):
		return err
	}
	_, err = f.store.PutObject(ctx, dstPrefix, nil, s3vfs.WriteOptions{Size: 0, ContentType: "application/x-directory", Metadata: meta})
	return err
}

// CheckCopy checks, before anything is touched, what a copy or move of src
// onto dst needs of the file system, and returns src: it exists
// (fs.ErrNotExist; slash as for Lookup), dst is not src, the root, inside
// src or above it (fs.ErrPermission: a copy onto its own ancestor would
// delete its source while replacing the destination, and a folder copied
// into itself would never end), neither dst nor a folder src reaches
// Options.ReservedKeys (fs.ErrPermission), and dst's parent is a folder
// (ErrNotDir). Copy, Move and MoveEmptyDir check the same; a caller that
// must decide more before the copy (locks, quota) calls it first.
func (f *FS) CheckCopy(ctx context.Context, src, dst string, slash bool) (*FileInfo, error) {
	src, dst = Clean(src), Clean(dst)
	srcFi, err := f.Lookup(ctx, src, slash)
	if err != nil {
		return nil, err
	}
	if src == dst || dst == "/" || Within(src, dst) || Within(dst, src) {
		return nil, &fs.PathError{Op: "copy", Path: dst, Err: fs.ErrPermission}
	}
	// Into, onto or out of the gateway's own keys: a destination inside
	// them, one that holds them (replacing it would delete them), a folder
	// source that holds them (the copy would carry them out).
	if f.Reserved(dst) || f.holdsReserved(dst) || (srcFi.dir && f.holdsReserved(src)) {
		return nil, &fs.PathError{Op: "copy", Path: dst, Err: fs.ErrPermission}
	}
	if _, err := f.StatDir(ctx, path.Dir(dst)); err != nil {
		return nil, err
	}
	return srcFi, nil
}

// Within reports whether the clean name lies strictly below the folder dir.
func Within(name, dir string) bool {
	return name != dir && (dir == "/" || strings.HasPrefix(name, dir+"/"))
}

// Move renames a file: server-side copy to dst, then delete src. If the copy
// fails, nothing was deleted or changed. Folders are refused with
// fs.ErrPermission before anything is touched (S3 has no folder rename).
//
// A MOVE is safe to repeat: when the delete of the source failed after the
// copy (both are left, with the same bytes, and the caller answers 503),
// the same MOVE again completes it, also without overwrite: a destination
// that Options.Moves knows for that attempt's copy is kept (created is
// then true) and only the source is deleted.
func (f *FS) Move(ctx context.Context, src, dst string, overwrite bool) (created bool, err error) {
	src, dst = Clean(src), Clean(dst)
	srcFi, err := f.stat(ctx, src)
	if err != nil {
		return false, err
	}
	if srcFi.dir {
		return false, &fs.PathError{Op: "move", Path: src, Err: fs.ErrPermission}
	}
	var copied s3vfs.ObjectInfo
	if earlier, err := f.earlierCopy(ctx, srcFi, src, dst, overwrite); err != nil {
		return false, err
	} else if earlier != nil {
		created, copied = true, earlier.Object()
	} else if created, copied, err = f.copyTo(ctx, src, dst, overwrite, false); err != nil {
		return false, err
	}
	err = f.store.Delete(ctx, []string{srcFi.key})
	f.forget(src)
	if err != nil {
		f.opts.Moves.halfDone(srcFi.key, srcFi.etag, f.key(dst), copied.ETag)
		return created, pathError("move", src, err)
	}
	f.opts.Moves.forget(srcFi.key)
	f.warn(f.dropEntry(ctx, src, false))
	return created, nil
}

// earlierCopy returns dst when it is the copy that an earlier attempt of
// the same MOVE made before its delete of src failed (Options.Moves), and
// then carries the source's index entry over as Copy would. Only without
// overwrite: with it, the copy is simply made again.
func (f *FS) earlierCopy(ctx context.Context, srcFi *FileInfo, src, dst string, overwrite bool) (*FileInfo, error) {
	if overwrite || f.opts.Moves == nil || src == dst || Within(src, dst) || Within(dst, src) {
		return nil, nil // Copy decides (and refuses the overlaps)
	}
	dstFi, err := f.statFrom(ctx, dst, expectAny, listingNoFolder)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, nil
	case err != nil:
		return nil, err
	case dstFi.dir || !f.opts.Moves.isCopy(srcFi.key, srcFi.etag, dstFi.key, dstFi.etag):
		return nil, nil
	}
	entry, err := f.entryOf(ctx, srcFi, src)
	if err != nil {
		return nil, pathError("move", src, err)
	}
	if !entry.empty() {
		entry.ETag = dstFi.etag
		f.warn(f.setEntry(ctx, dst, false, entry))
	}
	f.forget(dst)
	return dstFi, nil
}

// ErrNotEmpty is returned by MoveEmptyDir for a folder that holds anything.
var ErrNotEmpty = errors.New("davfs: folder is not empty")

// MoveEmptyDir renames a folder that holds nothing but its marker (and the
// gateway's own hidden objects): a new marker at dst carrying the old one's
// metadata and the folder's index entry, then the old marker goes. That is
// what Explorer and Finder do right after "New folder", and it cannot lose
// data: if a file lands in the old folder meanwhile, it stays where it was.
// A folder with content gives ErrNotEmpty and nothing is changed; so does an
// existing dst (fs.ErrExist, checked before the content, and asked of S3
// whatever this FS learned of dst before). The names are checked as by
// CheckCopy.
func (f *FS) MoveEmptyDir(ctx context.Context, src, dst string) error {
	src, dst = Clean(src), Clean(dst)
	srcFi, err := f.CheckCopy(ctx, src, dst, false)
	if err != nil {
		return err
	}
	if !srcFi.dir || src == "/" {
		return &fs.PathError{Op: "move", Path: src, Err: ErrNotDir}
	}
	// A folder the listing missed would get the new marker over its own.
	// So would one made since this request last looked (a caller's check
	// before it took its locks): what it learned of dst is not used.
	f.forgetLocal(dst)
	if _, err := f.statFrom(ctx, dst, expectAny, listingNever); err == nil {
		return &fs.PathError{Op: "move", Path: dst, Err: fs.ErrExist}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	srcPrefix, dstPrefix := f.dirPrefix(src), f.dirPrefix(dst)
	var hidden []string
	for e, err := range f.store.List(ctx, s3vfs.ListOptions{Prefix: srcPrefix, MaxKeys: 16, Limit: 16}) {
		if err != nil {
			return pathError("move", src, err)
		}
		switch {
		case e.Object == nil:
			return &fs.PathError{Op: "move", Path: src, Err: ErrNotEmpty}
		case e.Object.Key == srcPrefix:
		case strings.HasPrefix(strings.TrimPrefix(e.Object.Key, srcPrefix), reservedPrefix) &&
			!strings.Contains(strings.TrimPrefix(e.Object.Key, srcPrefix), "/"):
			hidden = append(hidden, e.Object.Key)
		default:
			return &fs.PathError{Op: "move", Path: src, Err: ErrNotEmpty}
		}
	}
	entry, err := f.entryOf(ctx, srcFi, src)
	if err != nil {
		return pathError("move", src, err)
	}
	if err := f.ensureMarker(ctx, srcPrefix, dstPrefix); err != nil {
		return pathError("move", dst, err)
	}
	f.forget(dst)
	if !entry.empty() {
		f.warn(f.setEntry(ctx, dst, true, entry))
	}
	if err := f.store.Delete(ctx, append(hidden, srcPrefix)); err != nil {
		return pathError("move", src, err)
	}
	f.forget(src)
	f.warn(f.dropEntry(ctx, src, true))
	return nil
}

// LongestBelow returns the longest key below a folder, relative to the
// folder's prefix ("" for an empty folder), so that a folder COPY can
// refuse a destination under which some copy's key would be longer than
// S3 allows before anything is copied.
func (f *FS) LongestBelow(ctx context.Context, name string) (string, error) {
	prefix := f.dirPrefix(Clean(name))
	longest := ""
	for e, err := range f.store.List(ctx, s3vfs.ListOptions{Prefix: prefix}) {
		if err != nil {
			return "", pathError("copy", name, err)
		}
		if e.Object != nil && len(e.Object.Key)-len(prefix) > len(longest) {
			longest = strings.TrimPrefix(e.Object.Key, prefix)
		}
	}
	return longest, nil
}

// TreeSize adds up the sizes of everything below a folder (one LIST page
// per 1,000 keys), for quota checks before a folder COPY.
func (f *FS) TreeSize(ctx context.Context, name string) (int64, error) {
	var total int64
	for e, err := range f.store.List(ctx, s3vfs.ListOptions{Prefix: f.dirPrefix(Clean(name))}) {
		if err != nil {
			return 0, pathError("copy", name, err)
		}
		if e.Object != nil && !strings.Contains(e.Object.Key, "/"+reservedPrefix) {
			total += e.Object.Size
		}
	}
	return total, nil
}
