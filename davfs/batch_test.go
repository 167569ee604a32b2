package davfs

import (
	"context"
	"testing"
	"time"
)

func batchFS(s *memStore, b *IndexBatcher) *FS {
	return New(s, "r/", Options{IndexLocks: &IndexLocks{}, IndexCache: NewIndexCache(3*time.Second, 1<<20), Batcher: b})
}

// Two quick overwrites batched together keep the file's dead properties,
// as two synchronous updates would.
func TestBatchedOverwritesKeepDeadProperties(t *testing.T) {
	s := newMem()
	putIndex(s, "r/d/.davgw-index.json", map[string]metaEntry{"x": {ETag: "E0", MTime: 1, Props: "P"}})
	b := NewIndexBatcher()
	f := batchFS(s, b)
	b.add(f, "/d", "x", pendingEntry{e: metaEntry{ETag: "E1", MTime: 2}, prevETag: "E0"})
	b.add(f, "/d", "x", pendingEntry{e: metaEntry{ETag: "E2", MTime: 3}, prevETag: "E1"})
	if err := b.WriteUnder(context.Background(), ""); err != nil {
		t.Fatal(err)
	}
	got := s.index(t, "r/d/.davgw-index.json")["x"]
	if got.Props != "P" {
		t.Errorf("after PUT E0->E1->E2 batched: %+v; synchronous path keeps Props=P", got)
	}
	b.Close(context.Background())
}

// A DELETE of a folder drops its pending entries: no late batch creates
// the folder's index again (which would bring the folder back).
func TestBatchNeverBringsBackADeletedFolder(t *testing.T) {
	s := newMem()
	s.objs["r/d/"] = nil
	s.objs["r/d/x"] = []byte("x")
	b := NewIndexBatcher()
	f := batchFS(s, b)
	b.add(f, "/d", "x", pendingEntry{e: metaEntry{ETag: etagOf([]byte("x")), MTime: 2}})
	if err := f.RemoveAll(context.Background(), "/d"); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, ok := s.objs["r/d/.davgw-index.json"]; ok {
		f2 := batchFS(s, nil)
		_, err := f2.Stat(context.Background(), "/d")
		t.Errorf("deleted folder's index re-created by the batch; Stat(/d) after delete: %v", err)
	}
}

// A COPY whose client went away (its context cancelled) still writes the
// pending kept times it flushes; none is given up.
func TestACancelledWriteUnderKeepsPendingTimes(t *testing.T) {
	s := newMem()
	b := NewIndexBatcher()
	f := batchFS(s, b)
	s.objs["r/d/x"] = []byte("x") // the uploaded file: the folder exists
	b.add(f, "/d", "x", pendingEntry{e: metaEntry{ETag: "E1", MTime: 2}})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_ = b.WriteUnder(ctx, "r/d/")
	b.Close(context.Background())
	if s.index(t, "r/d/.davgw-index.json")["x"].MTime != 2 {
		t.Errorf("accepted kept time lost after a cancelled WriteUnder")
	}
}

// An index entry for a newer version of the file (another gateway's
// upload) is not overwritten by this gateway's older pending entry.
func TestAPendingEntryNeverReplacesANewerVersionsEntry(t *testing.T) {
	s := newMem()
	s.objs["r/d/x"] = []byte("theirs")
	theirs := etagOf([]byte("theirs"))
	putIndex(s, "r/d/.davgw-index.json", map[string]metaEntry{"x": {ETag: theirs, MTime: 7}})
	b := NewIndexBatcher()
	f := batchFS(s, b)
	b.add(f, "/d", "x", pendingEntry{e: metaEntry{ETag: etagOf([]byte("ours")), MTime: 2}, prevETag: "E0", key: "r/d/x"})
	if err := b.WriteUnder(context.Background(), ""); err != nil {
		t.Fatal(err)
	}
	b.Close(context.Background())
	if got := s.index(t, "r/d/.davgw-index.json")["x"]; got.ETag != theirs || got.MTime != 7 {
		t.Errorf("the newer version's entry became %+v", got)
	}
}

// A tree COPY onto an existing folder: the destination's pending entries
// (for objects the copy replaces) are dropped, not written over the
// copied index.
func TestATreeCopyIsNotOverwrittenByPendingEntries(t *testing.T) {
	s := newMem()
	s.objs["r/a/"] = nil
	s.objs["r/a/x"] = []byte("new")
	putIndex(s, "r/a/.davgw-index.json", map[string]metaEntry{"x": {ETag: etagOf([]byte("new")), MTime: 5, Props: "P"}})
	s.objs["r/b/"] = nil
	s.objs["r/b/x"] = []byte("old")
	b := NewIndexBatcher()
	f := batchFS(s, b)
	b.add(f, "/b", "x", pendingEntry{e: metaEntry{ETag: etagOf([]byte("old")), MTime: 1}})
	if _, err := f.Copy(context.Background(), "/a", "/b", true, true); err != nil {
		t.Fatal(err)
	}
	b.Close(context.Background())
	got := s.index(t, "r/b/.davgw-index.json")["x"]
	if got.ETag != etagOf([]byte("new")) {
		t.Errorf("b/x holds the copy's bytes, its entry is %+v (the old pending upload's)", got)
	}
}

// An index this gateway cannot write takes no batched entries: the upload
// writes its own and answers honestly that the time was not kept.
func TestAnUnwritableIndexTakesNoBatchedEntries(t *testing.T) {
	s := newMem()
	s.objs["r/d/.davgw-index.json"] = []byte(`{"v":99}`)
	b := NewIndexBatcher()
	f := batchFS(s, b)
	if _, err := f.loadIndex(context.Background(), "/d", false); err != nil {
		t.Fatal(err)
	}
	if b.add(f, "/d", "x", pendingEntry{e: metaEntry{ETag: "E", MTime: 1}}) {
		t.Errorf("upload into a folder whose index is known unwritable was accepted (X-OC-Mtime: accepted) and will be lost")
	}
	b.Close(context.Background())
}
