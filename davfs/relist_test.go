package davfs

import (
	"context"
	"fmt"
	"iter"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/davgw/davgw/s3vfs"
)

// From a hostile review of the background listing and the batcher.

// hookStore is a memStore whose big listings (the background relist) can
// pause after S3 has answered, whose Copy can pause, and which counts calls.
type hookStore struct {
	*memStore
	bigLists  atomic.Int64 // listings with Limit > learnLimit (background relists)
	bigKeys   atomic.Int64 // entries those listings returned
	heads     atomic.Int64
	headDelay time.Duration
	onBigList func() // called after the listing's snapshot, before it is consumed
	onCopy    func(src string)
}

func (s *hookStore) List(ctx context.Context, o s3vfs.ListOptions) iter.Seq2[s3vfs.Entry, error] {
	seq := s.memStore.List(ctx, o) // the snapshot: what S3 answered
	if o.Limit > learnLimit {
		s.bigLists.Add(1)
		n := 0
		for range seq {
			n++
		}
		s.bigKeys.Add(int64(n))
		if s.onBigList != nil {
			s.onBigList()
		}
	}
	return seq
}

func (s *hookStore) Head(ctx context.Context, k string) (s3vfs.ObjectInfo, error) {
	s.heads.Add(1)
	if s.headDelay > 0 {
		select {
		case <-time.After(s.headDelay):
		case <-ctx.Done():
			return s3vfs.ObjectInfo{}, ctx.Err()
		}
	}
	return s.memStore.Head(ctx, k)
}

func (s *hookStore) Copy(ctx context.Context, src string, o s3vfs.ObjectInfo, dst string, co s3vfs.CopyOptions) (s3vfs.ObjectInfo, error) {
	if s.onCopy != nil {
		s.onCopy(src)
	}
	return s.memStore.Copy(ctx, src, o, dst, co)
}

func bigFolder(s *memStore, n int) {
	s.objs["r/F/"] = nil
	for i := range n {
		s.objs[fmt.Sprintf("r/F/f%05d", i)] = []byte("x")
	}
}

func dcFS(s Store, dc *DirCache) *FS {
	return New(s, "r/", Options{IndexLocks: &IndexLocks{}, IndexCache: NewIndexCache(3*time.Second, 1<<20), DirCache: dc})
}

// A slow writer (one PUT just under every TTL) is not busy: the
// background listings must not cost more LIST pages than the PUTs they
// would save. Scaled: TTL 20 ms, PUT every 15 ms.
func TestASlowWriterDoesNotGetBackgroundListings(t *testing.T) {
	mem := newMem()
	bigFolder(mem, 5000) // 5 pages a listing
	s := &hookStore{memStore: mem}
	dc := NewDirCache(20*time.Millisecond, 200000)
	f := dcFS(s, dc)
	ctx := context.Background()
	const puts = 20
	for i := range puts {
		g := dcFS(s, dc) // a request
		if _, err := g.StatDir(ctx, "/F"); err != nil {
			t.Fatal(err)
		}
		g.relistBusyFolder("/F")
		if _, err := g.OpenFile(ctx, fmt.Sprintf("/F/new%d", i), os.O_CREATE|os.O_RDWR, 0); err != nil {
			t.Fatal(err)
		}
		time.Sleep(15 * time.Millisecond)
	}
	_ = f
	pages := (s.bigKeys.Load() + 999) / 1000
	t.Logf("%d PUTs: %d background listings, %d LIST pages", puts, s.bigLists.Load(), pages)
	if pages > puts {
		t.Errorf("%d PUTs cost %d LIST pages of background listing (they saved at most %d HEAD+LIST pairs)", puts, pages, puts)
	}
}

// A folder larger than the DirCache keeps is not listed once per TTL only
// to be thrown away: after one such listing it is left alone for a while.
func TestAFolderTooBigForTheCacheIsNotListedAgainAndAgain(t *testing.T) {
	mem := newMem()
	bigFolder(mem, 3000)
	s := &hookStore{memStore: mem}
	dc := NewDirCache(100*time.Millisecond, 8000) // keeps() = 2000
	ctx := context.Background()
	for i := range 30 {
		g := dcFS(s, dc)
		if _, err := g.StatDir(ctx, "/F"); err != nil {
			t.Fatal(err)
		}
		g.relistBusyFolder("/F")
		if _, err := g.OpenFile(ctx, fmt.Sprintf("/F/new%d", i), os.O_CREATE|os.O_RDWR, 0); err != nil {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Millisecond) // busy: many writes per TTL
	}
	time.Sleep(50 * time.Millisecond)
	_, known := dc.child("r/F/", "f00001")
	t.Logf("listings %d, names read %d, listing kept: %v", s.bigLists.Load(), s.bigKeys.Load(), known)
	if s.bigLists.Load() != 1 || known {
		t.Errorf("a folder past keeps() was listed %d times (%d names), never kept", s.bigLists.Load(), s.bigKeys.Load())
	}
}

// A batch of 200 entries whose index holds entries for other versions:
// the HEADs that tell superseded uploads are bounded, parallel and taken
// before the folder's lock, so the batch is written in its first round.
func TestSupersededChecksAreBoundedAndOutsideTheLock(t *testing.T) {
	mem := newMem()
	s := &hookStore{memStore: mem, headDelay: 5 * time.Millisecond}
	b := NewIndexBatcher()
	f := New(s, "r/", Options{IndexLocks: &IndexLocks{}, IndexCache: NewIndexCache(3*time.Second, 1<<20), Batcher: b})
	key, bt := staleBatch(mem, b, f, 200)
	for round := range 3 {
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond) // run() uses a minute
		before := s.heads.Load()
		err := b.write(ctx, key, bt)
		cancel()
		t.Logf("round %d: %v; HEADs %d; pending %d", round, err, s.heads.Load()-before, b.Pending())
	}
	if b.Pending() == 200 {
		t.Errorf("200 serial HEADs under the index lock outlast the write: after 3 rounds nothing written, all still pending")
	}
}

// staleBatch: n files whose index entries are for a version before the one
// the pending upload replaced (PUT with a time, PUT without, PUT with a
// time): every pending entry takes a HEAD. No run goroutine.
func staleBatch(mem *memStore, b *IndexBatcher, f *FS, n int) (string, *batch) {
	idx := map[string]metaEntry{}
	key := "r/d/.davgw-index.json"
	bt := &batch{store: f.store, root: f.root, opts: f.opts, folder: "/d", entries: map[string]pendingEntry{}, kick: make(chan struct{}, 1)}
	for i := range n {
		name := fmt.Sprintf("x%d", i)
		mem.objs["r/d/"+name] = []byte("C" + name)
		idx[name] = metaEntry{ETag: "A", MTime: 1}
		b.seq++
		bt.entries[name] = pendingEntry{e: metaEntry{ETag: etagOf([]byte("C" + name)), MTime: 2}, prevETag: "B", key: "r/d/" + name, seq: b.seq}
		b.total++
	}
	putIndex(mem, key, idx)
	b.folders[key] = bt
	return key, bt
}

type failHead struct {
	*memStore
	fail string
}

func (s *failHead) Head(ctx context.Context, k string) (s3vfs.ObjectInfo, error) {
	if k == s.fail {
		return s3vfs.ObjectInfo{}, s3vfs.ErrUnavailable
	}
	return s.memStore.Head(ctx, k)
}

// A HEAD that fails (throttling) does not drop an accepted kept time: the
// upload's entry is written.
func TestAFailedHEADKeepsTheKeptTime(t *testing.T) {
	mem := newMem()
	s := &failHead{memStore: mem, fail: "r/d/x0"}
	b := NewIndexBatcher()
	var reported []error
	b.OnError = func(err error) { reported = append(reported, err) }
	f := New(s, "r/", Options{IndexLocks: &IndexLocks{}, IndexCache: NewIndexCache(3*time.Second, 1<<20), Batcher: b})
	key, bt := staleBatch(mem, b, f, 2)
	err := b.write(context.Background(), key, bt)
	got := mem.index(t, key)["x0"]
	t.Logf("write: %v; x0 entry %+v; pending %d; reported %v", err, got, b.Pending(), reported)
	if got.MTime != 2 {
		t.Errorf("x0's accepted kept time lost on a failed HEAD, nothing reported")
	}
}
