package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"path"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/davgw/davgw/auth"
	"github.com/davgw/davgw/davfs"
	"github.com/davgw/davgw/s3vfs"
)

// NamedStore is one store of Options.Stores ([s3.stores.NAME]).
type NamedStore struct {
	// Store is the store's S3 bucket; s3vfs.AnyBucket serves every bucket
	// its credentials can list as a top-level folder.
	Store *s3vfs.Store
	// Prefix is the store's key prefix ("" or ending in "/"); in a store
	// of every bucket, it applies in each.
	Prefix string
}

// Bounds of a store of every bucket (bucket = "*").
const (
	// bucketListTTL is how long its list of buckets is kept: a bucket
	// created elsewhere appears within it.
	bucketListTTL = 30 * time.Second
	// maxBucketParts bounds the buckets whose caches, locks and quota it
	// keeps at once; a request for another answers 503.
	maxBucketParts = 128
	// bucketListTimeout bounds one ListBuckets, which requests share.
	bucketListTimeout = 30 * time.Second
)

// errBucketTop is a write at the top level of a store of every bucket.
var errBucketTop = errors.New("write at the top level of a store of every bucket")

// bucketTopRefused is the answer to a write at the top level of a store of
// every bucket: 403, with the reason for the user.
func bucketTopRefused() *httpError {
	e := failWith(http.StatusForbidden, errBucketTop)
	e.body = []byte("Forbidden: the top level lists the buckets of this store; davgw does not create, delete, rename, copy, lock or write buckets here. Work inside a bucket's folder.\n")
	return e
}

// errOtherStore is a COPY or MOVE whose destination lies in another store
// or bucket, refused with 502 Bad Gateway (RFC 4918 9.8.5 and 9.9.4: "the
// destination is on another server, repository, or URL namespace"): each
// bucket is a namespace of its own, with its own caches, locks and quota.
var errOtherStore = errors.New("destination in another bucket or store")

// storeParts are what the gateway keeps per store, and per bucket of a
// store of every bucket: the S3 bucket and prefix, davfs's caches, its
// index batcher and quota, and the scope of its locks. Keys of two stores
// never meet in one cache.
type storeParts struct {
	store     *s3vfs.Store
	prefix    string
	lockScope string // prefix of the lock roots: "" for the default store, else storeLockScope
	indexes   *davfs.IndexLocks
	icache    *davfs.IndexCache
	dcache    *davfs.DirCache
	moves     *davfs.MoveLog
	batcher   *davfs.IndexBatcher
	quota     *quotaTracker // nil without a quota
	// reserved is the default store's reserved area (<prefix>.davgw/) when
	// the bucket has the default store's name, whatever the endpoint:
	// davfs serves nothing of it (Options.ReservedKeys).
	reserved string
}

// newStoreParts makes the parts of store; small is for the buckets of a
// store of every bucket, whose caches are many and so smaller.
func (g *Gateway) newStoreParts(store *s3vfs.Store, prefix, lockScope string, small bool) *storeParts {
	icacheBytes, dcacheEntries := 32<<20, 200000
	if small {
		icacheBytes, dcacheEntries = 2<<20, 10000
	}
	batcher := davfs.NewIndexBatcher()
	log := g.log
	batcher.OnError = func(err error) {
		log.LogAttrs(context.Background(), slog.LevelWarn, "index", slog.String("error", err.Error()), slog.String("bucket", store.Bucket()))
	}
	p := &storeParts{
		store:     store,
		prefix:    prefix,
		lockScope: lockScope,
		indexes:   &davfs.IndexLocks{},
		// A few seconds: a listing and the requests that follow it share
		// one read of the folder's index.
		icache: davfs.NewIndexCache(3*time.Second, icacheBytes),
		// What was listed or written: a PUT into a known folder is one
		// PutObject. Changes made elsewhere are missed for at most its TTL.
		dcache:  davfs.NewDirCache(davfs.DefaultDirCacheTTL, dcacheEntries),
		moves:   davfs.NewMoveLog(davfs.DefaultMoveLogTTL, 10000),
		batcher: batcher,
	}
	if store.Bucket() == g.opts.Store.Bucket() {
		p.reserved = g.opts.Prefix + auth.ReservedPrefix
	}
	if g.opts.QuotaBytes > 0 {
		p.quota = newQuotaTracker(g.opts.QuotaBytes, store, g.log)
	}
	return p
}

// fs is the davfs of root (the user's key prefix in this store) for one
// request.
func (p *storeParts) fs(g *Gateway, root string) *davfs.FS {
	return davfs.New(davfs.S3Store{Store: p.store}, root, davfs.Options{
		MaxEntries: g.opts.MaxPropfindEntries,
		Hide:       g.hidden,
		IndexLocks: p.indexes,
		IndexCache: p.icache,
		DirCache:   p.dcache,
		Moves:      p.moves,
		Batcher:    p.batcher,
		// SSE-KMS and SSE-C ETags look like MD5s but are not.
		ETagsNotMD5:  !p.store.ETagsAreMD5(),
		ReservedKeys: p.reserved,
	})
}

// namedStore is one store: its parts, or for a store of every bucket the
// parts of each bucket, made when a request first reaches it (at most
// maxBucketParts), and its list of buckets, kept bucketListTTL.
type namedStore struct {
	name   string
	store  *s3vfs.Store
	prefix string
	parts  *storeParts // nil for a store of every bucket

	mu       sync.Mutex
	buckets  map[string]*storeParts
	listed   []s3vfs.BucketInfo
	listedAt time.Time
	// refresh makes concurrent refreshes of listed one ListBuckets call,
	// run without mu held.
	refresh singleflight.Group
}

// everyBucket reports whether the store serves every bucket it can list.
func (n *namedStore) everyBucket() bool { return n.parts == nil }

// bucketList returns the buckets of a store of every bucket: one
// ListBuckets per bucketListTTL, shared by the requests that ask for it
// meanwhile. Once a list is known, a request never waits for S3: past the
// TTL it gets the old list while one refresh runs in the background.
func (n *namedStore) bucketList(ctx context.Context) ([]s3vfs.BucketInfo, error) {
	n.mu.Lock()
	list, at := n.listed, n.listedAt
	n.mu.Unlock()
	if list != nil && time.Since(at) < bucketListTTL {
		return list, nil
	}
	done := n.refresh.DoChan("", func() (any, error) {
		// The call is shared: no one request's end cancels it.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), bucketListTimeout)
		defer cancel()
		list, err := n.store.ListBuckets(cctx)
		if err != nil {
			return nil, err
		}
		if list == nil {
			list = []s3vfs.BucketInfo{}
		}
		n.mu.Lock()
		n.listed, n.listedAt = list, time.Now()
		n.mu.Unlock()
		return list, nil
	})
	if list != nil {
		return list, nil // the refresh's failure leaves the old list for the next request to retry
	}
	select {
	case r := <-done:
		if r.Err != nil {
			return nil, r.Err
		}
		return r.Val.([]s3vfs.BucketInfo), nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// bucketParts returns the parts of bucket in a store of every bucket,
// making them on first use: fs.ErrNotExist (404) for a bucket the store
// does not list.
func (n *namedStore) bucketParts(ctx context.Context, g *Gateway, bucket string) (*storeParts, error) {
	list, err := n.bucketList(ctx)
	if err != nil {
		return nil, err
	}
	if !slices.ContainsFunc(list, func(b s3vfs.BucketInfo) bool { return b.Name == bucket }) {
		return nil, failWith(http.StatusNotFound, fmt.Errorf("bucket %q is not listed by store %q", bucket, n.name))
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if p, ok := n.buckets[bucket]; ok {
		return p, nil
	}
	if len(n.buckets) >= maxBucketParts {
		return nil, failWith(http.StatusServiceUnavailable, fmt.Errorf("store %q: more than %d buckets in use", n.name, maxBucketParts)).
			withHeader("Retry-After", "60")
	}
	p := g.newStoreParts(n.store.ForBucket(bucket), n.prefix, storeLockScope(n.name)+bucket+"/", true)
	n.buckets[bucket] = p
	return p, nil
}

// allParts returns every store's parts made so far.
func (g *Gateway) allParts() []*storeParts {
	var out []*storeParts
	for _, n := range g.stores {
		if n.parts != nil {
			out = append(out, n.parts)
			continue
		}
		n.mu.Lock()
		for _, p := range n.buckets {
			out = append(out, p)
		}
		n.mu.Unlock()
	}
	return out
}

// storeLockScope is the prefix of the lock roots of a named store: a NUL,
// the name and ":". No root of the default store starts with it (its
// prefix and roots hold no control characters), so that a default store
// whose [s3].prefix is "NAME:x/" shares no locks with the store NAME of
// prefix "x/".
func storeLockScope(name string) string { return "\x00" + name + ":" }

// newStores makes the default store's parts and those of opts.Stores.
func (g *Gateway) newStores() error {
	g.stores = map[string]*namedStore{"": {store: g.opts.Store, prefix: g.opts.Prefix,
		parts: g.newStoreParts(g.opts.Store, g.opts.Prefix, "", false)}}
	var errs []error
	for name, s := range g.opts.Stores {
		switch {
		case name == "":
			errs = append(errs, errors.New("gateway: a named store needs a name"))
			continue
		case s.Store == nil:
			errs = append(errs, fmt.Errorf("gateway: store %q has no Store", name))
			continue
		case s.Prefix != "" && !strings.HasSuffix(s.Prefix, "/"):
			errs = append(errs, fmt.Errorf("gateway: the Prefix of store %q must be empty or end in /", name))
			continue
		}
		n := &namedStore{name: name, store: s.Store, prefix: s.Prefix}
		if s.Store.AnyBucket() {
			n.buckets = map[string]*storeParts{}
		} else {
			n.parts = g.newStoreParts(s.Store, s.Prefix, storeLockScope(name), false)
		}
		g.stores[name] = n
	}
	return errors.Join(errs...)
}

// splitBucket splits a name of a store of every bucket into the bucket and
// the name inside it: "/b/x/y" is ("b", "/x/y"), "/b" is ("b", "/"), "/"
// is ("", "/").
func splitBucket(name string) (bucket, rest string) {
	b, r, _ := strings.Cut(strings.TrimPrefix(name, "/"), "/")
	return b, "/" + r
}

// place resolves the request's name in the user's store: the parts, the
// davfs and the locks of the store (of the bucket, in a store of every
// bucket), and the name inside it. At the top level of a store of every
// bucket it leaves rq.fs nil (see serveBucketList) and refuses writes on a
// bucket itself.
func (rq *request) place(ctx context.Context) error {
	g, user := rq.g, rq.user
	n := g.stores[user.Store]
	if n == nil {
		// Config validation names every store a root names.
		return failWith(http.StatusInternalServerError, fmt.Errorf("user %q: unknown store %q", user.Username, user.Store))
	}
	rq.home, rq.base, rq.parts = n, g.davBase, n.parts
	if n.everyBucket() {
		bucket, rest := splitBucket(rq.name)
		if bucket == "" {
			return nil // the list of buckets
		}
		if rest == "/" && isWrite(rq.r.Method) {
			return bucketTopRefused()
		}
		p, err := n.bucketParts(ctx, g, bucket)
		if err != nil {
			return err
		}
		rq.parts, rq.bucket, rq.name = p, bucket, rest
		rq.base = g.davBase + "/" + bucket
	}
	rq.root = rq.parts.prefix + user.Root
	rq.fs = rq.parts.fs(g, rq.root)
	if rq.fs.Reserved(rq.name) {
		return failWith(http.StatusNotFound, errors.New("reserved name"))
	}
	rq.locks = g.locks.ForRoot(rq.parts.lockScope + rq.root).By(user.Username)
	return nil
}

// localName turns a name of the user's namespace from a Destination header
// or an If tag into a name of the request's store: in a store of every
// bucket, a name in another bucket (errOtherStore) or at the top level
// (bucketTopRefused) is refused.
func (rq *request) localName(name string) (string, error) {
	if rq.home == nil || !rq.home.everyBucket() {
		return name, nil
	}
	bucket, rest := splitBucket(name)
	switch {
	case bucket == "" || rest == "/":
		return "", bucketTopRefused()
	case bucket != rq.bucket:
		return "", failWith(http.StatusBadGateway, errOtherStore).explained()
	}
	return rest, nil
}

// serveBucketList answers a request for the top level of a store of every
// bucket: PROPFIND lists the buckets as folders, GET and HEAD answer 405
// as on any folder, every write 403.
func (rq *request) serveBucketList() error {
	switch rq.r.Method {
	case "PROPFIND":
	case http.MethodGet, http.MethodHead:
		return failWith(http.StatusMethodNotAllowed, nil).withHeader("Allow", "OPTIONS, PROPFIND")
	default:
		return bucketTopRefused()
	}
	pf, _, depth, err := rq.readPropfind()
	if err != nil {
		return err
	}
	if depth != "0" && depth != "1" {
		return finiteDepthRefused()
	}
	ctx := rq.r.Context()
	list, err := rq.home.bucketList(ctx)
	if err != nil {
		return err
	}
	ms := newMultistatus(rq.w)
	var sc propScratch
	err = ms.response(rq.href("/", true), propstats(ctx, pf, "/", davfs.FolderInfo("/", time.Time{}), nil, &sc))
	if depth == "1" {
		for _, b := range list {
			if err != nil {
				break
			}
			name := path.Join("/", b.Name)
			err = ms.response(rq.href(name, true), propstats(ctx, pf, name, davfs.FolderInfo(name, b.Created), nil, &sc))
		}
	}
	if err == nil {
		err = ms.close()
	}
	if err != nil && !ms.started {
		ms.discard()
		return err
	}
	if err != nil {
		return cutAnswer(err)
	}
	return nil
}
