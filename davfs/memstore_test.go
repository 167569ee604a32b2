package davfs

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"io"
	"iter"
	"maps"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/davgw/davgw/s3vfs"
)

// memStore is an in-memory Store with what davfs relies on of S3: ETags
// (the MD5 of the bytes), content types and user metadata, conditional
// writes (If-Match, If-None-Match: *, a copy's source ETag), ranged reads,
// listings by prefix, delimiter, start-after, page size and limit, copies
// and deletes. It counts its calls by S3 operation, and fail makes an
// operation on a key return an error (an s3vfs sentinel, as s3vfs would).
type memStore struct {
	mu     sync.Mutex
	objs   map[string][]byte // bodies by key; nil = an empty object
	attrs  map[string]memAttrs
	calls  map[string]int // by S3 operation: "HeadObject", "ListObjectsV2"...
	faults map[memFault]error
	puts   int // successful PutObject calls (and committed uploads)
}

type memAttrs struct {
	contentType string
	meta        map[string]string
}

// memFault names an S3 operation on a key ("" = any key; for
// ListObjectsV2 the key is the listing's prefix).
type memFault struct{ op, key string }

func newMem() *memStore {
	return &memStore{objs: map[string][]byte{}, attrs: map[string]memAttrs{}, calls: map[string]int{}, faults: map[memFault]error{}}
}

var _ Store = (*memStore)(nil)

func etagOf(b []byte) string { h := md5.Sum(b); return `"` + hex.EncodeToString(h[:]) + `"` }

// fail makes op on key ("" = every key) return err from now on.
func (s *memStore) fail(op, key string, err error) {
	s.mu.Lock()
	s.faults[memFault{op, key}] = err
	s.mu.Unlock()
}

// called counts one call of op on key and returns its injected failure.
// The caller holds s.mu.
func (s *memStore) called(op, key string) error {
	s.calls[op]++
	if err, ok := s.faults[memFault{op, key}]; ok {
		return err
	}
	return s.faults[memFault{op, ""}]
}

// call is the start of every S3 call: it fails for a cancelled ctx or an
// injected fault, else it holds s.mu until unlock.
func (s *memStore) call(ctx context.Context, op, key string) (unlock func(), err error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	if err := s.called(op, key); err != nil {
		s.mu.Unlock()
		return nil, err
	}
	return s.mu.Unlock, nil
}

// counts returns the calls so far and starts counting again.
func (s *memStore) counts() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.calls
	s.calls = map[string]int{}
	return c
}

func (s *memStore) info(k string) s3vfs.ObjectInfo {
	b := s.objs[k]
	a := s.attrs[k]
	return s3vfs.ObjectInfo{Key: k, Size: int64(len(b)), ETag: etagOf(b), LastModified: time.Unix(1000, 0), ContentType: a.contentType, Metadata: a.meta, HasMetadata: true}
}

// listed is info as a listing shows it: no content type or metadata.
func (s *memStore) listed(k string) s3vfs.ObjectInfo {
	inf := s.info(k)
	inf.ContentType, inf.Metadata, inf.HasMetadata = "", nil, false
	return inf
}

func (s *memStore) Head(ctx context.Context, k string) (s3vfs.ObjectInfo, error) {
	unlock, err := s.call(ctx, "HeadObject", k)
	if err != nil {
		return s3vfs.ObjectInfo{}, err
	}
	defer unlock()
	if _, ok := s.objs[k]; !ok {
		return s3vfs.ObjectInfo{}, s3vfs.ErrNotFound
	}
	return s.info(k), nil
}

func (s *memStore) GetSmall(ctx context.Context, k string, limit int64) ([]byte, s3vfs.ObjectInfo, error) {
	unlock, err := s.call(ctx, "GetObject", k)
	if err != nil {
		return nil, s3vfs.ObjectInfo{}, err
	}
	defer unlock()
	b, ok := s.objs[k]
	if !ok {
		return nil, s3vfs.ObjectInfo{}, s3vfs.ErrNotFound
	}
	if int64(len(b)) > limit {
		return nil, s3vfs.ObjectInfo{}, s3vfs.ErrTooLarge
	}
	return append([]byte(nil), b...), s.info(k), nil
}

// Get answers a range "bytes=A-..." with a reader positioned at A, as
// s3vfs's is (the end is only a hint).
func (s *memStore) Get(ctx context.Context, k, rng string) (s3vfs.ObjectInfo, ObjectReader, error) {
	unlock, err := s.call(ctx, "GetObject", k)
	if err != nil {
		return s3vfs.ObjectInfo{}, nil, err
	}
	defer unlock()
	b, ok := s.objs[k]
	if !ok {
		return s3vfs.ObjectInfo{}, nil, s3vfs.ErrNotFound
	}
	r := &memReader{s: s, key: k, r: bytes.NewReader(append([]byte(nil), b...))}
	if rng != "" {
		a, _, _ := strings.Cut(strings.TrimPrefix(rng, "bytes="), "-")
		start, err := strconv.ParseInt(a, 10, 64)
		if err != nil || start >= int64(len(b)) {
			return s3vfs.ObjectInfo{}, nil, s3vfs.ErrInvalidRange
		}
		_, _ = r.r.Seek(start, io.SeekStart)
	}
	return s.info(k), r, nil
}

func (s *memStore) NewReader(_ context.Context, k string, _ s3vfs.ObjectInfo) ObjectReader {
	return &memReader{s: s, key: k}
}

// memReader reads a copy of the object's bytes taken when its body opens.
type memReader struct {
	s   *memStore
	key string
	r   *bytes.Reader
	pos int64
}

func (r *memReader) Open() error {
	if r.r != nil {
		return nil
	}
	r.s.mu.Lock()
	defer r.s.mu.Unlock()
	if err := r.s.called("GetObject", r.key); err != nil {
		return err
	}
	b, ok := r.s.objs[r.key]
	if !ok {
		return s3vfs.ErrNotFound
	}
	r.r = bytes.NewReader(append([]byte(nil), b...))
	_, _ = r.r.Seek(r.pos, io.SeekStart)
	return nil
}

func (r *memReader) Read(p []byte) (int, error) {
	if err := r.Open(); err != nil {
		return 0, err
	}
	return r.r.Read(p)
}

func (r *memReader) Seek(off int64, whence int) (int64, error) {
	if r.r == nil {
		if whence != io.SeekStart {
			if err := r.Open(); err != nil {
				return 0, err
			}
			return r.r.Seek(off, whence)
		}
		r.pos = off
		return off, nil
	}
	return r.r.Seek(off, whence)
}

func (r *memReader) SetWindows([][2]int64) {}
func (r *memReader) Close() error          { return nil }

func (s *memStore) NewWriter(ctx context.Context, k string, o s3vfs.WriteOptions) ObjectWriter {
	return &memWriter{s: s, ctx: ctx, key: k, opts: o}
}

// memWriter buffers an upload; Commit is one PutObject with the writer's
// options, refused (ErrIncomplete) when the bytes differ from the
// declared size.
type memWriter struct {
	s    *memStore
	ctx  context.Context
	key  string
	opts s3vfs.WriteOptions
	buf  bytes.Buffer
}

func (w *memWriter) Write(p []byte) (int, error)         { return w.buf.Write(p) }
func (w *memWriter) ReadFrom(r io.Reader) (int64, error) { return w.buf.ReadFrom(r) }
func (w *memWriter) Abort() error                        { w.buf.Reset(); return nil }
func (w *memWriter) Commit() (s3vfs.ObjectInfo, error) {
	if w.opts.Size >= 0 && int64(w.buf.Len()) != w.opts.Size {
		return s3vfs.ObjectInfo{}, s3vfs.ErrIncomplete
	}
	return w.s.PutObject(w.ctx, w.key, w.buf.Bytes(), w.opts)
}

func (s *memStore) PutObject(ctx context.Context, k string, body []byte, o s3vfs.WriteOptions) (s3vfs.ObjectInfo, error) {
	unlock, err := s.call(ctx, "PutObject", k)
	if err != nil {
		return s3vfs.ObjectInfo{}, err
	}
	defer unlock()
	_, ok := s.objs[k]
	if (o.IfNoneMatch == "*" && ok) || (o.IfMatch != "" && (!ok || s.info(k).ETag != o.IfMatch)) {
		return s3vfs.ObjectInfo{}, s3vfs.ErrPreconditionFailed
	}
	s.objs[k] = append([]byte(nil), body...)
	s.attrs[k] = memAttrs{contentType: o.ContentType, meta: maps.Clone(o.Metadata)}
	s.puts++
	return s.info(k), nil
}

func (s *memStore) Copy(ctx context.Context, src string, _ s3vfs.ObjectInfo, dst string, o s3vfs.CopyOptions) (s3vfs.ObjectInfo, error) {
	unlock, err := s.call(ctx, "CopyObject", dst)
	if err != nil {
		return s3vfs.ObjectInfo{}, err
	}
	defer unlock()
	b, ok := s.objs[src]
	switch {
	case !ok:
		return s3vfs.ObjectInfo{}, s3vfs.ErrNotFound
	case o.SourceETag != "" && s.info(src).ETag != o.SourceETag:
		return s3vfs.ObjectInfo{}, s3vfs.ErrPreconditionFailed
	}
	a := s.attrs[src]
	if o.ReplaceMetadata {
		a = memAttrs{contentType: o.ContentType, meta: maps.Clone(o.Metadata)}
	}
	s.objs[dst] = append([]byte(nil), b...)
	s.attrs[dst] = a
	return s.info(dst), nil
}

// Delete is one DeleteObjects call; missing keys are no error, as in S3.
func (s *memStore) Delete(ctx context.Context, keys []string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, k := range keys {
		if err := s.called("DeleteObjects", k); err != nil {
			return err
		}
		s.calls["DeleteObjects"]--
	}
	s.calls["DeleteObjects"]++
	for _, k := range keys {
		delete(s.objs, k)
		delete(s.attrs, k)
	}
	return nil
}

func (s *memStore) DeletePrefix(ctx context.Context, p string) error {
	var keys []string
	for e, err := range s.List(ctx, s3vfs.ListOptions{Prefix: p}) {
		if err != nil {
			return err
		}
		keys = append(keys, e.Object.Key)
	}
	if len(keys) == 0 {
		return nil
	}
	return s.Delete(ctx, keys)
}

// pages is a listing as S3 answers it, one call per page.
func (s *memStore) pages(o s3vfs.ListOptions) ([]s3vfs.Page, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var keys []string
	for k := range s.objs {
		if strings.HasPrefix(k, o.Prefix) && k > o.StartAfter {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	var all []s3vfs.Entry
	seen := map[string]bool{}
	for _, k := range keys {
		rest := k[len(o.Prefix):]
		if i := strings.Index(rest, o.Delimiter); o.Delimiter != "" && i >= 0 {
			p := o.Prefix + rest[:i+len(o.Delimiter)]
			if !seen[p] {
				seen[p] = true
				all = append(all, s3vfs.Entry{Prefix: p})
			}
			continue
		}
		inf := s.listed(k)
		all = append(all, s3vfs.Entry{Object: &inf})
	}
	if o.Limit > 0 && len(all) > o.Limit {
		all = all[:o.Limit]
	}
	size := int(o.MaxKeys)
	if size <= 0 {
		size = 1000
	}
	var out []s3vfs.Page
	for {
		if err := s.called("ListObjectsV2", o.Prefix); err != nil {
			return out, err
		}
		n := min(size, len(all))
		out = append(out, s3vfs.Page{Entries: all[:n:n], Last: n == len(all)})
		all = all[n:]
		if len(all) == 0 {
			return out, nil
		}
	}
}

// List takes its snapshot when called (what S3 answered), like ListPages.
func (s *memStore) List(ctx context.Context, o s3vfs.ListOptions) iter.Seq2[s3vfs.Entry, error] {
	pages := s.ListPages(ctx, o)
	return func(y func(s3vfs.Entry, error) bool) {
		for p, err := range pages {
			if err != nil {
				y(s3vfs.Entry{}, err)
				return
			}
			for _, e := range p.Entries {
				if !y(e, nil) {
					return
				}
			}
		}
	}
}

func (s *memStore) ListPages(ctx context.Context, o s3vfs.ListOptions) iter.Seq2[s3vfs.Page, error] {
	ps, err := s.pages(o)
	return func(y func(s3vfs.Page, error) bool) {
		if cerr := ctx.Err(); cerr != nil {
			y(s3vfs.Page{}, cerr)
			return
		}
		for _, p := range ps {
			if !y(p, nil) {
				return
			}
		}
		if err != nil {
			y(s3vfs.Page{}, err)
		}
	}
}

// index returns the entries of the folder index stored at key.
func (s *memStore) index(t *testing.T, key string) map[string]metaEntry {
	t.Helper()
	s.mu.Lock()
	b, ok := s.objs[key]
	s.mu.Unlock()
	if !ok {
		return nil
	}
	var idx folderIndex
	if err := json.Unmarshal(b, &idx); err != nil {
		t.Fatal(err)
	}
	return idx.Entries
}

func putIndex(s *memStore, key string, entries map[string]metaEntry) {
	body, _ := json.Marshal(folderIndex{Version: indexVersion, Entries: entries})
	s.objs[key] = body
}
