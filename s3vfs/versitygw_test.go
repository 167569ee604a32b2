package s3vfs

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// versitygwDefaultPath is where .ci/tools.sh builds versitygw.
const versitygwDefaultPath = "/root/.cache/davgw-tools/versitygw-v1.8.0/bin/versitygw"

const (
	testAccessKey = "davgw-test-access"
	testSecretKey = "davgw-test-secret-do-not-log"
	testBucket    = "davgw-test"
)

// testGateway is a running versitygw with one bucket.
type testGateway struct {
	Endpoint string
	Admin    *s3.Client // raw SDK client, for checks the Store does not offer
}

// versitygwPath finds the versitygw binary, or skips (fails under CI=true).
func versitygwPath(t testing.TB) string {
	t.Helper()
	candidates := []string{os.Getenv("DAVGW_VERSITYGW"), versitygwDefaultPath}
	for _, p := range candidates {
		if p == "" {
			continue
		}
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p
		}
	}
	msg := fmt.Sprintf("versitygw not found: set DAVGW_VERSITYGW or run .ci/tools.sh to build %s", versitygwDefaultPath)
	if os.Getenv("CI") == "true" {
		t.Fatal("CI=true but " + msg)
	}
	t.Skip(msg)
	return ""
}

// startVersitygw runs versitygw on a free loopback port over a temporary
// folder, creates testBucket, and stops the gateway when the test ends.
func startVersitygw(t testing.TB) *testGateway {
	t.Helper()
	bin := versitygwPath(t)
	dir := t.TempDir()
	port := freePort(t)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	cmd := exec.Command(bin, "--port", addr, "--access", testAccessKey, "--secret", testSecretKey, "--quiet", "posix", dir)
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting versitygw: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
	})

	endpoint := "http://" + addr
	deadline := time.Now().Add(15 * time.Second)
	for {
		conn, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			conn.Close()
			break
		}
		select {
		case err := <-exited:
			t.Fatalf("versitygw exited early (%v): %s", err, logs.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("versitygw did not listen on %s within 15 s: %s", addr, logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}

	admin := s3.New(s3.Options{
		Region:                     "us-east-1",
		BaseEndpoint:               aws.String(endpoint),
		UsePathStyle:               true,
		Credentials:                aws.NewCredentialsCache(staticCreds{}),
		HTTPClient:                 &http.Client{},
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenRequired,
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := admin.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(testBucket)}); err != nil {
		t.Fatalf("creating bucket: %v\n%s", err, logs.String())
	}
	return &testGateway{Endpoint: endpoint, Admin: admin}
}

// staticCreds are the gateway's root keys.
type staticCreds struct{}

func (staticCreds) Retrieve(context.Context) (aws.Credentials, error) {
	return aws.Credentials{AccessKeyID: testAccessKey, SecretAccessKey: testSecretKey, Source: "test"}, nil
}

// freePort returns a TCP port free on 127.0.0.1 right now.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// newTestStore starts a gateway and returns a Store on its bucket, with
// 5 MiB parts; edit adjusts the Config before New.
func newTestStore(t testing.TB, edit func(*Config)) (*Store, *testGateway) {
	t.Helper()
	gw := startVersitygw(t)
	cfg := Config{
		Endpoint:          gw.Endpoint,
		Bucket:            testBucket,
		PathStyle:         true,
		AccessKeyID:       testAccessKey,
		SecretAccessKey:   testSecretKey,
		PartSize:          MinPartSize,
		UploadConcurrency: 2,
	}
	if edit != nil {
		edit(&cfg)
	}
	s, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s, gw
}

// listUploads returns the multipart uploads in progress in the test bucket.
func (gw *testGateway) listUploads(t testing.TB) []string {
	t.Helper()
	out, err := gw.Admin.ListMultipartUploads(context.Background(), &s3.ListMultipartUploadsInput{Bucket: aws.String(testBucket)})
	if err != nil {
		t.Fatalf("ListMultipartUploads: %v", err)
	}
	var keys []string
	for _, u := range out.Uploads {
		keys = append(keys, aws.ToString(u.Key)+" "+aws.ToString(u.UploadId))
	}
	return keys
}

// objectBytes reads a whole object with the raw client.
func (gw *testGateway) objectBytes(t testing.TB, key string) []byte {
	t.Helper()
	out, err := gw.Admin.GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String(testBucket), Key: aws.String(key)})
	if err != nil {
		t.Fatalf("GetObject %q: %v", key, err)
	}
	defer out.Body.Close()
	var b bytes.Buffer
	if _, err := b.ReadFrom(out.Body); err != nil {
		t.Fatalf("reading %q: %v", key, err)
	}
	return b.Bytes()
}
