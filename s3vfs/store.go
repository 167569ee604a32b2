package s3vfs

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials/ec2rolecreds"
	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go/logging"
	"golang.org/x/sync/semaphore"
)

// s3API names the S3 operations this package makes; *s3.Client implements it.
type s3API interface {
	HeadBucket(ctx context.Context, in *s3.HeadBucketInput, optFns ...func(*s3.Options)) (*s3.HeadBucketOutput, error)
	HeadObject(ctx context.Context, in *s3.HeadObjectInput, optFns ...func(*s3.Options)) (*s3.HeadObjectOutput, error)
	GetObject(ctx context.Context, in *s3.GetObjectInput, optFns ...func(*s3.Options)) (*s3.GetObjectOutput, error)
	ListObjectsV2(ctx context.Context, in *s3.ListObjectsV2Input, optFns ...func(*s3.Options)) (*s3.ListObjectsV2Output, error)
	PutObject(ctx context.Context, in *s3.PutObjectInput, optFns ...func(*s3.Options)) (*s3.PutObjectOutput, error)
	CopyObject(ctx context.Context, in *s3.CopyObjectInput, optFns ...func(*s3.Options)) (*s3.CopyObjectOutput, error)
	DeleteObject(ctx context.Context, in *s3.DeleteObjectInput, optFns ...func(*s3.Options)) (*s3.DeleteObjectOutput, error)
	DeleteObjects(ctx context.Context, in *s3.DeleteObjectsInput, optFns ...func(*s3.Options)) (*s3.DeleteObjectsOutput, error)
	CreateMultipartUpload(ctx context.Context, in *s3.CreateMultipartUploadInput, optFns ...func(*s3.Options)) (*s3.CreateMultipartUploadOutput, error)
	UploadPart(ctx context.Context, in *s3.UploadPartInput, optFns ...func(*s3.Options)) (*s3.UploadPartOutput, error)
	UploadPartCopy(ctx context.Context, in *s3.UploadPartCopyInput, optFns ...func(*s3.Options)) (*s3.UploadPartCopyOutput, error)
	CompleteMultipartUpload(ctx context.Context, in *s3.CompleteMultipartUploadInput, optFns ...func(*s3.Options)) (*s3.CompleteMultipartUploadOutput, error)
	ListParts(ctx context.Context, in *s3.ListPartsInput, optFns ...func(*s3.Options)) (*s3.ListPartsOutput, error)
	AbortMultipartUpload(ctx context.Context, in *s3.AbortMultipartUploadInput, optFns ...func(*s3.Options)) (*s3.AbortMultipartUploadOutput, error)
	ListMultipartUploads(ctx context.Context, in *s3.ListMultipartUploadsInput, optFns ...func(*s3.Options)) (*s3.ListMultipartUploadsOutput, error)
	ListBuckets(ctx context.Context, in *s3.ListBucketsInput, optFns ...func(*s3.Options)) (*s3.ListBucketsOutput, error)
}

var _ s3API = (*s3.Client)(nil)

// cleanupTimeout bounds cleanup calls (AbortMultipartUpload) that run under
// a context detached from the caller's.
const cleanupTimeout = 30 * time.Second

// Store gives access to the objects of one bucket. It is safe for
// concurrent use; build one per bucket with New and share it.
type Store struct {
	client          s3API
	bucket          string
	partSize        int64
	concurrency     int
	sendChecksums   bool // ChecksumsWhenSupported: CRC32 on uploads
	buffers         *bufferPool
	copyThreshold   int64 // CopyObject up to this size, multipart copy above
	copyPartSize    int64 // minimum part size of a multipart copy
	deleteBatchSize int
	noBatchDelete   bool                // no DeleteObjects (GCS): one DeleteObject per key
	memory          *semaphore.Weighted // bytes of part buffers, all uploads together
	budgetWait      time.Duration       // how long an upload waits for memory
	memoryBudget    int64
	creds           aws.CredentialsProvider // for ResolveCredentials
	credSource      string                  // where creds come from, for logs and `davgw check`
	region          string                  // signing region in use
	active          *uploadSet              // multipart uploads this Store is writing
	logger          *slog.Logger            // what fails outside any request (Config.Logger)
	lateAborts      chan struct{}           // aborts retried in the background (abortOrRetry)
	lateAbortWindow time.Duration
	lateAbortDelay  time.Duration
	objectOpts      *objectOptions // what client (an optionsClient) adds to every call; nil in tests without New
}

// uploadSet is a set of upload IDs, safe for concurrent use.
type uploadSet struct {
	mu  sync.Mutex
	ids map[string]struct{}
}

// New builds a Store from cfg (after Validate). Credentials come from
// cfg.Credentials (static keys, the EC2 instance role, or the SDK default
// chain), with an STS AssumeRole on top when cfg.RoleARN is set. New makes
// no S3 call (see CheckBucket); with CredentialsIMDS and no region it asks
// the metadata service for the region.
func New(ctx context.Context, cfg Config) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	objectOpts, err := newObjectOptions(cfg)
	if err != nil {
		return nil, err
	}
	q := providerQuirks(cfg.Provider)
	if cfg.Endpoint == "" {
		cfg.Endpoint = q.defaultEndpoint
	}

	// The metadata service is link-local: never through a proxy.
	imdsHTTP := &http.Client{Transport: &http.Transport{Proxy: nil, IdleConnTimeout: 30 * time.Second}}
	chain, err := baseCredentials(ctx, cfg, imdsHTTP)
	if err != nil {
		return nil, err
	}
	region := cfg.Region
	if region == "" {
		region = chain.region
	}
	if region == "" {
		region = DefaultRegion
	}

	opts := []func(*config.LoadOptions) error{
		config.WithRegion(region),
		// The SDK's own notes (a response body it could not drain, a
		// retry quirk) go to the gateway's log, never straight to stderr
		// past its format.
		config.WithLogger(sdkLogger{cfg.Logger}),
	}
	if chain.provider != nil {
		opts = append(opts, config.WithCredentialsProvider(chain.provider))
	} else {
		// The default chain's last step, the EC2 instance role, goes to
		// the metadata service directly (never through the proxy), with
		// IMDSv1 only when allowed; AWS_EC2_METADATA_DISABLED still applies.
		imdsClient := newIMDSClient(cfg, imdsHTTP, imds.ClientDefaultEnableState)
		opts = append(opts,
			config.WithEC2RoleCredentialOptions(func(o *ec2rolecreds.Options) { o.Client = imdsClient }),
			config.WithCredentialsCacheOptions(cacheOptions))
	}
	if cfg.HTTPClient == nil {
		proxy, err := proxyFunc(cfg.Proxy, os.Getenv)
		if err != nil {
			return nil, err
		}
		// A BuildableClient lets the SDK apply AWS_CA_BUNDLE to its transport.
		opts = append(opts, config.WithHTTPClient(awshttp.NewBuildableClient().WithTransportOptions(func(t *http.Transport) {
			t.Proxy = proxy
			t.MaxIdleConns = 256
			t.MaxIdleConnsPerHost = 64
			t.IdleConnTimeout = 90 * time.Second
		})))
	}
	awsCfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		// LoadDefaultConfig errors name files and profiles, never secrets.
		return nil, fmt.Errorf("s3vfs: loading AWS configuration: %w", err)
	}

	baseHTTP := cfg.HTTPClient
	if baseHTTP == nil {
		bc, ok := awsCfg.HTTPClient.(*awshttp.BuildableClient)
		if !ok {
			return nil, fmt.Errorf("s3vfs: unexpected SDK HTTP client %T", awsCfg.HTTPClient)
		}
		baseHTTP = &http.Client{Transport: bc.GetTransport(), Timeout: bc.GetTimeout()}
	}
	httpClient := countingClient(baseHTTP)

	creds, source := awsCfg.Credentials, chain.source
	if cfg.RoleARN != "" {
		creds = assumeRole(cfg, creds, region, baseHTTP) // STS calls are not S3 requests: not counted
		source = "role " + cfg.RoleARN + " assumed with STS over " + source
	}

	reqChecksum, respChecksum := aws.RequestChecksumCalculationWhenRequired, aws.ResponseChecksumValidationWhenRequired
	if cfg.Checksums == ChecksumsWhenSupported {
		reqChecksum, respChecksum = aws.RequestChecksumCalculationWhenSupported, aws.ResponseChecksumValidationWhenSupported
	}
	client := s3.NewFromConfig(awsCfg, func(o *s3.Options) {
		if cfg.Endpoint != "" {
			o.BaseEndpoint = aws.String(strings.TrimSuffix(cfg.Endpoint, "/"))
		}
		o.Credentials = creds
		o.UsePathStyle = cfg.PathStyle || (!cfg.PathStyleSet && q.pathStyle)
		o.HTTPClient = httpClient
		o.RequestChecksumCalculation = reqChecksum
		o.ResponseChecksumValidation = respChecksum
		if q.unsignedAcceptEncoding {
			o.APIOptions = append(o.APIOptions, unsignedAcceptEncoding)
		}
	})
	st := newStore(optionsClient{next: client, opts: &objectOpts}, cfg)
	st.objectOpts = &objectOpts
	st.applyQuirks(q)
	st.creds, st.credSource, st.region = creds, source, region
	return st, nil
}

// sdkLogger passes the SDK's log lines (logging.Logger) to the Store's
// logger: warnings at Warn, the rest at Debug. The SDK logs no request or
// credential unless ClientLogMode asks, which davgw never sets.
type sdkLogger struct{ l *slog.Logger }

func (s sdkLogger) Logf(c logging.Classification, format string, v ...any) {
	if s.l == nil {
		return
	}
	level := slog.LevelDebug
	if c == logging.Warn {
		level = slog.LevelWarn
	}
	s.l.Log(context.Background(), level, "s3 client: "+fmt.Sprintf(format, v...))
}

// newStore wires a Store around an S3 client; cfg has its defaults set.
func newStore(client s3API, cfg Config) *Store {
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Store{
		client:          client,
		bucket:          cfg.Bucket,
		partSize:        cfg.PartSize,
		concurrency:     cfg.UploadConcurrency,
		sendChecksums:   cfg.Checksums == ChecksumsWhenSupported,
		buffers:         newBufferPool(cfg.PartSize * int64(cfg.UploadConcurrency)),
		copyThreshold:   MaxPartSize,
		copyPartSize:    512 * MiB,
		deleteBatchSize: 1000,
		memory:          semaphore.NewWeighted(cfg.UploadMemory),
		memoryBudget:    cfg.UploadMemory,
		budgetWait:      budgetWait,
		active:          &uploadSet{ids: make(map[string]struct{})},
		logger:          logger,
		lateAborts:      make(chan struct{}, maxLateAborts),
		lateAbortWindow: lateAbortWindow,
		lateAbortDelay:  lateAbortDelay,
	}
}

// Bucket returns the bucket name.
func (s *Store) Bucket() string { return s.bucket }

// Region returns the signing region in use (configured, from the
// instance metadata service, or the default).
func (s *Store) Region() string { return s.region }

// PartSize returns the configured multipart part size in bytes.
func (s *Store) PartSize() int64 { return s.partSize }

// UploadMemory returns the bytes of part buffers all uploads together may
// hold ([s3].upload_memory).
func (s *Store) UploadMemory() int64 { return s.memoryBudget }

// UploadConcurrency returns the number of part buffers per upload.
func (s *Store) UploadConcurrency() int { return s.concurrency }

// CheckBucket verifies with HeadBucket that the bucket exists and the
// credentials reach it (ErrNotFound, ErrAccessDenied, ErrUnavailable); a
// Store of AnyBucket checks that the credentials can list the buckets.
func (s *Store) CheckBucket(ctx context.Context) error {
	if s.AnyBucket() {
		_, err := s.ListBuckets(ctx)
		return err
	}
	_, err := s.client.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: &s.bucket})
	if err != nil {
		return opError("head bucket", s.bucket, err)
	}
	return nil
}

// Head returns the object's info, with ContentType and Metadata
// (HasMetadata is true). A missing key gives ErrNotFound.
func (s *Store) Head(ctx context.Context, key string) (ObjectInfo, error) {
	out, err := s.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &s.bucket, Key: &key})
	if err != nil {
		return ObjectInfo{}, opError("head", key, err)
	}
	return answeredInfo(key, out.ContentLength, out.ETag, out.LastModified, out.ContentType, out.Metadata), nil
}

// answeredInfo is the ObjectInfo of a GetObject or HeadObject answer.
func answeredInfo(key string, size *int64, etag *string, modified *time.Time, contentType *string, meta map[string]string) ObjectInfo {
	return ObjectInfo{
		Key:          key,
		Size:         aws.ToInt64(size),
		ETag:         quoteETag(aws.ToString(etag)),
		LastModified: aws.ToTime(modified),
		ContentType:  aws.ToString(contentType),
		Metadata:     lowerKeys(meta),
		HasMetadata:  true,
	}
}

// opError classifies err and names the operation and key, for logs.
func opError(op, key string, err error) error {
	return fmt.Errorf("%s %q: %w", op, key, Classify(err))
}

// quoteETag returns an ETag with its double quotes, adding them when a
// store sent it bare.
func quoteETag(etag string) string {
	if etag == "" || strings.HasPrefix(etag, `"`) || strings.HasPrefix(etag, `W/"`) {
		return etag
	}
	return `"` + etag + `"`
}

// lowerKeys returns m with lower-case keys (nil when m is empty).
func lowerKeys(m map[string]string) map[string]string {
	if len(m) == 0 {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[strings.ToLower(k)] = v
	}
	return out
}

// optString returns nil for "" and &s otherwise: S3 treats an empty header
// differently from an absent one.
func optString(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}
