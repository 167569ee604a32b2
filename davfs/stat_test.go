package davfs

import (
	"context"
	"errors"
	"iter"
	"sync/atomic"
	"testing"
	"time"

	"github.com/davgw/davgw/s3vfs"
)

// slowProbeStore answers HEAD at once (with headErr, if set) and holds
// every LIST until its context ends or release closes; a LIST is done only
// some time after that, as a cancelled request is.
type slowProbeStore struct {
	*memStore
	headErr  error
	release  chan struct{}
	lists    atomic.Int64
	listDone atomic.Int64
	listing  chan struct{} // closed when the first LIST starts (HEAD waits for it)
}

func (s *slowProbeStore) Head(ctx context.Context, k string) (s3vfs.ObjectInfo, error) {
	select { // answer once the side-by-side LIST is under way
	case <-s.listing:
	case <-time.After(200 * time.Millisecond):
	}
	if s.headErr != nil {
		return s3vfs.ObjectInfo{}, s.headErr
	}
	return s.memStore.Head(ctx, k)
}

func (s *slowProbeStore) List(ctx context.Context, o s3vfs.ListOptions) iter.Seq2[s3vfs.Entry, error] {
	return func(yield func(s3vfs.Entry, error) bool) {
		if s.lists.Add(1) == 1 {
			close(s.listing)
		}
		defer s.listDone.Add(1)
		select {
		case <-ctx.Done():
			time.Sleep(20 * time.Millisecond) // the cancelled request returning
			yield(s3vfs.Entry{}, ctx.Err())
			return
		case <-s.release:
		}
		for e, err := range s.memStore.List(ctx, o) {
			if !yield(e, err) {
				return
			}
		}
	}
}

// A fresh lookup of an existing file must not leave its side-by-side LIST
// running past its return: the request's S3 call count is read when the
// response is written, and a probe still in flight then is counted or not
// by chance (and keeps a goroutine on the request's store).
func TestAFreshLookupOfAFileEndsItsProbe(t *testing.T) {
	mem := newMem()
	mem.objs["r/f"] = []byte("x")
	s := &slowProbeStore{memStore: mem, release: make(chan struct{}), listing: make(chan struct{})}
	f := dcFS(s, NewDirCache(time.Minute, 1000))
	fi, err := f.LookupFresh(context.Background(), "/f", false)
	if err != nil || fi.dir {
		t.Fatalf("LookupFresh = %v, %v; want the file", fi, err)
	}
	if l, d := s.lists.Load(), s.listDone.Load(); l != d {
		t.Fatalf("%d probe LIST(s) still running after the lookup returned", l-d)
	}
}

// A HEAD that fails with something other than not-found decides the
// lookup (an error): it must not wait for the probe's LIST, which may be
// retrying against the same failing service.
func TestAFreshLookupWhoseHEADFailsDoesNotWaitForItsProbe(t *testing.T) {
	mem := newMem()
	boom := errors.New("s3: 503 slow down")
	s := &slowProbeStore{memStore: mem, headErr: boom, release: make(chan struct{}), listing: make(chan struct{})}
	defer close(s.release)
	f := dcFS(s, NewDirCache(time.Minute, 1000))
	done := make(chan error, 1)
	go func() {
		_, err := f.LookupFresh(context.Background(), "/f", false)
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, boom) {
			t.Fatalf("LookupFresh error = %v; want the HEAD's", err)
		}
		if l, d := s.lists.Load(), s.listDone.Load(); l != d {
			t.Fatalf("%d probe LIST(s) still running after the lookup returned", l-d)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("LookupFresh waited for the probe LIST although its HEAD had failed")
	}
}
