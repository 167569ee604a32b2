package s3vfs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"strings"
	"testing"
)

func TestPutObjectAndHead(t *testing.T) {
	s, _ := newTestStore(t, nil)
	ctx := context.Background()
	if err := s.CheckBucket(ctx); err != nil {
		t.Fatal(err)
	}
	info, err := s.PutObject(ctx, "dir/file.txt", []byte("hello"), WriteOptions{ContentType: "text/plain", Metadata: map[string]string{"Mtime": "1700000000"}})
	if err != nil {
		t.Fatal(err)
	}
	head, err := s.Head(ctx, "dir/file.txt")
	if err != nil {
		t.Fatal(err)
	}
	if !head.HasMetadata || head.Size != 5 || head.ETag != info.ETag || head.ContentType != "text/plain" || head.Metadata["mtime"] != "1700000000" {
		t.Fatalf("Put gave %+v, Head gives %+v", info, head)
	}
	if d := head.LastModified.Sub(info.LastModified); d < -2e9 || d > 2e9 {
		t.Fatalf("LastModified %v from Put, %v from Head", info.LastModified, head.LastModified)
	}
	t.Run("a missing bucket is not found", func(t *testing.T) {
		other := *s
		other.bucket = "no-such-bucket"
		if err := other.CheckBucket(ctx); !errors.Is(err, ErrNotFound) {
			t.Fatalf("CheckBucket = %v", err)
		}
	})
	t.Run("wrong credentials are access denied and not revealed", func(t *testing.T) {
		_, gw := newTestStore(t, nil)
		bad, err := New(ctx, Config{Endpoint: gw.Endpoint, Bucket: testBucket, PathStyle: true, AccessKeyID: testAccessKey, SecretAccessKey: "wrong-secret-value"})
		if err != nil {
			t.Fatal(err)
		}
		_, err = bad.PutObject(ctx, "x", nil, WriteOptions{})
		if !errors.Is(err, ErrAccessDenied) {
			t.Fatalf("PutObject = %v", err)
		}
		if strings.Contains(err.Error(), "wrong-secret-value") {
			t.Fatalf("error reveals the secret: %v", err)
		}
	})
}

// TestConditionalWrites documents what the store does with If-Match and
// If-None-Match on PutObject and CompleteMultipartUpload.
func TestConditionalWrites(t *testing.T) {
	s, gw := newTestStore(t, nil)
	ctx := context.Background()
	first, err := s.PutObject(ctx, "c", []byte("one"), WriteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	big := randomBytes(11*MiB, 11)
	multipart := func(opts WriteOptions) error {
		opts.Size = -1
		w := s.NewWriter(ctx, "c", opts)
		if _, err := w.Write(big); err != nil {
			return err
		}
		_, err := w.Commit()
		return err
	}
	tests := []struct {
		name  string
		write func() error
		want  error
	}{
		{"PutObject with If-None-Match * on an existing key fails its precondition", func() error {
			_, err := s.PutObject(ctx, "c", []byte("two"), WriteOptions{IfNoneMatch: "*"})
			return err
		}, ErrPreconditionFailed},
		{"PutObject with a stale If-Match fails its precondition", func() error {
			_, err := s.PutObject(ctx, "c", []byte("two"), WriteOptions{IfMatch: `"0123456789abcdef0123456789abcdef"`})
			return err
		}, ErrPreconditionFailed},
		{"PutObject with If-Match on a missing key is not found", func() error {
			_, err := s.PutObject(ctx, "c-missing", []byte("two"), WriteOptions{IfMatch: first.ETag})
			return err
		}, ErrNotFound},
		{"a multipart upload with If-None-Match * on an existing key fails its precondition", func() error {
			return multipart(WriteOptions{IfNoneMatch: "*"})
		}, ErrPreconditionFailed},
		{"a multipart upload with a stale If-Match fails its precondition", func() error {
			return multipart(WriteOptions{IfMatch: `"0123456789abcdef0123456789abcdef"`})
		}, ErrPreconditionFailed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.write()
			t.Logf("versitygw answered: %v", err)
			if !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
			if got := gw.objectBytes(t, "c"); string(got) != "one" {
				t.Fatalf("the object changed to %d bytes", len(got))
			}
		})
	}
	t.Run("a matching If-Match replaces the object", func(t *testing.T) {
		info, err := s.PutObject(ctx, "c", []byte("two"), WriteOptions{IfMatch: first.ETag})
		if err != nil {
			t.Fatal(err)
		}
		if err := multipart(WriteOptions{IfMatch: info.ETag}); err != nil {
			t.Fatalf("multipart with a matching If-Match: %v", err)
		}
		if !bytes.Equal(gw.objectBytes(t, "c"), big) {
			t.Fatal("object not replaced")
		}
	})
	t.Run("If-None-Match * creates a missing key", func(t *testing.T) {
		if _, err := s.PutObject(ctx, "c-new", []byte("x"), WriteOptions{IfNoneMatch: "*"}); err != nil {
			t.Fatal(err)
		}
	})
	if ups := gw.listUploads(t); len(ups) != 0 {
		t.Fatalf("uploads left behind: %v", ups)
	}
}

func TestCopy(t *testing.T) {
	s, gw := newTestStore(t, nil)
	ctx := context.Background()
	meta := map[string]string{"mtime": "123", "owner": "alice"}
	body := randomBytes(13*MiB+5, 12)
	w := s.NewWriter(ctx, "src/a b+c", WriteOptions{Size: int64(len(body)), ContentType: "image/png", Metadata: meta})
	if _, err := w.Write(body); err != nil {
		t.Fatal(err)
	}
	src, err := w.Commit()
	if err != nil {
		t.Fatal(err)
	}
	checkCopy := func(t *testing.T, key, contentType string, meta map[string]string) {
		t.Helper()
		head, err := s.Head(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		if head.ContentType != contentType || !maps.Equal(head.Metadata, meta) {
			t.Fatalf("copy has %q %v, want %q %v", head.ContentType, head.Metadata, contentType, meta)
		}
		if !bytes.Equal(gw.objectBytes(t, key), body) {
			t.Fatal("copy bytes differ")
		}
	}

	t.Run("CopyObject keeps content type and metadata", func(t *testing.T) {
		info, err := s.Copy(ctx, "src/a b+c", ObjectInfo{Size: src.Size, ETag: src.ETag}, "dst/one", CopyOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if info.ETag == "" || info.Size != src.Size {
			t.Fatalf("got %+v", info)
		}
		checkCopy(t, "dst/one", "image/png", meta)
	})
	t.Run("a multipart copy keeps content type and metadata", func(t *testing.T) {
		mp := *s
		mp.copyThreshold, mp.copyPartSize = MinPartSize, MinPartSize
		cctx, n := WithCallCounter(ctx)
		// A listing's info: no metadata, so Copy must Head the source.
		info, err := mp.Copy(cctx, "src/a b+c", ObjectInfo{Key: "src/a b+c", Size: src.Size, ETag: src.ETag}, "dst/two", CopyOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasSuffix(strings.Trim(info.ETag, `"`), "-3") {
			t.Fatalf("ETag %s is not a 3-part ETag", info.ETag)
		}
		if n.Load() != 6 { // Head, Create, 3 UploadPartCopy, Complete
			t.Fatalf("%d requests, want 6", n.Load())
		}
		checkCopy(t, "dst/two", "image/png", meta)
	})
	t.Run("a multipart copy of a changed source fails and leaves no upload", func(t *testing.T) {
		mp := *s
		mp.copyThreshold, mp.copyPartSize = MinPartSize, MinPartSize
		_, err := mp.Copy(ctx, "src/a b+c", ObjectInfo{Size: src.Size, ETag: `"0123456789abcdef0123456789abcdef-3"`, HasMetadata: true}, "dst/three", CopyOptions{})
		if !errors.Is(err, ErrPreconditionFailed) {
			t.Fatalf("Copy = %v", err)
		}
		if ups := gw.listUploads(t); len(ups) != 0 {
			t.Fatalf("uploads left behind: %v", ups)
		}
	})
	t.Run("a copy onto itself with ReplaceMetadata rewrites the metadata", func(t *testing.T) {
		newMeta := map[string]string{"mtime": "456"}
		if _, err := s.Copy(ctx, "dst/one", ObjectInfo{}, "dst/one", CopyOptions{ReplaceMetadata: true, ContentType: "text/plain", Metadata: newMeta}); err != nil {
			t.Fatal(err)
		}
		checkCopy(t, "dst/one", "text/plain", newMeta)
	})
	t.Run("a copy conditional on a stale source ETag fails its precondition", func(t *testing.T) {
		_, err := s.Copy(ctx, "src/a b+c", src, "dst/four", CopyOptions{SourceETag: `"0123456789abcdef0123456789abcdef"`})
		if !errors.Is(err, ErrPreconditionFailed) {
			t.Fatalf("Copy = %v", err)
		}
	})
	t.Run("a copy of a missing key is not found", func(t *testing.T) {
		_, err := s.Copy(ctx, "nothing", ObjectInfo{Size: 3, ETag: `"x"`}, "dst/five", CopyOptions{})
		if !errors.Is(err, ErrNotFound) {
			t.Fatalf("Copy = %v", err)
		}
	})
}

func TestDelete(t *testing.T) {
	s, _ := newTestStore(t, nil)
	ctx := context.Background()
	keys := make([]string, 1500)
	for i := range keys {
		keys[i] = fmt.Sprintf("d/%04d", i)
	}
	putKeys(t, s, keys)

	t.Run("1,500 keys go in two DeleteObjects batches", func(t *testing.T) {
		cctx, n := WithCallCounter(ctx)
		if err := s.Delete(cctx, append(keys, "d/never-existed")); err != nil {
			t.Fatal(err)
		}
		if n.Load() != 2 {
			t.Fatalf("%d requests, want 2", n.Load())
		}
		objs, _ := collect(t, s, ctx, ListOptions{Prefix: "d/"})
		if len(objs) != 0 {
			t.Fatalf("%d keys left", len(objs))
		}
	})
	t.Run("deleting one missing key is not an error", func(t *testing.T) {
		if err := s.Delete(ctx, []string{"d/never-existed"}); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("deleting one key removes it", func(t *testing.T) {
		putKeys(t, s, []string{"single"})
		if err := s.Delete(ctx, []string{"single"}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Head(ctx, "single"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("Head = %v", err)
		}
	})
}
