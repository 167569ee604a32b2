package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/davgw/davgw/config"
	"github.com/davgw/davgw/internal/redisstore"
	"github.com/davgw/davgw/s3vfs"
)

// probeTimeout bounds each S3 probe of `davgw check`.
const probeTimeout = 30 * time.Second

// checker prints one line per probe and remembers whether all passed.
type checker struct {
	w      io.Writer
	failed bool
	label  string // names the store the lines are about, e.g. " [store finance]"
}

func (c *checker) pass(format string, args ...any) {
	fmt.Fprintf(c.w, "✓ %s%s\n", fmt.Sprintf(format, args...), c.label)
}

func (c *checker) skip(format string, args ...any) {
	fmt.Fprintf(c.w, "- %s%s\n", fmt.Sprintf(format, args...), c.label)
}

func (c *checker) fail(what string, err error, fix string) {
	c.failed = true
	fmt.Fprintf(c.w, "✗ %s%s: %v\n", what, c.label, err)
	if fix != "" {
		fmt.Fprintf(c.w, "    fix: %s\n", fix)
	}
}

func runCheck(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	flagConfig := fs.String("config", "", "config file (default $DAVGW_CONFIG, else ./config.toml)")
	if code, ok := parseFlags(fs, args, stderr); !ok {
		return code
	}
	path, _, err := findConfig(*flagConfig, os.Getenv, fileExists)
	if err != nil {
		fmt.Fprintf(stderr, "davgw check: %v\n", err)
		return exitUsage
	}
	if path == "" {
		fmt.Fprintf(stderr, "davgw check: no config file (-config, $%s or ./%s); `davgw serve` would start the embedded default, which needs no checking\n", envConfig, defaultConfigFile)
		return exitUsage
	}
	cfg, ok := loadConfig(path, stderr)
	if !ok {
		return exitUsage
	}
	c := &checker{w: stdout}
	c.pass("config %s is valid", path)
	probeS3(ctx, c, cfg)
	if cfg.Auth.OIDC.Issuer == "" {
		c.skip("OIDC: not configured")
	} else {
		probeOIDC(ctx, c, cfg)
	}
	probeShared(ctx, c, cfg)
	if c.failed {
		return exitRuntime
	}
	return exitOK
}

// probeS3 probes every store ([s3], then each [s3.stores.NAME]), each
// line naming its store.
func probeS3(ctx context.Context, c *checker, cfg *config.Config) {
	for _, sc := range cfg.Stores() {
		c.label = " [store " + storeLabel(sc.Name) + "]"
		probeStore(ctx, c, sc)
	}
	c.label = ""
}

// storeLabel names a store in `davgw check` lines and logs: "default"
// for [s3], else its name.
func storeLabel(name string) string {
	if name == "" {
		return "default"
	}
	return name
}

// probeStore runs every S3 probe against one store's bucket, on a scratch
// key it removes afterwards; a store of every bucket has its ListBuckets
// and a listing of each bucket probed, no writes.
func probeStore(ctx context.Context, c *checker, sc config.StoreConfig) {
	s := sc.S3
	bucketARN := "arn:aws:s3:::" + s.Bucket
	objectARN := bucketARN + "/" + sc.Prefix + "*"

	store, err := s3vfs.New(ctx, s)
	if err != nil {
		c.fail("S3 client", err, credentialFix(s))
		return
	}
	c.pass("S3 client for %s", sc.Describe)
	c.pass("writes ask for %s; the probes below use them", store.ObjectOptions())
	if !probeCredentials(ctx, c, s, store) {
		return
	}

	probe := func(what string, fn func(context.Context) error, fix string) bool {
		pctx, cancel := context.WithTimeout(ctx, probeTimeout)
		defer cancel()
		if err := fn(pctx); err != nil {
			c.fail(what, err, hint(err, fix))
			return false
		}
		c.pass("%s", what)
		return true
	}

	if store.AnyBucket() {
		probeBuckets(ctx, c, store, sc.Prefix, probe)
		return
	}
	if sc.CheckBucket {
		if !probe("bucket "+s.Bucket+" reachable (HeadBucket)", store.CheckBucket,
			"check the keys, [s3].endpoint, region, bucket and path_style; the credentials need s3:ListBucket on "+bucketARN) {
			return
		}
	} else {
		c.skip("bucket check skipped (check_bucket = false)")
	}

	probeList(store, sc.Prefix, displayPrefix(sc.Prefix), probe)

	key := sc.Prefix + ".davgw-check-" + randomHex(8)
	copyKey := key + "-copy"
	mpKey := key + "-multipart"
	defer func() {
		// Remove the scratch keys whatever happened, even after Ctrl-C.
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), probeTimeout)
		defer cancel()
		_ = store.Delete(dctx, []string{key, copyKey, mpKey})
	}()
	body := []byte("davgw check " + time.Now().UTC().Format(time.RFC3339) + "\n")
	var put s3vfs.ObjectInfo
	if !probe("put "+key+" (PutObject)", func(ctx context.Context) error {
		var err error
		put, err = store.PutObject(ctx, key, body, s3vfs.WriteOptions{Size: int64(len(body)), ContentType: "text/plain"})
		return err
	}, "grant s3:PutObject on "+objectARN+objectOptionsFix(s, true)) {
		return
	}
	var head s3vfs.ObjectInfo
	probe("head (HeadObject)", func(ctx context.Context) error {
		var err error
		head, err = store.Head(ctx, key)
		if err == nil && head.Size != int64(len(body)) {
			return fmt.Errorf("size %d, want %d", head.Size, len(body))
		}
		if err == nil && put.ETag != "" && head.ETag != put.ETag {
			return fmt.Errorf("ETag %s differs from the PutObject ETag %s", head.ETag, put.ETag)
		}
		return err
	}, "grant s3:GetObject on "+objectARN+objectOptionsFix(s, false))
	probe("get (GetObject)", func(ctx context.Context) error {
		r := store.NewReader(ctx, key, s3vfs.ObjectInfo{Key: key, Size: int64(len(body)), ETag: head.ETag})
		defer r.Close()
		got, err := io.ReadAll(r)
		if err == nil && !bytes.Equal(got, body) {
			return errors.New("the body read back differs from the body written")
		}
		return err
	}, "grant s3:GetObject on "+objectARN+objectOptionsFix(s, false))
	probe("copy (CopyObject)", func(ctx context.Context) error {
		_, err := store.Copy(ctx, key, head, copyKey, s3vfs.CopyOptions{})
		return err
	}, "grant s3:GetObject and s3:PutObject on "+objectARN)
	probeMultipart(ctx, c, s, store, mpKey, probe, bucketARN, objectARN)
	probe("delete (DeleteObject, DeleteObjects)", func(ctx context.Context) error {
		if err := store.Delete(ctx, []string{key, copyKey}); err != nil {
			return err
		}
		if _, err := store.Head(ctx, key); !errors.Is(err, s3vfs.ErrNotFound) {
			if err == nil {
				return errors.New("the object is still there after DeleteObjects")
			}
			return err
		}
		return nil
	}, "grant s3:DeleteObject on "+objectARN)
}

// probeList probes a listing of prefix in store's bucket, shown as where.
func probeList(store *s3vfs.Store, prefix, where string, probe func(string, func(context.Context) error, string) bool) {
	probe("list "+where+" (ListObjectsV2)", func(ctx context.Context) error {
		for _, err := range store.List(ctx, s3vfs.ListOptions{Prefix: prefix, Delimiter: "/", MaxKeys: 1, Limit: 1}) {
			if err != nil {
				return err
			}
		}
		return nil
	}, "grant s3:ListBucket on arn:aws:s3:::"+store.Bucket())
}

// probeBuckets probes a store of every bucket: ListBuckets, then a listing
// of each bucket (at most 20); it writes nothing, there being no one
// bucket for a scratch key.
func probeBuckets(ctx context.Context, c *checker, store *s3vfs.Store, prefix string, probe func(string, func(context.Context) error, string) bool) {
	var list []s3vfs.BucketInfo
	if !probe("buckets listed (ListBuckets)", func(ctx context.Context) error {
		var err error
		list, err = store.ListBuckets(ctx)
		return err
	}, "grant s3:ListAllMyBuckets (on \"*\"): a store with bucket = \"*\" lists the buckets with it") {
		return
	}
	c.pass("%d bucket(s) to show as folders", len(list))
	for i, b := range list {
		if i == 20 {
			c.skip("%d more buckets not probed", len(list)-i)
			break
		}
		probeList(store.ForBucket(b.Name), prefix, b.Name+"/"+prefix, probe)
	}
	c.skip("writes not probed: a store of every bucket has no one bucket for a scratch key")
}

// hint picks a fix for an S3 error: the probe's own for access problems,
// else one by error class.
func hint(err error, fix string) string {
	switch {
	case errors.Is(err, s3vfs.ErrAccessDenied):
		return fix
	case errors.Is(err, s3vfs.ErrNotFound):
		return "the bucket does not exist at this endpoint/region: check [s3].bucket, endpoint, region and path_style"
	case errors.Is(err, s3vfs.ErrUnavailable):
		return "S3 did not answer: check [s3].endpoint, the network, [s3].proxy / HTTPS_PROXY, and that the store is running"
	case errors.Is(err, s3vfs.ErrInvalid):
		return "S3 refused the request: check [s3].region, path_style and checksums (\"when_required\" for non-AWS stores)" +
			", and sse, sse_kms_key_id, sse_c_key, storage_class and acl if set (not every store takes each)"
	default:
		return fix
	}
}

func displayPrefix(p string) string {
	if p == "" {
		return "the bucket root"
	}
	return p
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// probeShared is `davgw check`'s part for [locks].store: a Redis URL must
// answer, and must not evict keys (every key there has a TTL, so a
// volatile-* policy would drop locks and limits).
func probeShared(ctx context.Context, c *checker, cfg *config.Config) {
	store := cfg.Locks.Store
	if store == "" || store == "memory" {
		c.skip("shared store: memory (locks and sign-in state stay in each gateway)")
		return
	}
	rc, err := redisstore.Open(store, stateScope(cfg))
	if err != nil {
		c.fail("shared store", err, `set [locks].store to "memory" or a URL such as "redis://127.0.0.1:6379/0"`)
		return
	}
	defer rc.Close()
	what := "shared store " + redisstore.RedactURL(store)
	pctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	if err := rc.Ping(pctx); err != nil {
		c.fail(what, err, "Redis must be reachable from here, with the password of the URL")
		return
	}
	c.pass("%s answers", what)
	policy, err := rc.R.ConfigGet(pctx, "maxmemory-policy").Result()
	switch {
	case err != nil:
		c.skip("Redis maxmemory-policy not readable (CONFIG GET refused): make sure it is noeviction")
	case policy["maxmemory-policy"] != "noeviction":
		c.fail("Redis maxmemory-policy", fmt.Errorf("is %q", policy["maxmemory-policy"]), "set maxmemory-policy noeviction: an evicted key is a lost lock or sign-in limit")
	default:
		c.pass("Redis maxmemory-policy is noeviction")
	}
}
