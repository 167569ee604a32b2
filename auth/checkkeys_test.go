package auth

import (
	"context"
	"testing"
)

// CheckKeys (for `davgw check`) must find the jwks_uri of the discovery
// document even though the provider is rebuilt without its raw claims.
func TestCheckKeysFetchesTheDiscoveredJWKS(t *testing.T) {
	i := newIdP(t)
	if err := i.oidc.CheckKeys(context.Background()); err != nil {
		t.Fatal(err)
	}
}
