package s3vfs

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// putKeys stores an empty object under each key, 16 at a time.
func putKeys(t *testing.T, s *Store, keys []string) {
	t.Helper()
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	errs := make(chan error, len(keys))
	for _, k := range keys {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if _, err := s.PutObject(context.Background(), k, []byte(k), WriteOptions{}); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// collect runs a listing to the end.
func collect(t *testing.T, s *Store, ctx context.Context, opts ListOptions) (objects, prefixes []string) {
	t.Helper()
	for e, err := range s.List(ctx, opts) {
		if err != nil {
			t.Fatal(err)
		}
		if e.Object != nil {
			objects = append(objects, e.Object.Key)
		} else {
			prefixes = append(prefixes, e.Prefix)
		}
	}
	return objects, prefixes
}

func TestList(t *testing.T) {
	s, _ := newTestStore(t, nil)
	ctx := context.Background()
	putKeys(t, s, []string{"a/1", "a/2", "a/sub/x", "a/sub/y", "a/tub/z", "b/1", "c"})

	t.Run("a delimited listing shows one level with folders as prefixes", func(t *testing.T) {
		objs, prefs := collect(t, s, ctx, ListOptions{Prefix: "a/", Delimiter: "/"})
		if !slices.Equal(objs, []string{"a/1", "a/2"}) || !slices.Equal(prefs, []string{"a/sub/", "a/tub/"}) {
			t.Fatalf("objects %v, prefixes %v", objs, prefs)
		}
	})
	t.Run("objects and prefixes come in key order within a page", func(t *testing.T) {
		var all []string
		for e, err := range s.List(ctx, ListOptions{Delimiter: "/"}) {
			if err != nil {
				t.Fatal(err)
			}
			if e.Object != nil {
				all = append(all, e.Object.Key)
			} else {
				all = append(all, e.Prefix)
			}
		}
		if !slices.Equal(all, []string{"a/", "b/", "c"}) {
			t.Fatalf("got %v", all)
		}
	})
	t.Run("listed objects carry size and ETag but no metadata", func(t *testing.T) {
		for e, err := range s.List(ctx, ListOptions{Prefix: "c"}) {
			if err != nil {
				t.Fatal(err)
			}
			if e.Object.Size != 1 || e.Object.ETag == "" || e.Object.ETag[0] != '"' || e.Object.HasMetadata || e.Object.LastModified.IsZero() {
				t.Fatalf("got %+v", *e.Object)
			}
		}
	})
	t.Run("MaxKeys 1 with Limit 1 costs exactly one request", func(t *testing.T) {
		cctx, n := WithCallCounter(ctx)
		objs, prefs := collect(t, s, cctx, ListOptions{Prefix: "a/", Delimiter: "/", MaxKeys: 1, Limit: 1})
		if len(objs)+len(prefs) != 1 || n.Load() != 1 {
			t.Fatalf("got %v %v after %d requests", objs, prefs, n.Load())
		}
	})
	t.Run("a consumer that breaks stops the listing", func(t *testing.T) {
		cctx, n := WithCallCounter(ctx)
		for range s.List(cctx, ListOptions{MaxKeys: 2}) {
			break
		}
		if n.Load() != 1 {
			t.Fatalf("%d requests", n.Load())
		}
	})
	t.Run("StartAfter skips keys", func(t *testing.T) {
		objs, _ := collect(t, s, ctx, ListOptions{StartAfter: "a/tub/z"})
		if !slices.Equal(objs, []string{"b/1", "c"}) {
			t.Fatalf("got %v", objs)
		}
	})
}

func TestListPagesThroughThousandsOfKeys(t *testing.T) {
	s, _ := newTestStore(t, nil)
	keys := make([]string, 2500)
	for i := range keys {
		keys[i] = fmt.Sprintf("many/%05d", i)
	}
	putKeys(t, s, keys)

	ctx, n := WithCallCounter(context.Background())
	objs, _ := collect(t, s, ctx, ListOptions{Prefix: "many/"})
	if !slices.Equal(objs, keys) {
		t.Fatalf("listed %d keys, want %d in order", len(objs), len(keys))
	}
	if n.Load() != 3 {
		t.Fatalf("listing 2,500 keys cost %d requests, want 3", n.Load())
	}

	t.Run("a limit spanning pages stops after the entries it needs", func(t *testing.T) {
		ctx, n := WithCallCounter(context.Background())
		objs, _ := collect(t, s, ctx, ListOptions{Prefix: "many/", Limit: 1200})
		if len(objs) != 1200 || n.Load() != 2 {
			t.Fatalf("got %d keys after %d requests", len(objs), n.Load())
		}
	})
	t.Run("DeletePrefix removes everything below the prefix", func(t *testing.T) {
		putKeys(t, s, []string{"keep/x", "many-not/x"})
		if err := s.DeletePrefix(context.Background(), "many/"); err != nil {
			t.Fatal(err)
		}
		objs, _ := collect(t, s, context.Background(), ListOptions{})
		if !slices.Equal(objs, []string{"keep/x", "many-not/x"}) {
			t.Fatalf("left %v", objs)
		}
	})
	t.Run("DeletePrefix refuses the empty prefix", func(t *testing.T) {
		if err := s.DeletePrefix(context.Background(), ""); err == nil {
			t.Fatal("want an error")
		}
	})
}

// deleteRecorder records the keys of every delete, in the order sent.
type deleteRecorder struct {
	s3API
	mu   sync.Mutex
	keys []string
}

func (d *deleteRecorder) DeleteObject(ctx context.Context, in *s3.DeleteObjectInput, optFns ...func(*s3.Options)) (*s3.DeleteObjectOutput, error) {
	d.mu.Lock()
	d.keys = append(d.keys, aws.ToString(in.Key))
	d.mu.Unlock()
	return d.s3API.DeleteObject(ctx, in, optFns...)
}

func (d *deleteRecorder) DeleteObjects(ctx context.Context, in *s3.DeleteObjectsInput, optFns ...func(*s3.Options)) (*s3.DeleteObjectsOutput, error) {
	d.mu.Lock()
	for _, o := range in.Delete.Objects {
		d.keys = append(d.keys, aws.ToString(o.Key))
	}
	d.mu.Unlock()
	return d.s3API.DeleteObjects(ctx, in, optFns...)
}

// TestDeletePrefixDeletesFoldersLast: SeaweedFS keeps listing a folder
// whose marker went before its contents, or whose last key went and left
// it empty, so DeletePrefix deletes every folder by name after the keys,
// deepest first.
func TestDeletePrefixDeletesFoldersLast(t *testing.T) {
	s, _ := newTestStore(t, nil)
	rec := &deleteRecorder{s3API: s.client}
	s.client = rec
	for _, marker := range []string{"tree/", "tree/sub/"} {
		if _, err := s.PutObject(context.Background(), marker, nil, WriteOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	putKeys(t, s, []string{"tree/a", "tree/sub/b", "tree/sub/deeper/c", "tree/implied/d", "treehouse"})
	if err := s.DeletePrefix(context.Background(), "tree/"); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"tree/a", "tree/implied/d", "tree/sub/b", "tree/sub/deeper/c", // the keys, as listed
		"tree/sub/deeper/",           // then folders, deepest first,
		"tree/implied/", "tree/sub/", // those only implied by keys too
		"tree/",
	}
	if !slices.Equal(rec.keys, want) {
		t.Errorf("deleted in this order:\n%v\nwant\n%v", rec.keys, want)
	}
	if objs, _ := collect(t, s, context.Background(), ListOptions{}); !slices.Equal(objs, []string{"treehouse"}) {
		t.Errorf("left %v, want only treehouse", objs)
	}
}
