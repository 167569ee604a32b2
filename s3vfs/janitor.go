package s3vfs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// DefaultAbandonedUploadAge is the age after which the janitor aborts a
// multipart upload: no PUT through the gateway takes that long.
const DefaultAbandonedUploadAge = 24 * time.Hour

// Upload is one multipart upload in progress.
type Upload struct {
	// Key is the object key the upload writes.
	Key string
	// UploadID identifies the upload.
	UploadID string
	// Initiated is when the upload was created.
	Initiated time.Time
}

// ListUploads returns up to limit (0 = all) multipart uploads in progress
// under prefix (ListMultipartUploads, 1,000 per page).
func (s *Store) ListUploads(ctx context.Context, prefix string, limit int) ([]Upload, error) {
	var out []Upload
	var keyMarker, idMarker *string
	for {
		page, err := s.client.ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{
			Bucket:         &s.bucket,
			Prefix:         optString(prefix),
			KeyMarker:      keyMarker,
			UploadIdMarker: idMarker,
		})
		if err != nil {
			return out, opError("list multipart uploads", prefix, err)
		}
		for _, u := range page.Uploads {
			out = append(out, Upload{Key: aws.ToString(u.Key), UploadID: aws.ToString(u.UploadId), Initiated: aws.ToTime(u.Initiated)})
			if limit > 0 && len(out) == limit {
				return out, nil
			}
		}
		if !aws.ToBool(page.IsTruncated) || (page.NextKeyMarker == nil && page.NextUploadIdMarker == nil) {
			return out, nil
		}
		keyMarker, idMarker = page.NextKeyMarker, page.NextUploadIdMarker
	}
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
	return nil
}

// JanitorOptions configure RunJanitor.
type JanitorOptions struct {
	// Prefix limits the janitor to uploads under this key prefix (the
	// gateway's [s3].prefix); it never touches anything else.
	Prefix string
	// MaxAge is the age after which an upload is aborted; 0 = 24h.
	MaxAge time.Duration
	// Interval is the time between sweeps; 0 = MaxAge/4, at most 1h.
	Interval time.Duration
	// Logger receives one line per aborted upload and per failed sweep;
	// nil = no logging.
	Logger *slog.Logger
	// Now is the clock; nil = time.Now.
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
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

// SweepResult is what one janitor sweep saw and did.
type SweepResult struct {
	// Seen is the number of uploads in progress under the prefix.
	Seen int
	// Aborted lists the uploads aborted as abandoned.
	Aborted []Upload
}

// AbortAbandonedUploads lists the multipart uploads under opts.Prefix and
// aborts those initiated more than opts.MaxAge ago, logging each one.
// Uploads still in progress (younger) are left alone. It keeps going past
// a failed abort and returns every error joined.
func (s *Store) AbortAbandonedUploads(ctx context.Context, opts JanitorOptions) (SweepResult, error) {
	opts = opts.withDefaults()
	ups, err := s.ListUploads(ctx, opts.Prefix, 0)
	res := SweepResult{Seen: len(ups)}
	if err != nil {
		return res, fmt.Errorf("janitor: %w", err)
	}
	cutoff := opts.Now().Add(-opts.MaxAge)
	var errs []error
	for _, u := range ups {
		if u.Initiated.IsZero() || u.Initiated.After(cutoff) {
			continue
		}
		if err := s.AbortUpload(ctx, u); err != nil {
			errs = append(errs, err)
			continue
		}
		res.Aborted = append(res.Aborted, u)
		opts.Logger.Info("janitor: aborted an abandoned multipart upload",
			"key", u.Key, "upload_id", u.UploadID, "initiated", u.Initiated.UTC().Format(time.RFC3339),
			"age", opts.Now().Sub(u.Initiated).Round(time.Second).String())
	}
	return res, errors.Join(errs...)
}

// RunJanitor sweeps at once and then every opts.Interval until ctx ends
// (see AbortAbandonedUploads). Run it in its own goroutine.
func (s *Store) RunJanitor(ctx context.Context, opts JanitorOptions) {
	opts = opts.withDefaults()
	sweep := func() {
		sctx, cancel := context.WithTimeout(ctx, cleanupTimeout*10)
		defer cancel()
		res, err := s.AbortAbandonedUploads(sctx, opts)
		if err != nil && ctx.Err() == nil {
			opts.Logger.Warn("janitor: sweep of abandoned multipart uploads failed; grant s3:ListBucketMultipartUploads and s3:AbortMultipartUpload",
				"prefix", opts.Prefix, "err", err)
			return
		}
		opts.Logger.Info("janitor: swept multipart uploads", "prefix", opts.Prefix,
			"in_progress", res.Seen, "aborted", len(res.Aborted), "max_age", opts.MaxAge.String())
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
