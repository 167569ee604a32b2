package davfs

import (
	"context"
	"io"
	"iter"

	"github.com/davgw/davgw/s3vfs"
)

// Store is what davfs needs of S3: the calls of *s3vfs.Store, with reads and
// uploads behind ObjectReader and ObjectWriter so that an in-memory fake can
// stand in for S3. S3Store adapts an *s3vfs.Store. Errors wrap s3vfs's
// sentinels (s3vfs.ErrNotFound, s3vfs.ErrPreconditionFailed...).
type Store interface {
	Head(ctx context.Context, key string) (s3vfs.ObjectInfo, error)
	List(ctx context.Context, opts s3vfs.ListOptions) iter.Seq2[s3vfs.Entry, error]
	ListPages(ctx context.Context, opts s3vfs.ListOptions) iter.Seq2[s3vfs.Page, error]
	// NewReader returns a lazy reader of key; it makes no network call.
	NewReader(ctx context.Context, key string, info s3vfs.ObjectInfo) ObjectReader
	// Get reads rng of key ("" = all of it) with the body already open; the
	// reader is nil when err is not.
	Get(ctx context.Context, key, rng string) (s3vfs.ObjectInfo, ObjectReader, error)
	// NewWriter starts an upload of key; it makes no network call.
	NewWriter(ctx context.Context, key string, opts s3vfs.WriteOptions) ObjectWriter
	PutObject(ctx context.Context, key string, body []byte, opts s3vfs.WriteOptions) (s3vfs.ObjectInfo, error)
	Copy(ctx context.Context, srcKey string, src s3vfs.ObjectInfo, dstKey string, opts s3vfs.CopyOptions) (s3vfs.ObjectInfo, error)
	Delete(ctx context.Context, keys []string) error
	DeletePrefix(ctx context.Context, prefix string) error
	GetSmall(ctx context.Context, key string, limit int64) ([]byte, s3vfs.ObjectInfo, error)
}

// ObjectReader reads one object's bytes (*s3vfs.Reader): Read and Seek at
// the reader's position, SetWindows hints the ranges a client asked for,
// Open opens the body at the position now, so that a failure is known
// before an answer starts.
type ObjectReader interface {
	io.ReadSeekCloser
	SetWindows(ws [][2]int64)
	Open() error
}

// ObjectWriter streams one upload (*s3vfs.Writer): Commit stores the object
// only if the body arrived whole, Abort drops it.
type ObjectWriter interface {
	io.Writer
	io.ReaderFrom
	Commit() (s3vfs.ObjectInfo, error)
	Abort() error
}

var (
	_ Store        = S3Store{}
	_ ObjectReader = (*s3vfs.Reader)(nil)
	_ ObjectWriter = (*s3vfs.Writer)(nil)
)

// S3Store is the Store of an *s3vfs.Store.
type S3Store struct {
	*s3vfs.Store
}

// NewReader is s3vfs.Store.NewReader.
func (s S3Store) NewReader(ctx context.Context, key string, info s3vfs.ObjectInfo) ObjectReader {
	return s.Store.NewReader(ctx, key, info)
}

// Get is s3vfs.Store.Get, with a nil ObjectReader on failure (never a nil
// *s3vfs.Reader inside a non-nil interface).
func (s S3Store) Get(ctx context.Context, key, rng string) (s3vfs.ObjectInfo, ObjectReader, error) {
	info, r, err := s.Store.Get(ctx, key, rng)
	if r == nil {
		return info, nil, err
	}
	return info, r, err
}

// NewWriter is s3vfs.Store.NewWriter.
func (s S3Store) NewWriter(ctx context.Context, key string, opts s3vfs.WriteOptions) ObjectWriter {
	return s.Store.NewWriter(ctx, key, opts)
}
