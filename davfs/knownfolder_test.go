package davfs

import (
	"context"
	"errors"
	"io/fs"
	"testing"
	"time"
)

// A name a recent listing of its parent showed free, that this gateway
// has since found to be a folder (a PROPFIND of it, a PUT into it), is
// not free on the listing's word: a file MOVE or COPY with Overwrite: F
// onto it must answer that it exists (412), not put a file over the
// folder's name (on AWS the file then wins, and the folder's content
// drops out of every listing).
func TestAFolderTheGatewayKnowsIsNotFreeOnItsParentsListing(t *testing.T) {
	ctx := context.Background()
	for _, how := range []string{"probed", "written into"} {
		t.Run(how, func(t *testing.T) {
			s := newMem()
			seed(s, map[string]string{"r/d/": "", "r/d/y": "mine"})
			dc := NewDirCache(time.Hour, 1000)
			if err := put(dcFS(s, dc), "/d/first"); err != nil { // lists /d whole
				t.Fatal(err)
			}
			// Elsewhere, after the listing.
			seed(s, map[string]string{"r/d/b/": "", "r/d/b/f": "theirs"})
			switch how {
			case "probed": // a Depth 0 PROPFIND of /d/b
				if fi, err := dcFS(s, dc).LookupFresh(ctx, "/d/b", false); err != nil || !fi.IsDir() {
					t.Fatalf("setup: /d/b is no folder (%v, %v)", fi, err)
				}
			case "written into":
				if err := put(dcFS(s, dc), "/d/b/g"); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := dcFS(s, dc).Move(ctx, "/d/y", "/d/b", false); !errors.Is(err, fs.ErrExist) {
				t.Errorf("MOVE without overwrite onto a folder the gateway knows: err = %v, want fs.ErrExist", err)
			}
			if _, ok := s.objs["r/d/b"]; ok {
				t.Error("a file now hides the folder /d/b")
			}
			if _, ok := s.objs["r/d/y"]; !ok {
				t.Error("the source is gone after a refused MOVE")
			}
			if _, err := dcFS(s, dc).Copy(ctx, "/d/y", "/d/b", false, true); !errors.Is(err, fs.ErrExist) {
				t.Errorf("COPY without overwrite onto a folder the gateway knows: err = %v, want fs.ErrExist", err)
			}
		})
	}
}

// A request that looked its destination up first (an If header's ETag
// condition does) took "free" from the parent's listing; its Overwrite: F
// COPY and its MKCOL must still ask S3: a file made there elsewhere after
// the listing is neither replaced nor answered 201 over.
func TestALookupFromAListingDoesNotFreeTheSameRequestsDestination(t *testing.T) {
	ctx := context.Background()
	s := newMem()
	seed(s, map[string]string{"r/d/": "", "r/d/y": "mine"})
	dc := NewDirCache(time.Hour, 1000)
	if err := put(dcFS(s, dc), "/d/first"); err != nil { // lists /d whole
		t.Fatal(err)
	}
	seed(s, map[string]string{"r/d/b": "theirs"}) // elsewhere, after the listing

	f := dcFS(s, dc)
	if _, err := f.Lookup(ctx, "/d/b", false); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("setup: the listing does not tell /d/b is free (%v)", err)
	}
	if _, err := f.Copy(ctx, "/d/y", "/d/b", false, false); !errors.Is(err, fs.ErrExist) {
		t.Errorf("COPY without overwrite after a lookup from the listing: err = %v, want fs.ErrExist", err)
	}
	if got := string(s.objs["r/d/b"]); got != "theirs" {
		t.Errorf("the file made elsewhere holds %q, want %q", got, "theirs")
	}

	f = dcFS(s, dc)
	if _, err := f.Lookup(ctx, "/d/b", false); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("setup: the listing does not tell /d/b is free (%v)", err)
	}
	if err := f.Mkdir(ctx, "/d/b", 0o755); !errors.Is(err, fs.ErrExist) {
		t.Errorf("MKCOL after a lookup from the listing: err = %v, want fs.ErrExist", err)
	}
}
