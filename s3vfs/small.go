package s3vfs

import (
	"context"
	"fmt"
	"io"

	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// GetSmall reads a whole small object (an index, a settings file) with one
// GetObject. An object larger than limit fails with ErrTooLarge rather than
// filling memory. A missing key gives ErrNotFound.
func (s *Store) GetSmall(ctx context.Context, key string, limit int64) ([]byte, ObjectInfo, error) {
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{Bucket: &s.bucket, Key: &key})
	if err != nil {
		return nil, ObjectInfo{}, opError("get", key, err)
	}
	defer out.Body.Close()
	info := answeredInfo(key, out.ContentLength, out.ETag, out.LastModified, out.ContentType, out.Metadata)
	if info.Size > limit {
		return nil, info, fmt.Errorf("get %q: %w: %d bytes, more than %d", key, ErrTooLarge, info.Size, limit)
	}
	body, err := io.ReadAll(io.LimitReader(out.Body, limit+1))
	if err != nil {
		return nil, info, opError("get", key, err)
	}
	if int64(len(body)) > limit {
		return nil, info, fmt.Errorf("get %q: %w: more than %d bytes", key, ErrTooLarge, limit)
	}
	return body, info, nil
}
