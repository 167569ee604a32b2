package s3vfs

import (
	"context"
	"errors"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// An abort that fails because S3 is unavailable (an outage of a few
// seconds: the SDK's own retries all fall inside it) would leave the
// upload's parts in the bucket until the janitor's next sweep, a day
// later. Such aborts are retried in the background, with backoff, for
// lateAbortWindow; at most maxLateAborts at a time per Store (past that,
// and after the window, the janitor is left to do it, and it is logged).
const (
	lateAbortWindow = 60 * time.Second
	lateAbortDelay  = time.Second // before the first retry, doubled for each next
	maxLateAborts   = 64
)

// abortOrRetry aborts a multipart upload under a context detached from
// ctx with a timeout. When S3 is unavailable it keeps trying in the
// background (see lateAbortWindow) and returns the first attempt's error,
// which says so; the outcome of the retries goes to Config.Logger.
func (s *Store) abortOrRetry(ctx context.Context, key, uploadID string, verify bool) error {
	err := s.abortUpload(ctx, key, uploadID, verify)
	if err == nil || !errors.Is(err, ErrUnavailable) {
		return err
	}
	select {
	case s.lateAborts <- struct{}{}:
	default:
		s.logger.Warn("s3vfs: too many aborts of multipart uploads retried already; this one is left to the janitor",
			"key", key, "upload_id", uploadID, "error", err.Error())
		return errors.Join(err, errors.New("too many aborts retried already: left to the janitor"))
	}
	window, delay := s.lateAbortWindow, s.lateAbortDelay
	go func() {
		defer func() { <-s.lateAborts }()
		deadline := time.Now().Add(window)
		for attempt := 1; ; attempt++ {
			time.Sleep(min(delay, max(time.Until(deadline), 0)))
			delay *= 2
			lerr := s.abortUpload(ctx, key, uploadID, verify)
			switch {
			case lerr == nil:
				s.logger.Info("s3vfs: aborted a multipart upload after S3 came back",
					"key", key, "upload_id", uploadID, "attempts", attempt+1)
				return
			case !errors.Is(lerr, ErrUnavailable) || !time.Now().Before(deadline):
				s.logger.Error("s3vfs: could not abort a multipart upload; its parts stay until the janitor's sweep",
					"key", key, "upload_id", uploadID, "attempts", attempt+1, "error", lerr.Error())
				return
			}
		}
	}()
	return errors.Join(err, errors.New("the abort is retried in the background"))
}

// abortUpload aborts a multipart upload under a context detached from ctx
// with a timeout. NoSuchUpload (already aborted) is not an error.
//
// With verify, it then checks with ListParts that the upload stayed gone,
// aborting again if not: a part whose request was cut off may still land on
// the server after the abort (AWS documents this; versitygw recreates the
// upload when such a part lands), so an interrupted upload is re-checked a
// few times over about a second.
func (s *Store) abortUpload(ctx context.Context, key, uploadID string, verify bool) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	delay := 50 * time.Millisecond
	for attempt := 0; ; attempt++ {
		_, err := s.client.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{
			Bucket: &s.bucket, Key: &key, UploadId: &uploadID,
		})
		if err != nil && !errors.Is(Classify(err), ErrNotFound) {
			return opError("abort upload of", key, err)
		}
		if !verify || attempt == 4 {
			return nil
		}
		select {
		case <-time.After(delay):
		case <-ctx.Done():
			return opError("abort upload of", key, ctx.Err())
		}
		delay *= 2
		_, err = s.client.ListParts(ctx, &s3.ListPartsInput{
			Bucket: &s.bucket, Key: &key, UploadId: &uploadID, MaxParts: aws.Int32(1),
		})
		switch {
		case errors.Is(Classify(err), ErrNotFound):
			return nil
		case err != nil:
			return opError("check abort of", key, err)
		}
	}
}
