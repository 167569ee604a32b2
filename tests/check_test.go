package tests

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/davgw/davgw/auth"
)

var (
	davgwBinOnce sync.Once
	davgwBin     string
	davgwBinErr  error
)

// davgwBinary builds cmd/davgw once per run: `davgw check` and `serve` are
// tested as operators run them.
func davgwBinary(tb testing.TB) string {
	tb.Helper()
	davgwBinOnce.Do(func() {
		dir, err := os.MkdirTemp("", "davgw-bin-")
		if err != nil {
			davgwBinErr = err
			return
		}
		registry.mu.Lock()
		registry.dirs = append(registry.dirs, dir)
		registry.mu.Unlock()
		davgwBin = filepath.Join(dir, "davgw")
		// The working directory may have moved (embedded.Start changes
		// it): build from the module root found from this file.
		_, self, _, _ := runtime.Caller(0)
		build := exec.Command("go", "build", "-o", davgwBin, "./cmd/davgw")
		build.Dir = filepath.Dir(filepath.Dir(self))
		out, err := build.CombinedOutput()
		if err != nil {
			davgwBinErr = fmt.Errorf("go build ./cmd/davgw: %v\n%s", err, out)
		}
	})
	if davgwBinErr != nil {
		tb.Fatal(davgwBinErr)
	}
	return davgwBin
}

// stsS3Section is an [s3] section for the STS SeaweedFS through its
// counting proxy.
func stsS3Section(srv *stsServer, extra string) string {
	return fmt.Sprintf("[s3]\nendpoint = %q\nbucket = %q\nprefix = %q\npath_style = true\npart_size = \"5MiB\"\n%s",
		srv.proxy.URL, stsBucket, stsPrefix, extra)
}

// runDavgw runs the binary with a config and an environment without AWS
// settings of the machine, and returns its exit code and output.
func runDavgw(tb testing.TB, doc string, env []string, args ...string) (int, string) {
	tb.Helper()
	cfg := filepath.Join(tb.TempDir(), "config.toml")
	if err := os.WriteFile(cfg, []byte(doc), 0o600); err != nil {
		tb.Fatal(err)
	}
	cmd := exec.Command(davgwBinary(tb), append(args, "-config", cfg)...)
	cmd.Env = append(cleanAWSEnv(), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		tb.Fatal(err)
	}
	return code, out.String()
}

// cleanAWSEnv is the environment without AWS_* variables, with shared
// files pointed nowhere and IMDS off: only what a test sets counts.
func cleanAWSEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "AWS_") || strings.HasPrefix(kv, "AWS_CA_BUNDLE=") {
			env = append(env, kv)
		}
	}
	return append(env, "AWS_CONFIG_FILE=/nonexistent", "AWS_SHARED_CREDENTIALS_FILE=/nonexistent", "AWS_EC2_METADATA_DISABLED=true")
}

// TestCheckReportsEachProbe runs `davgw check` against good and crippled
// set-ups on SeaweedFS (with IAM and STS): every credential source it
// names, a denied permission named in the fix, exit 0 only when all pass.
func TestCheckReportsEachProbe(t *testing.T) {
	srv := getSTSServer(t)
	tests := []struct {
		name     string
		extra    string
		env      []string
		wantCode int
		want     []string
		dontWant []string
	}{
		{
			name:     "every probe passes with full keys",
			extra:    fmt.Sprintf("access_key_id = %q\nsecret_access_key = %q\n", stsAdminKey, stsAdminSecret),
			wantCode: 0,
			want: []string{"✓ credentials resolve: static keys, access key ID " + stsAdminKey, "✓ bucket davgw-sts reachable",
				"✓ list gw/", "✓ put gw/.davgw-check-", "✓ head", "✓ get", "✓ copy", "✓ multipart create", "✓ multipart list",
				"✓ multipart abort", "✓ delete"},
		},
		{
			name:     "a read-only identity fails the put with the permission to grant",
			extra:    fmt.Sprintf("access_key_id = %q\nsecret_access_key = %q\n", stsReaderKey, stsReaderSecret),
			wantCode: 1,
			want:     []string{"✓ list gw/", "✗ put gw/.davgw-check-", "fix: grant s3:PutObject on arn:aws:s3:::davgw-sts/gw/*"},
		},
		{
			name: "an assumed role passes every probe without a bucket check",
			extra: fmt.Sprintf("access_key_id = %q\nsecret_access_key = %q\nrole_arn = %q\nsts_endpoint = %q\ncheck_bucket = false\n",
				stsAdminKey, stsAdminSecret, stsRoleARN, srv.endpoint),
			wantCode: 0,
			want:     []string{"✓ credentials resolve: role " + stsRoleARN + " assumed with STS over static keys", "- bucket check skipped", "✓ multipart abort", "✓ delete"},
			dontWant: []string{"✗"},
		},
		{
			name:     "a role the keys may not assume fails at the credentials with the trust-policy fix",
			extra:    fmt.Sprintf("access_key_id = %q\nsecret_access_key = %q\nrole_arn = \"arn:aws:iam::000000000000:role/none\"\nsts_endpoint = %q\n", stsAdminKey, stsAdminSecret, srv.endpoint),
			wantCode: 1,
			want:     []string{"✗ credentials resolve: role arn:aws:iam::000000000000:role/none", "trust policy must allow sts:AssumeRole"},
		},
		{
			name:     "the SDK default chain takes keys from the environment",
			env:      []string{"AWS_ACCESS_KEY_ID=" + stsAdminKey, "AWS_SECRET_ACCESS_KEY=" + stsAdminSecret},
			wantCode: 0,
			want:     []string{"✓ credentials resolve: the AWS SDK default chain", "access key ID " + stsAdminKey, "✓ delete"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mark := srv.proxy.Mark()
			code, out := runDavgw(t, stsS3Section(srv, tt.extra), tt.env, "check")
			if code != tt.wantCode {
				t.Fatalf("exit %d, want %d:\n%s", code, tt.wantCode, out)
			}
			for _, w := range tt.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
			for _, w := range append(tt.dontWant, stsAdminSecret, stsReaderSecret) {
				if strings.Contains(out, w) {
					t.Errorf("output has %q:\n%s", w, out)
				}
			}
			if strings.Contains(tt.extra, "check_bucket = false") {
				if bad := bucketLevelCalls(srv.proxy.Since(mark)); len(bad) > 0 {
					t.Errorf("bucket-level calls with check_bucket = false:%s", describeCalls(bad))
				}
			}
		})
	}
	if n := len(getSTSServerKeys(t, srv, stsPrefix+".davgw-check-")); n != 0 {
		t.Errorf("%d scratch keys left behind", n)
	}
}

// bucketLevelCalls are the calls check_bucket = false forbids: HeadBucket,
// GetBucketLocation and ListBuckets.
func bucketLevelCalls(calls []s3Call) []s3Call {
	var out []s3Call
	for _, c := range calls {
		if c.Key != "" {
			continue
		}
		if c.Method == http.MethodHead || c.Query.Has("location") || (c.Method == http.MethodGet && len(c.Query) == 0) {
			out = append(out, c)
		}
	}
	return out
}

// getSTSServerKeys lists keys under prefix on the STS server with the admin keys.
func getSTSServerKeys(tb testing.TB, srv *stsServer, prefix string) []string {
	tb.Helper()
	b := &backend{name: "seaweedfs-sts", bucket: stsBucket,
		s3: newS3Client(srv.endpoint, stsAdminKey, stsAdminSecret, &http.Client{Transport: &http.Transport{Proxy: nil}})}
	return b.keys(tb, prefix)
}

// TestServeWithoutBucketCheckMakesNoBucketCall starts `davgw serve` and
// signs in with a PROPFIND: with check_bucket = false no HeadBucket,
// GetBucketLocation or ListBuckets reaches S3; with the default, one
// HeadBucket does.
func TestServeWithoutBucketCheckMakesNoBucketCall(t *testing.T) {
	srv := getSTSServer(t)
	hash, err := auth.HashPasswordCost("pw-check-bucket", bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name            string
		checkBucket     string
		wantBucketCalls int
	}{
		{name: "check_bucket = false makes no bucket-level call at start-up or sign-in", checkBucket: "false", wantBucketCalls: 0},
		{name: "the default checks the bucket once at start-up", checkBucket: "true", wantBucketCalls: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			port, err := freePort()
			if err != nil {
				t.Fatal(err)
			}
			doc := fmt.Sprintf("[server]\nlisten = \"127.0.0.1:%d\"\n\n%s\n[[auth.users]]\nname = \"carol\"\npassword_hash = %q\n",
				port, stsS3Section(srv, fmt.Sprintf("access_key_id = %q\nsecret_access_key = %q\nrole_arn = %q\nsts_endpoint = %q\ncheck_bucket = %s\n",
					stsAdminKey, stsAdminSecret, stsRoleARN, srv.endpoint, tt.checkBucket)), hash)
			cfg := filepath.Join(t.TempDir(), "config.toml")
			if err := os.WriteFile(cfg, []byte(doc), 0o600); err != nil {
				t.Fatal(err)
			}
			mark := srv.proxy.Mark()
			p, err := startProcess("davgw serve", t.TempDir(), davgwBinary(t), nil, "serve", "-config", cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer p.stop(5 * time.Second)
			base := "http://127.0.0.1:" + strconv.Itoa(port)
			if err := waitHTTP(context.Background(), p, base+"/healthz", 20*time.Second); err != nil {
				t.Fatal(err)
			}
			req, _ := http.NewRequest("PROPFIND", base+"/dav/", nil)
			req.Header.Set("Depth", "1")
			req.SetBasicAuth("carol", "pw-check-bucket")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusMultiStatus {
				t.Fatalf("PROPFIND as carol: %d\n%s", resp.StatusCode, p.log.String())
			}
			if got := bucketLevelCalls(srv.proxy.Since(mark)); len(got) != tt.wantBucketCalls {
				t.Fatalf("%d bucket-level calls, want %d:%s", len(got), tt.wantBucketCalls, describeCalls(got))
			}
			// The janitor starts in the background: its line may come a
			// moment after the first request.
			for deadline := time.Now().Add(15 * time.Second); !hasLine(p.log.String(), "janitor"); time.Sleep(50 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Errorf("no janitor line in the log within 15 s:\n%s", p.log.String())
					break
				}
			}
		})
	}
}

func hasLine(log, word string) bool {
	sc := bufio.NewScanner(strings.NewReader(log))
	for sc.Scan() {
		if strings.Contains(sc.Text(), word) {
			return true
		}
	}
	return false
}
