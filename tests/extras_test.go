package tests

import (
	"net/http"
	"strings"
	"testing"
)

func TestEmptyFolderRenameAndActiveContent(t *testing.T) {
	forEachBackend(t, backendNames, func(t *testing.T, e *davEnv) {
		t.Run("a new empty folder can be renamed, as Explorer and Finder do right after creating it", func(t *testing.T) {
			keyPrefix, dir := e.caseDir(t)
			expect(t, "MKCOL New folder", e.alice(t, "MKCOL", dir+"New%20folder", nil, nil), http.StatusCreated)
			patch := `<?xml version="1.0" encoding="utf-8" ?><D:propertyupdate xmlns:D="DAV:" xmlns:Z="urn:schemas-microsoft-com:"><D:set><D:prop><Z:Win32FileAttributes>00000010</Z:Win32FileAttributes></D:prop></D:set></D:propertyupdate>`
			expect(t, "PROPPATCH New folder", e.alice(t, "PROPPATCH", dir+"New%20folder", nil, []byte(patch)), http.StatusMultiStatus)
			r := e.alice(t, "MOVE", dir+"New%20folder", map[string]string{"Destination": e.URL + dir + "Projects", "Overwrite": "F"}, nil)
			expect(t, "MOVE New folder -> Projects", r, http.StatusCreated)
			if _, _, _, ok := e.headS3(t, keyPrefix+"Projects/"); !ok {
				t.Error("Projects/ has no marker after the rename")
			}
			if keys := userKeys(t, e, keyPrefix+"New folder/"); len(keys) != 0 {
				t.Errorf("the old folder left %v", keys)
			}
			if got := e.deadPropNamed(t, dir+"Projects/", "urn:schemas-microsoft-com:", "Win32FileAttributes"); got != "00000010" {
				t.Errorf("the renamed folder's Win32FileAttributes = %q, want 00000010", got)
			}
			// A folder with content is still refused, before anything changes.
			expect(t, "PUT into Projects", e.alice(t, http.MethodPut, dir+"Projects/a.txt", nil, []byte("a")), http.StatusCreated)
			before := e.b.snapshot(t, keyPrefix)
			r = e.alice(t, "MOVE", dir+"Projects/", map[string]string{"Destination": e.URL + dir + "Archive/"}, nil)
			expect(t, "MOVE of a folder with content", r, http.StatusForbidden)
			if d := diffSnapshots(before, e.b.snapshot(t, keyPrefix)); d != "" {
				t.Errorf("the refused MOVE changed S3: %s", d)
			}
			// An empty folder onto an existing name: 412 with Overwrite F, 403 with T.
			expect(t, "MKCOL Empty", e.alice(t, "MKCOL", dir+"Empty", nil, nil), http.StatusCreated)
			expect(t, "MOVE Empty onto Projects, F", e.alice(t, "MOVE", dir+"Empty", map[string]string{"Destination": e.URL + dir + "Projects", "Overwrite": "F"}, nil), http.StatusPreconditionFailed)
			expect(t, "MOVE Empty onto Projects, T", e.alice(t, "MOVE", dir+"Empty", map[string]string{"Destination": e.URL + dir + "Projects", "Overwrite": "T"}, nil), http.StatusForbidden)
			if got, ok := e.getS3(t, keyPrefix+"Projects/a.txt"); !ok || string(got) != "a" {
				t.Errorf("Projects/a.txt after the refused moves: %q, %v", got, ok)
			}
		})
		t.Run("an uploaded HTML file is never served as a page of the gateway's origin", func(t *testing.T) {
			_, dir := e.caseDir(t)
			page := []byte(`<html><script>fetch("/app-passwords",{method:"POST"})</script></html>`)
			expect(t, "PUT evil.html", e.alice(t, http.MethodPut, dir+"evil.html", map[string]string{"Content-Type": "text/html"}, page), http.StatusCreated)
			for _, m := range []string{http.MethodGet, http.MethodHead} {
				r := e.alice(t, m, dir+"evil.html", nil, nil)
				expect(t, m+" evil.html", r, http.StatusOK)
				if csp := r.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "sandbox") {
					t.Errorf("%s: Content-Security-Policy = %q, want a sandbox", m, csp)
				}
				if r.Header.Get("X-Content-Type-Options") != "nosniff" {
					t.Errorf("%s: no X-Content-Type-Options: nosniff", m)
				}
				if !strings.HasPrefix(r.Header.Get("Content-Disposition"), "attachment") {
					t.Errorf("%s: Content-Disposition = %q, want attachment", m, r.Header.Get("Content-Disposition"))
				}
			}
		})
	})
}

// deadPropNamed reads one property of path with a Depth 0 PROPFIND.
func (e *davEnv) deadPropNamed(t *testing.T, path, space, local string) string {
	t.Helper()
	body := `<D:propfind xmlns:D="DAV:"><D:prop><x:` + local + ` xmlns:x="` + space + `"/></D:prop></D:propfind>`
	r := e.alice(t, "PROPFIND", path, map[string]string{"Depth": "0"}, []byte(body))
	expect(t, "PROPFIND of "+local+" on "+path, r, http.StatusMultiStatus)
	ms := parseMultistatus(t, r.Body)
	if len(ms) != 1 {
		t.Fatalf("PROPFIND Depth 0 of %s: %d responses", path, len(ms))
	}
	return ms[0].Props[space+" "+local].Text
}
