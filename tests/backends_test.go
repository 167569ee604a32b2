package tests

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// s3Server is a running S3 endpoint with root credentials.
type s3Server struct {
	endpoint       string // http://127.0.0.1:PORT
	access, secret string
	bucket         string // set by the embedded store; else created by the suite
	stop           func()
}

// backend is one S3 server the suite runs against, with a direct S3 client
// (never counted) and a counting proxy for the gateway's traffic.
type backend struct {
	name   string
	server *s3Server
	bucket string
	s3     *s3.Client     // direct to the server: the ground truth
	proxy  *countingProxy // what the gateway talks to
}

// backendNames is the order the suite runs in; every case runs on each.
var backendNames = []string{"versitygw", "seaweedfs", "embedded"}

var registry = struct {
	mu       sync.Mutex
	once     map[string]*sync.Once
	backends map[string]*backend
	errs     map[string]error
	stops    []func()
	dirs     []string
}{once: map[string]*sync.Once{}, backends: map[string]*backend{}, errs: map[string]error{}}

// TestMain stops every server the run started, whatever the outcome, and
// after a passing run checks the S3 calls against the least-privilege list.
func TestMain(m *testing.M) {
	code := m.Run()
	if code == 0 {
		code = checkLeastPrivilege(os.Stderr) // every S3 call the gateway made is allowed
	}
	stopAll()
	os.Exit(code)
}

func stopAll() {
	registry.mu.Lock()
	stops, dirs := registry.stops, registry.dirs
	registry.stops, registry.dirs = nil, nil
	registry.mu.Unlock()
	for i := len(stops) - 1; i >= 0; i-- {
		stops[i]()
	}
	for _, d := range dirs {
		_ = os.RemoveAll(d)
	}
}

// getBackend starts the named back end once per `go test` run and returns
// it; it skips (or fails under CI=true) when the tool is missing.
func getBackend(tb testing.TB, name string) *backend {
	tb.Helper()
	registry.mu.Lock()
	once, ok := registry.once[name]
	if !ok {
		once = &sync.Once{}
		registry.once[name] = once
	}
	registry.mu.Unlock()
	once.Do(func() {
		b, err := startBackend(name)
		registry.mu.Lock()
		registry.backends[name], registry.errs[name] = b, err
		registry.mu.Unlock()
	})
	registry.mu.Lock()
	b, err := registry.backends[name], registry.errs[name]
	registry.mu.Unlock()
	requireTool(tb, err)
	return b
}

func startBackend(name string) (*backend, error) {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "davgw-"+name+"-")
	if err != nil {
		return nil, err
	}
	registry.mu.Lock()
	registry.dirs = append(registry.dirs, dir)
	registry.mu.Unlock()

	var srv *s3Server
	switch name {
	case "versitygw":
		srv, err = startVersityGW(ctx, dir)
	case "seaweedfs":
		srv, err = startSeaweedFS(ctx, dir)
	case "embedded":
		srv, err = startEmbedded(ctx, dir)
	default:
		err = fmt.Errorf("unknown back end %q", name)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	registry.mu.Lock()
	registry.stops = append(registry.stops, srv.stop)
	registry.mu.Unlock()

	b := &backend{name: name, server: srv, bucket: srv.bucket}
	transport := &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 64, IdleConnTimeout: 30 * time.Second}
	b.s3 = newS3Client(srv.endpoint, srv.access, srv.secret, &http.Client{Transport: transport})
	registry.mu.Lock()
	registry.stops = append(registry.stops, transport.CloseIdleConnections)
	registry.mu.Unlock()
	if b.bucket == "" {
		b.bucket = "davgw-test"
		if err := createBucket(ctx, b.s3, b.bucket); err != nil {
			return nil, fmt.Errorf("%s: create bucket: %w", name, err)
		}
	}
	b.proxy, err = newCountingProxy(srv.endpoint)
	if err != nil {
		return nil, err
	}
	registry.mu.Lock()
	registry.stops = append(registry.stops, b.proxy.Close)
	registry.mu.Unlock()
	return b, nil
}

// newS3Client is a plain path-style client with static keys, checksums only
// when required (the setting non-AWS stores need).
func newS3Client(endpoint, access, secret string, client *http.Client) *s3.Client {
	return s3.New(s3.Options{
		HTTPClient:                 client,
		Region:                     "us-east-1",
		BaseEndpoint:               aws.String(endpoint),
		UsePathStyle:               true,
		Credentials:                credentials.NewStaticCredentialsProvider(access, secret, ""),
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenRequired,
	})
}

// createBucket creates bucket, retrying while a just-started server settles.
func createBucket(ctx context.Context, c *s3.Client, bucket string) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(bucket)})
		if err == nil {
			return nil
		}
		var owned *s3types.BucketAlreadyOwnedByYou
		if errors.As(err, &owned) {
			return nil
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// objectState is what a key holds, read straight from S3.
type objectState struct {
	ETag string
	Size int64
}

// snapshot lists every key under prefix with its ETag and size.
func (b *backend) snapshot(tb testing.TB, prefix string) map[string]objectState {
	tb.Helper()
	out := map[string]objectState{}
	p := s3.NewListObjectsV2Paginator(b.s3, &s3.ListObjectsV2Input{Bucket: &b.bucket, Prefix: aws.String(prefix)})
	for p.HasMorePages() {
		page, err := p.NextPage(context.Background())
		if err != nil {
			tb.Fatalf("list %q on %s: %v", prefix, b.name, err)
		}
		for _, o := range page.Contents {
			out[aws.ToString(o.Key)] = objectState{ETag: aws.ToString(o.ETag), Size: aws.ToInt64(o.Size)}
		}
	}
	return out
}

// keys lists the keys under prefix, sorted.
func (b *backend) keys(tb testing.TB, prefix string) []string {
	tb.Helper()
	snap := b.snapshot(tb, prefix)
	keys := make([]string, 0, len(snap))
	for k := range snap {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// openUploads lists the multipart uploads in progress under prefix.
func (b *backend) openUploads(tb testing.TB, prefix string) []string {
	tb.Helper()
	out, err := b.s3.ListMultipartUploads(context.Background(), &s3.ListMultipartUploadsInput{
		Bucket: &b.bucket, Prefix: aws.String(prefix),
	})
	if err != nil {
		tb.Fatalf("ListMultipartUploads %q on %s: %v", prefix, b.name, err)
	}
	var ups []string
	for _, u := range out.Uploads {
		ups = append(ups, aws.ToString(u.Key)+" "+aws.ToString(u.UploadId))
	}
	return ups
}

// diffSnapshots describes how two snapshots differ, "" when equal.
func diffSnapshots(before, after map[string]objectState) string {
	var d []string
	for k, v := range before {
		w, ok := after[k]
		switch {
		case !ok:
			d = append(d, "removed "+k)
		case w != v:
			d = append(d, fmt.Sprintf("changed %s (%v -> %v)", k, v, w))
		}
	}
	for k := range after {
		if _, ok := before[k]; !ok {
			d = append(d, "added "+k)
		}
	}
	sort.Strings(d)
	return strings.Join(d, "; ")
}
