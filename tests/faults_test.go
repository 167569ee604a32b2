package tests

import (
	"bytes"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// slowDown is S3's throttling answer; the SDK retries it a few times with
// backoff before the gateway sees the error.
var slowDown = s3Fault{Status: http.StatusServiceUnavailable, Code: "SlowDown",
	Message: "Please reduce your request rate.", RetryAfter: "7"}

var accessDenied = s3Fault{Status: http.StatusForbidden, Code: "AccessDenied", Message: "Access Denied"}

// fault makes the counting proxy answer f to the gateway's S3 calls that
// match, until the test ends or the returned func is called.
func (e *davEnv) fault(t *testing.T, f s3Fault, match func(c s3Call) bool) (clear func()) {
	t.Helper()
	clear = e.b.proxy.injectFault(match, f)
	t.Cleanup(clear)
	return clear
}

// opsUnder matches calls of the named operations on keys under keyPrefix,
// the folder's own key (without its slash) and listings of a prefix inside
// it; the late calls of earlier tests on other keys are never hit.
func opsUnder(keyPrefix string, ops ...string) func(c s3Call) bool {
	folder := strings.TrimSuffix(keyPrefix, "/")
	return func(c s3Call) bool {
		inside := c.Key != "" && strings.HasPrefix(c.Key, folder) ||
			c.Key == "" && c.Query.Has("prefix") && strings.HasPrefix(c.Query.Get("prefix"), folder)
		if !inside {
			return false
		}
		for _, op := range ops {
			if c.Op() == op {
				return true
			}
		}
		return false
	}
}

// noInternalText fails if an error answer shows S3 or SDK details.
func (e *davEnv) noInternalText(t *testing.T, what string, r reply) {
	t.Helper()
	body := string(r.Body)
	for _, s := range []string{"s3vfs", "operation error", "SlowDown", "StatusCode", "AccessDenied",
		"reduce your request rate", "davgw-test-fault", "users/alice", e.b.bucket} {
		if strings.Contains(body, s) {
			t.Errorf("%s: the body shows internal text %q: %q", what, s, truncate(body, 600))
		}
	}
}

// expectUnavailable checks a 503 answer: Retry-After passed on from S3,
// and no internal text.
func (e *davEnv) expectUnavailable(t *testing.T, what string, r reply, took time.Duration) {
	t.Helper()
	report(t, "%s: %s during S3 SlowDown answered %d (Retry-After %q, body %q) in %v, the SDK's retries included",
		e.b.name, what, r.Status, r.Header.Get("Retry-After"), truncate(string(r.Body), 80), took.Round(time.Millisecond))
	expect(t, what+" while S3 answers 503 SlowDown", r, http.StatusServiceUnavailable)
	ra := r.Header.Get("Retry-After")
	if n, err := strconv.Atoi(ra); err != nil || n <= 0 {
		t.Errorf("%s: Retry-After = %q, want a positive number of seconds", what, ra)
	} else if ra != slowDown.RetryAfter {
		t.Errorf("%s: Retry-After = %q, want S3's %q passed on", what, ra, slowDown.RetryAfter)
	}
	e.noInternalText(t, what, r)
}

// timed sends one request as alice and measures it.
func (e *davEnv) timed(t *testing.T, method, path string, header map[string]string, body []byte) (reply, time.Duration) {
	t.Helper()
	start := time.Now()
	r := e.alice(t, method, path, header, body)
	return r, time.Since(start)
}

// faultedCalls returns the calls since mark that the proxy answered with status.
func faultedCalls(calls []s3Call, status int) []s3Call {
	var out []s3Call
	for _, c := range calls {
		if c.Status == status {
			out = append(out, c)
		}
	}
	return out
}

func faultCases() []conformanceCase {
	return []conformanceCase{
		{"GET while S3 throttles reads answers 503 with Retry-After and no internal text", func(t *testing.T, e *davEnv) {
			keyPrefix, dir := e.caseDir(t)
			e.putS3(t, keyPrefix+"f.txt", []byte("still here"), "text/plain")
			mark := e.b.proxy.Mark()
			clear := e.fault(t, slowDown, opsUnder(keyPrefix, "GetObject", "HeadObject", "ListObjectsV2"))
			r, took := e.timed(t, http.MethodGet, dir+"f.txt", nil, nil)
			calls := e.b.proxy.SinceUnder(mark, keyPrefix)
			e.expectUnavailable(t, "GET", r, took)
			if len(faultedCalls(calls, http.StatusServiceUnavailable)) == 0 {
				t.Errorf("the fault was never hit; S3 calls:%s", describeCalls(calls))
			}
			t.Logf("S3 calls of the GET:%s", describeCalls(calls))
			clear()
			g := e.alice(t, http.MethodGet, dir+"f.txt", nil, nil)
			expect(t, "GET once S3 answers again", g, http.StatusOK)
			if string(g.Body) != "still here" {
				t.Errorf("GET once S3 answers again = %q, want still here", g.Body)
			}
		}},
		{"PROPFIND Depth 1 while S3 throttles HEAD and LIST answers 503, not 207 or 500", func(t *testing.T, e *davEnv) {
			keyPrefix, dir := e.caseDir(t)
			e.putS3(t, keyPrefix+"a.txt", []byte("a"), "")
			e.putS3(t, keyPrefix+"sub/b.txt", []byte("b"), "")
			mark := e.b.proxy.Mark()
			e.fault(t, slowDown, opsUnder(keyPrefix, "HeadObject", "ListObjectsV2"))
			r, took := e.timed(t, "PROPFIND", dir, map[string]string{"Depth": "1"}, []byte(propfindListing))
			e.expectUnavailable(t, "PROPFIND Depth 1", r, took)
			t.Logf("S3 calls of the PROPFIND:%s", describeCalls(e.b.proxy.SinceUnder(mark, keyPrefix)))
		}},
		{"PUT whose PutObject S3 throttles answers 503 and leaves the previous object", func(t *testing.T, e *davEnv) {
			keyPrefix, dir := e.caseDir(t)
			key := keyPrefix + "p.txt"
			oldETag := e.putS3(t, key, []byte("previous"), "text/plain")
			mark := e.b.proxy.Mark()
			e.fault(t, slowDown, opsUnder(keyPrefix, "PutObject", "CreateMultipartUpload", "UploadPart",
				"CompleteMultipartUpload", "CopyObject"))
			r, took := e.timed(t, http.MethodPut, dir+"p.txt", nil, []byte("replacement that S3 refuses"))
			calls := e.b.proxy.SinceUnder(mark, keyPrefix)
			e.expectUnavailable(t, "PUT", r, took)
			if len(faultedCalls(calls, http.StatusServiceUnavailable)) == 0 {
				t.Errorf("the PUT never reached the faulted write; S3 calls:%s", describeCalls(calls))
			}
			if got, _ := e.getS3(t, key); !bytes.Equal(got, []byte("previous")) {
				t.Errorf("S3 holds %q after the refused PUT, want previous", got)
			}
			if etag, _, _, _ := e.headS3(t, key); etag != oldETag {
				t.Errorf("the object's ETag changed from %s to %s", oldETag, etag)
			}
			if open := e.b.openUploads(t, keyPrefix); len(open) != 0 {
				t.Errorf("multipart uploads left open: %v", open)
			}
		}},
		{"GET whose GetObject S3 denies answers 403 with no internal text", func(t *testing.T, e *davEnv) {
			keyPrefix, dir := e.caseDir(t)
			e.putS3(t, keyPrefix+"secret.txt", []byte("not for you"), "text/plain")
			mark := e.b.proxy.Mark()
			e.fault(t, accessDenied, opsUnder(keyPrefix, "GetObject"))
			r := e.alice(t, http.MethodGet, dir+"secret.txt", nil, nil)
			calls := e.b.proxy.SinceUnder(mark, keyPrefix)
			expect(t, "GET while S3 answers 403 AccessDenied", r, http.StatusForbidden)
			if bytes.Contains(r.Body, []byte("not for you")) {
				t.Errorf("the 403 answer carries the object's bytes: %s", r)
			}
			if len(faultedCalls(calls, http.StatusForbidden)) == 0 {
				t.Errorf("the fault was never hit; S3 calls:%s", describeCalls(calls))
			}
			e.noInternalText(t, "GET", r)
		}},
	}
}
