package gateway

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/davgw/davgw/auth"
	"github.com/davgw/davgw/s3vfs"
)

// TestNamesOfAStoreOfEveryBucket: a name splits into its bucket and the
// name inside it; a Destination in another bucket is 502, one at the top
// level 403, one in the same bucket is the name inside it.
func TestNamesOfAStoreOfEveryBucket(t *testing.T) {
	for _, tc := range []struct{ name, bucket, rest string }{
		{"/", "", "/"},
		{"/b", "b", "/"},
		{"/b/x/y.txt", "b", "/x/y.txt"},
	} {
		if b, r := splitBucket(tc.name); b != tc.bucket || r != tc.rest {
			t.Errorf("splitBucket(%q) = %q, %q; want %q, %q", tc.name, b, r, tc.bucket, tc.rest)
		}
	}
	rq := &request{home: &namedStore{name: "all", buckets: map[string]*storeParts{}}, bucket: "b"}
	for _, tc := range []struct {
		dst, want string
		status    int
	}{
		{"/b/x.txt", "/x.txt", 0},
		{"/c/x.txt", "", http.StatusBadGateway},
		{"/c", "", http.StatusForbidden},
		{"/", "", http.StatusForbidden},
	} {
		got, err := rq.localName(tc.dst)
		var he *httpError
		switch {
		case tc.status == 0 && (err != nil || got != tc.want):
			t.Errorf("localName(%q) = %q, %v; want %q", tc.dst, got, err, tc.want)
		case tc.status != 0 && (!errors.As(err, &he) || he.status != tc.status):
			t.Errorf("localName(%q) = %q, %v; want status %d", tc.dst, got, err, tc.status)
		}
	}
	one := &request{home: &namedStore{parts: &storeParts{}}}
	if got, err := one.localName("/c/x.txt"); err != nil || got != "/c/x.txt" {
		t.Errorf("a store of one bucket changed the name: %q, %v", got, err)
	}
}

// fakeBuckets is an S3 server that answers ListBuckets with buckets,
// each answer held until release receives (when hold is set), and
// counts the calls.
type fakeBuckets struct {
	buckets []string
	hold    atomic.Bool
	release chan struct{}
	calls   atomic.Int64
}

func (f *fakeBuckets) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet || r.URL.Path != "/" {
		http.Error(w, "only ListBuckets", http.StatusNotImplemented)
		return
	}
	f.calls.Add(1)
	if f.hold.Load() {
		<-f.release
	}
	var b strings.Builder
	b.WriteString(`<?xml version="1.0" encoding="UTF-8"?><ListAllMyBucketsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Owner><ID>o</ID></Owner><Buckets>`)
	for _, name := range f.buckets {
		fmt.Fprintf(&b, "<Bucket><Name>%s</Name><CreationDate>2026-01-02T03:04:05.000Z</CreationDate></Bucket>", name)
	}
	b.WriteString(`</Buckets></ListAllMyBucketsResult>`)
	w.Header().Set("Content-Type", "application/xml")
	_, _ = io.WriteString(w, b.String())
}

// everyBucketGateway is a gateway whose store "all" has bucket = "*" on
// fake.
func everyBucketGateway(t *testing.T, fake *fakeBuckets) (*Gateway, *namedStore) {
	t.Helper()
	srv := httptest.NewServer(fake)
	t.Cleanup(srv.Close)
	newStore := func(bucket string) *s3vfs.Store {
		st, err := s3vfs.New(t.Context(), s3vfs.Config{
			Endpoint: srv.URL, Region: "us-east-1", Bucket: bucket, PathStyle: true,
			AccessKeyID: "AKIDTEST", SecretAccessKey: "secret",
		})
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	g, err := New(Options{Store: newStore("default"), Logger: slog.New(slog.DiscardHandler),
		Auth:   authFunc(func(*http.Request) (auth.Principal, bool, error) { return auth.Principal{}, false, nil }),
		Stores: map[string]NamedStore{"all": {Store: newStore(s3vfs.AnyBucket)}}})
	if err != nil {
		t.Fatal(err)
	}
	return g, g.stores["all"]
}

// TestABucketListRefreshIsSharedAndNeverWaitedFor: concurrent requests of
// a store of every bucket share one slow ListBuckets; once a list is
// known, a request for a listed bucket past the TTL is answered from it
// at once while one refresh runs, and the refresh then replaces it.
func TestABucketListRefreshIsSharedAndNeverWaitedFor(t *testing.T) {
	fake := &fakeBuckets{buckets: []string{"b1", "b2"}, release: make(chan struct{})}
	fake.hold.Store(true)
	g, n := everyBucketGateway(t, fake)
	ctx := t.Context()

	const callers = 8
	var wg sync.WaitGroup
	errs := make(chan error, callers)
	for range callers {
		wg.Go(func() {
			list, err := n.bucketList(ctx)
			if err == nil && len(list) != 2 {
				err = fmt.Errorf("list %v", list)
			}
			errs <- err
		})
	}
	for fake.calls.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond) // every caller has asked by now
	close(fake.release)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if c := fake.calls.Load(); c != 1 {
		t.Fatalf("%d concurrent callers made %d ListBuckets calls, want 1", callers, c)
	}

	// Past the TTL, with S3 slow: the old list answers at once.
	release := make(chan struct{})
	fake.release = release
	var once sync.Once
	unblock := func() { once.Do(func() { close(release) }) }
	t.Cleanup(unblock) // before the server's Close, which waits for its handlers
	fake.buckets = []string{"b1", "b2", "b3"}
	n.mu.Lock()
	n.listedAt = time.Now().Add(-2 * bucketListTTL)
	n.mu.Unlock()
	for range 3 {
		got := make(chan error, 1)
		go func() {
			p, err := n.bucketParts(ctx, g, "b1")
			if err == nil && p == nil {
				err = errors.New("no parts")
			}
			got <- err
		}()
		select {
		case err := <-got:
			if err != nil {
				t.Fatalf("bucketParts(b1) while the refresh runs: %v", err)
			}
		case <-time.After(2 * time.Second):
			t.Fatal("a request for a listed bucket waited for the refresh")
		}
	}
	for fake.calls.Load() < 2 {
		time.Sleep(time.Millisecond)
	}
	if c := fake.calls.Load(); c != 2 {
		t.Fatalf("three requests past the TTL made %d refreshes, want 1", c-1)
	}
	unblock()
	deadline := time.Now().Add(5 * time.Second)
	for {
		list, err := n.bucketList(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(list) == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the refreshed list never replaced the old one: %v", list)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if c := fake.calls.Load(); c != 2 {
		t.Fatalf("ListBuckets calls = %d, want 2", c)
	}
}

// TestAStoreOfEveryBucketKeepsAtMost128Buckets: the parts of 128 buckets
// are made; a request for the 129th answers 503 with Retry-After, and the
// buckets already in use keep working.
func TestAStoreOfEveryBucketKeepsAtMost128Buckets(t *testing.T) {
	fake := &fakeBuckets{}
	for i := range maxBucketParts + 1 {
		fake.buckets = append(fake.buckets, fmt.Sprintf("b%03d", i))
	}
	g, n := everyBucketGateway(t, fake)
	ctx := t.Context()
	for _, b := range fake.buckets[:maxBucketParts] {
		if _, err := n.bucketParts(ctx, g, b); err != nil {
			t.Fatalf("bucket %s: %v", b, err)
		}
	}
	_, err := n.bucketParts(ctx, g, fake.buckets[maxBucketParts])
	var he *httpError
	if !errors.As(err, &he) || he.status != http.StatusServiceUnavailable || he.header.Get("Retry-After") != "60" {
		t.Fatalf("bucket %d: %v, want 503 with Retry-After: 60", maxBucketParts+1, err)
	}
	if _, err := n.bucketParts(ctx, g, fake.buckets[0]); err != nil {
		t.Errorf("a bucket in use after the bound: %v", err)
	}
	_, err = n.bucketParts(ctx, g, "unlisted")
	if !errors.As(err, &he) || he.status != http.StatusNotFound {
		t.Errorf("an unlisted bucket: %v, want 404", err)
	}
	if c := fake.calls.Load(); c != 1 {
		t.Errorf("ListBuckets calls = %d, want 1", c)
	}
	if got := len(g.allParts()); got != maxBucketParts+1 {
		t.Errorf("parts kept: %d, want %d (the default store's and %d buckets)", got, maxBucketParts+1, maxBucketParts)
	}
}
