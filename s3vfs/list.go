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

// Page is one ListObjectsV2 page: its objects and common prefixes merged
// in key order. Last tells that no page follows.
type Page struct {
	Entries []Entry
	Last    bool
}

// List streams the keys under opts.Prefix with ListObjectsV2, one page in
// memory at a time: within a page, objects and common prefixes come merged
// in key order. Iteration stops when the consumer breaks, after opts.Limit
// entries (the last page asked for no more than needed, so MaxKeys 1 and
// Limit 1 cost one request) or at the first error, which is yielded last.
func (s *Store) List(ctx context.Context, opts ListOptions) iter.Seq2[Entry, error] {
	return func(yield func(Entry, error) bool) {
		seen := 0
		for page, err := range s.ListPages(ctx, opts) {
			if err != nil {
				yield(Entry{}, err)
				return
			}
			for _, e := range page.Entries {
				if !yield(e, nil) {
					return
				}
				seen++
				if opts.Limit > 0 && seen >= opts.Limit {
					return
				}
			}
		}
	}
}

// ListPages is List page by page. With opts.Prefetch the next page is
// asked for while the consumer handles this one (a streamed listing then
// waits for S3 only when it outruns it); a consumer that stops early
// cancels the page in flight. The first error is yielded last.
func (s *Store) ListPages(ctx context.Context, opts ListOptions) iter.Seq2[Page, error] {
	return func(yield func(Page, error) bool) {
		ctx, cancel := context.WithCancel(ctx)
		defer cancel() // a prefetch still in flight is abandoned
		pageSize := opts.MaxKeys
		if pageSize <= 0 || pageSize > defaultPageSize {
			pageSize = defaultPageSize
		}
		in := s3.ListObjectsV2Input{
			Bucket:     &s.bucket,
			Prefix:     optString(opts.Prefix),
			Delimiter:  optString(opts.Delimiter),
			StartAfter: optString(opts.StartAfter),
		}
		type result struct {
			out *s3.ListObjectsV2Output
			err error
		}
		fetch := func(in s3.ListObjectsV2Input) <-chan result {
			ch := make(chan result, 1)
			go func() {
				out, err := s.client.ListObjectsV2(ctx, &in)
				ch <- result{out, err}
			}()
			return ch
		}
		seen := 0
		size := func() *int32 {
			n := pageSize
			if opts.Limit > 0 {
				n = int32(min(int(n), opts.Limit-seen))
			}
			return aws.Int32(n)
		}
		in.MaxKeys = size()
		pending := fetch(in)
		for {
			res := <-pending
			if res.err != nil {
				yield(Page{}, fmt.Errorf("list %q: %w", opts.Prefix, Classify(res.err)))
				return
			}
			out := res.out
			page := Page{Entries: mergePage(out.Contents, out.CommonPrefixes)}
			seen += len(page.Entries)
			next := aws.ToString(out.NextContinuationToken)
			page.Last = !aws.ToBool(out.IsTruncated) || (opts.Limit > 0 && seen >= opts.Limit)
			if !page.Last && (next == "" || next == aws.ToString(in.ContinuationToken)) {
				// Taking this for the end would answer part of a folder
				// as all of it.
				yield(Page{}, fmt.Errorf("list %q: a truncated page without a new continuation token: %w", opts.Prefix, ErrUnavailable))
				return
			}
			if !page.Last {
				in.ContinuationToken = &next
				in.MaxKeys = size()
				if opts.Prefetch {
					pending = fetch(in)
				}
			}
			if !yield(page, nil) || page.Last {
				return
			}
			if !opts.Prefetch {
				pending = fetch(in)
			}
		}
	}
}

// mergePage returns one page's objects and common prefixes merged in key
// order (each list is already sorted).
func mergePage(objects []types.Object, prefixes []types.CommonPrefix) []Entry {
	out := make([]Entry, 0, len(objects)+len(prefixes))
	i, j := 0, 0
	for i < len(objects) || j < len(prefixes) {
		if j == len(prefixes) || (i < len(objects) &&
			strings.Compare(aws.ToString(objects[i].Key), aws.ToString(prefixes[j].Prefix)) <= 0) {
			o := &objects[i]
			i++
			out = append(out, Entry{Object: &ObjectInfo{
				Key:          aws.ToString(o.Key),
				Size:         aws.ToInt64(o.Size),
				ETag:         quoteETag(aws.ToString(o.ETag)),
				LastModified: aws.ToTime(o.LastModified),
			}})
			continue
		}
		out = append(out, Entry{Prefix: aws.ToString(prefixes[j].Prefix)})
		j++
	}
	return out
}
