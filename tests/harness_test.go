package tests

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	smithyhttp "github.com/aws/smithy-go/transport/http"
	"golang.org/x/crypto/bcrypt"

	"github.com/davgw/davgw/auth"
	"github.com/davgw/davgw/gateway"
	"github.com/davgw/davgw/s3vfs"
)

// testUsers sign in with Basic auth; each lands in users/<name>/.
var testUsers = map[string]string{
	"alice":  "alice-pw-1",
	"bob":    "bob-pw-2",
	"litmus": "litmus-pw-3",
	"quota":  "quota-pw-4",
	// tests/npmwebdav_test.go: the npm webdav client (its root must hold
	// only what that test writes, for the exact quota check).
	npmUser: "jsclient-pw-5",
}

// gatewayPartSize makes a 12 MiB body go multipart, so that the abort
// cases exercise the multipart path.
const gatewayPartSize = 5 << 20

var (
	authOnce sync.Once
	authImpl *auth.Static
	authErr  error
)

// staticAuth is the real static authenticator with cheap bcrypt hashes.
func staticAuth(tb testing.TB) *auth.Static {
	tb.Helper()
	authOnce.Do(func() {
		var users []auth.StaticUser
		for name, pw := range testUsers {
			h, err := auth.HashPasswordCost(pw, bcrypt.MinCost)
			if err != nil {
				authErr = err
				return
			}
			users = append(users, auth.StaticUser{Name: name, PasswordHash: h})
		}
		authImpl, authErr = auth.NewStatic(users, "users/{username}/")
	})
	if authErr != nil {
		tb.Fatalf("auth.NewStatic: %v", authErr)
	}
	return authImpl
}

// davEnv is the real gateway, in-process behind httptest on 127.0.0.1,
// talking to one back end through its counting proxy.
type davEnv struct {
	b     *backend
	srv   *httptest.Server
	URL   string // http://127.0.0.1:PORT
	store *s3vfs.Store
	gw    *gateway.Gateway
}

var (
	envMu sync.Mutex
	envs  = map[string]*davEnv{}
)

// getEnv returns the gateway for back end name, started once per run.
func getEnv(tb testing.TB, name string) *davEnv {
	tb.Helper()
	b := getBackend(tb, name)
	envMu.Lock()
	defer envMu.Unlock()
	if e, ok := envs[name]; ok {
		return e
	}
	e, err := newDavEnv(staticAuth(tb), b, b.proxy.URL, gatewayPartSize, 2)
	if err != nil {
		tb.Fatalf("start gateway on %s: %v", name, err)
	}
	envs[name] = e
	registry.mu.Lock()
	registry.stops = append(registry.stops, e.srv.Close)
	registry.mu.Unlock()
	return e
}

// newDavEnv builds a gateway over b reached at endpoint (the proxy or the
// server itself).
func newDavEnv(a auth.Authenticator, b *backend, endpoint string, partSize int64, concurrency int, tune ...func(*gateway.Options)) (*davEnv, error) {
	return newDavEnvConfig(a, b, storeConfig(b, endpoint, partSize, concurrency), tune...)
}

// storeConfig is the suite's store configuration of b reached at endpoint.
func storeConfig(b *backend, endpoint string, partSize int64, concurrency int) s3vfs.Config {
	return s3vfs.Config{
		Endpoint:          endpoint,
		Region:            "us-east-1",
		Bucket:            b.bucket,
		PathStyle:         true,
		AccessKeyID:       b.server.access,
		SecretAccessKey:   b.server.secret,
		Checksums:         "when_required",
		PartSize:          partSize,
		UploadConcurrency: concurrency,
	}
}

// newDavEnvConfig builds a gateway over b with the store configuration cfg.
func newDavEnvConfig(a auth.Authenticator, b *backend, cfg s3vfs.Config, tune ...func(*gateway.Options)) (*davEnv, error) {
	store, err := s3vfs.New(context.Background(), cfg)
	if err != nil {
		return nil, err
	}
	// The gateway's request log is noise in a passing run; DAVGW_TEST_LOG=1 shows it.
	logger := slog.New(slog.DiscardHandler)
	if os.Getenv("DAVGW_TEST_LOG") != "" {
		logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	opts := gateway.Options{
		Store:     store,
		Prefix:    "",
		DAVPrefix: "/dav/",
		Auth:      a,
		Realm:     "davgw-test",
		Logger:    logger,
	}
	for _, f := range tune {
		f(&opts)
	}
	gw, err := gateway.New(opts)
	if err != nil {
		return nil, err
	}
	srv := httptest.NewServer(gw)
	return &davEnv{b: b, srv: srv, URL: srv.URL, store: store, gw: gw}, nil
}

// reply is a WebDAV answer, read whole.
type reply struct {
	Status int
	Header http.Header
	Body   []byte
}

func (r reply) String() string {
	body := string(r.Body)
	if len(body) > 600 {
		body = body[:600] + "..."
	}
	return fmt.Sprintf("%d %q", r.Status, body)
}

// req describes one WebDAV request. Path is sent as-is on the request line
// (already escaped; it may be a raw attack path).
type req struct {
	Method string
	Path   string
	User   string // "" = no credentials
	Pass   string // "" = the user's password
	Header map[string]string
	Body   io.Reader
	// Length overrides Content-Length: -1 sends the body chunked (with a
	// reader net/http cannot size, such as onlyReader). 0 = as net/http
	// derives it from Body.
	Length int64
}

// do sends r and reads the whole answer.
func (e *davEnv) do(tb testing.TB, r req) reply {
	tb.Helper()
	hr, err := http.NewRequest(r.Method, e.URL+"/", r.Body)
	if err != nil {
		tb.Fatal(err)
	}
	hr.URL.Opaque = r.Path // the request line carries Path byte for byte
	if r.Length != 0 {
		hr.ContentLength = max(r.Length, -1)
	}
	if r.User != "" {
		pw := r.Pass
		if pw == "" {
			pw = testUsers[r.User]
		}
		hr.SetBasicAuth(r.User, pw)
	}
	for k, v := range r.Header {
		hr.Header.Set(k, v)
	}
	resp, err := http.DefaultTransport.RoundTrip(hr)
	if err != nil {
		tb.Fatalf("%s %s: %v", r.Method, r.Path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatalf("%s %s: read body: %v", r.Method, r.Path, err)
	}
	return reply{Status: resp.StatusCode, Header: resp.Header, Body: body}
}

// rawAlice sends a request as alice and reads its answer as far as it
// goes: readErr tells an answer cut short (which do would fail on).
func (e *davEnv) rawAlice(tb testing.TB, method, path string, header map[string]string, body []byte) (status int, got []byte, readErr error) {
	tb.Helper()
	hr, err := http.NewRequest(method, e.URL+path, bytes.NewReader(body))
	if err != nil {
		tb.Fatal(err)
	}
	hr.SetBasicAuth("alice", testUsers["alice"])
	for k, v := range header {
		hr.Header.Set(k, v)
	}
	resp, err := http.DefaultTransport.RoundTrip(hr)
	if err != nil {
		tb.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	got, readErr = io.ReadAll(resp.Body)
	return resp.StatusCode, got, readErr
}

// alice is a shortcut for a request as alice.
func (e *davEnv) alice(tb testing.TB, method, path string, header map[string]string, body []byte) reply {
	tb.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	return e.do(tb, req{Method: method, Path: path, User: "alice", Header: header, Body: rd})
}

// expect fails the test unless the reply has one of the statuses.
func expect(tb testing.TB, what string, r reply, statuses ...int) {
	tb.Helper()
	for _, s := range statuses {
		if r.Status == s {
			return
		}
	}
	tb.Fatalf("%s: got %s, want status %v", what, r, statuses)
}

// caseDir gives a test its own folder in alice's root: it returns the key
// prefix ("users/alice/<slug>-<rand>/") and the DAV path of the folder.
// The folder marker is written straight to S3.
func (e *davEnv) caseDir(tb testing.TB) (keyPrefix, davPath string) {
	tb.Helper()
	name := tb.Name()
	name = name[strings.LastIndexByte(name, '/')+1:]
	slug := regexp.MustCompile(`[^a-z0-9]+`).ReplaceAllString(strings.ToLower(name), "-")
	if len(slug) > 40 {
		slug = slug[:40]
	}
	slug = strings.Trim(slug, "-") + "-" + randHex(4)
	keyPrefix = "users/alice/" + slug + "/"
	e.putS3(tb, keyPrefix, nil, "")
	return keyPrefix, "/dav/" + slug + "/"
}

// putS3 writes an object straight to S3 (not through the gateway).
func (e *davEnv) putS3(tb testing.TB, key string, body []byte, contentType string) string {
	tb.Helper()
	in := &s3.PutObjectInput{Bucket: &e.b.bucket, Key: aws.String(key), Body: bytes.NewReader(body)}
	if contentType != "" {
		in.ContentType = aws.String(contentType)
	}
	out, err := e.b.s3.PutObject(context.Background(), in)
	if err != nil {
		tb.Fatalf("PutObject %q on %s: %v", key, e.b.name, err)
	}
	return aws.ToString(out.ETag)
}

// headS3 returns the object's ETag, size and content type, ok=false if absent.
func (e *davEnv) headS3(tb testing.TB, key string) (etag string, size int64, contentType string, ok bool) {
	tb.Helper()
	out, err := e.b.s3.HeadObject(context.Background(), &s3.HeadObjectInput{Bucket: &e.b.bucket, Key: aws.String(key)})
	if err != nil {
		if missingS3(err) {
			return "", 0, "", false
		}
		tb.Fatalf("HeadObject %q on %s: %v", key, e.b.name, err)
	}
	return aws.ToString(out.ETag), aws.ToInt64(out.ContentLength), aws.ToString(out.ContentType), true
}

// missingS3 reports whether an S3 call failed because the key does not
// exist: the SDK's NoSuchKey or NotFound (HEAD answers have no body, so
// only a status), or any answer with status 404.
func missingS3(err error) bool {
	var (
		noKey    *s3types.NoSuchKey
		notFound *s3types.NotFound
		resp     *smithyhttp.ResponseError
	)
	return errors.As(err, &noKey) || errors.As(err, &notFound) ||
		(errors.As(err, &resp) && resp.HTTPStatusCode() == http.StatusNotFound)
}

// getS3 reads an object straight from S3; ok=false if absent.
func (e *davEnv) getS3(tb testing.TB, key string) ([]byte, bool) {
	tb.Helper()
	out, err := e.b.s3.GetObject(context.Background(), &s3.GetObjectInput{Bucket: &e.b.bucket, Key: aws.String(key)})
	if err != nil {
		if missingS3(err) {
			return nil, false
		}
		tb.Fatalf("GetObject %q on %s: %v", key, e.b.name, err)
	}
	defer out.Body.Close()
	b, err := io.ReadAll(out.Body)
	if err != nil {
		tb.Fatalf("GetObject %q on %s: read: %v", key, e.b.name, err)
	}
	return b, true
}

// randHex returns n random bytes in hex.
func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// randBytes returns n random bytes.
func randBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

// report logs a result line and appends it to $DAVGW_TEST_REPORT, which
// .ci/run prints at the end, so that the numbers reach the CI log.
func report(tb testing.TB, format string, args ...any) {
	tb.Helper()
	line := fmt.Sprintf(format, args...)
	tb.Log(line)
	if path := os.Getenv("DAVGW_TEST_REPORT"); path != "" {
		reportMu.Lock()
		defer reportMu.Unlock()
		f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		if err == nil {
			fmt.Fprintln(f, line)
			f.Close()
		}
	}
}

var reportMu sync.Mutex

// deleteS3 removes an object straight in S3.
func (e *davEnv) deleteS3(tb testing.TB, key string) {
	tb.Helper()
	e.b.deleteS3(tb, key)
}

// deleteS3 removes an object straight in S3.
func (b *backend) deleteS3(tb testing.TB, key string) {
	tb.Helper()
	if _, err := b.s3.DeleteObject(context.Background(), &s3.DeleteObjectInput{Bucket: &b.bucket, Key: aws.String(key)}); err != nil {
		tb.Fatalf("DeleteObject %q on %s: %v", key, b.name, err)
	}
}
