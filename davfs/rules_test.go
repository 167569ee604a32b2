package davfs

import (
	"context"
	"errors"
	"io/fs"
	"testing"
)

// The file-system preconditions the HTTP edge relies on: each is decided
// here, once, and reported as an error the edge maps to its status.

func rulesFS() *FS {
	s := newMem()
	for _, k := range []string{"r/a/", "r/a/f.txt", "r/a/sub/", "r/b.txt"} {
		s.objs[k] = nil
	}
	s.objs["r/a/f.txt"], s.objs["r/b.txt"] = []byte("f"), []byte("b")
	return batchFS(s, nil)
}

func TestANameWrittenWithASlashNamesAFolder(t *testing.T) {
	ctx := context.Background()
	f := rulesFS()
	if _, err := f.Lookup(ctx, "/b.txt", true); !errors.Is(err, ErrFileNamedAsFolder) || !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Lookup of a file with a slash: %v, want ErrFileNamedAsFolder (fs.ErrNotExist)", err)
	}
	if _, err := f.LookupFresh(ctx, "/b.txt", true); !errors.Is(err, ErrFileNamedAsFolder) {
		t.Errorf("LookupFresh of a file with a slash: %v, want ErrFileNamedAsFolder", err)
	}
	if _, _, err := f.OpenListing(ctx, "/b.txt", true); !errors.Is(err, ErrFileNamedAsFolder) {
		t.Errorf("OpenListing of a file with a slash: %v, want ErrFileNamedAsFolder", err)
	}
	if fi, err := f.Lookup(ctx, "/a", true); err != nil || !fi.IsDir() {
		t.Errorf("Lookup of a folder with a slash: %v, %v", fi, err)
	}
	if fi, err := f.Lookup(ctx, "/b.txt", false); err != nil || fi.IsDir() {
		t.Errorf("Lookup of a file without a slash: %v, %v", fi, err)
	}
}

func TestCheckCopyRefusesWhatNoCopyCanDo(t *testing.T) {
	cases := []struct {
		name, src, dst string
		want           error
	}{
		{"a missing source is not found", "/none", "/x", fs.ErrNotExist},
		{"a copy onto itself overlaps", "/a", "/a", fs.ErrPermission},
		{"a copy into its own folder overlaps", "/a", "/a/sub/x", fs.ErrPermission},
		{"a copy onto its own ancestor overlaps", "/a/sub", "/a", fs.ErrPermission},
		{"a copy onto the root overlaps", "/b.txt", "/", fs.ErrPermission},
		{"a missing destination parent is not a folder", "/b.txt", "/none/x", ErrNotDir},
		{"a file as destination parent is not a folder", "/a/f.txt", "/b.txt/x", ErrNotDir},
		{"a sibling destination is fine", "/a", "/c", nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := rulesFS().CheckCopy(context.Background(), c.src, c.dst, false)
			if c.want == nil && err != nil || c.want != nil && !errors.Is(err, c.want) {
				t.Fatalf("CheckCopy(%s, %s) = %v, want %v", c.src, c.dst, err, c.want)
			}
		})
	}
	if err := rulesFS().MoveEmptyDir(context.Background(), "/a/sub", "/a/sub/in"); !errors.Is(err, fs.ErrPermission) {
		t.Errorf("MoveEmptyDir into itself: %v, want fs.ErrPermission", err)
	}
}

func TestCreateTargetRefusesFoldersAndMissingParents(t *testing.T) {
	ctx := context.Background()
	f := rulesFS()
	if _, err := f.CreateTarget(ctx, "/a"); !errors.Is(err, ErrIsDir) {
		t.Errorf("onto a folder: %v, want ErrIsDir", err)
	}
	if _, err := f.CreateTarget(ctx, "/"); !errors.Is(err, ErrIsDir) {
		t.Errorf("onto the root: %v, want ErrIsDir", err)
	}
	if _, err := f.CreateTarget(ctx, "/none/x"); !errors.Is(err, ErrNotDir) {
		t.Errorf("under a missing folder: %v, want ErrNotDir", err)
	}
	if fi, err := f.CreateTarget(ctx, "/a/f.txt"); err != nil || fi == nil || fi.Size() != 1 {
		t.Errorf("onto a file: %v, %v; want the file replaced", fi, err)
	}
	if fi, err := f.CreateTarget(ctx, "/a/new.txt"); err != nil || fi != nil {
		t.Errorf("a new name: %v, %v; want nil, nil", fi, err)
	}
	if _, err := f.Create(ctx, "/a", PutOptions{Size: -1}); !errors.Is(err, ErrIsDir) {
		t.Errorf("Create onto a folder: %v, want ErrIsDir", err)
	}
}
