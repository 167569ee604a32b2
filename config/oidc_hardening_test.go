package config

import (
	"testing"
	"time"
)

func TestAppPasswordMaxAgeAndOpaqueTokens(t *testing.T) {
	c, err := Parse([]byte(minimal), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if c.AppPasswordMaxAge() != 90*24*time.Hour || c.Auth.OIDC.OpaqueTokens != "introspect" {
		t.Fatalf("defaults: %v %q", c.AppPasswordMaxAge(), c.Auth.OIDC.OpaqueTokens)
	}
	c, err = Parse([]byte(minimal+"\n[auth.oidc]\napp_password_max_age = \"0\"\nopaque_tokens = \"userinfo\"\n"), env(nil))
	if err != nil || c.AppPasswordMaxAge() != 0 || c.Auth.OIDC.OpaqueTokens != "userinfo" {
		t.Fatalf("0 and userinfo: %v", err)
	}
	bad := minimal + `
[auth.oidc]
app_password_max_age = "30m"
opaque_tokens = "trust-me"
[[auth.users]]
name = "alice"
password_hash = "$2a$04$abcdefghijklmnopqrstuuWcnE6yYZbq3rwYgJbpb.5xvt5vZqG3K"
[[auth.users]]
name = "Alice"
password_hash = "$2a$04$abcdefghijklmnopqrstuuWcnE6yYZbq3rwYgJbpb.5xvt5vZqG3K"
`
	_, err = Parse([]byte(bad), env(nil))
	want := map[string]bool{"auth.oidc.app_password_max_age": false, "auth.oidc.opaque_tokens": false, "auth.users[1].name": false}
	for _, p := range problems(err) {
		if _, ok := want[p.Key]; ok {
			want[p.Key] = true
		}
	}
	for k, found := range want {
		if !found {
			t.Errorf("no problem for %s: %v", k, err)
		}
	}
}
