package gateway

import (
	"errors"
	"net/http"
	"testing"
)

// TestNamesOfAStoreOfEveryBucket: a name splits into its bucket and the
// name inside it; a Destination in another bucket is 502, one at the top
// level 403, one in the same bucket is the name inside it.
func TestNamesOfAStoreOfEveryBucket(t *testing.T) {
	for _, tc := range []struct{ name, bucket, rest string }{
		{"/", "", "/"},
		{"/b", "b", "/"},
		{"/b/x/y.txt", "b", "/x/y.txt"},
	} {
		if b, r := splitBucket(tc.name); b != tc.bucket || r != tc.rest {
			t.Errorf("splitBucket(%q) = %q, %q; want %q, %q", tc.name, b, r, tc.bucket, tc.rest)
		}
	}
	rq := &request{home: &namedStore{name: "all", buckets: map[string]*storeParts{}}, bucket: "b"}
	for _, tc := range []struct {
		dst, want string
		status    int
	}{
		{"/b/x.txt", "/x.txt", 0},
		{"/c/x.txt", "", http.StatusBadGateway},
		{"/c", "", http.StatusForbidden},
		{"/", "", http.StatusForbidden},
	} {
		got, err := rq.localName(tc.dst)
		var he *httpError
		switch {
		case tc.status == 0 && (err != nil || got != tc.want):
			t.Errorf("localName(%q) = %q, %v; want %q", tc.dst, got, err, tc.want)
		case tc.status != 0 && (!errors.As(err, &he) || he.status != tc.status):
			t.Errorf("localName(%q) = %q, %v; want status %d", tc.dst, got, err, tc.status)
		}
	}
	one := &request{home: &namedStore{parts: &storeParts{}}}
	if got, err := one.localName("/c/x.txt"); err != nil || got != "/c/x.txt" {
		t.Errorf("a store of one bucket changed the name: %q, %v", got, err)
	}
}
