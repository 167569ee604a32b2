package s3vfs

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// AnyBucket as Config.Bucket makes a Store of no one bucket: its
// ListBuckets lists what the credentials can see and ForBucket gives the
// Store of each ([s3.stores.NAME] bucket = "*").
const AnyBucket = "*"

// maxListedBuckets bounds what ListBuckets reads: AWS allows 10,000
// buckets per account by request, 100 by default.
const maxListedBuckets = 10000

// BucketInfo is one bucket of ListBuckets.
type BucketInfo struct {
	// Name is the bucket name.
	Name string
	// Created is when it was created (zero when the store does not say).
	Created time.Time
}

// AnyBucket reports whether the Store was built with Bucket = AnyBucket:
// it serves no objects itself, only through ForBucket.
func (s *Store) AnyBucket() bool { return s.bucket == AnyBucket }

// ListBuckets lists the buckets the credentials can see (ListBuckets, which
// needs s3:ListAllMyBuckets), sorted by name, at most maxListedBuckets.
func (s *Store) ListBuckets(ctx context.Context) ([]BucketInfo, error) {
	var out []BucketInfo
	in := &s3.ListBucketsInput{}
	for {
		page, err := s.client.ListBuckets(ctx, in)
		if err != nil {
			return nil, opError("list buckets", "", err)
		}
		for _, b := range page.Buckets {
			out = append(out, BucketInfo{Name: aws.ToString(b.Name), Created: aws.ToTime(b.CreationDate)})
		}
		if page.ContinuationToken == nil || *page.ContinuationToken == "" || len(page.Buckets) == 0 {
			break
		}
		if len(out) >= maxListedBuckets {
			return nil, fmt.Errorf("list buckets: more than %d buckets", maxListedBuckets)
		}
		in.ContinuationToken = page.ContinuationToken
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// ForBucket returns a Store of bucket that shares s's client, credentials,
// object options and upload memory: the stores of one [s3.stores.NAME]
// with bucket = "*" make one set of S3 connections and one credential
// refresh.
func (s *Store) ForBucket(bucket string) *Store {
	c := *s
	c.bucket = bucket
	return &c
}
