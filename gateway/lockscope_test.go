package gateway

import (
	"testing"

	"github.com/davgw/davgw/auth"
)

// TestNamedStoreLockScopesAreNoDefaultRoot: the lock roots of a named
// store (and of a bucket of a store of every bucket) are never a root of
// the default store, even one whose [s3].prefix is "NAME:x/" next to a
// store NAME with prefix "x/": else a lock there would lock, and show, the
// same names in the store NAME.
func TestNamedStoreLockScopesAreNoDefaultRoot(t *testing.T) {
	for _, scope := range []string{storeLockScope("s") + "users/alice/", storeLockScope("s") + "bucket/users/alice/"} {
		if r, err := auth.CleanRoot(scope); err == nil {
			t.Errorf("lock root %q of the store s is also a root of the default store, %q", scope, r)
		}
	}
}
