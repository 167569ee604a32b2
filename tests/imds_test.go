package tests

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/davgw/davgw/config"
	"github.com/davgw/davgw/s3vfs"
)

// imdsMockVersion is the pinned amazon-ec2-metadata-mock, as in .ci/tools.sh.
const imdsMockVersion = "v1.13.0"

// imdsRegion is the region the mock reports, different from the default
// so that a region taken from IMDS shows.
const imdsRegion = "eu-west-3"

// imdsCall is one request the metadata recorder saw.
type imdsCall struct {
	Method, Path string
	Token        bool // carried X-aws-ec2-metadata-token (IMDSv2)
	Status       int
}

// imdsRecorder is a reverse proxy in front of the metadata mock that
// records every call and can play an IMDS without IMDSv2 (the token PUT
// answered 404).
type imdsRecorder struct {
	URL       string
	mu        sync.Mutex
	calls     []imdsCall
	refuseV2  bool
	transport *http.Transport
}

func (r *imdsRecorder) snapshot() []imdsCall {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]imdsCall(nil), r.calls...)
}

func (r *imdsRecorder) reset(refuseV2 bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls, r.refuseV2 = nil, refuseV2
}

// startIMDSMock starts ec2-metadata-mock on a free port (v2Only: -I, v1
// gets 401) whose instance role credentials are the given keys, and a
// recorder in front of it; both stop at the end of the test.
func startIMDSMock(tb testing.TB, v2Only bool, access, secret string) *imdsRecorder {
	tb.Helper()
	bin, err := toolPath("DAVGW_IMDS_MOCK", "ec2-metadata-mock", imdsMockVersion)
	requireTool(tb, err)
	dir := tb.TempDir()
	// No session token: versitygw refuses any (InvalidToken); real
	// instance credentials always have one, which S3 checks.
	cfg := fmt.Sprintf(`{"metadata":{"values":{"placement-region":%q,"iam-security-credentials-role":"davgw-instance",`+
		`"iam-security-credentials":{"Code":"Success","Type":"AWS-HMAC","AccessKeyId":%q,"SecretAccessKey":%q,`+
		`"Token":"","Expiration":"2099-01-01T00:00:00Z"}}},`+
		`"dynamic":{"values":{"instance-identity-document":{"accountId":"000000000000","availabilityZone":"%sa",`+
		`"instanceId":"i-0davgw","instanceType":"m5.large","region":%q,"version":"2017-09-30"}}}}`,
		imdsRegion, access, secret, imdsRegion, imdsRegion)
	cfgPath := filepath.Join(dir, "aemm.json")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		tb.Fatal(err)
	}
	var p *process
	var endpoint string
	for attempt := 0; ; attempt++ {
		port, err := freePort()
		if err != nil {
			tb.Fatal(err)
		}
		args := []string{"-n", "127.0.0.1", "-p", strconv.Itoa(port), "-c", cfgPath}
		if v2Only {
			args = append(args, "-I")
		}
		p, err = startProcess("ec2-metadata-mock", dir, bin, []string{"HOME=" + dir}, args...)
		if err != nil {
			tb.Fatal(err)
		}
		endpoint = "http://127.0.0.1:" + strconv.Itoa(port)
		err = waitHTTP(context.Background(), p, endpoint+"/latest/meta-data/", 20*time.Second)
		if err == nil {
			break
		}
		p.stop(2 * time.Second)
		if attempt == 2 {
			tb.Fatal(err)
		}
	}
	tb.Cleanup(func() { p.stop(3 * time.Second) })

	target, _ := url.Parse(endpoint)
	rec := &imdsRecorder{transport: &http.Transport{Proxy: nil}}
	rp := &httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) { pr.SetURL(target) }, Transport: rec.transport}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec.mu.Lock()
		refuse := rec.refuseV2
		rec.mu.Unlock()
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		if refuse && r.Method == http.MethodPut && r.URL.Path == "/latest/api/token" {
			http.NotFound(sw, r) // an IMDS that does not know IMDSv2
		} else {
			rp.ServeHTTP(sw, r)
		}
		rec.mu.Lock()
		rec.calls = append(rec.calls, imdsCall{Method: r.Method, Path: r.URL.Path,
			Token: r.Header.Get("X-Aws-Ec2-Metadata-Token") != "", Status: sw.status})
		rec.mu.Unlock()
	}))
	tb.Cleanup(func() { srv.Close(); rec.transport.CloseIdleConnections() })
	rec.URL = srv.URL
	return rec
}

// imdsConfig is a davgw config that reaches the back end through its
// counting proxy with the CrushFTP instance-role keys.
func imdsConfig(tb testing.TB, b *backend, imdsURL, extra string) *config.Config {
	tb.Helper()
	host := b.proxy.URL[len("http://"):]
	doc := fmt.Sprintf("[s3]\nurl = \"s3+http://iam_lookup:lookup@%s/%s/\"\nimds_endpoint = %q\npart_size = \"5MiB\"\n%s",
		host, b.bucket, imdsURL, extra)
	cfg, err := config.Parse([]byte(doc), func(string) (string, bool) { return "", false })
	if err != nil {
		tb.Fatalf("config: %v\n%s", err, doc)
	}
	return cfg
}

// TestInstanceRoleThroughIMDS proves the EC2 instance role path of
// issue 3 against amazon-ec2-metadata-mock: IMDSv2 first, IMDSv1 refused
// unless imds_v1_fallback, the region from IMDS when none is configured,
// and the gateway working end to end with the role's keys.
func TestInstanceRoleThroughIMDS(t *testing.T) {
	b := getBackend(t, "versitygw")
	v2only := startIMDSMock(t, true, b.server.access, b.server.secret)
	both := startIMDSMock(t, false, b.server.access, b.server.secret)

	tests := []struct {
		name      string
		rec       *imdsRecorder
		refuseV2  bool
		extra     string
		wantOK    bool
		wantV1    bool   // credentials fetched without a token
		wantRegio string // "" = not checked
	}{
		{name: "IMDSv2 is used on an IMDSv2-only instance", rec: v2only, extra: "region = \"us-east-1\"\n", wantOK: true},
		{name: "IMDSv1 is refused when the instance has no IMDSv2", rec: both, refuseV2: true, extra: "region = \"us-east-1\"\n"},
		{name: "IMDSv1 is used when the instance has no IMDSv2 and imds_v1_fallback is on", rec: both, refuseV2: true,
			extra: "region = \"us-east-1\"\nimds_v1_fallback = true\n", wantOK: true, wantV1: true},
		{name: "IMDSv2 stays first with imds_v1_fallback on", rec: both, extra: "region = \"us-east-1\"\nimds_v1_fallback = true\n", wantOK: true},
		{name: "the region comes from IMDS when none is configured", rec: v2only, wantOK: true, wantRegio: imdsRegion},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.rec.reset(tt.refuseV2)
			cfg := imdsConfig(t, b, tt.rec.URL, tt.extra)
			if got := cfg.S3CredentialSource(); got != "iam_lookup" {
				t.Fatalf("credential source %q, want iam_lookup", got)
			}
			store, err := s3vfs.New(t.Context(), cfg.S3Config())
			if err != nil {
				if tt.wantOK {
					t.Fatalf("New: %v", err)
				}
			} else {
				_, _, err = store.ResolveCredentials(t.Context())
			}
			calls := tt.rec.snapshot()
			if (err == nil) != tt.wantOK {
				t.Fatalf("credentials: err = %v, want ok=%v; IMDS calls: %+v", err, tt.wantOK, calls)
			}
			var tokenPUTs, withToken, withoutToken int
			for _, c := range calls {
				switch {
				case c.Method == http.MethodPut:
					tokenPUTs++
				case c.Token:
					withToken++
				default:
					withoutToken++
				}
			}
			if tokenPUTs == 0 {
				t.Errorf("no IMDSv2 token was asked for first: %+v", calls)
			}
			if tt.wantV1 != (withoutToken > 0) {
				t.Errorf("%d metadata reads without a token (IMDSv1), want v1 = %v: %+v", withoutToken, tt.wantV1, calls)
			}
			if !tt.wantOK {
				if withoutToken > 0 {
					t.Errorf("IMDSv1 was tried although imds_v1_fallback is off: %+v", calls)
				}
				return
			}
			if tt.wantRegio != "" {
				if store.Region() != tt.wantRegio {
					t.Fatalf("region %q, want %q from IMDS", store.Region(), tt.wantRegio)
				}
				return // the back end signs for us-east-1: no S3 traffic with this region
			}
			if !tt.wantV1 && withToken == 0 {
				t.Errorf("no metadata read carried the IMDSv2 token: %+v", calls)
			}
			e := gatewayOver(t, b, store)
			n, f, last := roundTrip(e, "/dav/imds-"+randHex(3)+"/", 2048)
			if f > 0 {
				t.Fatalf("%d of %d WebDAV requests failed with the instance role; last: %s", f, n, last)
			}
			report(t, "IMDS (%s): %d token PUTs, %d reads with token, %d without; %d WebDAV requests ok",
				tt.name, tokenPUTs, withToken, withoutToken, n)
		})
	}
}
