package gateway

import (
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// TrustedProxies are the networks ([server].trusted_proxies) whose
// forwarding header the gateway believes: the addresses of the reverse
// proxies or load balancers in front of it.
type TrustedProxies []netip.Prefix

// The forwarding headers a trusted proxy may set ([server].forwarded_header).
// Only the one the proxies set is read: nginx, Caddy, HAProxy and the cloud
// load balancers append to X-Forwarded-For and pass a client's own
// Forwarded header through untouched, so reading Forwarded behind them
// would let a client choose its address.
const (
	HeaderXForwardedFor = "X-Forwarded-For"
	HeaderForwarded     = "Forwarded"
)

func (t TrustedProxies) trusts(a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range t {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// ClientAddr is the one place that decides a request's client address (an
// IP, without port): the peer, unless the peer is a trusted proxy, in which
// case the forwarding headers are walked from the nearest hop outwards,
// skipping trusted proxies, and the first address that is not one is the
// client. Only header is read (HeaderXForwardedFor, the default when "",
// or HeaderForwarded, RFC 7239); a hop that does not parse ends the walk
// at the last trusted one, so a client behind the proxy can never choose
// its address by writing these headers itself.
func (t TrustedProxies) ClientAddr(r *http.Request, header string) string {
	host := r.RemoteAddr
	if h, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		host = h
	}
	peer, err := netip.ParseAddr(host)
	if err != nil || len(t) == 0 || !t.trusts(peer) {
		return host
	}
	hops := forwardedHops(r.Header, header)
	client := peer.Unmap()
	for i := len(hops) - 1; i >= 0; i-- {
		a, ok := parseHop(hops[i])
		if !ok {
			break
		}
		client = a
		if !t.trusts(a) {
			break
		}
	}
	return client.String()
}

// forwardedHops lists the client-side hops, the farthest first: the for=
// values of Forwarded, or X-Forwarded-For's entries.
func forwardedHops(h http.Header, header string) []string {
	var hops []string
	if header == HeaderForwarded {
		for _, line := range h.Values(HeaderForwarded) {
			for _, elem := range strings.Split(line, ",") {
				for _, pair := range strings.Split(elem, ";") {
					k, v, ok := strings.Cut(strings.TrimSpace(pair), "=")
					if ok && strings.EqualFold(k, "for") {
						hops = append(hops, strings.Trim(v, `"`))
					}
				}
			}
		}
		return hops
	}
	for _, line := range h.Values(HeaderXForwardedFor) {
		for _, v := range strings.Split(line, ",") {
			hops = append(hops, strings.TrimSpace(v))
		}
	}
	return hops
}

// parseHop reads one hop: "192.0.2.1", "192.0.2.1:8080", "2001:db8::1" or
// "[2001:db8::1]:8080". Obfuscated names ("_hidden") and "unknown" do not
// parse.
func parseHop(s string) (netip.Addr, bool) {
	if a, err := netip.ParseAddr(s); err == nil && a.Zone() == "" {
		return a.Unmap(), true
	}
	if ap, err := netip.ParseAddrPort(s); err == nil && ap.Addr().Zone() == "" {
		return ap.Addr().Unmap(), true
	}
	if strings.HasPrefix(s, "[") && strings.HasSuffix(s, "]") {
		if a, err := netip.ParseAddr(s[1 : len(s)-1]); err == nil && a.Zone() == "" {
			return a.Unmap(), true
		}
	}
	return netip.Addr{}, false
}
