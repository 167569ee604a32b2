package s3vfs

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// fakeS3Error builds the error chain the SDK returns for an S3 error
// response: OperationError → awshttp.ResponseError → smithy.APIError.
func fakeS3Error(op string, status int, code string, header http.Header) error {
	var inner error = &smithy.GenericAPIError{Code: code, Message: "fake " + code}
	if code == "" {
		inner = errors.New("http response with no body")
	}
	if header == nil {
		header = http.Header{}
	}
	return &smithy.OperationError{
		ServiceID:     "S3",
		OperationName: op,
		Err: &awshttp.ResponseError{
			ResponseError: &smithyhttp.ResponseError{
				Response: &smithyhttp.Response{Response: &http.Response{StatusCode: status, Header: header}},
				Err:      inner,
			},
			RequestID: "REQ123",
		},
	}
}

func TestClassify(t *testing.T) {
	netErr := &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}
	tests := []struct {
		name string
		err  error
		want error
	}{
		{"a HEAD 404 without a body is not found", fakeS3Error("HeadObject", 404, "", nil), ErrNotFound},
		{"NoSuchKey is not found", fakeS3Error("GetObject", 404, "NoSuchKey", nil), ErrNotFound},
		{"NoSuchUpload is not found", fakeS3Error("UploadPart", 404, "NoSuchUpload", nil), ErrNotFound},
		{"NoSuchBucket is unavailable (misconfigured, not a missing object)", fakeS3Error("DeleteObject", 404, "NoSuchBucket", nil), ErrUnavailable},
		{"a 400 ExpiredToken is unavailable", fakeS3Error("PutObject", 400, "ExpiredToken", nil), ErrUnavailable},
		{"a 400 InvalidToken is unavailable", fakeS3Error("PutObject", 400, "InvalidToken", nil), ErrUnavailable},
		{"a 400 TokenRefreshRequired is unavailable", fakeS3Error("PutObject", 400, "TokenRefreshRequired", nil), ErrUnavailable},
		{"a 400 AuthorizationHeaderMalformed is unavailable", fakeS3Error("GetObject", 400, "AuthorizationHeaderMalformed", nil), ErrUnavailable},
		{"a 403 RequestTimeTooSkewed is unavailable", fakeS3Error("GetObject", 403, "RequestTimeTooSkewed", nil), ErrUnavailable},
		{"a 403 ExpiredToken is unavailable", fakeS3Error("GetObject", 403, "ExpiredToken", nil), ErrUnavailable},
		{"a 403 is access denied", fakeS3Error("PutObject", 403, "AccessDenied", nil), ErrAccessDenied},
		{"a HEAD 403 without a body is access denied", fakeS3Error("HeadObject", 403, "", nil), ErrAccessDenied},
		{"a 412 is a failed precondition", fakeS3Error("PutObject", 412, "PreconditionFailed", nil), ErrPreconditionFailed},
		{"a 409 ConditionalRequestConflict is a failed precondition", fakeS3Error("CompleteMultipartUpload", 409, "ConditionalRequestConflict", nil), ErrPreconditionFailed},
		{"another 409 is a conflict", fakeS3Error("PutObject", 409, "ObjectParentIsFile", nil), ErrConflict},
		{"a 429 is unavailable", fakeS3Error("PutObject", 429, "TooManyRequests", nil), ErrUnavailable},
		{"a 500 is unavailable", fakeS3Error("PutObject", 500, "InternalError", nil), ErrUnavailable},
		{"a 502 is unavailable", fakeS3Error("PutObject", 502, "", nil), ErrUnavailable},
		{"a 503 SlowDown is unavailable", fakeS3Error("PutObject", 503, "SlowDown", nil), ErrUnavailable},
		{"a 504 is unavailable", fakeS3Error("PutObject", 504, "", nil), ErrUnavailable},
		{"a 400 RequestTimeout is unavailable", fakeS3Error("PutObject", 400, "RequestTimeout", nil), ErrUnavailable},
		{"a 400 EntityTooLarge is too large", fakeS3Error("PutObject", 400, "EntityTooLarge", nil), ErrTooLarge},
		{"a 400 InvalidArgument is invalid", fakeS3Error("PutObject", 400, "InvalidArgument", nil), ErrInvalid},
		{"a 400 KeyTooLongError is invalid", fakeS3Error("PutObject", 400, "KeyTooLongError", nil), ErrInvalid},
		{"a 400 MetadataTooLarge is invalid", fakeS3Error("PutObject", 400, "MetadataTooLarge", nil), ErrInvalid},
		{"a 400 InvalidObjectName is invalid", fakeS3Error("PutObject", 400, "InvalidObjectName", nil), ErrInvalid},
		{"a 501 NotImplemented is unavailable", fakeS3Error("UploadPartCopy", 501, "NotImplemented", nil), ErrUnavailable},
		{"a 501 without a code is unavailable", fakeS3Error("UploadPartCopy", 501, "", nil), ErrUnavailable},
		{"a range past the end is its own error", fakeS3Error("GetObject", 416, "InvalidRange", nil), ErrInvalidRange},
		{"an unknown 4xx is invalid", fakeS3Error("GetObject", 416, "", nil), ErrInvalid},
		{"a code without a status still classifies", &smithy.GenericAPIError{Code: "NoSuchKey"}, ErrNotFound},
		{"a dial error is unavailable", &smithy.OperationError{ServiceID: "S3", OperationName: "GetObject",
			Err: &smithyhttp.RequestSendError{Err: netErr}}, ErrUnavailable},
		{"a bare network error is unavailable", netErr, ErrUnavailable},
		{"an exhausted retry quota is unavailable", &smithy.OperationError{ServiceID: "S3", OperationName: "PutObject",
			Err: fmt.Errorf("failed to get rate limit token, %w", ratelimit.QuotaExceededError{Available: 0, Requested: 5})}, ErrUnavailable},
		{"exhausted attempts are unavailable", &retry.MaxAttemptsError{Attempt: 3, Err: errors.New("weird")}, ErrUnavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Classify(tt.err)
			if !errors.Is(got, tt.want) {
				t.Fatalf("Classify(%v) = %v, want it to wrap %v", tt.err, got, tt.want)
			}
			if !errors.Is(got, tt.err) {
				t.Fatalf("Classify(%v) lost the original error", tt.err)
			}
			for _, s := range sentinels {
				if s != tt.want && errors.Is(got, s) {
					t.Fatalf("Classify(%v) also wraps %v", tt.err, s)
				}
			}
			if op := operationOf(tt.err); op != "" && !strings.Contains(got.Error(), op) {
				t.Fatalf("message %q lost the operation %q", got, op)
			}
		})
	}

	t.Run("nil stays nil", func(t *testing.T) {
		if err := Classify(nil); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("a cancelled context passes through unchanged", func(t *testing.T) {
		err := &smithy.OperationError{ServiceID: "S3", OperationName: "GetObject",
			Err: &smithyhttp.RequestSendError{Err: fmt.Errorf("send: %w", context.Canceled)}}
		if got := Classify(err); got != error(err) {
			t.Fatalf("got %v, want the same error", got)
		}
	})
	t.Run("an expired deadline passes through unchanged", func(t *testing.T) {
		if got := Classify(context.DeadlineExceeded); got != context.DeadlineExceeded {
			t.Fatalf("got %v", got)
		}
	})
	t.Run("an already classified error is not wrapped twice", func(t *testing.T) {
		once := Classify(fakeS3Error("GetObject", 404, "NoSuchKey", nil))
		if twice := Classify(once); twice != once {
			t.Fatalf("got %v", twice)
		}
	})
	t.Run("an error unrelated to S3 is returned as is", func(t *testing.T) {
		e := errors.New("something else")
		if got := Classify(e); got != e {
			t.Fatalf("got %v", got)
		}
	})
}

// operationOf returns the SDK operation name in err, if any.
func operationOf(err error) string {
	var op *smithy.OperationError
	if errors.As(err, &op) {
		return op.OperationName
	}
	return ""
}

func TestRetryAfter(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want time.Duration
	}{
		{"a Retry-After header in seconds is used", fakeS3Error("PutObject", 503, "SlowDown", http.Header{"Retry-After": {"7"}}), 7 * time.Second},
		{"an unavailable error without the header suggests one second", fakeS3Error("PutObject", 500, "InternalError", nil), time.Second},
		{"an absurd Retry-After is capped at an hour", fakeS3Error("PutObject", 503, "SlowDown", http.Header{"Retry-After": {"999999"}}), time.Hour},
		{"an error that is not unavailable suggests nothing", fakeS3Error("GetObject", 404, "NoSuchKey", nil), 0},
		{"nil suggests nothing", nil, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := RetryAfter(tt.err); got != tt.want {
				t.Fatalf("RetryAfter = %v, want %v", got, tt.want)
			}
		})
	}
}

// TestMissingBucketIsUnavailable: deleting from a bucket that does not
// exist is an error (not "already gone"), and not ErrNotFound.
func TestMissingBucketIsUnavailable(t *testing.T) {
	s, _ := newTestStore(t, func(c *Config) { c.Bucket = "no-such-bucket-here" })
	ctx := context.Background()
	for _, keys := range [][]string{{"a"}, {"a", "b"}} {
		if err := s.Delete(ctx, keys); !errors.Is(err, ErrUnavailable) {
			t.Errorf("Delete(%v) = %v, want ErrUnavailable", keys, err)
		}
	}
	for _, err := range s.List(ctx, ListOptions{Prefix: "p/"}) {
		if !errors.Is(err, ErrUnavailable) {
			t.Errorf("List = %v, want ErrUnavailable", err)
		}
	}
}

func TestRefusedTellsS3sAnswerFromAFailedConnection(t *testing.T) {
	for _, c := range []struct {
		name string
		err  error
		want bool
	}{
		{"a SlowDown answer is refused", fakeS3Error("PutObject", 503, "SlowDown", nil), true},
		{"an internal error answer is refused", fakeS3Error("PutObject", 500, "InternalError", nil), true},
		{"a reset connection is not", &smithyhttp.RequestSendError{Err: errors.New("connection reset by peer")}, false},
		{"a precondition failure is not unavailable at all", fakeS3Error("PutObject", 412, "PreconditionFailed", nil), false},
		{"nil is not", nil, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := Refused(c.err); got != c.want {
				t.Fatalf("Refused(%v) = %v, want %v", c.err, got, c.want)
			}
		})
	}
}
