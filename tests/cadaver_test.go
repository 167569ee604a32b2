package tests

import (
	"context"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestCadaver drives Debian's cadaver (neon) through a scripted session on
// every back end: put, get, propset, propget, lock, a put under its own
// lock, unlock, and a refused folder rename. cadaver reads the credentials
// from ~/.netrc, so HOME is a temporary folder holding one.
func TestCadaver(t *testing.T) {
	bin, err := toolPath("DAVGW_CADAVER", "cadaver", "")
	requireTool(t, err)
	forEachBackend(t, backendNames, func(t *testing.T, e *davEnv) {
		keyPrefix, dir := e.caseDir(t)
		home := t.TempDir()
		u, _ := url.Parse(e.URL)
		netrc := "machine " + u.Hostname() + "\nlogin alice\npassword " + testUsers["alice"] + "\n"
		if err := os.WriteFile(filepath.Join(home, ".netrc"), []byte(netrc), 0o600); err != nil {
			t.Fatal(err)
		}
		work := t.TempDir()
		if err := os.WriteFile(filepath.Join(work, "local.txt"), []byte("hello from cadaver\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(work, "second.txt"), []byte("written under the lock\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		script := strings.Join([]string{
			"put local.txt remote.txt",
			"get remote.txt back.txt",
			"propset remote.txt colour blue",
			"propget remote.txt colour",
			"lock remote.txt",
			"put second.txt remote.txt",
			"discover remote.txt",
			"unlock remote.txt",
			"mkcol folder",
			"put local.txt folder/inside.txt",
			"move folder renamed",
			"mkcol empty",
			"move empty renamed-empty",
			"ls",
			"quit",
		}, "\n") + "\n"

		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, bin, e.URL+dir)
		cmd.Dir = work
		cmd.Env = append(os.Environ(), "HOME="+home)
		cmd.Stdin = strings.NewReader(script)
		outBytes, err := cmd.CombinedOutput()
		out := string(outBytes)
		if err != nil {
			t.Fatalf("cadaver: %v\n%s", err, out)
		}
		defer func() {
			if t.Failed() {
				t.Logf("cadaver session:\n%s", out)
			}
		}()

		for _, want := range []struct{ what, text string }{
			{"put", "Uploading local.txt to `" + dir + "remote.txt':"},
			{"get", "Downloading `" + dir + "remote.txt' to back.txt:"},
			{"propset", "Setting property on `remote.txt':"},
			{"lock", "Locking `remote.txt':"},
			{"put under the lock", "Uploading second.txt to `" + dir + "remote.txt':"},
			{"unlock", "Unlocking `remote.txt':"},
			{"mkcol", "Creating `folder':"},
		} {
			i := strings.Index(out, want.text)
			if i < 0 {
				t.Errorf("%s: cadaver did not print %q", want.what, want.text)
				continue
			}
			line := out[i:]
			if j := strings.IndexByte(line, '\n'); j >= 0 {
				line = line[:j]
			}
			if !strings.Contains(line, "succeeded") {
				t.Errorf("%s: %s", want.what, line)
			}
		}
		if !strings.Contains(out, "Value of colour is: blue") {
			t.Errorf("propget: cadaver did not print the value set by propset")
		}
		if strings.Contains(out, "Discovering locks on `remote.txt': no locks found") {
			t.Errorf("discover: cadaver found no lock on remote.txt while it held one (PROPFIND of DAV:lockdiscovery)")
		}
		if !strings.Contains(out, "Moving `"+dir+"folder' to `"+dir+"renamed':  failed:") ||
			!strings.Contains(out, "403 Forbidden") {
			t.Errorf("move of a folder with content: want a 403 failure in cadaver's output")
		}
		if !strings.Contains(out, "Moving `"+dir+"empty' to `"+dir+"renamed-empty':  succeeded") {
			t.Errorf("move of an empty folder (what a file manager does after \"New folder\"): want success")
		}
		if _, _, _, ok := e.headS3(t, keyPrefix+"renamed-empty/"); !ok {
			t.Error("the renamed empty folder has no marker")
		}
		if keys := userKeys(t, e, keyPrefix+"empty/"); len(keys) != 0 {
			t.Errorf("the renamed empty folder left %v behind", keys)
		}
		if got, err := os.ReadFile(filepath.Join(work, "back.txt")); err != nil || string(got) != "hello from cadaver\n" {
			t.Errorf("get wrote %q (%v)", got, err)
		}
		if got, _ := e.getS3(t, keyPrefix+"remote.txt"); string(got) != "written under the lock\n" {
			t.Errorf("S3 remote.txt holds %q, want the put made under the lock", got)
		}
		if _, _, _, ok := e.headS3(t, keyPrefix+"folder/"); !ok {
			t.Error("the folder marker is gone after the refused move")
		}
		if keys := userKeys(t, e, keyPrefix+"renamed/"); len(keys) != 0 {
			t.Errorf("the refused move created %v", keys)
		}
		// After unlock, anyone may write again.
		expect(t, "PUT after cadaver's unlock", e.alice(t, "PUT", dir+"remote.txt", nil, []byte("free")), 204)
	})
}
