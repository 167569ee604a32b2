package davfs

import (
	"context"
	"errors"
	"iter"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/davgw/davgw/s3vfs"
)

// TestListingShowsWhatReadDirWould feeds one folder's keys, in S3's key
// order, through Listing.entry: the marker and the index are not shown,
// hidden and invalid names are left out, and a folder shadowed by a file
// of the same name is dropped even with other keys between the two.
func TestListingShowsWhatReadDirWould(t *testing.T) {
	f := New(nil, "r/", Options{DirCache: NewDirCache(time.Second, 1000), Hide: func(base string) bool { return base == ".DS_Store" }})
	l := &Listing{fs: f, name: "/d", prefix: "r/d/",
		index: map[string]metaEntry{"b.txt": {ETag: `"b"`, MTime: time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC).UnixNano()}}}
	obj := func(name, etag string) s3vfs.Entry {
		return s3vfs.Entry{Object: &s3vfs.ObjectInfo{Key: "r/d/" + name, ETag: etag, Size: 1}}
	}
	dir := func(name string) s3vfs.Entry { return s3vfs.Entry{Prefix: "r/d/" + name + "/"} }
	keys := []s3vfs.Entry{
		obj("", `"m"`), // the folder's marker
		obj(".DS_Store", `"h"`),
		obj(".davgw-index.json", `"i"`),
		obj("a", `"a"`),
		obj("a b", `"ab"`), // between the file "a" and the prefix "a/"
		dir("a-c"),
		obj("a.txt", `"at"`),
		dir("a"), // shadowed by the file "a"
		obj("b.txt", `"b"`),
		dir("c"),
		obj("c/", `"bad"`), // not a valid name
		dir("d"),
	}
	var shown []string
	for _, e := range keys {
		if fi := l.entry(e); fi != nil {
			n := fi.Name()
			if fi.IsDir() {
				n += "/"
			}
			shown = append(shown, n)
			if fi.Name() == "b.txt" && fi.ModTime().Year() != 2020 {
				t.Errorf("b.txt: modification time %v, want the index's", fi.ModTime())
			}
		}
	}
	want := []string{"a", "a b", "a-c/", "a.txt", "b.txt", "c/", "d/"}
	if !slices.Equal(shown, want) {
		t.Fatalf("shown %q, want %q", shown, want)
	}
	if !l.marker {
		t.Error("the marker was not noticed")
	}
	if !slices.Contains(l.opaque, ".DS_Store") || !slices.Contains(l.opaque, "c/") {
		t.Errorf("opaque names %q lack the hidden and the invalid name", l.opaque)
	}
}

// pagesStore is a Store whose listings are the given pages and that holds
// no index (every other method is unused by these tests).
type pagesStore struct {
	Store
	pages []s3vfs.Page
}

func (s pagesStore) GetSmall(context.Context, string, int64) ([]byte, s3vfs.ObjectInfo, error) {
	return nil, s3vfs.ObjectInfo{}, s3vfs.ErrNotFound
}

func (s pagesStore) ListPages(context.Context, s3vfs.ListOptions) iter.Seq2[s3vfs.Page, error] {
	return func(yield func(s3vfs.Page, error) bool) {
		for _, p := range s.pages {
			if !yield(p, nil) {
				return
			}
		}
	}
}

// TestListingSkipsEmptyPagesAndNeverEndsEarly: S3 may send empty pages
// before the keys (the folder still exists and lists whole), and a page
// iterator that stops before its last page is an error, never the end.
func TestListingSkipsEmptyPagesAndNeverEndsEarly(t *testing.T) {
	obj := func(key string) s3vfs.Entry {
		return s3vfs.Entry{Object: &s3vfs.ObjectInfo{Key: key, ETag: `"e"`, Size: 1}}
	}
	ctx := context.Background()
	before := runtime.NumGoroutine()
	f := New(pagesStore{pages: []s3vfs.Page{{}, {}, {Entries: []s3vfs.Entry{obj("r/d/a")}}, {Entries: []s3vfs.Entry{obj("r/d/b")}, Last: true}}}, "r/", Options{})
	fi, l, err := f.OpenListing(ctx, "/d", true)
	if err != nil || l == nil || !fi.IsDir() {
		t.Fatalf("OpenListing after empty pages: %v, %v, %v", fi, l, err)
	}
	var names []string
	for e, err := range l.Entries() {
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, e.Name())
	}
	l.Close()
	if !slices.Equal(names, []string{"a", "b"}) {
		t.Fatalf("listed %q", names)
	}

	f = New(pagesStore{pages: []s3vfs.Page{{Entries: []s3vfs.Entry{obj("r/d/a")}}}}, "r/", Options{})
	_, l, err = f.OpenListing(ctx, "/d", true)
	if err != nil {
		t.Fatal(err)
	}
	var last error
	for _, err := range l.Entries() {
		last = err
	}
	l.Close()
	if !errors.Is(last, errListingEnded) {
		t.Fatalf("a listing cut before its last page ended with %v", last)
	}

	f = New(pagesStore{pages: []s3vfs.Page{{}, {}}}, "r/", Options{})
	if _, _, err := f.OpenListing(ctx, "/d", true); !errors.Is(err, errListingEnded) {
		t.Fatalf("only empty pages, none last: %v", err)
	}
	time.Sleep(10 * time.Millisecond)
	if after := runtime.NumGoroutine(); after > before {
		t.Errorf("%d goroutines before, %d after", before, after)
	}
}
