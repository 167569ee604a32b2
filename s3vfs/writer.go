package s3vfs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"slices"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go/middleware"
)

// writerState tells whether a Writer still accepts calls.
type writerState int

const (
	writerOpen writerState = iota
	writerCommitted
	writerAborted
)

// Writer uploads one object from a stream. It buffers the first part and
// sends a single PutObject when the body fits in it; otherwise it runs a
// multipart upload whose parts are sent concurrently, with at most
// Store.UploadConcurrency part buffers in existence (the one being filled
// included), taken from a pool shared by the Store. Every part buffer
// also takes its bytes from the Store-wide upload memory budget
// (Config.UploadMemory): a Writer waits for room, and one whose part alone
// exceeds the budget fails with ErrTooLarge.
//
// Nothing becomes visible until Commit, which completes the upload only if
// the whole body arrived; Commit or Abort must be called. If the context
// given to NewWriter ends, a started multipart upload is aborted at once.
//
// A Writer is not safe for concurrent use.
type Writer struct {
	s        *Store
	ctx      context.Context
	key      string
	opts     WriteOptions
	partSize int64

	state    writerState
	buf      []byte // the part being filled; nil when none (then no token is held for it)
	written  int64
	nextPart int32 // number of the next part to upload, from 1

	uploadID      string
	stopAutoAbort func() bool

	upCtx    context.Context // part uploads; cancelled on the first failure
	upCancel context.CancelCauseFunc
	tokens   chan struct{} // one per part buffer in existence
	wg       sync.WaitGroup

	mu          sync.Mutex
	err         error // first write, read or part-upload error
	interrupted bool  // a part upload failed: it may still land after an abort
	parts       []types.CompletedPart
}

// NewWriter returns a Writer for key. It makes no network call. ctx bounds
// the whole upload, part uploads included: when it ends, the upload fails.
// opts.Size is the declared length (-1 = unknown); a known Size raises the
// part size so that no more than 10,000 parts are needed, and a Size above
// 5 TiB fails every call with ErrTooLarge.
func (s *Store) NewWriter(ctx context.Context, key string, opts WriteOptions) *Writer {
	w := &Writer{
		s:        s,
		ctx:      ctx,
		key:      key,
		opts:     opts,
		partSize: s.partSize,
		nextPart: 1,
		tokens:   make(chan struct{}, s.concurrency),
	}
	if opts.Size < 0 {
		w.opts.Size = -1
	}
	w.upCtx, w.upCancel = context.WithCancelCause(ctx)
	switch {
	case opts.Size > MaxObjectSize:
		w.err = fmt.Errorf("%w: %q: %d bytes is more than S3's 5 TiB limit", ErrTooLarge, key, opts.Size)
	case opts.Size > 0:
		w.partSize = partSizeFor(opts.Size, s.partSize)
		// One upload may hold at most a fair share of the Store's memory
		// budget, so a huge declared length cannot take it all.
		if share := s.memoryBudget / int64(2*s.concurrency); w.partSize > max(share, s.partSize) {
			w.err = fmt.Errorf("%w: %q: %d bytes need parts of %d bytes, more than this gateway's upload memory allows (raise [s3].upload_memory)",
				ErrTooLarge, key, opts.Size, w.partSize)
		}
	}
	return w
}

// budgetWait bounds how long an upload waits for the Store's upload memory.
const budgetWait = 15 * time.Second

// partSizeFor returns the part size for an upload of size bytes: at least
// min, and large enough (in whole MiB) that MaxParts parts hold size.
func partSizeFor(size, min int64) int64 {
	need := (size + MaxParts - 1) / MaxParts
	need = (need + MiB - 1) / MiB * MiB
	return max(min, need)
}

// Write buffers p, uploading full parts as it goes. Writing more bytes than
// a known Size fails with ErrIncomplete.
func (w *Writer) Write(p []byte) (int, error) {
	if err := w.usable(); err != nil {
		return 0, err
	}
	if w.opts.Size >= 0 && int64(len(p)) > w.opts.Size-w.written {
		return 0, w.fail(fmt.Errorf("%w: %q: more than the declared %d bytes", ErrIncomplete, w.key, w.opts.Size))
	}
	n := 0
	for len(p) > 0 {
		if err := w.room(); err != nil {
			return n, err
		}
		c := copy(w.buf[len(w.buf):cap(w.buf)], p)
		w.buf = w.buf[:len(w.buf)+c]
		p = p[c:]
		n += c
		w.written += int64(c)
		if err := w.flushIfFull(); err != nil {
			return n, err
		}
	}
	return n, nil
}

// ReadFrom reads r until io.EOF straight into part buffers. A read error
// (other than io.EOF) is remembered, so Commit refuses to complete; it is
// returned wrapped with ErrIncomplete.
func (w *Writer) ReadFrom(r io.Reader) (int64, error) {
	if err := w.usable(); err != nil {
		return 0, err
	}
	var total int64
	for {
		firstFull := w.buf != nil && len(w.buf) == cap(w.buf) && w.uploadID == ""
		if firstFull || (w.opts.Size >= 0 && w.written == w.opts.Size) {
			// Only one more byte tells whether the body ends here: read it
			// alone, so a body that fits one part stays a single PutObject.
			var one [1]byte
			n, err := io.ReadFull(r, one[:])
			if n == 1 {
				wn, werr := w.Write(one[:])
				total += int64(wn)
				if werr != nil {
					return total, werr
				}
				continue
			}
			if err == io.EOF {
				return total, nil
			}
			return total, w.readFailed(err)
		}
		if w.buf == nil {
			// No part memory before the body has bytes for it: a client
			// that opens an upload and sends nothing holds a small read
			// buffer, not a part. (One that trickles does hold a part, up
			// to its user's and address's share: WriteOptions.Shares.)
			n, err := w.readFirst(r)
			total += n
			if err == io.EOF {
				return total, nil
			}
			if err != nil {
				return total, err
			}
			continue
		}
		dst := w.buf[len(w.buf):cap(w.buf)]
		if w.opts.Size >= 0 {
			dst = dst[:min(int64(len(dst)), w.opts.Size-w.written)]
		}
		n, err := r.Read(dst)
		w.buf = w.buf[:len(w.buf)+n]
		w.written += int64(n)
		total += int64(n)
		if ferr := w.flushIfFull(); ferr != nil {
			return total, ferr
		}
		switch {
		case err == io.EOF:
			return total, nil
		case err != nil:
			return total, w.readFailed(err)
		}
	}
}

// firstReadSize is the read that comes before a part buffer is taken.
const firstReadSize = 16 << 10

var firstReads = sync.Pool{New: func() any { return new([firstReadSize]byte) }}

// readFirst reads the first bytes of a part into a small buffer and only
// then takes the part's memory (through Write). It returns io.EOF at the
// end of the body, and a read error wrapped as readFailed does.
func (w *Writer) readFirst(r io.Reader) (int64, error) {
	b := firstReads.Get().(*[firstReadSize]byte)
	defer firstReads.Put(b)
	dst := b[:]
	if w.opts.Size >= 0 {
		dst = dst[:min(int64(len(dst)), w.opts.Size-w.written)]
	}
	n, err := r.Read(dst)
	if n > 0 {
		if _, werr := w.Write(dst[:n]); werr != nil {
			return int64(n), werr
		}
	}
	switch {
	case err == io.EOF:
		return int64(n), io.EOF
	case err != nil:
		return int64(n), w.readFailed(err)
	}
	return int64(n), nil
}

// readFailed remembers a read error of the body and returns it wrapped.
func (w *Writer) readFailed(err error) error {
	return w.fail(fmt.Errorf("%w: reading the body of %q: %w", ErrIncomplete, w.key, err))
}

// Commit completes the upload and returns the stored object's info (real
// ETag and size; LastModified from the server's Date, or now). It
// completes only if no write, read or part-upload error happened, the
// context is still alive and, for a known Size, exactly Size bytes were
// written. Otherwise it aborts the upload (nothing is stored) and returns
// an error wrapping ErrIncomplete or the S3 error. A failed If-Match or
// If-None-Match gives ErrPreconditionFailed. After Commit, every call but
// Abort fails.
func (w *Writer) Commit() (ObjectInfo, error) {
	if w.state != writerOpen {
		return ObjectInfo{}, w.closedError()
	}
	w.state = writerAborted // until proven otherwise
	if err := w.readyToComplete(); err != nil {
		return ObjectInfo{}, errors.Join(err, w.cleanup())
	}
	var (
		info ObjectInfo
		err  error
	)
	if w.uploadID == "" {
		info, err = w.s.putObject(w.ctx, w.key, w.buf, w.opts)
		w.release(w.buf)
		w.buf = nil
		w.upCancel(nil)
	} else {
		info, err = w.complete()
	}
	if err != nil {
		return ObjectInfo{}, err
	}
	w.state = writerCommitted
	return info, nil
}

// readyToComplete returns why the upload must not complete, or nil.
func (w *Writer) readyToComplete() error {
	if w.ctx.Err() != nil {
		return fmt.Errorf("%w: %q: %w", ErrIncomplete, w.key, context.Cause(w.ctx))
	}
	if err := w.failure(); err != nil {
		return err
	}
	if w.opts.Size >= 0 && w.written != w.opts.Size {
		return fmt.Errorf("%w: %q: got %d of the declared %d bytes", ErrIncomplete, w.key, w.written, w.opts.Size)
	}
	return nil
}

// complete uploads the last part, waits for all parts and completes the
// multipart upload, aborting it on any failure.
func (w *Writer) complete() (ObjectInfo, error) {
	if len(w.buf) > 0 {
		if err := w.flush(); err != nil {
			return ObjectInfo{}, errors.Join(err, w.cleanup())
		}
	} else {
		w.release(w.buf) // taken for a read that found io.EOF
		w.buf = nil
	}
	w.wg.Wait()
	if err := w.readyToComplete(); err != nil {
		return ObjectInfo{}, errors.Join(err, w.cleanup())
	}
	if !w.stopAutoAbort() {
		// The context ended and the upload is being aborted.
		return ObjectInfo{}, errors.Join(fmt.Errorf("%w: %q: %w", ErrIncomplete, w.key, context.Cause(w.ctx)), w.cleanup())
	}
	parts := slices.Clone(w.parts)
	slices.SortFunc(parts, func(a, b types.CompletedPart) int { return int(aws.ToInt32(a.PartNumber) - aws.ToInt32(b.PartNumber)) })
	if len(parts) != int(w.nextPart-1) {
		err := fmt.Errorf("%w: %q: %d of %d parts uploaded", ErrIncomplete, w.key, len(parts), w.nextPart-1)
		return ObjectInfo{}, errors.Join(err, w.cleanup())
	}
	out, err := w.s.client.CompleteMultipartUpload(w.ctx, &s3.CompleteMultipartUploadInput{
		Bucket:          &w.s.bucket,
		Key:             &w.key,
		UploadId:        &w.uploadID,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: parts},
		IfMatch:         optString(w.opts.IfMatch),
		IfNoneMatch:     optString(w.opts.IfNoneMatch),
	})
	if err != nil {
		return ObjectInfo{}, errors.Join(opError("complete upload of", w.key, err), w.cleanup())
	}
	w.upCancel(nil)
	w.s.untrackUpload(w.uploadID)
	return ObjectInfo{
		Key:          w.key,
		Size:         w.written,
		ETag:         quoteETag(aws.ToString(out.ETag)),
		LastModified: serverTime(out.ResultMetadata),
		ContentType:  w.opts.ContentType,
		Metadata:     w.opts.Metadata,
	}, nil
}

// Abort discards the upload: nothing is stored and a started multipart
// upload is aborted (under a detached context with a 30 s timeout). It is
// idempotent, and a no-op after a successful Commit.
func (w *Writer) Abort() error {
	if w.state != writerOpen {
		return nil
	}
	w.state = writerAborted
	return w.cleanup()
}

// cleanup stops part uploads, frees the buffers and aborts a started
// multipart upload.
func (w *Writer) cleanup() error {
	w.upCancel(errAborted)
	w.wg.Wait()
	w.release(w.buf)
	w.buf = nil
	if w.uploadID == "" {
		return nil
	}
	w.stopAutoAbort()
	w.mu.Lock()
	interrupted := w.interrupted
	w.mu.Unlock()
	w.s.untrackUpload(w.uploadID) // aborting it: the janitor may as well
	return w.abortUpload(interrupted)
}

// errAborted is the cause given to part uploads cancelled by Abort.
var errAborted = errors.New("s3vfs: upload aborted")

// abortUpload aborts the writer's multipart upload (see
// Store.abortOrRetry).
func (w *Writer) abortUpload(verify bool) error {
	return w.s.abortOrRetry(w.ctx, w.key, w.uploadID, verify)
}

// usable returns why Write or ReadFrom cannot proceed, or nil.
func (w *Writer) usable() error {
	if w.state != writerOpen {
		return w.closedError()
	}
	if w.ctx.Err() != nil {
		return w.fail(fmt.Errorf("%w: %q: %w", ErrIncomplete, w.key, context.Cause(w.ctx)))
	}
	return w.failure()
}

func (w *Writer) closedError() error {
	return fmt.Errorf("s3vfs: writer for %q already committed or aborted: %w", w.key, fs.ErrClosed)
}

// fail remembers the first error, stops part uploads and returns the
// remembered error.
func (w *Writer) fail(err error) error {
	w.mu.Lock()
	if w.err == nil {
		w.err = err
	}
	err = w.err
	w.mu.Unlock()
	w.upCancel(err)
	return err
}

// failure returns the first error, or nil.
func (w *Writer) failure() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// room makes sure w.buf has free space, uploading a full first part and
// taking a new buffer as needed.
func (w *Writer) room() error {
	if w.buf != nil && len(w.buf) < cap(w.buf) {
		return nil
	}
	if w.buf != nil {
		if err := w.flush(); err != nil {
			return err
		}
	}
	if w.nextPart > MaxParts {
		err := fmt.Errorf("%w: %q needs more than %d parts of %d bytes", ErrTooLarge, w.key, MaxParts, w.partSize)
		return w.fail(err)
	}
	select {
	case <-w.upCtx.Done():
		return w.stopped()
	default:
	}
	size, small := w.partSize, w.nextPart == 1 && w.opts.Size >= 0 && w.opts.Size < w.partSize
	if small {
		size = w.opts.Size // small known body: no full part buffer
	}
	if size > w.s.memoryBudget {
		return w.fail(fmt.Errorf("%w: %q: a part of %d bytes exceeds the upload memory budget of %d bytes",
			ErrTooLarge, w.key, size, w.s.memoryBudget))
	}
	select {
	case w.tokens <- struct{}{}:
	case <-w.upCtx.Done():
		return w.stopped()
	}
	// Every buffer this Writer holds now is a part in flight, which ends
	// (uploaded, failed or cancelled) and gives its bytes back: waiting
	// for the Store-wide budget cannot deadlock.
	// The budget is shared by every upload of the Store: wait for it only
	// a bounded time, so that stalled uploads (clients that stopped
	// sending) cannot hold every other user's upload forever. Past it the
	// upload fails as unavailable (503 with Retry-After).
	// The caller's own shares come first: while its uploads hold all
	// of its share, it waits (and then fails) without touching the
	// Store's memory, which stays free for everyone else.
	actx, cancel := context.WithTimeout(w.upCtx, w.s.budgetWait)
	defer cancel()
	for i, sh := range w.opts.Shares {
		if size > sh.size {
			w.releaseShares(i, size)
			<-w.tokens
			return w.fail(fmt.Errorf("%w: %q: a part of %d bytes exceeds the upload memory share of %d bytes",
				ErrTooLarge, w.key, size, sh.size))
		}
		if err := sh.sem.Acquire(actx, size); err != nil {
			w.releaseShares(i, size)
			<-w.tokens
			if w.upCtx.Err() == nil {
				return w.fail(fmt.Errorf("%w: %q: no part memory free within %v", ErrOverShare, w.key, w.s.budgetWait))
			}
			return w.stopped()
		}
	}
	if err := w.s.memory.Acquire(actx, size); err != nil {
		w.releaseShares(len(w.opts.Shares), size)
		<-w.tokens
		if w.upCtx.Err() == nil {
			return w.fail(fmt.Errorf("%w: %q: no upload memory free within %v (upload_memory is in use by other uploads)",
				ErrUnavailable, w.key, w.s.budgetWait))
		}
		return w.stopped()
	}
	if small {
		w.buf = make([]byte, 0, size)
	} else {
		w.buf = w.s.buffers.get(w.partSize)
	}
	return nil
}

// stopped returns the error that cancelled the part uploads.
func (w *Writer) stopped() error {
	if err := w.failure(); err != nil {
		return err
	}
	return w.fail(fmt.Errorf("%w: %q: %w", ErrIncomplete, w.key, context.Cause(w.upCtx)))
}

// flushIfFull uploads w.buf once full, except the first part, which is
// kept until more bytes arrive (a body of exactly one part is one PutObject).
func (w *Writer) flushIfFull() error {
	if len(w.buf) < cap(w.buf) || w.uploadID == "" {
		return nil
	}
	return w.flush()
}

// flush starts the upload of w.buf as the next part, creating the
// multipart upload first if needed.
func (w *Writer) flush() error {
	if w.nextPart > MaxParts {
		return w.fail(fmt.Errorf("%w: %q needs more than %d parts of %d bytes", ErrTooLarge, w.key, MaxParts, w.partSize))
	}
	if w.uploadID == "" {
		if err := w.create(); err != nil {
			return w.fail(err)
		}
	}
	buf, num := w.buf, w.nextPart
	w.buf = nil
	w.nextPart++
	w.wg.Add(1)
	go w.uploadPart(num, buf)
	return nil
}

// create starts the multipart upload and arranges for it to be aborted as
// soon as the writer's context ends.
func (w *Writer) create() error {
	in := &s3.CreateMultipartUploadInput{
		Bucket:      &w.s.bucket,
		Key:         &w.key,
		ContentType: optString(w.opts.ContentType),
		Metadata:    w.opts.Metadata,
	}
	if w.s.sendChecksums {
		in.ChecksumAlgorithm = types.ChecksumAlgorithmCrc32
	}
	out, err := w.s.client.CreateMultipartUpload(w.ctx, in)
	if err != nil {
		return opError("create upload of", w.key, err)
	}
	w.uploadID = aws.ToString(out.UploadId)
	w.s.trackUpload(w.uploadID) // the janitor leaves it alone until it ends
	w.stopAutoAbort = context.AfterFunc(w.ctx, func() {
		w.s.untrackUpload(w.uploadID)
		// Nobody waits for this one: a failure is retried in the
		// background and logged there.
		_ = w.abortUpload(true)
	})
	return nil
}

// uploadPart sends one part, then returns its buffer and token.
func (w *Writer) uploadPart(num int32, buf []byte) {
	defer w.wg.Done()
	defer w.release(buf)
	in := &s3.UploadPartInput{
		Bucket:        &w.s.bucket,
		Key:           &w.key,
		UploadId:      &w.uploadID,
		PartNumber:    aws.Int32(num),
		Body:          bytes.NewReader(buf),
		ContentLength: aws.Int64(int64(len(buf))),
	}
	if w.s.sendChecksums {
		in.ChecksumAlgorithm = types.ChecksumAlgorithmCrc32
	}
	out, err := w.s.client.UploadPart(w.upCtx, in)
	if err != nil {
		w.mu.Lock()
		w.interrupted = true
		w.mu.Unlock()
		w.fail(opError(fmt.Sprintf("upload part %d of", num), w.key, err))
		return
	}
	w.mu.Lock()
	w.parts = append(w.parts, types.CompletedPart{
		PartNumber:    aws.Int32(num),
		ETag:          out.ETag,
		ChecksumCRC32: out.ChecksumCRC32,
	})
	w.mu.Unlock()
}

// release returns a part buffer to the pool (full-size ones only) and
// frees its token. buf == nil is a no-op.
func (w *Writer) release(buf []byte) {
	if buf == nil {
		return
	}
	n := int64(cap(buf))
	if n == w.partSize {
		w.s.buffers.put(buf)
	}
	w.s.memory.Release(n)
	w.releaseShares(len(w.opts.Shares), n)
	<-w.tokens
}

// releaseShares gives n bytes back to the first k shares.
func (w *Writer) releaseShares(k int, n int64) {
	for _, sh := range w.opts.Shares[:k] {
		sh.sem.Release(n)
	}
}

// serverTime returns the response's Date (the object's Last-Modified to
// the second), or now.
func serverTime(md middleware.Metadata) time.Time {
	if t, ok := awsmiddleware.GetServerTime(md); ok && !t.IsZero() {
		return t.UTC()
	}
	return time.Now().UTC()
}
