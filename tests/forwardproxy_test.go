package tests

import (
	"testing"
)

// TestProxyCarriesS3AndSTSTraffic proves the [s3].proxy key with a
// loopback forward proxy: S3 calls and the STS AssumeRole go through it,
// and NO_PROXY sends a host direct. (HTTPS_PROXY itself is left to
// net/http, which never proxies loopback hosts.)
func TestProxyCarriesS3AndSTSTraffic(t *testing.T) {
	srv := getSTSServer(t)
	tests := []struct {
		name      string
		noProxy   string
		wantProxy bool
	}{
		{name: "S3 and STS requests go through the proxy", wantProxy: true},
		{name: "hosts in NO_PROXY go direct", noProxy: "example.com,127.0.0.1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("NO_PROXY", tt.noProxy)
			t.Setenv("no_proxy", "")
			fp := newForwardProxy(t)
			store := stsStore(t, srv, fp, "")
			e := gatewayOver(t, nil, store)
			mark := srv.proxy.Mark()
			n, f, last := roundTrip(e, "/dav/proxy-"+randHex(3)+"/", 4096)
			if f > 0 {
				t.Fatalf("%d of %d requests failed; last: %s", f, n, last)
			}
			s3Calls := len(srv.proxy.Since(mark))
			viaProxyS3 := fp.count(srv.proxy.URL)
			viaProxySTS := fp.count(srv.endpoint)
			if tt.wantProxy {
				if viaProxyS3 != s3Calls || s3Calls == 0 {
					t.Errorf("%d of %d S3 calls went through the proxy", viaProxyS3, s3Calls)
				}
				if viaProxySTS == 0 {
					t.Error("the AssumeRole call did not go through the proxy")
				}
				report(t, "proxy: %d S3 calls and %d STS calls through a loopback forward proxy", viaProxyS3, viaProxySTS)
				return
			}
			if fp.total.Load() != 0 {
				t.Errorf("%d requests went through the proxy despite NO_PROXY", fp.total.Load())
			}
		})
	}
}
