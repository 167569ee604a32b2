package s3vfs

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// downClient fails the first `down` AbortMultipartUpload calls as an
// unavailable S3 does.
type downClient struct {
	s3API
	down  int32
	calls atomic.Int32
}

func (c *downClient) AbortMultipartUpload(ctx context.Context, in *s3.AbortMultipartUploadInput, opt ...func(*s3.Options)) (*s3.AbortMultipartUploadOutput, error) {
	if c.calls.Add(1) <= c.down {
		return nil, fmt.Errorf("test: %w", ErrUnavailable)
	}
	return c.s3API.AbortMultipartUpload(ctx, in, opt...)
}

func TestAbortsOutlastAShortOutage(t *testing.T) {
	s, gw := newTestStore(t, nil)
	ctx := context.Background()
	start := func(key string) string {
		out, err := s.client.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: aws.String(testBucket), Key: aws.String(key)})
		if err != nil {
			t.Fatal(err)
		}
		return aws.ToString(out.UploadId)
	}
	open := func(key string) bool {
		for _, u := range gw.listUploads(t) {
			if len(u) > len(key) && u[:len(key)+1] == key+" " {
				return true
			}
		}
		return false
	}
	direct := s.client
	defer func() { s.client = direct }()
	s.lateAbortDelay, s.lateAbortWindow = 20*time.Millisecond, 2*time.Second

	t.Run("an abort that fails while S3 is down is retried in the background until it succeeds", func(t *testing.T) {
		id := start("outage-1")
		c := &downClient{s3API: direct, down: 3}
		s.client = c
		err := s.abortOrRetry(ctx, "outage-1", id, false)
		if !errors.Is(err, ErrUnavailable) {
			t.Fatalf("abortOrRetry = %v, want the outage reported", err)
		}
		deadline := time.Now().Add(5 * time.Second)
		for open("outage-1") && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		if open("outage-1") {
			t.Fatalf("the upload is still open after %d abort attempts", c.calls.Load())
		}
	})
	t.Run("the background retries stop at the window's end and at their bound", func(t *testing.T) {
		id := start("outage-2")
		c := &downClient{s3API: direct, down: 1 << 30}
		s.client = c
		s.lateAbortWindow = 200 * time.Millisecond
		_ = s.abortOrRetry(ctx, "outage-2", id, false)
		time.Sleep(time.Second)
		n := c.calls.Load()
		time.Sleep(300 * time.Millisecond)
		if c.calls.Load() != n {
			t.Fatalf("abort attempts went on after the window: %d then %d", n, c.calls.Load())
		}
		for range maxLateAborts {
			s.lateAborts <- struct{}{} // every slot taken
		}
		defer func() {
			for range maxLateAborts {
				<-s.lateAborts
			}
		}()
		before := c.calls.Load()
		if err := s.abortOrRetry(ctx, "outage-2", id, false); err == nil {
			t.Fatal("abortOrRetry with every slot taken reported success")
		}
		time.Sleep(100 * time.Millisecond)
		if got := c.calls.Load() - before; got != 1 {
			t.Fatalf("%d attempts with every background slot taken, want the one", got)
		}
		s.client = direct
		if err := s.abortOrRetry(ctx, "outage-2", id, false); err != nil {
			t.Fatal(err)
		}
	})
}
