package s3vfs

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestProxyFuncNeverProxiesMetadataEndpoints(t *testing.T) {
	env := map[string]string{"HTTPS_PROXY": "http://envproxy:3128", "HTTP_PROXY": "http://envproxy:3128"}
	for _, explicit := range []string{"", "http://proxy.example.com:3128"} {
		pf, err := proxyFunc(explicit, func(k string) string { return env[k] })
		if err != nil {
			t.Fatal(err)
		}
		for target, direct := range map[string]bool{
			"http://169.254.169.254/latest/api/token":   true,
			"http://169.254.170.2/v2/credentials/x":     true,
			"http://169.254.170.23/v1/credentials":      true,
			"http://[fd00:ec2::254]/latest/api/token":   true,
			"http://[fd00:ec2::23]/v1/credentials":      true,
			"https://s3.eu-west-1.amazonaws.com/bucket": false,
			"https://sts.amazonaws.com/":                false,
		} {
			u, _ := url.Parse(target)
			got, err := pf(&http.Request{URL: u})
			if err != nil {
				t.Fatal(err)
			}
			if (got == nil) != direct {
				t.Errorf("proxy %q: %s goes via %v, want direct=%v", explicit, target, got, direct)
			}
		}
	}
}

// fakeIMDS serves instance-role credentials; with v1Only it refuses
// IMDSv2 tokens (an instance where IMDSv1 is still on).
func fakeIMDS(t *testing.T, v1Only bool) (*httptest.Server, func() []string) {
	var mu sync.Mutex
	var seen []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Method+" "+r.URL.Path)
		mu.Unlock()
		switch {
		case r.Method == http.MethodPut && r.URL.Path == "/latest/api/token":
			if v1Only {
				w.WriteHeader(http.StatusForbidden)
				return
			}
			w.Header().Set("X-Aws-Ec2-Metadata-Token-Ttl-Seconds", "21600")
			io.WriteString(w, "token")
		case !v1Only && r.Header.Get("X-Aws-Ec2-Metadata-Token") != "token":
			w.WriteHeader(http.StatusUnauthorized)
		case r.URL.Path == "/latest/meta-data/iam/security-credentials/":
			io.WriteString(w, "role")
		case r.URL.Path == "/latest/meta-data/iam/security-credentials/role":
			fmt.Fprintf(w, `{"Code":"Success","AccessKeyId":"AKIAINSTANCEROLE","SecretAccessKey":"x","Token":"t","Expiration":%q}`,
				time.Now().Add(time.Hour).UTC().Format(time.RFC3339))
		default:
			w.WriteHeader(http.StatusNotFound)
		}
	}))
	t.Cleanup(srv.Close)
	return srv, func() []string { mu.Lock(); defer mu.Unlock(); return append([]string(nil), seen...) }
}

// TestDefaultChainReachesIMDSDirectly: the SDK default chain's instance
// role step uses the gateway's metadata client: never the proxy, IMDSv2,
// and IMDSv1 only when allowed.
func TestDefaultChainReachesIMDSDirectly(t *testing.T) {
	var mu sync.Mutex
	var proxied []string
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		proxied = append(proxied, r.Method+" "+r.URL.String())
		mu.Unlock()
		w.WriteHeader(http.StatusBadGateway)
	}))
	defer proxy.Close()
	for _, k := range []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_WEB_IDENTITY_TOKEN_FILE",
		"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "AWS_EC2_METADATA_DISABLED"} {
		t.Setenv(k, "")
	}
	t.Setenv("AWS_CONFIG_FILE", "/dev/null")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
	tests := []struct {
		name       string
		v1Only     bool
		fallback   bool
		wantKey    string
		wantTokens bool
	}{
		{name: "IMDSv2", wantKey: "AKIAINSTANCEROLE", wantTokens: true},
		{name: "IMDSv1 is refused without imds_v1_fallback", v1Only: true},
		{name: "IMDSv1 with imds_v1_fallback", v1Only: true, fallback: true, wantKey: "AKIAINSTANCEROLE"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			imdsSrv, seen := fakeIMDS(t, tt.v1Only)
			t.Setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", imdsSrv.URL)
			st, err := New(t.Context(), Config{Bucket: "bkt", Region: "us-east-1", Proxy: proxy.URL, IMDSv1Fallback: tt.fallback})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
			defer cancel()
			id, _, err := st.ResolveCredentials(ctx)
			if tt.wantKey == "" {
				if err == nil {
					t.Fatalf("credentials resolved to %s over IMDSv1 without imds_v1_fallback", id)
				}
			} else if err != nil || id != tt.wantKey {
				t.Fatalf("ResolveCredentials = %q, %v (IMDS saw %v)", id, err, seen())
			}
			if tt.wantTokens && !strings.HasPrefix(strings.Join(seen(), ","), "PUT /latest/api/token") {
				t.Fatalf("no IMDSv2 token asked first: %v", seen())
			}
			mu.Lock()
			defer mu.Unlock()
			if len(proxied) != 0 {
				t.Fatalf("metadata requests went through the proxy: %v", proxied)
			}
		})
	}
}
