package s3vfs

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
)

// PutObject stores body under key in one request: for small bodies such as
// folder markers and empty files. opts.Size is ignored (the length is
// len(body)); opts.IfMatch and opts.IfNoneMatch make the write conditional
// (ErrPreconditionFailed when the condition fails).
func (s *Store) PutObject(ctx context.Context, key string, body []byte, opts WriteOptions) (ObjectInfo, error) {
	return s.putObject(ctx, key, body, opts)
}

func (s *Store) putObject(ctx context.Context, key string, body []byte, opts WriteOptions) (ObjectInfo, error) {
	in := &s3.PutObjectInput{
		Bucket:        &s.bucket,
		Key:           &key,
		Body:          bytes.NewReader(body),
		ContentLength: aws.Int64(int64(len(body))),
		ContentType:   optString(opts.ContentType),
		Metadata:      opts.Metadata,
		IfMatch:       optString(opts.IfMatch),
		IfNoneMatch:   optString(opts.IfNoneMatch),
	}
	if s.sendChecksums {
		in.ChecksumAlgorithm = types.ChecksumAlgorithmCrc32
	}
	out, err := s.client.PutObject(ctx, in)
	if err != nil {
		return ObjectInfo{}, opError("put", key, err)
	}
	return ObjectInfo{
		Key:          key,
		Size:         int64(len(body)),
		ETag:         quoteETag(aws.ToString(out.ETag)),
		LastModified: serverTime(out.ResultMetadata),
		ContentType:  opts.ContentType,
		Metadata:     opts.Metadata,
	}, nil
}

// Copy copies srcKey (described by src) to dstKey inside the bucket, on the
// server. Objects up to 5 GiB take one CopyObject; larger ones a multipart
// upload of UploadPartCopy parts that keeps the content type and metadata
// (the source is read with Head first when src.HasMetadata is false).
// A copy onto itself works with opts.ReplaceMetadata (to rewrite metadata).
// opts.SourceETag makes the copy conditional (ErrPreconditionFailed).
func (s *Store) Copy(ctx context.Context, srcKey string, src ObjectInfo, dstKey string, opts CopyOptions) (ObjectInfo, error) {
	if src.ETag == "" && src.Size == 0 && !src.HasMetadata {
		// A zero ObjectInfo: the size decides between the two copy paths.
		info, err := s.Head(ctx, srcKey)
		if err != nil {
			return ObjectInfo{}, fmt.Errorf("copy to %q: %w", dstKey, err)
		}
		src = info
	}
	if src.Size > s.copyThreshold {
		return s.multipartCopy(ctx, srcKey, src, dstKey, opts)
	}
	in := &s3.CopyObjectInput{
		Bucket:            &s.bucket,
		Key:               &dstKey,
		CopySource:        aws.String(copySource(s.bucket, srcKey)),
		CopySourceIfMatch: optString(opts.SourceETag),
	}
	if opts.ReplaceMetadata {
		in.MetadataDirective = types.MetadataDirectiveReplace
		in.ContentType = optString(opts.ContentType)
		in.Metadata = opts.Metadata
		if in.Metadata == nil {
			in.Metadata = map[string]string{}
		}
	}
	out, err := s.client.CopyObject(ctx, in)
	if err != nil {
		return ObjectInfo{}, fmt.Errorf("copy %q to %q: %w", srcKey, dstKey, Classify(err))
	}
	info := ObjectInfo{Key: dstKey, Size: src.Size, LastModified: serverTime(out.ResultMetadata)}
	if r := out.CopyObjectResult; r != nil {
		info.ETag = quoteETag(aws.ToString(r.ETag))
		if r.LastModified != nil {
			info.LastModified = *r.LastModified
		}
	}
	switch {
	case opts.ReplaceMetadata:
		info.ContentType, info.Metadata = opts.ContentType, opts.Metadata
	case src.HasMetadata:
		info.ContentType, info.Metadata, info.HasMetadata = src.ContentType, src.Metadata, true
	}
	return info, nil
}

// multipartCopy copies an object above copyThreshold with UploadPartCopy,
// UploadConcurrency parts at a time, aborting on any failure.
func (s *Store) multipartCopy(ctx context.Context, srcKey string, src ObjectInfo, dstKey string, opts CopyOptions) (ObjectInfo, error) {
	fail := func(err error) error { return fmt.Errorf("copy %q to %q: %w", srcKey, dstKey, Classify(err)) }
	if src.Size > MaxObjectSize {
		return ObjectInfo{}, fail(fmt.Errorf("%w: %d bytes", ErrTooLarge, src.Size))
	}
	if !src.HasMetadata && !opts.ReplaceMetadata {
		info, err := s.Head(ctx, srcKey)
		if err != nil {
			return ObjectInfo{}, fmt.Errorf("copy to %q: %w", dstKey, err)
		}
		if src.ETag != "" && info.ETag != src.ETag {
			return ObjectInfo{}, fail(fmt.Errorf("%w: source changed (ETag %s, expected %s)", ErrPreconditionFailed, info.ETag, src.ETag))
		}
		src = info
	}
	contentType, metadata := src.ContentType, src.Metadata
	if opts.ReplaceMetadata {
		contentType, metadata = opts.ContentType, opts.Metadata
	}
	ifMatch := opts.SourceETag
	if ifMatch == "" {
		ifMatch = src.ETag // never mix bytes of two versions of the source
	}

	created, err := s.client.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{
		Bucket: &s.bucket, Key: &dstKey, ContentType: optString(contentType), Metadata: metadata,
	})
	if err != nil {
		return ObjectInfo{}, fail(err)
	}
	uploadID := aws.ToString(created.UploadId)
	s.trackUpload(uploadID) // the janitor leaves it alone until it ends
	defer s.untrackUpload(uploadID)
	abort := func(cause error) error {
		if aerr := s.abortOrRetry(ctx, dstKey, uploadID, false); aerr != nil {
			return errors.Join(fail(cause), fmt.Errorf("copy: %w", aerr))
		}
		return fail(cause)
	}

	partSize := partSizeFor(src.Size, s.copyPartSize)
	count := int((src.Size + partSize - 1) / partSize)
	parts := make([]types.CompletedPart, count)
	pctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var (
		wg       sync.WaitGroup
		firstErr error
		mu       sync.Mutex
	)
	sem := make(chan struct{}, s.concurrency)
	for i := range count {
		select {
		case sem <- struct{}{}:
		case <-pctx.Done():
		}
		if pctx.Err() != nil {
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			start := int64(i) * partSize
			end := min(start+partSize, src.Size) - 1
			out, err := s.client.UploadPartCopy(pctx, &s3.UploadPartCopyInput{
				Bucket:            &s.bucket,
				Key:               &dstKey,
				UploadId:          &uploadID,
				PartNumber:        aws.Int32(int32(i + 1)),
				CopySource:        aws.String(copySource(s.bucket, srcKey)),
				CopySourceRange:   aws.String(fmt.Sprintf("bytes=%d-%d", start, end)),
				CopySourceIfMatch: optString(ifMatch),
			})
			if err != nil {
				mu.Lock()
				if firstErr == nil {
					firstErr = err
				}
				mu.Unlock()
				cancel(err)
				return
			}
			parts[i] = types.CompletedPart{PartNumber: aws.Int32(int32(i + 1))}
			if r := out.CopyPartResult; r != nil {
				parts[i].ETag = r.ETag
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return ObjectInfo{}, abort(firstErr)
	}
	if err := ctx.Err(); err != nil {
		return ObjectInfo{}, abort(err)
	}
	out, err := s.client.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{
		Bucket: &s.bucket, Key: &dstKey, UploadId: &uploadID,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: parts},
	})
	if err != nil {
		return ObjectInfo{}, abort(err)
	}
	return ObjectInfo{
		Key:          dstKey,
		Size:         src.Size,
		ETag:         quoteETag(aws.ToString(out.ETag)),
		LastModified: serverTime(out.ResultMetadata),
		ContentType:  contentType,
		Metadata:     metadata,
		HasMetadata:  true,
	}, nil
}

// copySource returns the x-amz-copy-source value for key: bucket/key with
// every byte but unreserved characters and "/" percent-encoded.
func copySource(bucket, key string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	b.WriteString(bucket)
	b.WriteByte('/')
	for i := 0; i < len(key); i++ {
		c := key[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9',
			c == '-', c == '_', c == '.', c == '~', c == '/':
			b.WriteByte(c)
		default:
			b.WriteByte('%')
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&15])
		}
	}
	return b.String()
}

// Delete removes keys: one DeleteObject for a single key, else
// DeleteObjects (Quiet) in batches of 1,000. Keys that do not exist are not
// an error; other per-key failures are returned classified and joined.
func (s *Store) Delete(ctx context.Context, keys []string) error {
	switch len(keys) {
	case 0:
		return nil
	case 1:
		_, err := s.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &s.bucket, Key: &keys[0]})
		if err != nil && !errors.Is(Classify(err), ErrNotFound) {
			return opError("delete", keys[0], err)
		}
		return nil
	}
	if s.noBatchDelete {
		return s.deleteEach(ctx, keys)
	}
	var errs []error
	for batch := range batches(keys, s.deleteBatchSize) {
		if err := s.deleteBatch(ctx, batch); err != nil {
			errs = append(errs, err)
			if ctx.Err() != nil || !isPerKey(err) {
				break
			}
		}
	}
	return errors.Join(errs...)
}

// perKeyError marks errors about single keys of a DeleteObjects batch.
type perKeyError struct{ err error }

func (e perKeyError) Error() string { return e.err.Error() }
func (e perKeyError) Unwrap() error { return e.err }

func isPerKey(err error) bool {
	var p perKeyError
	return errors.As(err, &p)
}

// deleteBatch sends one DeleteObjects of at most 1,000 keys.
func (s *Store) deleteBatch(ctx context.Context, keys []string) error {
	objs := make([]types.ObjectIdentifier, len(keys))
	for i := range keys {
		objs[i] = types.ObjectIdentifier{Key: &keys[i]}
	}
	var optFns []func(*s3.Options)
	if !s.sendChecksums {
		optFns = append(optFns, func(o *s3.Options) { o.APIOptions = append(o.APIOptions, contentMD5) })
	}
	out, err := s.client.DeleteObjects(ctx, &s3.DeleteObjectsInput{
		Bucket: &s.bucket,
		Delete: &types.Delete{Objects: objs, Quiet: aws.Bool(true)},
	}, optFns...)
	if err != nil {
		return fmt.Errorf("delete %d keys from %q: %w", len(keys), keys[0], Classify(err))
	}
	var errs []error
	for _, e := range out.Errors {
		code := aws.ToString(e.Code)
		if code == "NoSuchKey" || code == "NotFound" {
			continue
		}
		apiErr := &smithy.GenericAPIError{Code: code, Message: aws.ToString(e.Message)}
		errs = append(errs, opError("delete", aws.ToString(e.Key), apiErr))
	}
	if len(errs) == 0 {
		return nil
	}
	return perKeyError{errors.Join(errs...)}
}

// deleteConcurrency bounds the DeleteObject calls in flight when a store
// has no DeleteObjects.
const deleteConcurrency = 8

// deleteEach deletes keys with one DeleteObject each, deleteConcurrency at
// a time, for stores without DeleteObjects (GCS). Missing keys are not an
// error; failures are returned as per-key errors, joined. It stops early
// (with the error) on a failure that is not about one key, such as
// ErrAccessDenied or ErrUnavailable, or when ctx ends.
func (s *Store) deleteEach(ctx context.Context, keys []string) error {
	dctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		mu      sync.Mutex
		errs    []error
		wg      sync.WaitGroup
		stopped bool
	)
	sem := make(chan struct{}, deleteConcurrency)
	for _, key := range keys {
		select {
		case sem <- struct{}{}:
		case <-dctx.Done():
		}
		if dctx.Err() != nil {
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			_, err := s.client.DeleteObject(dctx, &s3.DeleteObjectInput{Bucket: &s.bucket, Key: &key})
			if err == nil || errors.Is(Classify(err), ErrNotFound) {
				return
			}
			err = opError("delete", key, err)
			mu.Lock()
			defer mu.Unlock()
			if stopped {
				return
			}
			if c := Classify(err); errors.Is(c, ErrAccessDenied) || errors.Is(c, ErrUnavailable) || dctx.Err() != nil {
				stopped = true
				errs = append(errs, err)
				cancel()
				return
			}
			errs = append(errs, err)
		}()
	}
	wg.Wait()
	if len(errs) == 0 {
		if err := ctx.Err(); err != nil {
			return err
		}
		return nil
	}
	if stopped {
		return errors.Join(errs...)
	}
	return perKeyError{errors.Join(errs...)}
}

// batches yields keys in batches of at most n.
func batches(keys []string, n int) func(func([]string) bool) {
	return func(yield func([]string) bool) {
		for len(keys) > 0 {
			k := min(n, len(keys))
			if !yield(keys[:k:k]) {
				return
			}
			keys = keys[k:]
		}
	}
}

// DeletePrefix deletes every object whose key starts with prefix (no
// delimiter: the whole subtree), deleting in batches of 1,000 as the
// listing streams. An empty prefix is refused (ErrInvalid) so that a bug
// cannot empty the bucket.
//
// Folders go last, deepest first (the order of the keys in each
// DeleteObjects): their markers, and for a prefix ending
// in "/" also every folder the keys imply (prefix itself included), named
// as keys ending in "/". SeaweedFS keeps a folder whose marker is deleted
// while it still holds keys, and one left empty by deleting its last key,
// and lists both as CommonPrefixes for minutes; a folder deleted by name
// after its contents goes at once. Elsewhere deleting a folder key that is
// no object is a no-op. The folders are held in memory until the end (one
// string each).
func (s *Store) DeletePrefix(ctx context.Context, prefix string) error {
	if prefix == "" {
		return fmt.Errorf("delete prefix: %w: refusing to delete the whole bucket", ErrInvalid)
	}
	batch := make([]string, 0, s.deleteBatchSize)
	folders := map[string]bool{}
	if strings.HasSuffix(prefix, "/") {
		folders[prefix] = true
	}
	var errs []error
	flush := func() bool {
		if err := s.Delete(ctx, batch); err != nil {
			errs = append(errs, err)
			if !isPerKey(err) {
				return false
			}
		}
		batch = batch[:0]
		return true
	}
	for e, err := range s.List(ctx, ListOptions{Prefix: prefix}) {
		if err != nil {
			errs = append(errs, err)
			return errors.Join(errs...)
		}
		if e.Object == nil {
			continue
		}
		key := e.Object.Key
		if strings.HasSuffix(prefix, "/") {
			for i := len(prefix); i < len(key); i++ {
				if key[i] == '/' {
					folders[key[:i+1]] = true
				}
			}
		}
		if strings.HasSuffix(key, "/") {
			folders[key] = true
			continue
		}
		batch = append(batch, key)
		if len(batch) == s.deleteBatchSize && !flush() {
			return errors.Join(errs...)
		}
	}
	if len(batch) > 0 && !flush() {
		return errors.Join(errs...)
	}
	deepestFirst := slices.SortedFunc(maps.Keys(folders), func(a, b string) int {
		return cmp.Or(cmp.Compare(strings.Count(b, "/"), strings.Count(a, "/")), cmp.Compare(a, b))
	})
	for chunk := range batches(deepestFirst, s.deleteBatchSize) {
		batch = append(batch[:0], chunk...)
		if !flush() {
			break
		}
	}
	return errors.Join(errs...)
}
