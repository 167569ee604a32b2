package s3vfs

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
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
	// Region is the signing region; "" = the instance's region (from the
	// metadata service) with CredentialsIMDS, else "us-east-1".
	Region string
	// Bucket is the bucket name (required); AnyBucket makes a Store whose
	// ForBucket serves every bucket the credentials can list.
	Bucket string
	// PathStyle addresses the bucket as Endpoint/Bucket instead of
	// Bucket.Endpoint (needed by most S3-compatible stores). When false
	// and PathStyleSet is false, the Provider preset decides (path style
	// for every preset but "aws").
	PathStyle bool
	// PathStyleSet tells that PathStyle was chosen explicitly: false then
	// forces virtual-host addressing whatever the Provider.
	PathStyleSet bool
	// AccessKeyID and SecretAccessKey (and the optional SessionToken) are
	// static credentials. When both are empty, the SDK default credential
	// chain is used (environment, shared files, web identity, ECS, EC2 IMDS).
	AccessKeyID     string
	SecretAccessKey string
	SessionToken    string
	// Credentials selects the credential source: "" (static when keys are
	// given, else the default chain), CredentialsStatic,
	// CredentialsDefault or CredentialsIMDS (the EC2 instance role).
	Credentials string
	// IMDSEndpoint overrides the instance metadata service address
	// ("" = http://169.254.169.254, or $AWS_EC2_METADATA_SERVICE_ENDPOINT).
	IMDSEndpoint string
	// IMDSv1Fallback allows IMDSv1 (no session token) when IMDSv2 fails.
	// Off by default: IMDSv1 is open to SSRF.
	IMDSv1Fallback bool
	// RoleARN, when set, is assumed with STS on top of the credentials
	// above; the session is refreshed before it expires.
	RoleARN string
	// ExternalID is passed with AssumeRole when set.
	ExternalID string
	// RoleSessionName names the session; "" = "davgw".
	RoleSessionName string
	// RoleDuration is the session length; 0 = 1h, else 15m to 12h.
	RoleDuration time.Duration
	// STSEndpoint overrides the STS endpoint (e.g. a regional or
	// S3-compatible one); "" = the SDK's regional STS endpoint.
	STSEndpoint string
	// Provider is a preset for a store's quirks: "" or one of
	// ProviderNames ("aws", "gcs", "b2", "ceph", "minio", "other").
	Provider string
	// Proxy is an HTTP(S) proxy URL for S3 and STS traffic (not for the
	// metadata service); hosts in NO_PROXY bypass it. "" = HTTPS_PROXY,
	// HTTP_PROXY and NO_PROXY from the environment. Ignored when
	// HTTPClient is set.
	Proxy string
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
	// UploadMemory caps the bytes of part buffers of all the Store's
	// uploads together; 0 = DefaultUploadMemory(PartSize,
	// UploadConcurrency). Uploads wait for room; an upload whose part
	// alone exceeds it fails with ErrTooLarge.
	UploadMemory int64
	// SSE asks S3 to encrypt every object written: SSES3 ("AES256"),
	// SSEKMS ("aws:kms") or "" (nothing asked: the bucket's default
	// encryption applies).
	SSE string
	// SSEKMSKeyID is the KMS key of SSE "aws:kms" (key ID, key ARN, alias
	// name or alias ARN); "" = the account's aws/s3 key.
	SSEKMSKeyID string
	// SSECustomerKey is an SSE-C key (customer-provided): the base64 of 32
	// bytes. S3 encrypts with it and keeps only its MD5, so every read,
	// write, part and copy sends it (over HTTPS only); an object written
	// with it cannot be read without it. It never appears in a log or
	// error. Excludes SSE and SSECustomerKeyFile.
	SSECustomerKey string
	// SSECustomerKeyFile names a file holding the SSE-C key: 32 raw bytes,
	// or their base64. New reads it once.
	SSECustomerKeyFile string
	// StorageClass is the storage class of every object written, one of
	// types.StorageClass's values but GLACIER and DEEP_ARCHIVE (objects
	// unreadable until restored); "" = the bucket's default (STANDARD).
	StorageClass string
	// ACL is a canned ACL sent with every object written (e.g.
	// "bucket-owner-full-control" for a bucket of another account; it
	// needs s3:PutObjectAcl); "" = none.
	ACL string
	// HTTPClient, when set, sends every S3 request. Its Transport (or
	// http.DefaultTransport) is wrapped to count requests (WithCallCounter);
	// the client itself is not modified. Its Timeout must be 0 or long
	// enough for whole downloads. nil = a tuned client (MaxIdleConnsPerHost 64).
	HTTPClient *http.Client
	// Logger receives what goes wrong outside any request: the outcome of
	// aborts of multipart uploads retried in the background after an S3
	// outage. nil = discarded.
	Logger *slog.Logger
}

// DefaultUploadMemory is the default Config.UploadMemory: room for two
// uploads at full concurrency, at least 1 GiB.
func DefaultUploadMemory(partSize int64, concurrency int) int64 {
	return max(GiB, 2*partSize*int64(concurrency))
}

// ConfigError is one problem of a Config: the field it is about and what
// is wrong with it, in words that never quote a credential. Msg names the
// other fields it refers to as {Field} (those listed in Related), so that
// a caller that knows the fields by other names (config: TOML keys) can
// say the whole message in its own terms.
type ConfigError struct {
	// Field is the Config field, e.g. "PartSize".
	Field string
	// Msg says what is wrong, e.g. "must be between 5MiB and 5GiB".
	Msg string
	// Related are the other fields Msg names, each written {Name} in it.
	Related []string
}

// Error is "s3vfs: config: Field Msg" with the related fields' Go names.
func (e *ConfigError) Error() string {
	return "s3vfs: config: " + e.Field + " " + e.Message(nil)
}

// Message is Msg with each related field named by name (nil = its Go
// name).
func (e *ConfigError) Message(name func(field string) string) string {
	m := e.Msg
	for _, f := range e.Related {
		n := f
		if name != nil {
			n = name(f)
		}
		m = strings.ReplaceAll(m, "{"+f+"}", n)
	}
	return m
}

// MaxUploadConcurrency bounds Config.UploadConcurrency: the tuned client
// keeps 64 idle connections per host, so more parts at once gain nothing.
const MaxUploadConcurrency = 64

// Validate reports every problem of c at once: errors.Join of
// *ConfigError, one per problem. It is the one check of these settings
// (config maps the fields to TOML keys). It makes no network call and
// never prints a credential.
func (c Config) Validate() error {
	var errs []error
	bad := func(field, msg string, related ...string) {
		errs = append(errs, &ConfigError{Field: field, Msg: msg, Related: related})
	}
	webURL := func(raw string, schemes ...string) bool {
		u, err := url.Parse(raw)
		return err == nil && slices.Contains(schemes, u.Scheme) && u.Host != "" && u.User == nil && u.RawQuery == "" && u.Fragment == ""
	}
	if c.Bucket == "" {
		bad("Bucket", "is required")
	} else if c.Bucket != AnyBucket && len(c.Bucket) < 3 || len(c.Bucket) > 255 || strings.ContainsAny(c.Bucket, `/\ ?#`) || hasControl(c.Bucket) {
		bad("Bucket", `is not a bucket name: 3 to 255 characters, without "/", "\", spaces, "?", "#" or control characters`)
	}
	if c.Endpoint != "" && !webURL(c.Endpoint, "http", "https") {
		bad("Endpoint", `must be an http:// or https:// URL without credentials, query or fragment, e.g. "https://s3.example.com:9000"`)
	}
	q := providerQuirks(c.Provider)
	if validProvider(c.Provider) && c.Provider != "" && c.Provider != ProviderAWS && q.defaultEndpoint == "" && c.Endpoint == "" {
		bad("Endpoint", fmt.Sprintf("is required with {Provider} %q: the store's address", c.Provider), "Provider")
	}
	if strings.ContainsAny(c.Region, ` /\`) || hasControl(c.Region) {
		bad("Region", `is not a region name such as "us-east-1"`)
	}
	switch {
	case (c.AccessKeyID == "") != (c.SecretAccessKey == ""):
		bad("AccessKeyID", "must be given together with {SecretAccessKey}", "SecretAccessKey")
	case c.SessionToken != "" && c.AccessKeyID == "":
		bad("SessionToken", "needs {AccessKeyID} and {SecretAccessKey}", "AccessKeyID", "SecretAccessKey")
	}
	switch c.Credentials {
	case "", CredentialsDefault, CredentialsIMDS:
	case CredentialsStatic:
		if c.AccessKeyID == "" {
			bad("Credentials", fmt.Sprintf("%q needs {AccessKeyID} and {SecretAccessKey}", CredentialsStatic), "AccessKeyID", "SecretAccessKey")
		}
	default:
		bad("Credentials", fmt.Sprintf("must be %q, %q or %q (or empty: static with keys, else the default chain)", CredentialsStatic, CredentialsDefault, CredentialsIMDS))
	}
	if c.IMDSEndpoint != "" && !webURL(c.IMDSEndpoint, "http", "https") {
		bad("IMDSEndpoint", `must be an http:// URL such as "http://169.254.169.254"`)
	}
	if (c.IMDSEndpoint != "" || c.IMDSv1Fallback) && c.CredentialSource() == CredentialsStatic {
		bad("IMDSEndpoint", fmt.Sprintf("{IMDSEndpoint} and {IMDSv1Fallback} apply only to the instance role ({Credentials} = %q) and the default chain ({Credentials} = %q), not to static keys", CredentialsIMDS, CredentialsDefault),
			"IMDSEndpoint", "IMDSv1Fallback", "Credentials")
	}
	if c.RoleARN != "" && !strings.HasPrefix(c.RoleARN, "arn:") {
		bad("RoleARN", `must be an ARN such as "arn:aws:iam::123456789012:role/NAME"`)
	}
	if (c.ExternalID != "" || c.STSEndpoint != "") && c.RoleARN == "" {
		bad("RoleARN", "is required with {ExternalID} and {STSEndpoint}", "ExternalID", "STSEndpoint")
	}
	if n := len(c.RoleSessionName); n != 0 && (n < 2 || n > 64) {
		bad("RoleSessionName", "must be 2 to 64 characters")
	}
	if c.RoleDuration != 0 && (c.RoleDuration < MinRoleDuration || c.RoleDuration > MaxRoleDuration) {
		bad("RoleDuration", "must be between 15m and 12h (what STS grants)")
	}
	if c.STSEndpoint != "" && !webURL(c.STSEndpoint, "http", "https") {
		bad("STSEndpoint", "must be an http:// or https:// URL")
	}
	if !validProvider(c.Provider) {
		bad("Provider", `must be one of "`+strings.Join(ProviderNames(), `", "`)+`" (or empty: no preset)`)
	}
	if c.Proxy != "" {
		if _, err := proxyFunc(c.Proxy, func(string) string { return "" }); err != nil {
			bad("Proxy", `must be an http://, https:// or socks5:// URL such as "http://proxy.example.com:3128"`)
		}
	}
	switch c.Checksums {
	case "", ChecksumsWhenRequired, ChecksumsWhenSupported:
	default:
		bad("Checksums", fmt.Sprintf("must be %q or %q", ChecksumsWhenRequired, ChecksumsWhenSupported))
	}
	if c.PartSize != 0 && (c.PartSize < MinPartSize || c.PartSize > MaxPartSize) {
		bad("PartSize", "must be between 5MiB and 5GiB (S3's part limits)")
	}
	if c.UploadConcurrency < 0 || c.UploadConcurrency > MaxUploadConcurrency {
		bad("UploadConcurrency", fmt.Sprintf("must be between 1 and %d", MaxUploadConcurrency))
	}
	partSize := c.PartSize
	if partSize == 0 {
		partSize = DefaultPartSize
	}
	if c.UploadMemory < 0 || (c.UploadMemory > 0 && c.UploadMemory < partSize) {
		bad("UploadMemory", "must be at least {PartSize} (one part buffer)", "PartSize")
	}
	c.CheckObjectOptions(bad)
	return errors.Join(errs...)
}

// hasControl reports whether s holds an ASCII control character.
func hasControl(s string) bool {
	return strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f })
}

// withDefaults returns c with every zero optional field set to its default.
func (c Config) withDefaults() Config {
	if c.Checksums == "" {
		c.Checksums = ChecksumsWhenRequired
	}
	if c.PartSize == 0 {
		c.PartSize = DefaultPartSize
	}
	if c.UploadConcurrency == 0 {
		c.UploadConcurrency = DefaultUploadConcurrency
	}
	if c.UploadMemory == 0 {
		c.UploadMemory = DefaultUploadMemory(c.PartSize, c.UploadConcurrency)
	}
	return c
}
