package davfs

import (
	"context"
	"errors"
	"io/fs"
	"maps"
	"strings"
	"testing"
	"time"
)

// TestNoNameReachesTheReservedKeys: an FS over a bucket whose keys hold
// another store's reserved area (Options.ReservedKeys) serves nothing of
// it, whatever the root: names inside it do not exist, and a folder that
// holds it cannot be deleted, copied, moved or replaced. No key changes.
func TestNoNameReachesTheReservedKeys(t *testing.T) {
	ctx := context.Background()
	s := newMem()
	seed(s, map[string]string{
		"data/.davgw/app-passwords/alice/k1": "hash",
		"data/.davgw/sessions/s1":            "session",
		"data/f.txt":                         "file",
		"data/sub/g.txt":                     "file",
		"other/h.txt":                        "file",
	})
	before := maps.Clone(s.objs)
	opts := func() Options {
		return Options{IndexLocks: &IndexLocks{}, IndexCache: NewIndexCache(time.Second, 1<<20), ReservedKeys: "data/.davgw/"}
	}
	f := New(s, "", opts())

	for _, name := range []string{"/data/.davgw", "/data/.davgw/app-passwords/alice/k1", "/data/.davgw/sessions"} {
		if !f.Reserved(name) {
			t.Errorf("Reserved(%q) = false", name)
		}
		if _, err := f.Stat(ctx, name); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("Stat(%q) = %v, want fs.ErrNotExist", name, err)
		}
	}
	for _, name := range []string{"/", "/data", "/data/f.txt", "/data/.davgwx", "/other"} {
		if f.Reserved(name) {
			t.Errorf("Reserved(%q) = true", name)
		}
	}
	// The check builds no key: it must agree with dirPrefix.
	for _, root := range []string{"", "data/", "data/.davgw/", "data/.davgw/app-passwords/", "other/", "d/"} {
		g := New(s, root, opts())
		for _, name := range []string{"/", "/data", "/.davgw", "/data/.davgw", "/data/.davgw/x", "/data/.davgwx", "/app-passwords", "/x/y", "/dat"} {
			want := strings.HasPrefix(g.dirPrefix(name), "data/.davgw/")
			if got := g.folderKeyHasPrefix(name, "data/.davgw/"); got != want {
				t.Errorf("root %q: folderKeyHasPrefix(%q) = %v, want %v", root, name, got, want)
			}
		}
	}
	if _, err := f.Create(ctx, "/data/.davgw/app-passwords/alice/k2", PutOptions{}); !errors.Is(err, fs.ErrPermission) {
		t.Errorf("Create inside = %v, want fs.ErrPermission", err)
	}
	if err := f.Mkdir(ctx, "/data/.davgw/new", 0); !errors.Is(err, fs.ErrPermission) {
		t.Errorf("Mkdir inside = %v, want fs.ErrPermission", err)
	}
	if err := f.RemoveAll(ctx, "/data"); !errors.Is(err, fs.ErrPermission) {
		t.Errorf("RemoveAll of the holding folder = %v, want fs.ErrPermission", err)
	}
	for _, c := range []struct{ src, dst string }{
		{"/data", "/copy"},                      // out of it, inside a copy of its folder
		{"/data/f.txt", "/data/.davgw/f.txt"},   // into it
		{"/other", "/data"},                     // onto the folder that holds it
		{"/data/.davgw/sessions/s1", "/s1.txt"}, // out of it by name
	} {
		if _, err := f.Copy(ctx, c.src, c.dst, true, true); err == nil {
			t.Errorf("Copy %s -> %s succeeded", c.src, c.dst)
		}
		if _, err := f.Move(ctx, c.src, c.dst, true); err == nil {
			t.Errorf("Move %s -> %s succeeded", c.src, c.dst)
		}
	}
	// What does not reach it works as ever.
	if _, err := f.Copy(ctx, "/data/sub", "/sub2", false, true); err != nil {
		t.Fatalf("Copy of a folder beside it: %v", err)
	}
	if err := f.RemoveAll(ctx, "/sub2"); err != nil {
		t.Fatalf("RemoveAll beside it: %v", err)
	}

	// A root inside it: nothing at all.
	in := New(s, "data/.davgw/", opts())
	if _, err := in.Stat(ctx, "/"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Stat of a root inside = %v, want fs.ErrNotExist", err)
	}
	if _, _, err := in.OpenListing(ctx, "/", true); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("listing of a root inside = %v, want fs.ErrNotExist", err)
	}
	if _, err := in.Stat(ctx, "/app-passwords/alice/k1"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Stat under a root inside = %v, want fs.ErrNotExist", err)
	}
	if err := in.RemoveAll(ctx, "/sessions"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("RemoveAll under a root inside = %v, want fs.ErrNotExist", err)
	}

	if !maps.EqualFunc(before, s.objs, func(a, b []byte) bool { return string(a) == string(b) }) {
		t.Errorf("keys changed: before %v, after %v", keysOf(before), keysOf(s.objs))
	}
}

func keysOf(m map[string][]byte) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
