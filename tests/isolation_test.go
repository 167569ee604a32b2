package tests

import (
	"net/http"
	"strconv"
	"strings"
	"testing"
)

// escapes are the ways bob might try to climb from users/bob/ into
// users/alice/ to reach alice's file "x".
var escapes = []string{
	"/dav/../alice/x",
	"/dav/%2e%2e/alice/x",
	"/dav/%2E%2E/alice/x",
	"/dav/..%2falice/x",
	"/dav/..%2Falice%2Fx",
	"/dav/%2e%2e%2falice%2fx",
	"/dav/%252e%252e/alice/x",
	"/dav/%252e%252e%252falice%252fx",
	`/dav/..\alice\x`,
	"/dav/..%5calice%5cx",
	"/dav/./../alice/x",
	"/dav/sub/../../alice/x",
	"/dav//../alice/x",
	"/dav/../../users/alice/x",
	"/dav/%2e%2e/%2e%2e/users/alice/x",
	"/dav/..%2f..%2fusers%2falice%2fx",
	"/dav/.%2e/alice/x",
	"/dav/%c0%ae%c0%ae/alice/x",
	"/alice/x",
	"/dav/users/alice/x",
}

// bob is a shortcut for a request as bob.
func (e *davEnv) bob(tb testing.TB, method, path string, header map[string]string, body string) reply {
	tb.Helper()
	var rd *strings.Reader
	r := req{Method: method, Path: path, User: "bob", Header: header}
	if body != "" {
		rd = strings.NewReader(body)
		r.Body = rd
	}
	return e.do(tb, r)
}

func isolationCases() []conformanceCase {
	return []conformanceCase{
		{"bob cannot reach alice's files by any path encoding", func(t *testing.T, e *davEnv) {
			secret := "alice's secret " + randHex(8)
			r := e.alice(t, http.MethodPut, "/dav/x", nil, []byte(secret))
			expect(t, "alice PUTs /dav/x", r, http.StatusCreated, http.StatusNoContent)
			aliceETag, _, _, ok := e.headS3(t, "users/alice/x")
			if !ok {
				t.Fatal("alice's PUT /dav/x did not store users/alice/x")
			}
			e.putS3(t, "users/bob/mine.txt", []byte("bob's own file"), "")
			outside := func() map[string]objectState {
				all := e.b.snapshot(t, "")
				for k := range all {
					if strings.HasPrefix(k, "users/bob/") {
						delete(all, k)
					}
				}
				return all
			}
			before := outside()
			leaks := func(what string, rep reply) {
				t.Helper()
				body := string(rep.Body)
				if strings.Contains(body, secret) || strings.Contains(body, strings.Trim(aliceETag, `"`)) {
					t.Errorf("%s leaked alice's file: %s", what, rep)
				}
			}

			var seen []string
			for _, p := range escapes {
				g := e.bob(t, http.MethodGet, p, nil, "")
				seen = append(seen, p+" -> "+strconv.Itoa(g.Status))
				leaks("GET "+p, g)
				if g.Status >= 200 && g.Status < 300 && len(g.Body) == len(secret) {
					t.Errorf("GET %s as bob answered %s", p, g)
				}
				leaks("PROPFIND "+p, e.bob(t, "PROPFIND", p, map[string]string{"Depth": "0"}, ""))
				leaks("HEAD "+p, e.bob(t, http.MethodHead, p, nil, ""))
				leaks("COPY from "+p, e.bob(t, "COPY", p, map[string]string{"Destination": e.URL + "/dav/loot.txt"}, ""))
				leaks("MOVE from "+p, e.bob(t, "MOVE", p, map[string]string{"Destination": e.URL + "/dav/loot2.txt"}, ""))
			}
			t.Logf("bob's GETs: %s", strings.Join(seen, ", "))
			for _, p := range escapes {
				e.bob(t, http.MethodPut, p, nil, "pwned by bob")
				e.bob(t, "PROPPATCH", p, nil, deadPropPatch)
				e.bob(t, "LOCK", p, map[string]string{"Depth": "0"}, lockBody)
				e.bob(t, http.MethodDelete, p, nil, "")
				e.bob(t, "MKCOL", strings.TrimSuffix(p, "x")+"newdir", nil, "")
			}

			// Destinations that point outside bob's root or to another host.
			var dests []string
			for _, p := range []string{"/dav/../alice/stolen.txt", "/dav/%2e%2e/alice/stolen.txt",
				"/dav/..%2falice%2fstolen.txt", "/dav/%252e%252e/alice/stolen.txt", `/dav/..\alice\stolen.txt`,
				"/dav/../../users/alice/stolen.txt", "/alice/stolen.txt"} {
				dests = append(dests, e.URL+p, p)
			}
			for _, d := range []string{"http://evil.example.com/dav/stolen.txt", "http://127.0.0.1:1/dav/stolen.txt"} {
				for _, m := range []string{"COPY", "MOVE"} {
					rep := e.bob(t, m, "/dav/mine.txt", map[string]string{"Destination": d}, "")
					if rep.Status < 400 {
						t.Errorf("%s with Destination %s (another host) answered %s, want a 4xx/5xx refusal", m, d, rep)
					}
				}
			}
			for _, d := range dests {
				e.bob(t, "COPY", "/dav/mine.txt", map[string]string{"Destination": d, "Overwrite": "T"}, "")
			}
			for _, d := range dests {
				e.putS3(t, "users/bob/mine.txt", []byte("bob's own file"), "")
				e.bob(t, "MOVE", "/dav/mine.txt", map[string]string{"Destination": d, "Overwrite": "T"}, "")
			}

			list := e.bob(t, "PROPFIND", "/dav/", map[string]string{"Depth": "1"}, "")
			expect(t, "bob's PROPFIND of his root", list, http.StatusMultiStatus)
			leaks("bob's PROPFIND Depth 1 of /", list)
			for _, m := range parseMultistatus(t, list.Body) {
				if p := hrefPath(t, m.Href); p == "/dav/x" {
					t.Errorf("bob's root lists alice's file: %s", m.Href)
				}
			}

			if d := diffSnapshots(before, outside()); d != "" {
				t.Errorf("bob's requests changed S3 outside users/bob/: %s", d)
			}
			for k, st := range e.b.snapshot(t, "users/bob/") {
				if st.ETag == aliceETag {
					t.Errorf("bob got a copy of alice's file at %s", k)
				}
			}
			if got, _ := e.getS3(t, "users/alice/x"); string(got) != secret {
				t.Errorf("alice's file now holds %q", got)
			}
			a := e.alice(t, http.MethodGet, "/dav/x", nil, nil)
			expect(t, "alice still reads her file", a, http.StatusOK)
			// Leave bob's root empty of anything the attacks made, for litmus-free reruns.
			for _, k := range e.b.keys(t, "users/bob/") {
				e.deleteS3(t, k)
			}
		}},
	}
}
