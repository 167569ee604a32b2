package davfs

import (
	"fmt"
	"testing"
	"time"
)

// list records a complete listing begun now.
func list(c *DirCache, prefix string, fis []*FileInfo, opaque ...string) {
	c.listed(prefix, fis, opaque, false, c.begin(), time.Now())
}

func TestDirCacheAnswersFromAListingAndTheGatewaysOwnWrites(t *testing.T) {
	c := NewDirCache(time.Hour, 1000)
	const p = "users/a/docs/"
	if c.exists(p) {
		t.Fatal("an unknown folder is known")
	}
	list(c, p, []*FileInfo{{name: "a.txt", etag: `"1"`, props: "x", metaLoaded: true}, {name: "sub", dir: true}}, "._hidden")
	if !c.exists(p) {
		t.Fatal("a listed folder is not known to exist")
	}
	fi, known := c.child(p, "a.txt")
	if !known || fi == nil || fi.etag != `"1"` {
		t.Fatalf("child a.txt = %v, %v", fi, known)
	}
	if fi.props != "" || fi.metaLoaded {
		t.Fatal("a cached file keeps its dead properties")
	}
	if fi, known := c.child(p, "free.txt"); !known || fi != nil {
		t.Fatalf("a free name = %v, %v; want known and nil", fi, known)
	}
	for _, name := range []string{"sub", "._hidden"} {
		if _, known := c.child(p, name); known {
			t.Fatalf("%s (a folder, or a name the listing left out) is answered from the cache", name)
		}
	}
	// The returned info is a copy: a caller's change does not reach the cache.
	fi.etag = "changed"
	if fi, _ := c.child(p, "a.txt"); fi.etag != `"1"` {
		t.Fatal("the cache shares its FileInfo with callers")
	}
	// A change makes the name unknown until the gateway writes it again.
	c.changed(p, "a.txt", p+"a.txt/")
	if _, known := c.child(p, "a.txt"); known {
		t.Fatal("a changed name is still answered")
	}
	if !c.exists(p) {
		t.Fatal("the folder still holds sub, yet is no longer known to exist")
	}
	c.wroteFile(p, "a.txt", &FileInfo{name: "a.txt", etag: `"2"`}, c.begin())
	if fi, known := c.child(p, "a.txt"); !known || fi.etag != `"2"` {
		t.Fatalf("a written file = %v, %v", fi, known)
	}
	// A folder whose last known key changed is not known to exist.
	c.changed(p, "a.txt", p+"a.txt/")
	c.changed(p, "sub", p+"sub/")
	if !c.exists(p) {
		t.Fatal("the hidden file it holds no longer proves the folder")
	}
	c.changed(p, "._hidden", p+"._hidden/")
	if c.exists(p) {
		t.Fatal("a folder whose every key changed is still known to exist")
	}
	// Changing a folder drops what is known below it.
	c.probed(p+"sub/deep/", c.begin())
	c.changed(p, "sub", p+"sub/")
	if c.exists(p + "sub/deep/") {
		t.Fatal("a folder below a changed one is still known")
	}
}

func TestDirCacheNeverStoresWhatAChangeMayHaveOverrun(t *testing.T) {
	c := NewDirCache(time.Hour, 1000)
	const p = "u/alice/d/"
	// A listing under way while this gateway writes x is not stored.
	start, at := c.begin(), time.Now()
	c.wroteFile(p, "x", &FileInfo{name: "x", etag: `"e"`}, c.begin())
	c.listed(p, []*FileInfo{{name: "other"}}, nil, false, start, at)
	if fi, known := c.child(p, "x"); known && fi == nil {
		t.Fatal("a file this gateway wrote during a listing is reported free")
	}
	// Nor one under way while it deletes.
	list(c, p, []*FileInfo{{name: "other", etag: `"o"`}})
	start, at = c.begin(), time.Now()
	c.changed(p, "other", p+"other/")
	c.listed(p, []*FileInfo{{name: "other", etag: `"o"`}}, nil, false, start, at)
	if _, known := c.child(p, "other"); known {
		t.Fatal("a file this gateway deleted during a listing is answered")
	}
	// A folder deleted while its probe was under way is not proven.
	start = c.begin()
	c.changed(p, "sub", p+"sub/")
	c.probed(p+"sub/", start)
	if c.exists(p + "sub/") {
		t.Fatal("a folder deleted during its probe is known to exist")
	}
	// A write that a delete of its folder overtook proves nothing.
	start = c.begin()
	c.changed("u/alice/", "d", p)
	c.wroteFile(p, "y", &FileInfo{name: "y"}, start)
	if c.exists(p) {
		t.Fatal("a write overtaken by the delete of its folder proves the folder")
	}
}

func TestDirCacheADeleteUnprovesEveryAncestor(t *testing.T) {
	c := NewDirCache(time.Hour, 1000)
	list(c, "u/a/", []*FileInfo{{name: "b", dir: true}})
	list(c, "u/a/b/", []*FileInfo{{name: "c.txt"}})
	c.changed("u/a/b/", "c.txt", "u/a/b/c.txt/")
	if c.exists("u/a/b/") || c.exists("u/a/") {
		t.Fatal("folders that S3 may have dropped with their last key are still known")
	}
}

func TestDirCacheForgetsAfterItsTTLAndStaysBounded(t *testing.T) {
	c := NewDirCache(50*time.Millisecond, 40)
	c.listed("f/", []*FileInfo{{name: "x"}}, nil, true, c.begin(), time.Now())
	time.Sleep(60 * time.Millisecond)
	if c.exists("f/") {
		t.Fatal("known after the TTL")
	}
	if _, known := c.child("f/", "x"); known {
		t.Fatal("answered after the TTL")
	}
	// Changes and writes into an expired listing hold nothing.
	for i := range 1000 {
		n := fmt.Sprintf("tmp-%d", i)
		c.changed("f/", n, "f/"+n+"/")
		c.wroteFile("f/", n, &FileInfo{name: n}, c.begin())
	}
	if c.entries != 0 {
		t.Fatalf("%d names held for an expired listing", c.entries)
	}
	c = NewDirCache(time.Hour, 40)
	for i := range 50 {
		fis := make([]*FileInfo, 8)
		for j := range fis {
			fis[j] = &FileInfo{name: fmt.Sprintf("f%d", j)}
		}
		list(c, fmt.Sprintf("d%d/", i), fis)
		for j := range 20 { // writes into the newest listing, past the bound
			c.wroteFile(fmt.Sprintf("d%d/", i), fmt.Sprintf("w%d", j), &FileInfo{name: "w"}, c.begin())
			c.changed(fmt.Sprintf("d%d/", i), fmt.Sprintf("u%d", j), "x/")
		}
		if c.entries > 40 {
			t.Fatalf("%d listed names held, the bound is 40", c.entries)
		}
	}
	total := 0
	for _, e := range c.folders {
		total += e.names()
	}
	if total != c.entries {
		t.Fatalf("entries counts %d, the folders hold %d", c.entries, total)
	}
}

func TestDirCacheListingOverlappedByWrites(t *testing.T) {
	c := NewDirCache(time.Hour, 10000)
	const p = "u/w/"
	start, at := c.begin(), time.Now()
	c.wroteFile(p, "during.txt", &FileInfo{name: "during.txt"}, c.begin())
	c.listed(p, []*FileInfo{{name: "old.txt"}}, nil, false, start, at)
	if _, known := c.child(p, "during.txt"); known {
		t.Fatal("a file written during the listing is answered from it")
	}
	if fi, known := c.child(p, "old.txt"); !known || fi == nil {
		t.Fatal("a listing overlapped only by writes was not kept")
	}
	if fi, known := c.child(p, "new.txt"); !known || fi != nil {
		t.Fatal("a free name is not answered")
	}
	// More overlapping writes than remembered: the listing is dropped.
	c = NewDirCache(time.Hour, 10000)
	start, at = c.begin(), time.Now()
	for i := range maxRecent + 1 {
		c.wroteFile(p, fmt.Sprintf("w%d", i), &FileInfo{name: "w"}, c.begin())
	}
	c.listed(p, []*FileInfo{{name: "old.txt"}}, nil, false, start, at)
	if _, known := c.child(p, "new.txt"); known {
		t.Fatal("a listing overlapped by more writes than remembered was kept")
	}
}

func TestDirCacheListingOverlappedByRemovalsOfItsNames(t *testing.T) {
	c := NewDirCache(time.Hour, 10000)
	const p = "u/r/"
	// Deletes of siblings while a listing runs (the everyday case of a
	// busy folder): the listing is kept, the deleted name unknown.
	start, at := c.begin(), time.Now()
	c.changed(p, "gone.txt", p+"gone.txt/")
	c.listed(p, []*FileInfo{{name: "gone.txt"}, {name: "kept.txt"}}, nil, false, start, at)
	if _, known := c.child(p, "gone.txt"); known {
		t.Fatal("a name removed during the listing is answered from it")
	}
	if fi, known := c.child(p, "kept.txt"); !known || fi == nil {
		t.Fatal("a listing overlapped by a sibling's removal was not kept")
	}
	if !c.exists(p) {
		t.Fatal("the unchanged file the listing shows does not prove the folder")
	}
	// A removal during the listing: the removed name alone proves nothing.
	c = NewDirCache(time.Hour, 10000)
	start, at = c.begin(), time.Now()
	c.changed(p, "last.txt", p+"last.txt/")
	c.listed(p, []*FileInfo{{name: "last.txt"}}, nil, false, start, at)
	if c.exists(p) {
		t.Fatal("a folder shown only by a key removed meanwhile is known to exist")
	}
	// A removal deep below: the subfolder's name is unknown in the listing.
	c = NewDirCache(time.Hour, 10000)
	start, at = c.begin(), time.Now()
	c.changed(p+"sub/deep/", "x", p+"sub/deep/x/")
	c.listed(p, []*FileInfo{{name: "f"}}, []string{"sub"}, false, start, at)
	if fi, known := c.child(p, "f"); !known || fi == nil {
		t.Fatal("a listing overlapped by a removal deep below was not kept")
	}
	if !c.exists(p) {
		t.Fatal("the unchanged file does not prove the folder")
	}
	// The folder itself removed (or replaced) during the listing: dropped.
	c = NewDirCache(time.Hour, 10000)
	start, at = c.begin(), time.Now()
	c.changed("u/", "r", p)
	c.listed(p, []*FileInfo{{name: "f"}}, nil, false, start, at)
	if c.exists(p) {
		t.Fatal("a listing overrun by the removal of its folder was kept")
	}
	if _, known := c.child(p, "f"); known {
		t.Fatal("a listing overrun by the removal of its folder answers")
	}
	// More changes than remembered: dropped.
	c = NewDirCache(time.Hour, 10000)
	start, at = c.begin(), time.Now()
	for i := range maxRecent + 1 {
		c.changed(p, fmt.Sprintf("d%d", i), p+fmt.Sprintf("d%d/", i))
	}
	c.listed(p, []*FileInfo{{name: "f"}}, nil, false, start, at)
	if _, known := c.child(p, "f"); known {
		t.Fatal("a listing overlapped by more removals than remembered was kept")
	}
}

func TestDirCacheAWriteOverlappedByASiblingsRemovalProvesTheFolder(t *testing.T) {
	c := NewDirCache(time.Hour, 10000)
	const p = "u/w/"
	start := c.begin()
	c.changed(p, "other.txt", p+"other.txt/")
	c.wroteFile(p, "mine.txt", &FileInfo{name: "mine.txt"}, start)
	if !c.exists(p) {
		t.Fatal("a file just written does not prove its folder because a sibling was deleted")
	}
	// The same name removed while it was written: unknown, unproven.
	c = NewDirCache(time.Hour, 10000)
	list(c, p, []*FileInfo{{name: "mine.txt"}, {name: "x"}})
	start = c.begin()
	c.changed(p, "mine.txt", p+"mine.txt/")
	c.wroteFile(p, "mine.txt", &FileInfo{name: "mine.txt"}, start)
	if _, known := c.child(p, "mine.txt"); known {
		t.Fatal("a name removed while it was written is answered")
	}
	// A probe overrun by a removal in its folder proves nothing.
	c = NewDirCache(time.Hour, 10000)
	start = c.begin()
	c.changed(p, "only.txt", p+"only.txt/")
	c.probed(p, start)
	if c.exists(p) {
		t.Fatal("a probe overrun by a removal in its folder proves it")
	}
}

func TestDirCacheEvictingARecordOfChangesDropsWorkItMayHaveOverrun(t *testing.T) {
	c := NewDirCache(time.Hour, 10000)
	c.maxFolders = 4
	const p = "u/e/"
	start, at := c.begin(), time.Now()
	c.changed(p, "gone.txt", p+"gone.txt/")
	// Enough other folders to push p's record out.
	for i := range 8 {
		c.probed(fmt.Sprintf("u/other%d/", i), c.begin())
	}
	if _, ok := c.folders[p]; ok {
		t.Fatal("the test did not evict the record")
	}
	c.listed(p, []*FileInfo{{name: "gone.txt"}}, nil, false, start, at)
	if _, known := c.child(p, "gone.txt"); known {
		t.Fatal("a listing begun before an evicted record of a removal answers the removed name")
	}
}
