package config

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
)

func TestValidateLimitsAndTrustedProxies(t *testing.T) {
	tests := []struct {
		name    string
		doc     string // tables placed before the minimal document
		key     string // the key of the one problem wanted; "" = valid
		wantErr string
	}{
		{name: "no trusted proxies is valid", doc: ``},
		{name: "forwarded_header Forwarded is valid", doc: "[server]\nforwarded_header = \"Forwarded\""},
		{name: "another forwarded_header is refused", doc: "[server]\nforwarded_header = \"X-Real-IP\"", key: "server.forwarded_header", wantErr: "X-Forwarded-For"},
		{name: "CIDRs and single addresses are valid", doc: "[server]\ntrusted_proxies = [\"10.0.0.0/8\", \"192.0.2.7\", \"fd00::/8\"]"},
		{name: "a host name is refused, naming its index", doc: "[server]\ntrusted_proxies = [\"10.0.0.0/8\", \"proxy.local\"]", key: "server.trusted_proxies[1]", wantErr: "CIDR"},
		{name: "negative lock count is refused", doc: "[limits]\nlocks_per_user = -1", key: "limits.locks_per_user", wantErr: "at least 1"},
		{name: "a tiny owner cap is refused", doc: "[limits]\nlock_owner_bytes = \"100\"", key: "limits.lock_owner_bytes", wantErr: "between"},
		{name: "lock limits are valid", doc: "[limits]\nlocks_per_user = 10\nlock_owner_bytes = \"1KiB\""},
		{name: "request and password limits are valid", doc: "[limits]\nxml_depth = 8\nxml_elements = 1000000\nranges_per_request = 1\npassword_checks = 2\npassword_checks_waiting = 10"},
		{name: "a shallow XML depth is refused", doc: "[limits]\nxml_depth = 4", key: "limits.xml_depth", wantErr: "between 8 and 1000"},
		{name: "a negative element count is refused", doc: "[limits]\nxml_elements = -1", key: "limits.xml_elements", wantErr: "between 100 and"},
		{name: "too many ranges are refused", doc: "[limits]\nranges_per_request = 5000", key: "limits.ranges_per_request", wantErr: "between 1 and 1000"},
		{name: "negative password checks are refused", doc: "[limits]\npassword_checks = -2", key: "limits.password_checks", wantErr: "between 1 and"},
		{name: "too many waiting checks are refused", doc: "[limits]\npassword_checks_waiting = 1000001", key: "limits.password_checks_waiting", wantErr: "between 1 and"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.doc+"\n"+minimal), env(nil))
			if tt.key == "" {
				if err != nil {
					t.Fatalf("err = %v", err)
				}
				return
			}
			ps := problems(err)
			if len(ps) != 1 || ps[0].Key != tt.key || !strings.Contains(ps[0].Msg, tt.wantErr) {
				t.Fatalf("problems %v, want one for %s with %q", err, tt.key, tt.wantErr)
			}
		})
	}
	c, err := Parse([]byte("[server]\ntrusted_proxies = [\"10.1.2.3/8\", \"192.0.2.7\", \"::ffff:10.0.0.0/104\"]\n"+minimal), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	want := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("192.0.2.7/32"), netip.MustParsePrefix("10.0.0.0/8")}
	if got := c.TrustedProxies(); !slices.Equal(got, want) {
		t.Fatalf("TrustedProxies = %v, want %v", got, want)
	}
}
