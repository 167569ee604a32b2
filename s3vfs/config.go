package s3vfs

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// Sizes that S3 imposes or that this package uses by default.
const (
	// MiB is 1,048,576 bytes.
	MiB = 1 << 20
	// GiB is 1,073,741,824 bytes.
	GiB = 1 << 30
	// DefaultPartSize is the multipart part size used when Config.PartSize is 0.
	DefaultPartSize = 16 * MiB
	// MinPartSize is the smallest part S3 accepts (except for the last part).
	MinPartSize = 5 * MiB
	// MaxPartSize is the largest part S3 accepts.
	MaxPartSize = 5 * GiB
	// MaxParts is the largest number of parts of one multipart upload.
	MaxParts = 10000
	// MaxObjectSize is the largest object S3 stores (5 TiB).
	MaxObjectSize = 5 << 40
	// DefaultUploadConcurrency is the number of part buffers per upload used
	// when Config.UploadConcurrency is 0.
	DefaultUploadConcurrency = 4
	// DefaultRegion is the region used when Config.Region is empty.
	DefaultRegion = "us-east-1"
)

// Checksum modes accepted in Config.Checksums.
const (
	// ChecksumsWhenRequired computes request checksums only for operations
	// that require one (DeleteObjects) and validates response checksums only
	// when asked. It is the default, and the only mode that works with many
	// S3-compatible stores (B2, Ceph RGW, GCS, older MinIO).
	ChecksumsWhenRequired = "when_required"
	// ChecksumsWhenSupported sends a CRC32 with every upload (PutObject,
	// CreateMultipartUpload, UploadPart) and validates response checksums
	// whenever S3 sends them: the AWS SDK default, for AWS itself.
	ChecksumsWhenSupported = "when_supported"
)

// Config describes the bucket a Store serves and how to reach it.
// The zero value of every optional field selects its default.
type Config struct {
	// Endpoint is the S3 base URL, e.g. "http://127.0.0.1:7070"; "" = AWS.
	// It must not carry user information.
	Endpoint string
	// Region is the signing region; "" = "us-east-1".
	Region string
	// Bucket is the bucket name (required).
	Bucket string
	// PathStyle addresses the bucket as Endpoint/Bucket instead of
	// Bucket.Endpoint (needed by most S3-compatible stores).
	PathStyle bool
	// AccessKeyID and SecretAccessKey (and the optional SessionToken) are
	// static credentials. When both are empty, the SDK default credential
	// chain is used (environment, shared files, web identity, ECS, EC2 IMDS).
	AccessKeyID     string
	SecretAccessKey string
	SessionToken    string
	// Checksums is ChecksumsWhenRequired ("when_required", the default) or
	// ChecksumsWhenSupported ("when_supported"). It sets both the request
	// checksum calculation and the response checksum validation of the SDK,
	// uploads included.
	Checksums string
	// PartSize is the multipart part size in bytes; 0 = 16 MiB, at least 5 MiB.
	// A known upload size raises it so that no upload needs more than 10,000 parts.
	PartSize int64
	// UploadConcurrency is the number of part buffers (and so concurrent part
	// uploads) per upload; 0 = 4.
	UploadConcurrency int
	// HTTPClient, when set, sends every S3 request. Its Transport (or
	// http.DefaultTransport) is wrapped to count requests (WithCallCounter);
	// the client itself is not modified. Its Timeout must be 0 or long
	// enough for whole downloads. nil = a tuned client (MaxIdleConnsPerHost 64).
	HTTPClient *http.Client
}

// Validate reports every problem of c at once (errors.Join). It makes no
// network call and never prints a credential.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("s3vfs: config: "+format, args...))
	}
	if c.Bucket == "" {
		bad("bucket is required")
	} else if len(c.Bucket) < 3 || len(c.Bucket) > 255 || strings.ContainsAny(c.Bucket, "/ \t\r\n?#") {
		bad("bucket %q is not a valid bucket name", c.Bucket)
	}
	if c.Endpoint != "" {
		u, err := url.Parse(c.Endpoint)
		switch {
		case err != nil:
			bad("endpoint is not a URL")
		case u.User != nil:
			bad("endpoint must not contain user information (give credentials separately)")
		case u.Scheme != "http" && u.Scheme != "https":
			bad("endpoint %q: scheme must be http or https", u.Redacted())
		case u.Host == "":
			bad("endpoint %q has no host", u.Redacted())
		case u.RawQuery != "" || u.Fragment != "":
			bad("endpoint %q must not have a query or fragment", u.Redacted())
		}
	}
	if strings.ContainsAny(c.Region, " /\t\r\n") {
		bad("region %q is not a valid region", c.Region)
	}
	switch {
	case (c.AccessKeyID == "") != (c.SecretAccessKey == ""):
		bad("access key id and secret access key must be given together")
	case c.SessionToken != "" && c.AccessKeyID == "":
		bad("session token given without an access key id and secret access key")
	}
	switch c.Checksums {
	case "", ChecksumsWhenRequired, ChecksumsWhenSupported:
	default:
		bad("checksums %q: want %q or %q", c.Checksums, ChecksumsWhenRequired, ChecksumsWhenSupported)
	}
	if c.PartSize != 0 && (c.PartSize < MinPartSize || c.PartSize > MaxPartSize) {
		bad("part size %d: want between %d (5 MiB) and %d (5 GiB)", c.PartSize, MinPartSize, MaxPartSize)
	}
	if c.UploadConcurrency < 0 {
		bad("upload concurrency %d: want at least 1 (0 = default %d)", c.UploadConcurrency, DefaultUploadConcurrency)
	} else if c.UploadConcurrency > 256 {
		bad("upload concurrency %d: want at most 256", c.UploadConcurrency)
	}
	return errors.Join(errs...)
}

// withDefaults returns c with every zero optional field set to its default.
func (c Config) withDefaults() Config {
	if c.Region == "" {
		c.Region = DefaultRegion
	}
	if c.Checksums == "" {
		c.Checksums = ChecksumsWhenRequired
	}
	if c.PartSize == 0 {
		c.PartSize = DefaultPartSize
	}
	if c.UploadConcurrency == 0 {
		c.UploadConcurrency = DefaultUploadConcurrency
	}
	return c
}
