package s3vfs

import (
	"errors"
	"time"
)

// Sentinel errors. Every error returned by this package that comes from S3
// wraps exactly one of these (errors.Is), plus the original error for logs.
var (
	// ErrNotFound: the key does not exist (404, NoSuchKey, NoSuchUpload,
	// NotFound; HeadBucket's 404 for a missing bucket). NoSuchBucket from
	// an object call is ErrUnavailable: the gateway is misconfigured.
	ErrNotFound = errors.New("s3vfs: not found")
	// ErrAccessDenied: the credentials may not do this (403, AccessDenied).
	ErrAccessDenied = errors.New("s3vfs: access denied")
	// ErrPreconditionFailed: a conditional request failed (412, or 409
	// ConditionalRequestConflict).
	ErrPreconditionFailed = errors.New("s3vfs: precondition failed")
	// ErrUnavailable: throttled, timed out or the service is down (429, 500,
	// 502, 503, 504, SlowDown, network errors), or the gateway's setup is
	// wrong (NoSuchBucket, expired or malformed session credentials,
	// RequestTimeTooSkewed, 501 NotImplemented). Callers answer 503 with Retry-After.
	ErrUnavailable = errors.New("s3vfs: unavailable")
	// ErrConflict: the store refused the key because of another key (409 from
	// stricter stores such as versitygw, where a file and a folder cannot share a name).
	ErrConflict = errors.New("s3vfs: conflict")
	// ErrTooLarge: the object or the upload exceeds what S3 accepts
	// (EntityTooLarge, more than 10,000 parts).
	ErrTooLarge = errors.New("s3vfs: too large")
	// ErrIncomplete: an upload was closed before its whole body arrived
	// (read error, cancelled context, fewer or more bytes than declared). The
	// upload was aborted and nothing was written.
	ErrIncomplete = errors.New("s3vfs: upload incomplete")
	// ErrInvalid: S3 rejected the request as malformed (400, InvalidArgument,
	// KeyTooLongError, InvalidObjectName, MetadataTooLarge).
	ErrInvalid = errors.New("s3vfs: invalid request")
	// ErrInvalidRange: a read's range starts past the end of the object
	// (416, InvalidRange).
	ErrInvalidRange = errors.New("s3vfs: range not satisfiable")
)

// ObjectInfo describes one object. Fields that a listing does not return
// (ContentType, Metadata) are empty when the info came from a listing.
type ObjectInfo struct {
	Key          string
	Size         int64
	ETag         string // as S3 sends it, with its double quotes: "\"9b2cf535f27731c974343645a3985328\""
	LastModified time.Time
	ContentType  string            // from HEAD/GET/PUT only
	Metadata     map[string]string // user metadata (x-amz-meta-*, keys lower-case, without the prefix); HEAD/GET only
	HasMetadata  bool              // true when ContentType and Metadata were read (HEAD/GET), false from a listing
}

// Entry is one item of a delimited listing: either an object or a common prefix.
type Entry struct {
	Object *ObjectInfo // nil for a common prefix
	Prefix string      // the common prefix (ends with the delimiter) when Object is nil
}

// ListOptions select what List returns.
type ListOptions struct {
	Prefix     string
	Delimiter  string // "/" for one folder level, "" for everything below Prefix
	MaxKeys    int32  // page size; 0 = 1000. With Limit it also caps the first page.
	Limit      int    // stop after this many entries in total; 0 = no limit
	StartAfter string
	// Prefetch asks for the next page while the consumer handles this one
	// (ListPages): for listings read to the end.
	Prefetch bool
}

// WriteOptions describe an upload.
type WriteOptions struct {
	// Size is the declared length: the upload is committed only if exactly
	// Size bytes were written. -1 = unknown (chunked without a declared length).
	Size        int64
	ContentType string
	Metadata    map[string]string
	// IfMatch / IfNoneMatch are sent to S3 as conditional-write headers on
	// PutObject or CompleteMultipartUpload when non-empty ("*" allowed for
	// IfNoneMatch). A failed condition returns ErrPreconditionFailed.
	IfMatch     string
	IfNoneMatch string
	// Shares are the memory shares (the user's, the client address's)
	// this upload's part buffers count against, besides the Store's
	// upload memory. A part that cannot get memory within a share in time
	// fails the upload with ErrOverShare.
	Shares []*MemoryShare
}

// CopyOptions describe a server-side copy.
type CopyOptions struct {
	// SourceETag, when set, makes the copy conditional on the source's ETag
	// (x-amz-copy-source-if-match).
	SourceETag string
	// ReplaceMetadata: when true, Metadata and ContentType replace the
	// source's (MetadataDirective REPLACE); when false both are copied.
	ReplaceMetadata bool
	Metadata        map[string]string
	ContentType     string
}
