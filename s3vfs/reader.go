package s3vfs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// Reader reads one object lazily: it makes no network call until Read, and
// then streams a GetObject from the current position. Each GetObject
// carries If-Match with the ETag the Reader was made with, so an object
// replaced meanwhile gives ErrPreconditionFailed instead of mixed bytes.
// A body that S3 or the network cuts mid-stream is resumed from the
// current position (see resume); a Read error is never a short clean end.
// A Reader is not safe for concurrent use.
type Reader struct {
	s    *Store
	ctx  context.Context
	key  string
	info ObjectInfo

	pos     int64
	body    io.ReadCloser
	bodyPos int64 // where the open body stands; Read drops it if pos moved
	closed  bool
	cut     error // why the last body failed mid-stream: the next open resumes
	cuts    int   // bodies resumed so far (at most maxCuts)

	windows [][2]int64 // inclusive byte ranges the caller will read
}

var _ io.ReadSeekCloser = (*Reader)(nil)

// NewReader returns a Reader of key as described by info (from Head or a
// listing: info.Size and, when known, info.ETag are used). It makes no
// network call.
func (s *Store) NewReader(ctx context.Context, key string, info ObjectInfo) *Reader {
	return &Reader{s: s, ctx: ctx, key: key, info: info}
}

// SetWindow hints that the caller will read bytes start..end (inclusive):
// the next GetObject opened at a position inside the window asks for
// bytes=pos-end, so a Range GET does not download past its end. Reading
// past end opens a new request. SetWindow does not move the position.
func (r *Reader) SetWindow(start, end int64) {
	r.SetWindows([][2]int64{{start, end}})
}

// SetWindows is SetWindow for several ranges (a multi-range GET): a
// GetObject opened inside one of them asks for the rest of that one only,
// so no request reads past the bytes it is for. Invalid ranges are dropped.
func (r *Reader) SetWindows(ws [][2]int64) {
	r.windows = r.windows[:0]
	for _, w := range ws {
		if w[0] >= 0 && w[1] >= w[0] {
			r.windows = append(r.windows, w)
		}
	}
}

// Read reads from the current position. At or past info.Size it returns
// io.EOF without a network call.
func (r *Reader) Read(p []byte) (int, error) {
	if r.closed {
		return 0, fmt.Errorf("s3vfs: reader for %q: %w", r.key, fs.ErrClosed)
	}
	if r.pos >= r.info.Size {
		return 0, io.EOF
	}
	if len(p) == 0 {
		return 0, nil
	}
	if r.body != nil && r.bodyPos != r.pos {
		r.closeBody()
	}
	fresh := false
	for {
		if r.body == nil {
			var err error
			if cut := r.cut; cut != nil {
				r.cut = nil
				err = r.resume(cut)
			} else {
				err = r.open()
			}
			if err != nil {
				return 0, err
			}
			fresh = true
		}
		n, err := r.body.Read(p)
		r.pos += int64(n)
		r.bodyPos = r.pos
		if err == nil {
			return n, nil
		}
		r.closeBody()
		if !errors.Is(err, io.EOF) {
			r.cut = fmt.Errorf("get %q: %w", r.key, Classify(err))
			if n > 0 {
				return n, nil // the next Read resumes, or fails
			}
			continue
		}
		switch {
		case r.pos >= r.info.Size:
			if n > 0 {
				return n, nil
			}
			return 0, io.EOF
		case n > 0:
			return n, nil // the window ended: the next Read opens the rest
		case fresh:
			return 0, fmt.Errorf("get %q: %w: body ended at %d of %d bytes", r.key, ErrUnavailable, r.pos, r.info.Size)
		}
	}
}

// resumeAttempts bounds the ranged re-reads after a body cut mid-stream;
// resumeBackoff is the wait before the first (doubled for each next).
// maxCuts bounds the cuts one Reader resumes from.
const (
	resumeAttempts = 3
	resumeBackoff  = 100 * time.Millisecond
	maxCuts        = 10
)

// resume re-opens the body at the current position after it failed
// mid-stream with cause (S3 or the network cut it): a ranged GetObject
// with If-Match on the ETag the Reader was made with, so the bytes that
// follow are of the same object, at most resumeAttempts times with a
// short backoff. It returns the error to give the caller when the read
// cannot go on: the object changed (ErrPreconditionFailed), it is gone,
// the retries ran out (cause), or the caller's context ended. Never a
// clean end: a short body must show as a failed transfer.
func (r *Reader) resume(cause error) error {
	if !errors.Is(cause, ErrUnavailable) || r.ctx.Err() != nil || r.cuts >= maxCuts {
		return cause // a cancelled client, not a passing failure, or too many cuts
	}
	r.cuts++
	wait := resumeBackoff
	for attempt := 0; attempt < resumeAttempts; attempt++ {
		select {
		case <-r.ctx.Done():
			return fmt.Errorf("%w (after %w)", r.ctx.Err(), cause)
		case <-time.After(wait):
		}
		wait *= 2
		err := r.open()
		switch {
		case err == nil:
			return nil
		case !errors.Is(err, ErrUnavailable):
			// Replaced (412) or deleted since: the bytes sent so far are of
			// another version; the transfer must fail.
			return fmt.Errorf("%w (resuming after %w)", err, cause)
		}
		cause = err
	}
	return fmt.Errorf("get %q: %w: gave up resuming at byte %d of %d", r.key, cause, r.pos, r.info.Size)
}

// Open starts the GetObject at the current position now rather than at the
// first Read, so that a caller can learn of a failure (the object changed,
// S3 throttling) before it promises anything to its own client. At or past
// the end it does nothing.
func (r *Reader) Open() error {
	if r.closed {
		return fmt.Errorf("s3vfs: reader for %q: %w", r.key, fs.ErrClosed)
	}
	if r.body != nil && r.bodyPos == r.pos {
		return nil
	}
	r.closeBody()
	if r.pos >= r.info.Size {
		return nil
	}
	return r.open()
}

// open starts a GetObject at r.pos.
func (r *Reader) open() error {
	rng := fmt.Sprintf("bytes=%d-", r.pos)
	for _, w := range r.windows {
		if r.pos >= w[0] && r.pos <= w[1] {
			rng = fmt.Sprintf("bytes=%d-%d", r.pos, w[1])
			break
		}
	}
	out, err := r.s.client.GetObject(r.ctx, &s3.GetObjectInput{
		Bucket:  &r.s.bucket,
		Key:     &r.key,
		Range:   &rng,
		IfMatch: optString(r.info.ETag),
	})
	if err != nil {
		return opError("get", r.key, err)
	}
	r.body = out.Body
	r.bodyPos = r.pos
	return nil
}

// Seek sets the position for the next Read. It makes no network call; an
// open body is dropped by the next Read only if the position then differs
// from the body's (so http.ServeContent's Seek(0, SeekEnd) and back keeps
// it). io.SeekEnd counts from info.Size.
func (r *Reader) Seek(offset int64, whence int) (int64, error) {
	if r.closed {
		return 0, fmt.Errorf("s3vfs: reader for %q: %w", r.key, fs.ErrClosed)
	}
	var pos int64
	switch whence {
	case io.SeekStart:
		pos = offset
	case io.SeekCurrent:
		pos = r.pos + offset
	case io.SeekEnd:
		pos = r.info.Size + offset
	default:
		return 0, fmt.Errorf("s3vfs: reader for %q: invalid whence %d", r.key, whence)
	}
	if pos < 0 {
		return 0, fmt.Errorf("s3vfs: reader for %q: negative position %d", r.key, pos)
	}
	r.pos = pos
	return pos, nil
}

// Close releases the open body, if any. Further Reads fail; Close is idempotent.
func (r *Reader) Close() error {
	r.closeBody()
	r.closed = true
	return nil
}

func (r *Reader) closeBody() {
	if r.body != nil {
		_ = r.body.Close()
		r.body = nil
	}
}

// Get starts reading key with one GetObject: the whole object, or the one
// range rng names ("bytes=A-B", "bytes=A-" or "bytes=-N"; "" = the whole
// object), so that a read needs no HEAD first. It returns the object's
// info from the answer (Size is the whole object's; HasMetadata is true)
// and a Reader whose position is the first byte answered, with that body
// already open: the caller learns of a failure before it answers its own
// client. A range past the end gives ErrInvalidRange.
func (s *Store) Get(ctx context.Context, key, rng string) (ObjectInfo, *Reader, error) {
	in := &s3.GetObjectInput{Bucket: &s.bucket, Key: &key}
	if rng != "" {
		in.Range = &rng
	}
	out, err := s.client.GetObject(ctx, in)
	if err != nil {
		return ObjectInfo{}, nil, opError("get", key, err)
	}
	if out.ContentLength == nil && out.ContentRange == nil {
		// A chunked answer (some stores, or a proxy between) tells no
		// size: never guess one (0 would serve an empty file). Ask with a
		// HEAD and read lazily.
		_ = out.Body.Close()
		info, err := s.Head(ctx, key)
		if err != nil {
			return ObjectInfo{}, nil, err
		}
		return info, s.NewReader(ctx, key, info), nil
	}
	info := answeredInfo(key, out.ContentLength, out.ETag, out.LastModified, out.ContentType, out.Metadata)
	r := s.NewReader(ctx, key, info)
	if out.ContentRange != nil {
		start, end, total, ok := parseContentRange(aws.ToString(out.ContentRange))
		if !ok {
			_ = out.Body.Close()
			return ObjectInfo{}, nil, fmt.Errorf("get %q: %w: unreadable Content-Range %q", key, ErrUnavailable, aws.ToString(out.ContentRange))
		}
		info.Size = total
		r.info.Size = total
		r.pos, r.bodyPos = start, start
		r.SetWindow(start, end)
	}
	r.body = out.Body
	return info, r, nil
}

// parseContentRange reads "bytes A-B/TOTAL".
func parseContentRange(v string) (start, end, total int64, ok bool) {
	spec, found := strings.CutPrefix(strings.TrimSpace(v), "bytes ")
	if !found {
		return 0, 0, 0, false
	}
	rng, tot, found := strings.Cut(spec, "/")
	a, b, found2 := strings.Cut(rng, "-")
	if !found || !found2 {
		return 0, 0, 0, false
	}
	var err1, err2, err3 error
	start, err1 = strconv.ParseInt(a, 10, 64)
	end, err2 = strconv.ParseInt(b, 10, 64)
	total, err3 = strconv.ParseInt(tot, 10, 64)
	if err1 != nil || err2 != nil || err3 != nil || start < 0 || end < start || end >= total {
		return 0, 0, 0, false
	}
	return start, end, total, true
}
