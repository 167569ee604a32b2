package tests

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/davgw/davgw/config"
	"github.com/davgw/davgw/s3vfs"
)

// TestDefaultChainIMDSBypassesTheProxy runs the AWS SDK default chain
// (no keys) on an "instance" (amazon-ec2-metadata-mock) with [s3].proxy
// set: the S3 calls go through the loopback forward proxy, the metadata
// calls never do; IMDSv2 is used, and IMDSv1 only with imds_v1_fallback.
func TestDefaultChainIMDSBypassesTheProxy(t *testing.T) {
	b := getBackend(t, "versitygw")
	v2only := startIMDSMock(t, true, b.server.access, b.server.secret)
	both := startIMDSMock(t, false, b.server.access, b.server.secret)
	for _, k := range []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_WEB_IDENTITY_TOKEN_FILE",
		"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_EC2_METADATA_DISABLED", "NO_PROXY", "no_proxy"} {
		t.Setenv(k, "")
	}
	t.Setenv("AWS_CONFIG_FILE", "/nonexistent")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
	tests := []struct {
		name     string
		rec      *imdsRecorder
		refuseV2 bool
		extra    string
		wantOK   bool
	}{
		{name: "IMDSv2, direct, S3 through the proxy", rec: v2only, wantOK: true},
		{name: "IMDSv1 is refused without imds_v1_fallback", rec: both, refuseV2: true},
		{name: "IMDSv1 with imds_v1_fallback", rec: both, refuseV2: true, extra: "imds_v1_fallback = true\n", wantOK: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.rec.reset(tt.refuseV2)
			t.Setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", tt.rec.URL)
			fp := newForwardProxy(t)
			host := b.proxy.URL[len("http://"):]
			doc := fmt.Sprintf("[s3]\nurl = \"s3+http://%s/%s/\"\ncredentials = \"default\"\nregion = \"us-east-1\"\nproxy = %q\npart_size = \"5MiB\"\n%s",
				host, b.bucket, fp.URL, tt.extra)
			cfg, err := config.Parse([]byte(doc), func(string) (string, bool) { return "", false })
			if err != nil {
				t.Fatalf("config: %v\n%s", err, doc)
			}
			store, err := s3vfs.New(t.Context(), cfg.S3Config())
			if err != nil {
				t.Fatal(err)
			}
			_, _, err = store.ResolveCredentials(t.Context())
			calls := tt.rec.snapshot()
			if (err == nil) != tt.wantOK {
				t.Fatalf("credentials: err = %v, want ok=%v; IMDS calls: %+v", err, tt.wantOK, calls)
			}
			if n := fp.count(tt.rec.URL); n != 0 {
				t.Fatalf("%d metadata calls went through the proxy", n)
			}
			tokenPUT, v1 := false, 0
			for _, c := range calls {
				switch {
				case c.Method == http.MethodPut:
					tokenPUT = true
				case !c.Token:
					v1++
				}
			}
			if !tokenPUT {
				t.Errorf("no IMDSv2 token asked for: %+v", calls)
			}
			if !tt.wantOK {
				if v1 > 0 {
					t.Errorf("IMDSv1 tried without imds_v1_fallback: %+v", calls)
				}
				return
			}
			e := gatewayOver(t, b, store)
			n, f, last := roundTrip(e, "/dav/imds-proxy-"+randHex(3)+"/", 2048)
			if f > 0 {
				t.Fatalf("%d of %d WebDAV requests failed; last: %s", f, n, last)
			}
			if fp.count(b.proxy.URL) == 0 {
				t.Error("no S3 call went through the proxy")
			}
			report(t, "default chain + proxy (%s): %d IMDS calls direct, %d S3 calls via the proxy", tt.name, len(calls), fp.count(b.proxy.URL))
		})
	}
}
