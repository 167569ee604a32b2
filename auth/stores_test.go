package auth

import "testing"

// TestRootsNameTheirStore: a root's "NAME:" is read once into
// Principal.Store, for static users and for OIDC claims alike; a root
// without it is in the default store.
func TestRootsNameTheirStore(t *testing.T) {
	for _, tc := range []struct{ root, store, path string }{
		{"finance:teams/{username}/", "finance", "teams/{username}/"},
		{"users/{username}/", "", "users/{username}/"},
		{"all:", "all", ""},
		{"a/b:c/", "", "a/b:c/"}, // a ":" after the first "/" is part of the path
	} {
		if s, p := SplitRoot(tc.root); s != tc.store || p != tc.path {
			t.Errorf("SplitRoot(%q) = %q, %q; want %q, %q", tc.root, s, p, tc.store, tc.path)
		}
	}
	for _, bad := range []string{"Finance:x/", "fi nance:x/", ":x/", "{username}:x/"} {
		if err := CheckRootTemplate(bad); err == nil {
			t.Errorf("CheckRootTemplate(%q) accepted a bad store name", bad)
		}
	}

	hash := mustHash(t, "pw")
	s, err := NewStatic([]StaticUser{
		{Name: "fay", PasswordHash: hash, Root: "finance:teams/{username}/"},
		{Name: "dan", PasswordHash: hash},
	}, "users/{username}/")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ user, store, root string }{{"fay", "finance", "teams/fay/"}, {"dan", "", "users/dan/"}} {
		p, ok := s.Verify(tc.user, "pw")
		if !ok || p.Store != tc.store || p.Root != tc.root {
			t.Errorf("static %s: %+v (ok %v), want store %q root %q", tc.user, p, ok, tc.store, tc.root)
		}
	}
	if _, err := NewStatic([]StaticUser{{Name: "x", PasswordHash: hash, Root: "Bad:x/"}}, "users/{username}/"); err == nil {
		t.Error("a static root with a bad store name was accepted")
	}

	m, err := NewMapper("users/{username}/", "", []Rule{{Group: "finance", Root: "finance:teams/{username}/"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		groups      []string
		store, root string
	}{{[]string{"finance"}, "finance", "teams/olga/"}, {nil, "", "users/olga/"}} {
		p, err := m.Principal(Claims{Subject: "s", Username: "olga", Groups: tc.groups})
		if err != nil || p.Store != tc.store || p.Root != tc.root {
			t.Errorf("OIDC groups %v: %+v, %v; want store %q root %q", tc.groups, p, err, tc.store, tc.root)
		}
	}
}
