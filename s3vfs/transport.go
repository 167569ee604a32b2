package s3vfs

import (
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"

	"golang.org/x/net/http/httpproxy"
)

// linkLocal are the networks of the instance metadata service and the
// ECS/EKS container credential endpoints (169.254.169.254, 169.254.170.2,
// 169.254.170.23, fd00:ec2::254, fd00:ec2::23): reachable only from the
// host itself, never through a proxy.
var linkLocal = []*net.IPNet{
	{IP: net.IPv4(169, 254, 0, 0).To4(), Mask: net.CIDRMask(16, 32)},
	{IP: net.ParseIP("fd00:ec2::"), Mask: net.CIDRMask(64, 128)},
}

// isLinkLocal reports whether the request goes to a metadata or container
// credential endpoint (see linkLocal).
func isLinkLocal(u *url.URL) bool {
	ip := net.ParseIP(u.Hostname())
	if ip == nil {
		return false
	}
	for _, n := range linkLocal {
		if n.Contains(ip) {
			return true
		}
	}
	return false
}

// proxyFunc returns the Proxy function of the transport that carries S3 and
// STS traffic. An explicit proxy URL is used for every host except those
// NO_PROXY (or no_proxy) names; loopback hosts are proxied too when the
// proxy is explicit. Without one, HTTPS_PROXY, HTTP_PROXY and NO_PROXY are
// honoured as net/http does (which never proxies loopback hosts). Either
// way the metadata service and the container credential endpoints
// (169.254.0.0/16, fd00:ec2::/64) are always reached directly.
func proxyFunc(proxy string, getenv func(string) string) (func(*http.Request) (*url.URL, error), error) {
	if proxy == "" {
		env := func(upper, lower string) string {
			if v := getenv(upper); v != "" {
				return v
			}
			return getenv(lower)
		}
		fromEnv := (&httpproxy.Config{
			HTTPProxy:  env("HTTP_PROXY", "http_proxy"),
			HTTPSProxy: env("HTTPS_PROXY", "https_proxy"),
			NoProxy:    env("NO_PROXY", "no_proxy"),
			CGI:        getenv("REQUEST_METHOD") != "",
		}).ProxyFunc()
		return func(r *http.Request) (*url.URL, error) {
			if isLinkLocal(r.URL) {
				return nil, nil
			}
			return fromEnv(r.URL)
		}, nil
	}
	u, err := url.Parse(proxy)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https" && u.Scheme != "socks5") {
		return nil, fmt.Errorf("s3vfs: proxy must be a URL such as http://proxy.example.com:3128")
	}
	noProxy := getenv("NO_PROXY")
	if noProxy == "" {
		noProxy = getenv("no_proxy")
	}
	return func(r *http.Request) (*url.URL, error) {
		if isLinkLocal(r.URL) || matchNoProxy(noProxy, r.URL) {
			return nil, nil
		}
		return u, nil
	}, nil
}

// matchNoProxy reports whether target is excluded from proxying by a
// NO_PROXY list: comma- or space-separated entries, each "*", a host name
// (matching itself and its subdomains; a leading "." or "*." is the same),
// an IP address or a CIDR block, optionally with ":port".
func matchNoProxy(list string, target *url.URL) bool {
	host := strings.ToLower(target.Hostname())
	port := target.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[target.Scheme]
	}
	ip := net.ParseIP(host)
	for _, e := range strings.FieldsFunc(strings.ToLower(list), func(r rune) bool { return r == ',' || r == ' ' }) {
		if e == "*" {
			return true
		}
		if _, cidr, err := net.ParseCIDR(e); err == nil {
			if ip != nil && cidr.Contains(ip) {
				return true
			}
			continue
		}
		ehost, eport := e, ""
		if h, p, err := net.SplitHostPort(e); err == nil {
			ehost, eport = h, p
		}
		if eport != "" && eport != port {
			continue
		}
		if eip := net.ParseIP(strings.Trim(ehost, "[]")); eip != nil {
			if ip != nil && eip.Equal(ip) {
				return true
			}
			continue
		}
		ehost = strings.TrimPrefix(strings.TrimPrefix(ehost, "*"), ".")
		if ehost != "" && (host == ehost || strings.HasSuffix(host, "."+ehost)) {
			return true
		}
	}
	return false
}
