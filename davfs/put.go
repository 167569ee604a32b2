package davfs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"sync"
	"time"

	"github.com/davgw/davgw/s3vfs"
)

// PutOptions describe a new file's upload.
type PutOptions struct {
	// Size is the declared length (Content-Length or
	// X-Expected-Entity-Length); -1 when unknown. The file is committed only
	// with exactly that many bytes.
	Size int64
	// ContentType to store; "" = guessed from the extension.
	ContentType string
	// Metadata to store with the object (user metadata).
	Metadata map[string]string
	// MTime, when set, is kept as the file's modification time (X-OC-Mtime):
	// in the object's metadata and in the folder's index, so that listings
	// show it.
	MTime time.Time
	// IfMatch / IfNoneMatch are passed to S3 as conditional-write headers,
	// closing the race between the caller's precondition check and the write.
	IfMatch     string
	IfNoneMatch string
	// Shares are the memory shares the upload's part buffers count
	// against (s3vfs.WriteOptions.Shares).
	Shares []*s3vfs.MemoryShare
}

// Writer streams a file's body into S3. It commits only when the whole body
// arrived; anything else aborts and leaves the previous version untouched.
type Writer struct {
	fs    *FS
	ctx   context.Context
	name  string
	w     ObjectWriter
	mtime time.Time
	prev  *FileInfo // the version being replaced, if any

	mtimeKept bool
	dcStart   uint64 // DirCache clock when the upload began

	mu      sync.Mutex
	n       int64
	readErr error
	done    bool
	info    *FileInfo
	err     error
}

// CreateTarget checks that a file can be written at name: its parent is a
// folder (ErrNotDir) and name is not a folder (ErrIsDir). It returns the
// file it would replace, or nil. Create and the empty file of a LOCK check
// the same; a caller that must decide more first (locks, ETags, quota)
// calls it before.
func (f *FS) CreateTarget(ctx context.Context, name string) (*FileInfo, error) {
	name = Clean(name)
	if name == "/" {
		return nil, &fs.PathError{Op: "create", Path: name, Err: ErrIsDir}
	}
	if _, err := f.StatDir(ctx, path.Dir(name)); err != nil {
		return nil, err
	}
	fi, err := f.stat(ctx, name)
	switch {
	case err == nil && fi.dir:
		return nil, &fs.PathError{Op: "create", Path: name, Err: ErrIsDir}
	case errors.Is(err, fs.ErrNotExist):
		return nil, nil
	}
	return fi, err
}

// Create checks that name can be written (see CreateTarget) and returns a
// Writer for it. No request is sent to S3 for the body until the first
// part is full.
func (f *FS) Create(ctx context.Context, name string, opts PutOptions) (*Writer, error) {
	name = Clean(name)
	if f.Reserved(name) {
		return nil, &fs.PathError{Op: "create", Path: name, Err: fs.ErrPermission}
	}
	fi, err := f.CreateTarget(ctx, name)
	if err != nil {
		return nil, err
	}
	f.relistBusyFolder(path.Dir(name))
	ct := opts.ContentType
	if ct == "" {
		ct = contentTypeFor(name)
	}
	size := opts.Size
	if size < -1 {
		size = -1
	}
	meta := opts.Metadata
	if !opts.MTime.IsZero() {
		meta = make(map[string]string, len(opts.Metadata)+1)
		for k, v := range opts.Metadata {
			meta[k] = v
		}
		meta[metaKey] = formatMTime(opts.MTime)
	}
	w := f.store.NewWriter(ctx, f.key(name), s3vfs.WriteOptions{
		Size:        size,
		ContentType: ct,
		Metadata:    meta,
		IfMatch:     opts.IfMatch,
		IfNoneMatch: opts.IfNoneMatch,
		Shares:      opts.Shares,
	})
	return &Writer{fs: f, ctx: ctx, name: name, w: w, mtime: opts.MTime, prev: fi, dcStart: f.opts.DirCache.begin()}, nil
}

// Write appends p to the upload.
func (w *Writer) Write(p []byte) (int, error) {
	n, err := w.w.Write(p)
	w.mu.Lock()
	w.n += int64(n)
	if err != nil && w.readErr == nil {
		w.readErr = err
	}
	w.mu.Unlock()
	return n, err
}

// ReadFrom streams r into the upload. A read error (the client went away,
// a short chunked body) is remembered: Commit then aborts.
func (w *Writer) ReadFrom(r io.Reader) (int64, error) {
	n, err := w.w.ReadFrom(r)
	w.mu.Lock()
	w.n += n
	if err != nil && w.readErr == nil {
		w.readErr = err
	}
	w.mu.Unlock()
	return n, err
}

// Commit completes the upload if the body arrived whole, else aborts it. It
// is idempotent: later calls return the first result.
func (w *Writer) Commit() (*FileInfo, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.done {
		return w.info, w.err
	}
	w.done = true
	if w.readErr != nil {
		w.fs.warn(w.w.Abort()) // logged, never the upload's status
		w.err = pathError("write", w.name, errors.Join(s3vfs.ErrIncomplete, w.readErr))
		return nil, w.err
	}
	obj, err := w.w.Commit()
	if err != nil {
		w.fs.forget(w.name) // a failed completion may still have landed
	} else {
		w.fs.forgetLocal(w.name)
	}
	if err != nil {
		w.err = pathError("write", w.name, err)
		return nil, w.err
	}
	fi := fileInfoFromObject(path.Base(w.name), obj)
	fi.direct = true
	w.info = fi
	w.fs.remember(w.name, fi)
	if !w.mtime.IsZero() {
		// The object is stored; the index entry is what listings (and so
		// GET and HEAD) show. A failed entry write loses only the kept time,
		// so it is not the upload's failure; MTimeKept tells the caller.
		prevETag := ""
		if w.prev != nil {
			prevETag = w.prev.etag
		}
		p := pendingEntry{e: metaEntry{ETag: fi.etag, MTime: w.mtime.UnixNano()}, prevETag: prevETag, key: fi.key}
		parent, entry := entryName(w.name, false)
		var err error
		if !w.fs.opts.Batcher.add(w.fs, parent, entry, p) { // else written with the next batch
			err = w.fs.updateIndex(w.ctx, parent, func(m map[string]metaEntry) bool {
				cur, ok := m[entry]
				e := p.over(cur, ok) // dead properties stay with the resource
				if ok && cur == e {
					return false
				}
				m[entry] = e
				return true
			})
		}
		if err == nil {
			fi.applyMeta(p.e, true)
			w.mtimeKept = true
		} else {
			w.fs.warn(fmt.Errorf("keeping the modification time of %s: %w", w.name, err))
		}
	}
	pp, base := w.fs.parentPrefix(w.name)
	w.fs.opts.DirCache.wroteFile(pp, base, fi, w.dcStart)
	return fi, nil
}

// MTimeKept reports whether the modification time asked for at Create was
// kept (after a successful Commit): the answer to X-OC-Mtime.
func (w *Writer) MTimeKept() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.mtimeKept
}

// Abort drops the upload; nothing is written.
func (w *Writer) Abort() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.done {
		return nil
	}
	w.done = true
	w.err = pathError("write", w.name, s3vfs.ErrIncomplete)
	return w.w.Abort()
}

// Info describes the file: what was committed, or the name and bytes so far.
func (w *Writer) Info() os.FileInfo {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.info != nil {
		return w.info
	}
	return &FileInfo{name: path.Base(w.name), size: w.n, modTime: time.Now().UTC()}
}
