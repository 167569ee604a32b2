package s3vfs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// sentinels lists every sentinel error, for "already classified" checks.
var sentinels = []error{
	ErrNotFound, ErrAccessDenied, ErrPreconditionFailed, ErrUnavailable,
	ErrConflict, ErrTooLarge, ErrIncomplete, ErrInvalid, ErrInvalidRange,
}

// Classify is the one place that maps AWS SDK, smithy and network errors to
// this package's sentinels: by HTTP status first, then by S3 error code.
// The result wraps both the sentinel and err, so errors.Is matches either
// and the message keeps the operation and S3's request id.
//
// nil stays nil; context.Canceled and context.DeadlineExceeded (however
// deep) and errors that already wrap a sentinel are returned unchanged, as
// are errors that do not come from S3 or the network.
func Classify(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	for _, s := range sentinels {
		if errors.Is(err, s) {
			return err
		}
	}
	if s := sentinelOf(err); s != nil {
		return fmt.Errorf("%w: %w", s, err)
	}
	return err
}

// sentinelOf picks the sentinel for err, or nil when none fits.
func sentinelOf(err error) error {
	code := ""
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		code = apiErr.ErrorCode()
	}
	if s := sentinelOfServerProblem(code); s != nil {
		return s
	}
	if s := sentinelOfStatus(httpStatus(err), code); s != nil {
		return s
	}
	if s := sentinelOfCode(code); s != nil {
		return s
	}
	var quota ratelimit.QuotaExceededError
	var timeout *awshttp.ResponseTimeoutError
	var netErr net.Error
	var sendErr *smithyhttp.RequestSendError
	switch {
	case errors.As(err, &quota), errors.As(err, &timeout), errors.As(err, &netErr), errors.As(err, &sendErr),
		errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.ECONNREFUSED),
		errors.Is(err, syscall.EPIPE):
		return ErrUnavailable
	}
	var maxAttempts *retry.MaxAttemptsError
	if errors.As(err, &maxAttempts) {
		// The last attempt's error was not recognised above; retries were
		// exhausted, so the service is at least temporarily unusable.
		return ErrUnavailable
	}
	return nil
}

// sentinelOfServerProblem picks ErrUnavailable for the error codes that
// say the gateway's setup or clock is wrong rather than the request, so
// that they are never taken for a missing object or a client's mistake
// whatever their HTTP status: a missing bucket (NoSuchBucket: a DELETE
// must not answer 204 when nothing was deleted), expired or malformed
// session credentials, and a skewed clock (sent with 403).
func sentinelOfServerProblem(code string) error {
	switch code {
	case "NoSuchBucket", "ExpiredToken", "InvalidToken", "TokenRefreshRequired",
		"AuthorizationHeaderMalformed", "RequestTimeTooSkewed":
		return ErrUnavailable
	}
	return nil
}

// httpStatus returns the HTTP status of the S3 response behind err, or 0.
func httpStatus(err error) int {
	var awsResp *awshttp.ResponseError
	if errors.As(err, &awsResp) && awsResp.Response != nil {
		return awsResp.Response.StatusCode
	}
	var resp *smithyhttp.ResponseError
	if errors.As(err, &resp) && resp.Response != nil {
		return resp.Response.StatusCode
	}
	return 0
}

// sentinelOfStatus maps an HTTP status (refined by the error code where S3
// overloads a status) to a sentinel, or nil.
func sentinelOfStatus(status int, code string) error {
	switch status {
	case 0:
		return nil
	case http.StatusNotFound:
		return ErrNotFound
	case http.StatusForbidden:
		return ErrAccessDenied
	case http.StatusPreconditionFailed:
		return ErrPreconditionFailed
	case http.StatusConflict:
		if code == "ConditionalRequestConflict" {
			return ErrPreconditionFailed
		}
		return ErrConflict
	case http.StatusTooManyRequests, http.StatusInternalServerError, http.StatusBadGateway,
		http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return ErrUnavailable
	case http.StatusRequestEntityTooLarge:
		return ErrTooLarge
	case http.StatusNotImplemented:
		// The store lacks the feature: not the client's mistake.
		return ErrUnavailable
	}
	if s := sentinelOfCode(code); s != nil {
		// A 400 or 416 whose code says more (EntityTooLarge, RequestTimeout).
		return s
	}
	switch {
	case status >= 500:
		return ErrUnavailable
	case status >= 400:
		return ErrInvalid
	}
	return nil
}

// sentinelOfCode maps an S3 error code to a sentinel, or nil.
func sentinelOfCode(code string) error {
	switch code {
	case "":
		return nil
	case "NoSuchKey", "NotFound", "NoSuchUpload", "NoSuchVersion":
		return ErrNotFound
	case "AccessDenied", "Forbidden", "InvalidAccessKeyId", "SignatureDoesNotMatch", "AllAccessDisabled":
		return ErrAccessDenied
	case "PreconditionFailed", "ConditionalRequestConflict":
		return ErrPreconditionFailed
	case "SlowDown", "RequestTimeout", "ServiceUnavailable", "InternalError", "Throttling",
		"ThrottlingException", "TooManyRequestsException", "NotImplemented":
		return ErrUnavailable
	case "EntityTooLarge":
		return ErrTooLarge
	case "InvalidRange":
		return ErrInvalidRange
	case "InvalidArgument", "KeyTooLongError", "InvalidObjectName", "MetadataTooLarge", "InvalidRequest",
		"EntityTooSmall", "InvalidPart", "InvalidPartOrder", "MalformedXML",
		"InvalidDigest", "BadDigest", "XAmzContentSHA256Mismatch", "InvalidBucketName":
		return ErrInvalid
	}
	return nil
}

// Refused reports whether err is ErrUnavailable that S3 itself answered
// (throttling, 5xx: an HTTP status came back), as opposed to a connection
// that failed or was reset. The SDK has retried such an error already,
// with backoff: a caller should not stack its own retries on it.
func Refused(err error) bool {
	return errors.Is(Classify(err), ErrUnavailable) && httpStatus(err) >= 400
}

// RetryAfter suggests how long a client should wait before retrying after
// err: the S3 response's Retry-After header when it has one (capped at one
// hour), else one second. It returns 0 when err is not ErrUnavailable.
func RetryAfter(err error) time.Duration {
	if !errors.Is(Classify(err), ErrUnavailable) {
		return 0
	}
	if h := retryAfterHeader(err); h != "" {
		if secs, perr := strconv.Atoi(h); perr == nil && secs > 0 {
			return min(time.Duration(secs)*time.Second, time.Hour)
		}
		if t, perr := http.ParseTime(h); perr == nil {
			if d := time.Until(t); d > 0 {
				return min(d.Round(time.Second)+time.Second, time.Hour)
			}
		}
	}
	return time.Second
}

// retryAfterHeader returns the Retry-After header of the response behind err.
func retryAfterHeader(err error) string {
	var resp *smithyhttp.ResponseError
	if errors.As(err, &resp) && resp.Response != nil && resp.Response.Response != nil {
		return resp.Response.Header.Get("Retry-After")
	}
	return ""
}
