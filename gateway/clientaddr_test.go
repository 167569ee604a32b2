package gateway

import (
	"net"
	"net/http/httptest"
	"net/netip"
	"testing"
)

func TestClientAddr(t *testing.T) {
	proxies := TrustedProxies{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("fd00::/8")}
	tests := []struct {
		name    string
		trusted TrustedProxies
		peer    string
		xff     []string
		fwd     []string
		header  string
		want    string
	}{
		{"without trusted proxies the peer is the client, whatever the headers say", nil, "192.0.2.1:5000", []string{"203.0.113.9"}, nil, "", "192.0.2.1"},
		{"an untrusted peer's X-Forwarded-For is ignored", proxies, "192.0.2.1:5000", []string{"203.0.113.9"}, nil, "", "192.0.2.1"},
		{"a trusted proxy names the client", proxies, "10.1.2.3:5000", []string{"203.0.113.9"}, nil, "", "203.0.113.9"},
		{"a client cannot prepend an address of its choice", proxies, "10.1.2.3:5000", []string{"1.2.3.4, 203.0.113.9"}, nil, "", "203.0.113.9"},
		{"a chain of trusted proxies is skipped", proxies, "10.1.2.3:5000", []string{"203.0.113.9, 10.9.9.9"}, nil, "", "203.0.113.9"},
		{"several header lines are one list", proxies, "10.1.2.3:5000", []string{"1.2.3.4", "203.0.113.9"}, nil, "", "203.0.113.9"},
		{"a hop that does not parse ends the walk at the last trusted one", proxies, "10.1.2.3:5000", []string{"203.0.113.9, garbage"}, nil, "", "10.1.2.3"},
		{"only trusted hops: the farthest", proxies, "10.1.2.3:5000", []string{"10.4.4.4"}, nil, "", "10.4.4.4"},
		{"no header from a trusted proxy: the proxy", proxies, "10.1.2.3:5000", nil, nil, "", "10.1.2.3"},
		{"by default a client's own Forwarded is ignored (the proxy sets X-Forwarded-For)", proxies, "10.1.2.3:5000", []string{"198.51.100.1"}, []string{`for=203.0.113.9;proto=https`}, "", "198.51.100.1"},
		{"by default Forwarded alone names nobody", proxies, "10.1.2.3:5000", nil, []string{`for=203.0.113.9`}, "", "10.1.2.3"},
		{"forwarded_header = Forwarded reads it and ignores X-Forwarded-For", proxies, "10.1.2.3:5000", []string{"198.51.100.1"}, []string{`for=203.0.113.9;proto=https`}, HeaderForwarded, "203.0.113.9"},
		{"Forwarded with a quoted IPv6 and port", proxies, "[fd00::1]:5000", nil, []string{`for="[2001:db8::7]:4711"`}, HeaderForwarded, "2001:db8::7"},
		{"Forwarded unknown ends at the proxy", proxies, "10.1.2.3:5000", nil, []string{`for=unknown`}, HeaderForwarded, "10.1.2.3"},
		{"a client's X-Forwarded-For is ignored when the proxies set Forwarded", proxies, "10.1.2.3:5000", []string{"1.2.3.4"}, nil, HeaderForwarded, "10.1.2.3"},
		{"an IPv4-mapped peer is the IPv4 proxy", proxies, "[::ffff:10.1.2.3]:5000", []string{"203.0.113.9"}, nil, "", "203.0.113.9"},
		{"an X-Forwarded-For entry with a port", proxies, "10.1.2.3:5000", []string{"203.0.113.9:1234"}, nil, "", "203.0.113.9"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/", nil)
			r.RemoteAddr = tt.peer
			for _, v := range tt.xff {
				r.Header.Add("X-Forwarded-For", v)
			}
			for _, v := range tt.fwd {
				r.Header.Add("Forwarded", v)
			}
			if got := tt.trusted.ClientAddr(r, tt.header); got != tt.want {
				t.Fatalf("ClientAddr = %q, want %q", got, tt.want)
			}
		})
	}
}

// FuzzClientAddr: whatever forwarding headers a client sends, the client
// address is the peer unless the peer is a trusted proxy, and otherwise an
// address that one of the hops names.
func FuzzClientAddr(f *testing.F) {
	proxies := TrustedProxies{netip.MustParsePrefix("10.0.0.0/8")}
	f.Fuzz(func(t *testing.T, peer, xff, fwd string) {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = peer
		r.Header.Set("X-Forwarded-For", xff)
		if fwd != "" {
			r.Header.Set("Forwarded", fwd)
		}
		host := peer
		if h, _, err := net.SplitHostPort(peer); err == nil {
			host = h
		}
		for _, header := range []string{HeaderXForwardedFor, HeaderForwarded} {
			got := proxies.ClientAddr(r, header)
			if TrustedProxies(nil).ClientAddr(r, header) != host {
				t.Fatalf("without trusted proxies, peer %q gave %q", peer, TrustedProxies(nil).ClientAddr(r, header))
			}
			p, err := netip.ParseAddr(host)
			if err != nil || !proxies.trusts(p) {
				if got != host {
					t.Fatalf("untrusted peer %q, headers %q / %q: client %q", peer, xff, fwd, got)
				}
				continue
			}
			if got == p.Unmap().String() {
				continue
			}
			a, err := netip.ParseAddr(got)
			if err != nil {
				t.Fatalf("client %q is not an address", got)
			}
			named := false
			for _, h := range forwardedHops(r.Header, header) {
				if hop, ok := parseHop(h); ok && hop == a {
					named = true
				}
			}
			if !named {
				t.Fatalf("peer %q, headers %q / %q (%s): client %q named by no hop of that header", peer, xff, fwd, header, got)
			}
		}
	})
}
