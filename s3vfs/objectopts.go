package s3vfs

import (
	"context"
	"crypto/md5"
	"encoding/base64"
	"fmt"
	"net"
	"net/url"
	"os"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// Server-side encryption modes accepted in Config.SSE.
const (
	// SSES3 is SSE-S3: S3 encrypts with keys it manages ("AES256").
	SSES3 = string(types.ServerSideEncryptionAes256)
	// SSEKMS is SSE-KMS: S3 encrypts with a KMS key ("aws:kms"),
	// Config.SSEKMSKeyID or the account's aws/s3 key.
	SSEKMS = string(types.ServerSideEncryptionAwsKms)
)

// SSECustomerKeySize is the size of an SSE-C key: 256 bits.
const SSECustomerKeySize = 32

// unreadableClasses are storage classes whose objects cannot be read
// before a restore: GET, COPY and MOVE of every file would fail.
var unreadableClasses = []types.StorageClass{types.StorageClassGlacier, types.StorageClassDeepArchive}

// CheckObjectOptions reports each problem of the object options of c
// (SSE, SSEKMSKeyID, SSECustomerKey, SSECustomerKeyFile, StorageClass,
// ACL) by calling bad with the field, what is wrong, and the other fields
// the message names, each written {Field} in it. Validate reports the same
// problems; config calls this to name its keys. It never quotes a key.
func (c Config) CheckObjectOptions(bad func(field, msg string, related ...string)) {
	switch c.SSE {
	case "", SSES3, SSEKMS:
	default:
		bad("SSE", fmt.Sprintf("must be %q (SSE-S3), %q (SSE-KMS) or empty (none asked: the bucket's default applies)", SSES3, SSEKMS))
	}
	if c.SSEKMSKeyID != "" && c.SSE != SSEKMS {
		bad("SSEKMSKeyID", fmt.Sprintf("needs {SSE} = %q", SSEKMS), "SSE")
	}
	if strings.ContainsFunc(c.SSEKMSKeyID, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		bad("SSEKMSKeyID", "must be a KMS key ID, key ARN, alias name or alias ARN, without spaces")
	}
	customer := c.SSECustomerKey != "" || c.SSECustomerKeyFile != ""
	if c.SSECustomerKey != "" && c.SSECustomerKeyFile != "" {
		bad("SSECustomerKey", "and {SSECustomerKeyFile} are two ways to give the same key: set one", "SSECustomerKeyFile")
	}
	if c.SSECustomerKey != "" {
		if _, err := parseCustomerKey([]byte(c.SSECustomerKey), false); err != nil {
			bad("SSECustomerKey", err.Error())
		}
	}
	if customer && c.SSE != "" {
		bad("SSE", "cannot be combined with an SSE-C key ({SSECustomerKey} or {SSECustomerKeyFile}): S3 takes one kind of encryption per object",
			"SSECustomerKey", "SSECustomerKeyFile")
	}
	if customer && !secureEndpoint(c.Endpoint) {
		bad("Endpoint", "must be https:// with an SSE-C key ({SSECustomerKey} or {SSECustomerKeyFile}): the key travels in every request "+
			"(http:// is accepted only for a loopback address)", "SSECustomerKey", "SSECustomerKeyFile")
	}
	if c.StorageClass != "" {
		sc := types.StorageClass(c.StorageClass)
		switch {
		case slices.Contains(unreadableClasses, sc):
			bad("StorageClass", fmt.Sprintf("%q keeps objects unreadable until they are restored: every GET, COPY and MOVE would fail (GLACIER_IR is read instantly)", c.StorageClass))
		case !slices.Contains(sc.Values(), sc):
			bad("StorageClass", "must be one of "+quoteAll(sc.Values(), unreadableClasses)+" (or empty: the bucket's default, STANDARD on AWS)")
		}
	}
	if c.ACL != "" {
		acl := types.ObjectCannedACL(c.ACL)
		if !slices.Contains(acl.Values(), acl) {
			bad("ACL", "must be a canned ACL: one of "+quoteAll(acl.Values(), nil)+" (or empty: none sent)")
		}
	}
}

// quoteAll lists values, quoted and comma-separated, leaving out skip.
func quoteAll[T ~string](values, skip []T) string {
	var out []string
	for _, v := range values {
		if !slices.Contains(skip, v) {
			out = append(out, fmt.Sprintf("%q", v))
		}
	}
	return strings.Join(out, ", ")
}

// secureEndpoint reports whether the S3 endpoint protects request headers
// in transit: AWS (""), https, or http to a loopback address.
func secureEndpoint(endpoint string) bool {
	if endpoint == "" {
		return true
	}
	u, err := url.Parse(endpoint)
	if err != nil {
		return false
	}
	if u.Scheme == "https" {
		return true
	}
	host := u.Hostname()
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// parseCustomerKey reads an SSE-C key: base64 (standard, padded) of 32
// bytes, with surrounding white space; raw also accepts exactly 32 bytes
// (a key file written by `openssl rand 32`). Errors never quote the key.
func parseCustomerKey(b []byte, raw bool) ([]byte, error) {
	if raw && len(b) == SSECustomerKeySize {
		return b, nil
	}
	key, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(b)))
	if err != nil || len(key) != SSECustomerKeySize {
		want := "the base64 of 32 bytes (44 characters, as `openssl rand -base64 32` prints)"
		if raw {
			want = "32 raw bytes (`openssl rand 32`) or " + want
		}
		return nil, fmt.Errorf("must be %s", want)
	}
	return key, nil
}

// objectOptions are the per-store settings that go with every request
// about an object's content: encryption, storage class and ACL on writes,
// the SSE-C key on writes and reads. New builds them once from Config;
// apply sets them on each S3 input, so that a call site says only which
// operation it makes.
type objectOptions struct {
	sse          types.ServerSideEncryption
	kmsKeyID     *string
	storageClass types.StorageClass
	acl          types.ObjectCannedACL
	customer     *customerKey // SSE-C; nil = none
}

// customerKey is an SSE-C key as S3 takes it: the base64 of the key and
// of its MD5. It is kept behind a pointer and prints as "redacted", so
// that no %v of a Store or of its options shows it.
type customerKey struct {
	key, md5 string
}

// String hides the key.
func (*customerKey) String() string { return "SSE-C key (redacted)" }

// GoString hides the key from %#v.
func (k *customerKey) GoString() string { return k.String() }

func newCustomerKey(raw []byte) *customerKey {
	sum := md5.Sum(raw)
	return &customerKey{key: base64.StdEncoding.EncodeToString(raw), md5: base64.StdEncoding.EncodeToString(sum[:])}
}

// sseCAlgorithm is the only SSE-C algorithm S3 has.
const sseCAlgorithm = "AES256"

// headers returns the three SSE-C header values (nil, nil, nil for a nil key).
func (k *customerKey) headers() (algorithm, key, keyMD5 *string) {
	if k == nil {
		return nil, nil, nil
	}
	return aws.String(sseCAlgorithm), aws.String(k.key), aws.String(k.md5)
}

// newObjectOptions builds the options of cfg (validated), reading the
// SSE-C key file if one is set.
func newObjectOptions(cfg Config) (objectOptions, error) {
	o := objectOptions{
		sse:          types.ServerSideEncryption(cfg.SSE),
		kmsKeyID:     optString(cfg.SSEKMSKeyID),
		storageClass: types.StorageClass(cfg.StorageClass),
		acl:          types.ObjectCannedACL(cfg.ACL),
	}
	switch {
	case cfg.SSECustomerKey != "":
		raw, err := parseCustomerKey([]byte(cfg.SSECustomerKey), false)
		if err != nil {
			return objectOptions{}, fmt.Errorf("s3vfs: SSE-C key %w", err)
		}
		o.customer = newCustomerKey(raw)
	case cfg.SSECustomerKeyFile != "":
		b, err := os.ReadFile(cfg.SSECustomerKeyFile)
		if err != nil {
			return objectOptions{}, fmt.Errorf("s3vfs: reading the SSE-C key file: %w", err) // names the path, not the key
		}
		raw, err := parseCustomerKey(b, true)
		if err != nil {
			return objectOptions{}, fmt.Errorf("s3vfs: SSE-C key file %s %w", cfg.SSECustomerKeyFile, err)
		}
		o.customer = newCustomerKey(raw)
		clear(b) // raw may be b itself: cleared only once encoded
	}
	return o, nil
}

// apply sets the options on in, an input of one of the s3API operations:
// encryption, storage class and ACL on the inputs that create an object
// (PutObject, CreateMultipartUpload, CopyObject), the SSE-C key on every
// input that reads or writes an object's bytes or parts (and, for copies,
// the source's key too), nothing on the others. An input it does not know
// is a programming error: it panics (TestObjectOptionsCoverEveryOperation
// calls it with the input of every s3API method).
func (o *objectOptions) apply(in any) {
	alg, key, md := o.customer.headers()
	switch in := in.(type) {
	case *s3.PutObjectInput:
		in.ServerSideEncryption, in.SSEKMSKeyId, in.StorageClass, in.ACL = o.sse, o.kmsKeyID, o.storageClass, o.acl
		in.SSECustomerAlgorithm, in.SSECustomerKey, in.SSECustomerKeyMD5 = alg, key, md
	case *s3.CreateMultipartUploadInput:
		in.ServerSideEncryption, in.SSEKMSKeyId, in.StorageClass, in.ACL = o.sse, o.kmsKeyID, o.storageClass, o.acl
		in.SSECustomerAlgorithm, in.SSECustomerKey, in.SSECustomerKeyMD5 = alg, key, md
	case *s3.CopyObjectInput:
		// The copy is a new object: it gets the options again, else S3
		// writes it with the bucket's defaults.
		in.ServerSideEncryption, in.SSEKMSKeyId, in.StorageClass, in.ACL = o.sse, o.kmsKeyID, o.storageClass, o.acl
		in.SSECustomerAlgorithm, in.SSECustomerKey, in.SSECustomerKeyMD5 = alg, key, md
		in.CopySourceSSECustomerAlgorithm, in.CopySourceSSECustomerKey, in.CopySourceSSECustomerKeyMD5 = alg, key, md
	case *s3.UploadPartCopyInput:
		in.SSECustomerAlgorithm, in.SSECustomerKey, in.SSECustomerKeyMD5 = alg, key, md
		in.CopySourceSSECustomerAlgorithm, in.CopySourceSSECustomerKey, in.CopySourceSSECustomerKeyMD5 = alg, key, md
	case *s3.UploadPartInput:
		in.SSECustomerAlgorithm, in.SSECustomerKey, in.SSECustomerKeyMD5 = alg, key, md
	case *s3.CompleteMultipartUploadInput:
		in.SSECustomerAlgorithm, in.SSECustomerKey, in.SSECustomerKeyMD5 = alg, key, md
	case *s3.GetObjectInput:
		in.SSECustomerAlgorithm, in.SSECustomerKey, in.SSECustomerKeyMD5 = alg, key, md
	case *s3.HeadObjectInput:
		in.SSECustomerAlgorithm, in.SSECustomerKey, in.SSECustomerKeyMD5 = alg, key, md
	case *s3.ListPartsInput:
		in.SSECustomerAlgorithm, in.SSECustomerKey, in.SSECustomerKeyMD5 = alg, key, md
	case *s3.HeadBucketInput, *s3.ListObjectsV2Input, *s3.DeleteObjectInput, *s3.DeleteObjectsInput,
		*s3.AbortMultipartUploadInput, *s3.ListMultipartUploadsInput, *s3.ListBucketsInput:
		// Nothing about an object's bytes.
	default:
		panic(fmt.Sprintf("s3vfs: object options for %T are not defined", in))
	}
}

// describe returns a one-line summary of the options for logs and `davgw
// check`, e.g. `SSE aws:kms (key alias/davgw), storage class STANDARD_IA`;
// an SSE-C key shows as "SSE-C (customer key)", never the key.
func (o *objectOptions) describe() string {
	var parts []string
	switch {
	case o.customer != nil:
		parts = append(parts, "SSE-C (customer key)")
	case o.sse == types.ServerSideEncryptionAwsKms && o.kmsKeyID != nil:
		parts = append(parts, fmt.Sprintf("SSE %s (key %s)", o.sse, *o.kmsKeyID))
	case o.sse != "":
		parts = append(parts, fmt.Sprintf("SSE %s", o.sse))
	}
	if o.storageClass != "" {
		parts = append(parts, "storage class "+string(o.storageClass))
	}
	if o.acl != "" {
		parts = append(parts, "ACL "+string(o.acl))
	}
	if len(parts) == 0 {
		return "the bucket's defaults (no SSE, storage class or ACL asked)"
	}
	return strings.Join(parts, ", ")
}

// ObjectOptions returns a one-line, secret-free summary of what every
// write asks of S3 ([s3] sse, sse_kms_key_id, SSE-C, storage_class, acl).
func (s *Store) ObjectOptions() string {
	if s.objectOpts == nil {
		return (&objectOptions{}).describe()
	}
	return s.objectOpts.describe()
}

// ETagsAreMD5 reports whether the ETag of an object this Store writes in
// one request is the MD5 of its bytes, as on AWS without encryption or
// with SSE-S3. With SSE-KMS or SSE-C it is not (AWS). A bucket whose
// default encryption is SSE-KMS is not known here.
func (s *Store) ETagsAreMD5() bool {
	o := s.objectOpts
	return o == nil || (o.customer == nil && o.sse != types.ServerSideEncryptionAwsKms)
}

// optionsClient is the s3API a Store built by New calls: it applies the
// store's object options to every input, then makes the call. No call
// site can forget them, and a method added to s3API does not compile
// until it is added here.
type optionsClient struct {
	next s3API
	opts *objectOptions
}

var _ s3API = optionsClient{}

// HeadBucket applies the object options, then calls S3.
func (c optionsClient) HeadBucket(ctx context.Context, in *s3.HeadBucketInput, optFns ...func(*s3.Options)) (*s3.HeadBucketOutput, error) {
	c.opts.apply(in)
	return c.next.HeadBucket(ctx, in, optFns...)
}

// HeadObject applies the object options, then calls S3.
func (c optionsClient) HeadObject(ctx context.Context, in *s3.HeadObjectInput, optFns ...func(*s3.Options)) (*s3.HeadObjectOutput, error) {
	c.opts.apply(in)
	return c.next.HeadObject(ctx, in, optFns...)
}

// GetObject applies the object options, then calls S3.
func (c optionsClient) GetObject(ctx context.Context, in *s3.GetObjectInput, optFns ...func(*s3.Options)) (*s3.GetObjectOutput, error) {
	c.opts.apply(in)
	return c.next.GetObject(ctx, in, optFns...)
}

// ListObjectsV2 applies the object options, then calls S3.
func (c optionsClient) ListObjectsV2(ctx context.Context, in *s3.ListObjectsV2Input, optFns ...func(*s3.Options)) (*s3.ListObjectsV2Output, error) {
	c.opts.apply(in)
	return c.next.ListObjectsV2(ctx, in, optFns...)
}

// PutObject applies the object options, then calls S3.
func (c optionsClient) PutObject(ctx context.Context, in *s3.PutObjectInput, optFns ...func(*s3.Options)) (*s3.PutObjectOutput, error) {
	c.opts.apply(in)
	return c.next.PutObject(ctx, in, optFns...)
}

// CopyObject applies the object options, then calls S3.
func (c optionsClient) CopyObject(ctx context.Context, in *s3.CopyObjectInput, optFns ...func(*s3.Options)) (*s3.CopyObjectOutput, error) {
	c.opts.apply(in)
	return c.next.CopyObject(ctx, in, optFns...)
}

// DeleteObject applies the object options, then calls S3.
func (c optionsClient) DeleteObject(ctx context.Context, in *s3.DeleteObjectInput, optFns ...func(*s3.Options)) (*s3.DeleteObjectOutput, error) {
	c.opts.apply(in)
	return c.next.DeleteObject(ctx, in, optFns...)
}

// DeleteObjects applies the object options, then calls S3.
func (c optionsClient) DeleteObjects(ctx context.Context, in *s3.DeleteObjectsInput, optFns ...func(*s3.Options)) (*s3.DeleteObjectsOutput, error) {
	c.opts.apply(in)
	return c.next.DeleteObjects(ctx, in, optFns...)
}

// CreateMultipartUpload applies the object options, then calls S3.
func (c optionsClient) CreateMultipartUpload(ctx context.Context, in *s3.CreateMultipartUploadInput, optFns ...func(*s3.Options)) (*s3.CreateMultipartUploadOutput, error) {
	c.opts.apply(in)
	return c.next.CreateMultipartUpload(ctx, in, optFns...)
}

// UploadPart applies the object options, then calls S3.
func (c optionsClient) UploadPart(ctx context.Context, in *s3.UploadPartInput, optFns ...func(*s3.Options)) (*s3.UploadPartOutput, error) {
	c.opts.apply(in)
	return c.next.UploadPart(ctx, in, optFns...)
}

// UploadPartCopy applies the object options, then calls S3.
func (c optionsClient) UploadPartCopy(ctx context.Context, in *s3.UploadPartCopyInput, optFns ...func(*s3.Options)) (*s3.UploadPartCopyOutput, error) {
	c.opts.apply(in)
	return c.next.UploadPartCopy(ctx, in, optFns...)
}

// CompleteMultipartUpload applies the object options, then calls S3.
func (c optionsClient) CompleteMultipartUpload(ctx context.Context, in *s3.CompleteMultipartUploadInput, optFns ...func(*s3.Options)) (*s3.CompleteMultipartUploadOutput, error) {
	c.opts.apply(in)
	return c.next.CompleteMultipartUpload(ctx, in, optFns...)
}

// ListParts applies the object options, then calls S3.
func (c optionsClient) ListParts(ctx context.Context, in *s3.ListPartsInput, optFns ...func(*s3.Options)) (*s3.ListPartsOutput, error) {
	c.opts.apply(in)
	return c.next.ListParts(ctx, in, optFns...)
}

// AbortMultipartUpload applies the object options, then calls S3.
func (c optionsClient) AbortMultipartUpload(ctx context.Context, in *s3.AbortMultipartUploadInput, optFns ...func(*s3.Options)) (*s3.AbortMultipartUploadOutput, error) {
	c.opts.apply(in)
	return c.next.AbortMultipartUpload(ctx, in, optFns...)
}

// ListMultipartUploads applies the object options, then calls S3.
func (c optionsClient) ListMultipartUploads(ctx context.Context, in *s3.ListMultipartUploadsInput, optFns ...func(*s3.Options)) (*s3.ListMultipartUploadsOutput, error) {
	c.opts.apply(in)
	return c.next.ListMultipartUploads(ctx, in, optFns...)
}

// ListBuckets applies the object options (none), then calls S3.
func (c optionsClient) ListBuckets(ctx context.Context, in *s3.ListBucketsInput, optFns ...func(*s3.Options)) (*s3.ListBucketsOutput, error) {
	c.opts.apply(in)
	return c.next.ListBuckets(ctx, in, optFns...)
}
