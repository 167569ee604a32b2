package s3vfs

import (
	"context"
	"crypto/md5"
	"encoding/base64"
	"fmt"
	"io"
	"math"

	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/aws/smithy-go/middleware"
)

// Providers accepted in Config.Provider: presets for the quirks of
// S3-compatible stores. docs/s3.md has a working example of each.
const (
	// ProviderAWS is Amazon S3: virtual-host addressing unless PathStyle.
	ProviderAWS = "aws"
	// ProviderGCS is Google Cloud Storage through its XML (S3) API with
	// HMAC keys: endpoint https://storage.googleapis.com, path style, no
	// multipart server-side copy (CopyObject is used at every size), and
	// Accept-Encoding left out of the signature (Google's front end
	// rewrites it, which would break SigV4).
	ProviderGCS = "gcs"
	// ProviderB2 is Backblaze B2's S3 API: path style; only
	// checksums = "when_required" works.
	ProviderB2 = "b2"
	// ProviderCeph is Ceph RGW: path style; "when_required" checksums.
	ProviderCeph = "ceph"
	// ProviderMinIO is MinIO: path style; "when_required" checksums for
	// releases before 2024.
	ProviderMinIO = "minio"
	// ProviderOther is any other S3-compatible store: path style.
	ProviderOther = "other"
)

// GCSEndpoint is the default endpoint of ProviderGCS.
const GCSEndpoint = "https://storage.googleapis.com"

// ProviderNames lists the valid Config.Provider values ("" means no preset).
func ProviderNames() []string {
	return []string{ProviderAWS, ProviderGCS, ProviderB2, ProviderCeph, ProviderMinIO, ProviderOther}
}

// quirks are the behaviours a provider preset selects.
type quirks struct {
	// defaultEndpoint is used when Config.Endpoint is "".
	defaultEndpoint string
	// noMultipartCopy: the store has no UploadPartCopy; CopyObject
	// copies objects of any size.
	noMultipartCopy bool
	// unsignedAcceptEncoding: the Accept-Encoding header is sent but left
	// out of the SigV4 signature.
	unsignedAcceptEncoding bool
	// supportsChecksums: the store accepts the SDK's default flexible
	// checksums (checksums = "when_supported").
	supportsChecksums bool
	// pathStyle: the store is addressed as endpoint/bucket unless
	// path_style is set explicitly.
	pathStyle bool
	// noBatchDelete: the store has no DeleteObjects; keys are deleted one
	// DeleteObject at a time.
	noBatchDelete bool
}

// providerQuirks returns the quirks of a provider name (see ProviderNames).
func providerQuirks(p string) quirks {
	switch p {
	case ProviderAWS:
		return quirks{supportsChecksums: true}
	case ProviderGCS:
		return quirks{defaultEndpoint: GCSEndpoint, noMultipartCopy: true, unsignedAcceptEncoding: true, pathStyle: true, noBatchDelete: true}
	case ProviderB2, ProviderCeph, ProviderMinIO, ProviderOther:
		return quirks{pathStyle: true}
	default:
		return quirks{}
	}
}

// validProvider reports whether p is "" or one of ProviderNames.
func validProvider(p string) bool {
	if p == "" {
		return true
	}
	for _, q := range ProviderNames() {
		if p == q {
			return true
		}
	}
	return false
}

// applyQuirks sets what the preset decides on a Store built by New.
func (s *Store) applyQuirks(q quirks) {
	if q.noMultipartCopy {
		s.copyThreshold = math.MaxInt64
	}
	s.noBatchDelete = q.noBatchDelete
}

// contentMD5 sets the Content-MD5 header of a request to the MD5 of its
// body, before it is signed. With checksums = "when_required" the SDK
// sends DeleteObjects with an x-amz-checksum-crc32 only, and stores that
// predate flexible checksums (MinIO, Ceph RGW) require Content-MD5.
func contentMD5(stack *middleware.Stack) error {
	mw := middleware.FinalizeMiddlewareFunc("davgwContentMD5", func(ctx context.Context, in middleware.FinalizeInput, next middleware.FinalizeHandler) (middleware.FinalizeOutput, middleware.Metadata, error) {
		req, ok := in.Request.(*smithyhttp.Request)
		if !ok || req.Header.Get("Content-MD5") != "" {
			return next.HandleFinalize(ctx, in)
		}
		h := md5.New()
		if body := req.GetStream(); body != nil {
			if _, err := io.Copy(h, body); err != nil {
				return middleware.FinalizeOutput{}, middleware.Metadata{}, fmt.Errorf("s3vfs: Content-MD5: %w", err)
			}
			if err := req.RewindStream(); err != nil {
				return middleware.FinalizeOutput{}, middleware.Metadata{}, fmt.Errorf("s3vfs: Content-MD5: %w", err)
			}
		}
		req.Header.Set("Content-MD5", base64.StdEncoding.EncodeToString(h.Sum(nil)))
		return next.HandleFinalize(ctx, in)
	})
	if err := stack.Finalize.Insert(mw, "Signing", middleware.Before); err != nil {
		return fmt.Errorf("s3vfs: Content-MD5: %w", err)
	}
	return nil
}

// acceptEncodingKey carries a stashed Accept-Encoding header between the
// two halves of unsignedAcceptEncoding.
type acceptEncodingKey struct{}

// unsignedAcceptEncoding removes Accept-Encoding before the request is
// signed and puts it back afterwards, so that a front end that rewrites the
// header (Google's) does not invalidate the signature.
func unsignedAcceptEncoding(stack *middleware.Stack) error {
	stash := middleware.FinalizeMiddlewareFunc("davgwStashAcceptEncoding", func(ctx context.Context, in middleware.FinalizeInput, next middleware.FinalizeHandler) (middleware.FinalizeOutput, middleware.Metadata, error) {
		if req, ok := in.Request.(*smithyhttp.Request); ok {
			if v := req.Header.Get("Accept-Encoding"); v != "" {
				req.Header.Del("Accept-Encoding")
				ctx = middleware.WithStackValue(ctx, acceptEncodingKey{}, v)
			}
		}
		return next.HandleFinalize(ctx, in)
	})
	restore := middleware.FinalizeMiddlewareFunc("davgwRestoreAcceptEncoding", func(ctx context.Context, in middleware.FinalizeInput, next middleware.FinalizeHandler) (middleware.FinalizeOutput, middleware.Metadata, error) {
		if req, ok := in.Request.(*smithyhttp.Request); ok {
			if v, _ := middleware.GetStackValue(ctx, acceptEncodingKey{}).(string); v != "" {
				req.Header.Set("Accept-Encoding", v)
			}
		}
		return next.HandleFinalize(ctx, in)
	})
	if err := stack.Finalize.Insert(stash, "Signing", middleware.Before); err != nil {
		return fmt.Errorf("s3vfs: unsigned Accept-Encoding: %w", err)
	}
	if err := stack.Finalize.Insert(restore, "Signing", middleware.After); err != nil {
		return fmt.Errorf("s3vfs: unsigned Accept-Encoding: %w", err)
	}
	return nil
}
