package s3vfs

import (
	"context"
	"fmt"
	"iter"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// defaultPageSize is S3's own maximum page of ListObjectsV2.
const defaultPageSize = 1000

// List streams the keys under opts.Prefix with ListObjectsV2, one page in
// memory at a time: within a page, objects and common prefixes come merged
// in key order. Iteration stops when the consumer breaks, after opts.Limit
// entries (the last page asked for no more than needed, so MaxKeys 1 and
// Limit 1 cost one request) or at the first error, which is yielded last.
func (s *Store) List(ctx context.Context, opts ListOptions) iter.Seq2[Entry, error] {
	return func(yield func(Entry, error) bool) {
		pageSize := opts.MaxKeys
		if pageSize <= 0 || pageSize > defaultPageSize {
			pageSize = defaultPageSize
		}
		in := &s3.ListObjectsV2Input{
			Bucket:     &s.bucket,
			Prefix:     optString(opts.Prefix),
			Delimiter:  optString(opts.Delimiter),
			StartAfter: optString(opts.StartAfter),
		}
		seen := 0
		for {
			size := pageSize
			if opts.Limit > 0 {
				size = int32(min(int(size), opts.Limit-seen))
			}
			in.MaxKeys = aws.Int32(size)
			out, err := s.client.ListObjectsV2(ctx, in)
			if err != nil {
				yield(Entry{}, fmt.Errorf("list %q: %w", opts.Prefix, Classify(err)))
				return
			}
			for e := range mergePage(out.Contents, out.CommonPrefixes) {
				if !yield(e, nil) {
					return
				}
				seen++
				if opts.Limit > 0 && seen >= opts.Limit {
					return
				}
			}
			next := aws.ToString(out.NextContinuationToken)
			if !aws.ToBool(out.IsTruncated) || next == "" || next == aws.ToString(in.ContinuationToken) {
				return
			}
			in.ContinuationToken = &next
		}
	}
}

// mergePage yields one page's objects and common prefixes merged in key order
// (each list is already sorted).
func mergePage(objects []types.Object, prefixes []types.CommonPrefix) iter.Seq[Entry] {
	return func(yield func(Entry) bool) {
		i, j := 0, 0
		for i < len(objects) || j < len(prefixes) {
			if j == len(prefixes) || (i < len(objects) &&
				strings.Compare(aws.ToString(objects[i].Key), aws.ToString(prefixes[j].Prefix)) <= 0) {
				o := &objects[i]
				i++
				if !yield(Entry{Object: &ObjectInfo{
					Key:          aws.ToString(o.Key),
					Size:         aws.ToInt64(o.Size),
					ETag:         quoteETag(aws.ToString(o.ETag)),
					LastModified: aws.ToTime(o.LastModified),
				}}) {
					return
				}
				continue
			}
			p := aws.ToString(prefixes[j].Prefix)
			j++
			if !yield(Entry{Prefix: p}) {
				return
			}
		}
	}
}
