package davfs

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path"
	"time"

	"golang.org/x/net/webdav"

	"github.com/davgw/davgw/s3vfs"
)

var (
	_ os.FileInfo            = (*FileInfo)(nil)
	_ webdav.ETager          = (*FileInfo)(nil)
	_ webdav.ContentTyper    = (*FileInfo)(nil)
	_ webdav.File            = (*File)(nil)
	_ webdav.DeadPropsHolder = (*File)(nil)
)

// FileInfo describes a file (an object) or a folder (a prefix). It carries
// the S3 ETag and content type so that PROPFIND needs no extra request.
type FileInfo struct {
	name        string
	size        int64
	modTime     time.Time
	dir         bool
	etag        string
	contentType string
	key         string // object key, or the folder's prefix
	meta        map[string]string
	hasMeta     bool // meta and contentType were read with HEAD
	hasMarker   bool // a folder with a marker object
	direct      bool // learned by Stat of this very name, not from a listing
	metaLoaded  bool // the index entry (kept time, dead properties) was applied
	keptUnknown bool // the folder's index could not be read: ModTime is S3's, maybe not the kept one
	props       string
}

func fileInfoFromObject(name string, o s3vfs.ObjectInfo) *FileInfo {
	// The "mtime" metadata written at upload is not read back: listings
	// cannot see it, and HEAD/GET must show what listings show (the
	// folder's index). It stays on the object as a repair source.
	return &FileInfo{
		name:        name,
		size:        o.Size,
		modTime:     modTimeOrNow(o.LastModified),
		etag:        o.ETag,
		contentType: o.ContentType,
		key:         o.Key,
		meta:        o.Metadata,
		hasMeta:     o.HasMetadata,
	}
}

// Name is the base name.
func (fi *FileInfo) Name() string { return fi.name }

// Size is the object size (0 for folders).
func (fi *FileInfo) Size() int64 { return fi.size }

// Mode reports a folder or a regular file.
func (fi *FileInfo) Mode() os.FileMode {
	if fi.dir {
		return os.ModeDir | 0o755
	}
	return 0o644
}

// ModTime is the kept modification time from the folder's index when there
// is one, else S3's LastModified (the marker's for folders).
func (fi *FileInfo) ModTime() time.Time { return fi.modTime }

// KeptTimeUnknown reports a file read while its folder's index could not
// be read (OpenRead): ModTime is then S3's, which may not be the time a
// client kept, so it should not be shown as the file's time.
func (fi *FileInfo) KeptTimeUnknown() bool { return fi.keptUnknown }

// IsDir reports whether this is a folder.
func (fi *FileInfo) IsDir() bool { return fi.dir }

// Sys returns nil.
func (fi *FileInfo) Sys() any { return nil }

// Key is the object key of a file, or the key prefix of a folder.
func (fi *FileInfo) Key() string { return fi.key }

// ETag returns the S3 ETag (with its quotes), the same value that PUT, GET
// and HEAD answer.
func (fi *FileInfo) ETag(context.Context) (string, error) {
	if fi.etag == "" {
		return "", webdav.ErrNotImplemented
	}
	return fi.etag, nil
}

// ContentType returns the stored content type when it is known, else a
// guess from the extension; it never reads the object.
func (fi *FileInfo) ContentType(context.Context) (string, error) {
	if fi.hasMeta && fi.contentType != "" {
		return fi.contentType, nil
	}
	return contentTypeFor(fi.name), nil
}

// Object returns the S3 view of a file's info.
func (fi *FileInfo) Object() s3vfs.ObjectInfo {
	return s3vfs.ObjectInfo{
		Key: fi.key, Size: fi.size, ETag: fi.etag, LastModified: fi.modTime,
		ContentType: fi.contentType, Metadata: fi.meta, HasMetadata: fi.hasMeta,
	}
}

// File is an open file or folder. A file's bytes are read lazily with
// ranged GETs; writes are refused (uploads go through FS.Create and its
// Writer).
type File struct {
	fs   *FS
	ctx  context.Context // the request's: the one documented exception to ctx-first
	path string
	info *FileInfo

	reader ObjectReader
	dirPos int
}

// Close releases the handle.
func (fl *File) Close() error {
	if fl.reader != nil {
		return fl.reader.Close()
	}
	return nil
}

// Read reads from the object (lazily opened with a ranged GET).
func (fl *File) Read(p []byte) (int, error) {
	if fl.info.dir {
		return 0, &fs.PathError{Op: "read", Path: fl.path, Err: ErrIsDir}
	}
	if fl.reader == nil {
		fl.reader = fl.fs.store.NewReader(fl.ctx, fl.info.key, fl.info.Object())
	}
	n, err := fl.reader.Read(p)
	if err != nil && !errors.Is(err, io.EOF) {
		return n, pathError("read", fl.path, err)
	}
	return n, err
}

// Seek moves the read position; Seek(0, io.SeekEnd) costs no request.
func (fl *File) Seek(offset int64, whence int) (int64, error) {
	if fl.info.dir {
		return 0, &fs.PathError{Op: "seek", Path: fl.path, Err: fs.ErrInvalid}
	}
	if fl.reader == nil {
		fl.reader = fl.fs.store.NewReader(fl.ctx, fl.info.key, fl.info.Object())
	}
	return fl.reader.Seek(offset, whence)
}

// Reader returns the lazy S3 reader of a read handle, so that the HTTP edge
// can give it a range hint.
func (fl *File) Reader() ObjectReader {
	if fl.reader == nil && fl.info != nil && !fl.info.dir {
		fl.reader = fl.fs.store.NewReader(fl.ctx, fl.info.key, fl.info.Object())
	}
	return fl.reader
}

// Readdir lists a folder (count <= 0: everything).
func (fl *File) Readdir(count int) ([]os.FileInfo, error) {
	if fl.info == nil || !fl.info.dir {
		return nil, &fs.PathError{Op: "readdir", Path: fl.path, Err: ErrNotDir}
	}
	list, err := fl.fs.ReadDir(fl.ctx, fl.path)
	if err != nil {
		return nil, err
	}
	rest := list[min(fl.dirPos, len(list)):]
	if count > 0 {
		if len(rest) == 0 {
			return nil, io.EOF
		}
		rest = rest[:min(count, len(rest))]
	}
	fl.dirPos += len(rest)
	out := make([]os.FileInfo, len(rest))
	for i, fi := range rest {
		out[i] = fi
	}
	return out, nil
}

// Stat returns the handle's FileInfo.
func (fl *File) Stat() (os.FileInfo, error) {
	return fl.info, nil
}

// Write is refused: uploads go through FS.Create.
func (fl *File) Write([]byte) (int, error) {
	return 0, &fs.PathError{Op: "write", Path: fl.path, Err: fs.ErrPermission}
}

// FolderInfo is the FileInfo of a folder that no listing of this FS
// describes (a bucket in the gateway's list of buckets), modified at
// modTime (zero = unknown: now, as for folders without a marker).
func FolderInfo(name string, modTime time.Time) *FileInfo {
	return &FileInfo{name: path.Base(Clean(name)), dir: true, modTime: modTimeOrNow(modTime), metaLoaded: true}
}
