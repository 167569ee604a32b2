package gateway

import (
	"context"
	"iter"
	"net/url"
	"path"
	"strings"
	"sync"
	"testing"

	"github.com/davgw/davgw/davfs"
	"github.com/davgw/davgw/s3vfs"
)

// keyRecorder is a davfs.Store that holds nothing and records every key
// and prefix it is asked about.
type keyRecorder struct {
	mu   sync.Mutex
	keys []string
}

var _ davfs.Store = (*keyRecorder)(nil)

func (k *keyRecorder) note(keys ...string) {
	k.mu.Lock()
	k.keys = append(k.keys, keys...)
	k.mu.Unlock()
}

func (k *keyRecorder) Head(_ context.Context, key string) (s3vfs.ObjectInfo, error) {
	k.note(key)
	return s3vfs.ObjectInfo{}, s3vfs.ErrNotFound
}

func (k *keyRecorder) List(_ context.Context, opts s3vfs.ListOptions) iter.Seq2[s3vfs.Entry, error] {
	k.note(opts.Prefix)
	return func(func(s3vfs.Entry, error) bool) {}
}

func (k *keyRecorder) ListPages(_ context.Context, opts s3vfs.ListOptions) iter.Seq2[s3vfs.Page, error] {
	k.note(opts.Prefix)
	return func(func(s3vfs.Page, error) bool) {}
}

func (k *keyRecorder) NewReader(_ context.Context, key string, _ s3vfs.ObjectInfo) davfs.ObjectReader {
	k.note(key)
	return nil
}

func (k *keyRecorder) Get(_ context.Context, key, _ string) (s3vfs.ObjectInfo, davfs.ObjectReader, error) {
	k.note(key)
	return s3vfs.ObjectInfo{}, nil, s3vfs.ErrNotFound
}

func (k *keyRecorder) NewWriter(_ context.Context, key string, _ s3vfs.WriteOptions) davfs.ObjectWriter {
	k.note(key)
	return nil
}

func (k *keyRecorder) PutObject(_ context.Context, key string, _ []byte, _ s3vfs.WriteOptions) (s3vfs.ObjectInfo, error) {
	k.note(key)
	return s3vfs.ObjectInfo{}, s3vfs.ErrAccessDenied
}

func (k *keyRecorder) Copy(_ context.Context, src string, _ s3vfs.ObjectInfo, dst string, _ s3vfs.CopyOptions) (s3vfs.ObjectInfo, error) {
	k.note(src, dst)
	return s3vfs.ObjectInfo{}, s3vfs.ErrNotFound
}

func (k *keyRecorder) Delete(_ context.Context, keys []string) error {
	k.note(keys...)
	return nil
}

func (k *keyRecorder) DeletePrefix(_ context.Context, prefix string) error {
	k.note(prefix)
	return nil
}

func (k *keyRecorder) GetSmall(_ context.Context, key string, _ int64) ([]byte, s3vfs.ObjectInfo, error) {
	k.note(key)
	return nil, s3vfs.ObjectInfo{}, s3vfs.ErrNotFound
}

// FuzzURLPathToKey: whatever the request target (a request line's path or
// an absolute URL, as in Destination and If tags), the name the gateway
// maps it to is clean, and every S3 key davfs asks about for that name
// (HEAD, LIST, GET of the index, DELETE) lies under the user's root with no
// dot segment: no key outside the root, ever.
func FuzzURLPathToKey(f *testing.F) {
	const root = "prefix/users/alice/"
	g := &Gateway{davBase: "/dav"}
	f.Fuzz(func(t *testing.T, target string) {
		u, err := url.Parse(target)
		if err != nil {
			return
		}
		name, ok := g.davName(u.Path)
		if !ok {
			return
		}
		if !strings.HasPrefix(name, "/") || path.Clean(name) != name {
			t.Fatalf("%q: name %q is not clean", target, name)
		}
		if davfs.IsReserved(name) {
			return // the gateway answers 404 before davfs sees it
		}
		rec := &keyRecorder{}
		fs := davfs.New(rec, root, davfs.Options{})
		ctx := context.Background()
		_, _ = fs.Lookup(ctx, name, strings.HasSuffix(u.Path, "/"))
		_, _ = fs.StatDir(ctx, path.Dir(name))
		_ = fs.RemoveAll(ctx, name)
		if len(rec.keys) == 0 && name != "/" {
			t.Fatalf("%q: no key was asked for", target)
		}
		for _, k := range rec.keys {
			rest, under := strings.CutPrefix(k, root)
			if !under {
				t.Fatalf("%q (name %q) asked for key %q outside the root %q", target, name, k, root)
			}
			for _, seg := range strings.Split(rest, "/") {
				if seg == "." || seg == ".." {
					t.Fatalf("%q (name %q) asked for key %q with a dot segment", target, name, k)
				}
			}
			if strings.Contains(rest, "//") {
				t.Fatalf("%q (name %q) asked for key %q with an empty segment", target, name, k)
			}
		}
	})
}
