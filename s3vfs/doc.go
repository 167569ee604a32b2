// Package s3vfs is davgw's only door to S3: it lists, reads, writes, copies
// and deletes the objects of one bucket with aws-sdk-go-v2, and turns every
// S3 failure into one of a few sentinel errors (see Classify).
//
// It knows nothing of HTTP requests or WebDAV: callers hand it keys and a
// context, and get back ObjectInfo, streaming iterators, lazy readers and
// writers.
//
// Writers never store a partial body: an upload is completed only when the
// whole declared body arrived without a read error and with the context
// still alive; otherwise it is aborted (multipart uploads under a detached
// context with a timeout). Memory per upload is bounded by
// PartSize × UploadConcurrency.
//
// Security notes: credentials given in Config never appear in errors or in
// Validate's messages, and an Endpoint carrying user:password is refused.
// The SSE-C key (Config.SSECustomerKey or SSECustomerKeyFile) goes to S3
// in the headers of every call about an object (over HTTPS; plain HTTP
// only to loopback) and nowhere else: it never appears in an error, in
// Store.ObjectOptions or in a %v of the Store.
// Errors returned by this package carry S3's own message and request id for
// logs; callers must not copy them into client-visible bodies.
package s3vfs
