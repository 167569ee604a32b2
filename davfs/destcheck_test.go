package davfs

import (
	"context"
	"errors"
	"io/fs"
	"testing"
	"time"
)

// A COPY or MOVE with Overwrite: F may take from a recent listing that
// its destination is no folder only when the source is a file: a folder
// COPY onto a folder the listing missed (made elsewhere within its TTL)
// would be made into it, replacing its files, its marker and its index.
func TestAFolderCopyWithoutOverwriteAsksS3WhetherTheDestinationIsAFolder(t *testing.T) {
	ctx := context.Background()
	s := newMem()
	seed(s, map[string]string{"r/d/": "", "r/d/a/": "", "r/d/a/f": "ours"})
	dc := NewDirCache(time.Hour, 1000)
	if err := put(dcFS(s, dc), "/d/first"); err != nil { // lists /d whole
		t.Fatal(err)
	}
	if fi, known := dc.child("r/d/", "b"); !known || fi != nil {
		t.Fatalf("setup: b is not free in the listing of /d (%v, %v)", fi, known)
	}
	// Elsewhere (another gateway, or directly in S3), after the listing.
	seed(s, map[string]string{"r/d/b/": "", "r/d/b/f": "theirs"})

	_, err := dcFS(s, dc).Copy(ctx, "/d/a", "/d/b", false, true)
	if !errors.Is(err, fs.ErrExist) {
		t.Errorf("folder COPY without overwrite onto a folder made meanwhile: err = %v, want fs.ErrExist", err)
	}
	if got := string(s.objs["r/d/b/f"]); got != "theirs" {
		t.Errorf("the existing folder's file holds %q after a COPY without overwrite, want %q", got, "theirs")
	}
}

// MoveEmptyDir's destination likewise: a folder the listing missed would
// get the moved folder's marker (and its dead properties) over its own.
func TestMoveEmptyDirAsksS3WhetherTheDestinationIsAFolder(t *testing.T) {
	ctx := context.Background()
	s := newMem()
	seed(s, map[string]string{"r/d/": "", "r/d/a/": ""})
	dc := NewDirCache(time.Hour, 1000)
	if err := put(dcFS(s, dc), "/d/first"); err != nil { // lists /d whole
		t.Fatal(err)
	}
	seed(s, map[string]string{"r/d/b/": "", "r/d/b/f": "theirs"}) // elsewhere, after the listing
	if err := dcFS(s, dc).MoveEmptyDir(ctx, "/d/a", "/d/b"); !errors.Is(err, fs.ErrExist) {
		t.Errorf("MoveEmptyDir onto a folder made meanwhile: err = %v, want fs.ErrExist", err)
	}
	if _, ok := s.objs["r/d/a/"]; !ok {
		t.Error("the source folder is gone after a refused move")
	}
}

// The gateway looks a folder MOVE's destination up before it takes the
// request's locks (to answer 412 or 403 at once), and MoveEmptyDir checks
// it again once they are held. That second check must ask S3: a folder
// another request made there meanwhile (a folder COPY whose lock this
// MOVE waited out) would otherwise get this folder's marker over its own,
// its properties replaced, and the MOVE would answer 201.
func TestMoveEmptyDirChecksItsDestinationAgain(t *testing.T) {
	ctx := context.Background()
	s := newMem()
	seed(s, map[string]string{"r/d/": "", "r/d/a/": ""})
	f := dcFS(s, NewDirCache(time.Hour, 1000))
	if _, err := f.LookupFresh(ctx, "/d/b", false); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("setup: /d/b exists (%v)", err)
	}
	// Another request's folder COPY onto /d/b, done while this one waited.
	seed(s, map[string]string{"r/d/b/": "", "r/d/b/f": "theirs"})
	s.attrs["r/d/b/"] = memAttrs{meta: map[string]string{"theirs": "1"}}
	if err := f.MoveEmptyDir(ctx, "/d/a", "/d/b"); !errors.Is(err, fs.ErrExist) {
		t.Errorf("MoveEmptyDir onto a folder made since the first check: err = %v, want fs.ErrExist", err)
	}
	if s.attrs["r/d/b/"].meta["theirs"] != "1" {
		t.Errorf("the existing folder's marker was replaced: %v", s.attrs["r/d/b/"].meta)
	}
	if _, ok := s.objs["r/d/a/"]; !ok {
		t.Error("the source folder is gone after a refused move")
	}
}
