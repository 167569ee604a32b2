package config

import (
	"testing"
)

func TestPasswordGrantIsAcceptedWithAnIssuer(t *testing.T) {
	doc := minimal + `
[server]
public_url = "https://dav.example.com"
[auth.oidc]
issuer = "https://idp.example.com"
client_id = "davgw"
client_secret = "s"
password_grant = true
`
	c, err := Parse([]byte(doc), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if !c.Auth.OIDC.PasswordGrant {
		t.Fatal("password_grant not set")
	}
}

func TestPasswordGrantNeedsAnIssuer(t *testing.T) {
	_, err := Parse([]byte(minimal+"\n[auth.oidc]\npassword_grant = true\n"), env(nil))
	found := false
	for _, p := range problems(err) {
		if p.Key == "auth.oidc.password_grant" {
			found = true
		}
	}
	if !found {
		t.Fatalf("no problem for auth.oidc.password_grant: %v", err)
	}
}
