package davfs

import (
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
