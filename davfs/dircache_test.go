package davfs

import (
	"fmt"
	"testing"
	"time"
)

func TestDirCacheAnswersFromAListingAndTheGatewaysOwnWrites(t *testing.T) {
	c := NewDirCache(time.Hour, 1000)
	const p = "users/a/docs/"
	if c.exists(p) {
		t.Fatal("an unknown folder is known")
	}
	c.listed(p, []*FileInfo{{name: "a.txt", etag: `"1"`}, {name: "sub", dir: true}}, time.Now(), false)
	if !c.exists(p) {
		t.Fatal("a listed folder is not known to exist")
	}
	if fi, known := c.child(p, "a.txt"); !known || fi == nil || fi.etag != `"1"` {
		t.Fatalf("child a.txt = %v, %v", fi, known)
	}
	if fi, known := c.child(p, "free.txt"); !known || fi != nil {
		t.Fatalf("a free name = %v, %v; want known and nil", fi, known)
	}
	if _, known := c.child(p, "sub"); known {
		t.Fatal("a folder is answered from the cache")
	}
	// The returned info is a copy: a caller's change does not reach the cache.
	fi, _ := c.child(p, "a.txt")
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
	c.wroteFile(p, "a.txt", &FileInfo{name: "a.txt", etag: `"2"`})
	if fi, known := c.child(p, "a.txt"); !known || fi.etag != `"2"` {
		t.Fatalf("a written file = %v, %v", fi, known)
	}
	// A folder whose last known key changed is not known to exist.
	c.changed(p, "a.txt", p+"a.txt/")
	c.changed(p, "sub", p+"sub/")
	if c.exists(p) {
		t.Fatal("a folder whose every key changed is still known to exist")
	}
	// Changing a folder drops what is known below it.
	c.sawFolder(p + "sub/deep/")
	c.changed(p, "sub", p+"sub/")
	if c.exists(p + "sub/deep/") {
		t.Fatal("a folder below a changed one is still known")
	}
}

func TestDirCacheForgetsAfterItsTTLAndStaysBounded(t *testing.T) {
	c := NewDirCache(50*time.Millisecond, 40)
	c.listed("f/", []*FileInfo{{name: "x"}}, time.Now(), true)
	time.Sleep(60 * time.Millisecond)
	if c.exists("f/") {
		t.Fatal("known after the TTL")
	}
	if _, known := c.child("f/", "x"); known {
		t.Fatal("answered after the TTL")
	}
	c = NewDirCache(time.Hour, 40)
	for i := range 50 {
		list := make([]*FileInfo, 8)
		for j := range list {
			list[j] = &FileInfo{name: fmt.Sprintf("f%d", j)}
		}
		c.listed(fmt.Sprintf("d%d/", i), list, time.Now(), false)
		if c.entries > 40 {
			t.Fatalf("%d listed names held, the bound is 40", c.entries)
		}
	}
	total := 0
	for _, e := range c.folders {
		total += len(e.files) + len(e.dirs)
	}
	if total != c.entries {
		t.Fatalf("entries counts %d, the folders hold %d", c.entries, total)
	}
}
