package s3vfs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"iter"
	"log/slog"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// DefaultAbandonedUploadAge is the idle time after which the janitor aborts
// a multipart upload: no PUT through the gateway stays that long without
// sending a part.
const DefaultAbandonedUploadAge = 24 * time.Hour

// Upload is one multipart upload in progress.
type Upload struct {
	// Key is the object key the upload writes.
	Key string
	// UploadID identifies the upload.
	UploadID string
	// Initiated is when the upload was created (the server's clock).
	Initiated time.Time
	// Listed is the server's time when the upload was listed (the Date
	// header of the ListMultipartUploads response); zero when the server
	// sent none.
	Listed time.Time
}

// trackUpload records a multipart upload started by this Store and still
// in progress: the janitor never aborts it.
func (s *Store) trackUpload(id string) {
	s.active.mu.Lock()
	s.active.ids[id] = struct{}{}
	s.active.mu.Unlock()
}

// untrackUpload forgets an upload that was completed or aborted.
func (s *Store) untrackUpload(id string) {
	s.active.mu.Lock()
	delete(s.active.ids, id)
	s.active.mu.Unlock()
}

// uploadActive reports whether this Store has the upload in progress.
func (s *Store) uploadActive(id string) bool {
	s.active.mu.Lock()
	defer s.active.mu.Unlock()
	_, ok := s.active.ids[id]
	return ok
}

// Uploads streams the multipart uploads in progress under prefix
// (ListMultipartUploads, 1,000 per page, one page in memory at a time).
// Iteration stops when the consumer breaks or at the first error, which
// is yielded last; a server that repeats its markers ends the listing
// with an error instead of looping.
func (s *Store) Uploads(ctx context.Context, prefix string) iter.Seq2[Upload, error] {
	return func(yield func(Upload, error) bool) {
		var keyMarker, idMarker *string
		for {
			page, err := s.client.ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{
				Bucket:         &s.bucket,
				Prefix:         optString(prefix),
				KeyMarker:      keyMarker,
				UploadIdMarker: idMarker,
			})
			if err != nil {
				yield(Upload{}, opError("list multipart uploads", prefix, err))
				return
			}
			var listed time.Time
			if t, ok := awsmiddleware.GetServerTime(page.ResultMetadata); ok {
				listed = t.UTC()
			}
			for _, u := range page.Uploads {
				if !yield(Upload{Key: aws.ToString(u.Key), UploadID: aws.ToString(u.UploadId), Initiated: aws.ToTime(u.Initiated), Listed: listed}, nil) {
					return
				}
			}
			if !aws.ToBool(page.IsTruncated) || (page.NextKeyMarker == nil && page.NextUploadIdMarker == nil) {
				return
			}
			nextKey, nextID := aws.ToString(page.NextKeyMarker), aws.ToString(page.NextUploadIdMarker)
			if nextKey == aws.ToString(keyMarker) && nextID == aws.ToString(idMarker) {
				yield(Upload{}, opError("list multipart uploads", prefix,
					fmt.Errorf("%w: the store repeated the markers %q/%q", ErrUnavailable, nextKey, nextID)))
				return
			}
			keyMarker, idMarker = page.NextKeyMarker, page.NextUploadIdMarker
		}
	}
}

// ListUploads returns up to limit (0 = all) multipart uploads in progress
// under prefix; see Uploads, which streams them.
func (s *Store) ListUploads(ctx context.Context, prefix string, limit int) ([]Upload, error) {
	var out []Upload
	for u, err := range s.Uploads(ctx, prefix) {
		if err != nil {
			return out, err
		}
		out = append(out, u)
		if limit > 0 && len(out) == limit {
			break
		}
	}
	return out, nil
}

// AbortUpload aborts one multipart upload; an upload that is already gone
// is not an error.
func (s *Store) AbortUpload(ctx context.Context, u Upload) error {
	_, err := s.client.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{
		Bucket: &s.bucket, Key: &u.Key, UploadId: &u.UploadID,
	})
	if err != nil && !errors.Is(Classify(err), ErrNotFound) {
		return opError("abort multipart upload", u.Key, err)
	}
	s.untrackUpload(u.UploadID)
	return nil
}

// LastActivity returns the time of the newest part of an upload
// (ListParts, every page), or its Initiated time when it has no part: the
// janitor measures idleness from it.
func (s *Store) LastActivity(ctx context.Context, u Upload) (time.Time, error) {
	last := u.Initiated
	var marker *string
	for {
		out, err := s.client.ListParts(ctx, &s3.ListPartsInput{
			Bucket: &s.bucket, Key: &u.Key, UploadId: &u.UploadID, PartNumberMarker: marker,
		})
		if err != nil {
			return last, opError("list parts of", u.Key, err)
		}
		for _, p := range out.Parts {
			if t := aws.ToTime(p.LastModified); t.After(last) {
				last = t
			}
		}
		next := aws.ToString(out.NextPartNumberMarker)
		if !aws.ToBool(out.IsTruncated) || next == "" || next == aws.ToString(marker) {
			return last, nil
		}
		marker = &next
	}
}

// JanitorOptions configure RunJanitor.
type JanitorOptions struct {
	// Prefix limits the janitor to uploads under this key prefix (the
	// gateway's [s3].prefix). "" sweeps the whole bucket, other
	// applications' uploads included (RunJanitor warns): a dedicated
	// prefix is recommended.
	Prefix string
	// MaxAge is how long an upload must have been idle (no part uploaded,
	// by the server's clock) before it is aborted; 0 = 24h.
	MaxAge time.Duration
	// Interval is the time between sweeps; 0 = MaxAge/4, at most 1h.
	Interval time.Duration
	// Logger receives one line per aborted upload and per failed sweep;
	// nil = no logging.
	Logger *slog.Logger
	// Now overrides the clock idleness is measured against; nil = the
	// server's (the Date header of the listing), else the local clock
	// when the server sent no Date.
	Now func() time.Time
}

func (o JanitorOptions) withDefaults() JanitorOptions {
	if o.MaxAge <= 0 {
		o.MaxAge = DefaultAbandonedUploadAge
	}
	if o.Interval <= 0 {
		o.Interval = min(o.MaxAge/4, time.Hour)
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// now returns the time an upload listed at u.Listed is judged against.
func (o JanitorOptions) now(u Upload) time.Time {
	switch {
	case o.Now != nil:
		return o.Now()
	case !u.Listed.IsZero():
		return u.Listed
	default:
		return time.Now()
	}
}

// SweepResult is what one janitor sweep saw and did.
type SweepResult struct {
	// Seen is the number of uploads in progress under the prefix.
	Seen int
	// Active is the number of those that this Store is writing (never aborted).
	Active int
	// Aborted lists the uploads aborted as abandoned.
	Aborted []Upload
}

// AbortAbandonedUploads lists the multipart uploads under opts.Prefix and
// aborts those idle for more than opts.MaxAge: whose newest part (or, with
// no part, whose creation) is older than MaxAge by the server's clock.
// Uploads this Store is writing are never aborted, however old. It keeps
// going past a failed abort and returns every error joined.
func (s *Store) AbortAbandonedUploads(ctx context.Context, opts JanitorOptions) (SweepResult, error) {
	opts = opts.withDefaults()
	var res SweepResult
	var errs []error
	for u, err := range s.Uploads(ctx, opts.Prefix) {
		if err != nil {
			errs = append(errs, fmt.Errorf("janitor: %w", err))
			break
		}
		res.Seen++
		if s.uploadActive(u.UploadID) {
			res.Active++
			continue
		}
		now := opts.now(u)
		cutoff := now.Add(-opts.MaxAge)
		if u.Initiated.IsZero() || u.Initiated.After(cutoff) {
			continue // created within MaxAge: cannot have been idle that long
		}
		last, err := s.LastActivity(ctx, u)
		if err != nil {
			if !errors.Is(err, ErrNotFound) { // completed or aborted meanwhile
				errs = append(errs, err)
			}
			continue
		}
		if last.After(cutoff) || s.uploadActive(u.UploadID) {
			continue
		}
		if err := s.AbortUpload(ctx, u); err != nil {
			errs = append(errs, err)
			continue
		}
		res.Aborted = append(res.Aborted, u)
		opts.Logger.Info("janitor: aborted an abandoned multipart upload",
			"key", u.Key, "upload_id", u.UploadID, "initiated", u.Initiated.UTC().Format(time.RFC3339),
			"idle", now.Sub(last).Round(time.Second).String())
	}
	return res, errors.Join(errs...)
}

// sweepUploads is one sweep of RunJanitor: AbortAbandonedUploads in the
// bucket, or in a Store of AnyBucket in each bucket it lists.
func (s *Store) sweepUploads(ctx context.Context, opts JanitorOptions) (SweepResult, error) {
	if !s.AnyBucket() {
		return s.AbortAbandonedUploads(ctx, opts)
	}
	buckets, err := s.ListBuckets(ctx)
	if err != nil {
		return SweepResult{}, fmt.Errorf("janitor: %w", err)
	}
	var all SweepResult
	var errs []error
	for _, b := range buckets {
		res, err := s.ForBucket(b.Name).AbortAbandonedUploads(ctx, opts)
		all.Seen, all.Active = all.Seen+res.Seen, all.Active+res.Active
		all.Aborted = append(all.Aborted, res.Aborted...)
		if err != nil {
			errs = append(errs, fmt.Errorf("bucket %s: %w", b.Name, err))
		}
	}
	return all, errors.Join(errs...)
}

// RunJanitor sweeps at once and then every opts.Interval until ctx ends
// (see AbortAbandonedUploads); a Store of AnyBucket sweeps every bucket it
// lists. Run it in its own goroutine.
func (s *Store) RunJanitor(ctx context.Context, opts JanitorOptions) {
	opts = opts.withDefaults()
	if opts.Prefix == "" {
		opts.Logger.Warn("janitor: no [s3].prefix: sweeping the multipart uploads of the whole bucket, other applications' included "+
			"(only uploads idle for max_age are aborted); a dedicated prefix is recommended",
			"bucket", s.bucket, "max_age", opts.MaxAge.String())
	}
	sweep := func() {
		sctx, cancel := context.WithTimeout(ctx, cleanupTimeout*10)
		defer cancel()
		res, err := s.sweepUploads(sctx, opts)
		if err != nil && ctx.Err() == nil {
			opts.Logger.Warn("janitor: sweep of abandoned multipart uploads failed; grant s3:ListBucketMultipartUploads, "+
				"s3:ListMultipartUploadParts and s3:AbortMultipartUpload",
				"prefix", opts.Prefix, "err", err)
			return
		}
		opts.Logger.Info("janitor: swept multipart uploads", "prefix", opts.Prefix,
			"in_progress", res.Seen, "active_here", res.Active, "aborted", len(res.Aborted), "max_age", opts.MaxAge.String())
	}
	sweep()
	t := time.NewTicker(opts.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			sweep()
		}
	}
}

// CreateUpload starts a multipart upload of key and returns it, for probes
// such as `davgw check` (uploads go through NewWriter). The janitor leaves
// it alone until AbortUpload.
func (s *Store) CreateUpload(ctx context.Context, key string) (Upload, error) {
	out, err := s.client.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: &s.bucket, Key: &key})
	if err != nil {
		return Upload{}, opError("create upload of", key, err)
	}
	u := Upload{Key: key, UploadID: aws.ToString(out.UploadId), Initiated: serverTime(out.ResultMetadata)}
	s.trackUpload(u.UploadID)
	return u, nil
}

// UploadPart sends body as part number num of u, for probes (see CreateUpload).
func (s *Store) UploadPart(ctx context.Context, u Upload, num int32, body []byte) error {
	_, err := s.client.UploadPart(ctx, &s3.UploadPartInput{
		Bucket: &s.bucket, Key: &u.Key, UploadId: &u.UploadID, PartNumber: aws.Int32(num),
		Body: bytes.NewReader(body), ContentLength: aws.Int64(int64(len(body))),
	})
	if err != nil {
		return opError(fmt.Sprintf("upload part %d of", num), u.Key, err)
	}
	return nil
}
