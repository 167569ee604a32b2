package tests

import (
	"bytes"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// rcloneNames are names from rclone's own encoding list (FsEncoding) that
// rclone's local backend reads from a Linux file system, with the S3 keys
// they arrive under. rclone's webdav backend sends names percent-encoded,
// a backslash raw (docs/names.md escapes it), but control characters as
// the Unicode symbols rclone keeps them as inside (CR as U+240D ␍), as it
// does to rclone serve webdav.
var rcloneNames = []nameCase{
	{"cr\rlf\nname", "cr␍lf␊name"},
	{"\tleading HT", "␉leading HT"},
	{"trailing VT\v", "trailing VT␋"},
	{"del\x7f", "del␡"},
	{`back\slash`, "back‛5Cslash"},
	{" leading space", ""},
	{"trailing dot.", ""},
	{"punctuation !#$%&'()*+,-.:;<=>?@[]^_`{|}~", ""},
	{"ｆｕｌｌｗｉｄｔｈ", ""},
}

// rcloneRawNames are names rclone's local backend cannot read as they are
// (it replaces bytes that are not UTF-8 with U+FFFD): rclone writes them
// to the remote by name (rcat), as its FsEncoding test does.
var rcloneRawNames = []nameCase{
	{"invalid utf-8\xfe", "invalid utf-8‛FE"},
	{"\xc3", "‛C3"},
	{"a\xffb\r", "a‛FFb‛0D"},
}

// TestRclone176CopiesNamesFromItsEncodingList: on every back end, rclone
// 1.76 copies files with those names to davgw (S3 then holds each under
// its documented key), lists them (a second copy transfers nothing),
// checks and copies them back byte for byte under the same names; it
// writes and reads names that are not UTF-8 by name; and its purge of the
// folder leaves nothing in S3.
func TestRclone176CopiesNamesFromItsEncodingList(t *testing.T) {
	bin, err := toolPath("DAVGW_RCLONE176", "rclone", rcloneTestsVersion)
	requireTool(t, err)
	src := t.TempDir()
	for _, c := range rcloneNames {
		if err := os.WriteFile(filepath.Join(src, c.name), []byte("content of "+c.name), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(src, "folder\r"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "folder\r", `inner\`), []byte("inner"), 0o644); err != nil {
		t.Fatal(err)
	}
	forEachBackend(t, backendNames, func(t *testing.T, e *davEnv) {
		for _, vendor := range []string{"owncloud", "other"} {
			t.Run("vendor "+vendor, func(t *testing.T) {
				keyPrefix, dir := e.caseDir(t)
				rc := newRcloneRunner(t, bin, e.URL+dir, vendor)
				first := rc.run(t, "copy", src, "dav:names")
				if c := countRclone(first); c.copied != len(rcloneNames)+1 {
					t.Errorf("rclone copy copied %d files, want %d:\n%s", c.copied, len(rcloneNames)+1, tail(first, 3000))
				}
				for _, c := range rcloneNames {
					got, ok := e.getS3(t, keyPrefix+"names/"+c.s3Key())
					if !ok || string(got) != "content of "+c.name {
						t.Errorf("S3 holds %q (exists=%v) under %q, want the file %q", got, ok, keyPrefix+"names/"+c.s3Key(), c.name)
					}
				}
				if got, ok := e.getS3(t, keyPrefix+"names/folder␍/inner‛5C"); !ok || string(got) != "inner" {
					t.Errorf("S3 holds %q (exists=%v) under names/folder␍/inner‛5C", got, ok)
				}
				// A second copy finds every file listed under its own name:
				// nothing is transferred again.
				again := rc.run(t, "copy", src, "dav:names")
				if c := countRclone(again); c.copied != 0 || c.transferred != 0 {
					t.Errorf("a second rclone copy copied %d files (transferred %d): the listing did not show them under their names\n%s", c.copied, c.transferred, tail(again, 3000))
				}
				rc.run(t, "check", src, "dav:names")
				back := t.TempDir()
				rc.run(t, "copy", "dav:names", back)
				if d := dirDiff(t, src, back); d != "" {
					t.Errorf("the copy back differs: %s", d)
				}

				for _, c := range rcloneRawNames {
					body := "content of " + c.name
					cmd := exec.Command(rc.bin, "rcat", "dav:raw/"+c.name)
					cmd.Env, cmd.Stdin = rc.env, strings.NewReader(body)
					if out, err := cmd.CombinedOutput(); err != nil {
						t.Fatalf("rclone rcat %q: %v\n%s", c.name, err, tail(string(out), 3000))
					}
					if got, ok := e.getS3(t, keyPrefix+"raw/"+c.s3Key()); !ok || string(got) != body {
						t.Errorf("S3 holds %q (exists=%v) under %q, want the file %q", got, ok, keyPrefix+"raw/"+c.s3Key(), c.name)
					}
					if got := rc.run(t, "cat", "dav:raw/"+c.name); !strings.HasSuffix(got, body) {
						t.Errorf("rclone cat %q = %q", c.name, tail(got, 500))
					}
				}
				if n := len(strings.Fields(strings.ReplaceAll(rc.run(t, "lsf", "--format", "s", "dav:raw"), "\n", " "))); n != len(rcloneRawNames) {
					t.Errorf("rclone lsf lists %d files, want %d", n, len(rcloneRawNames))
				}

				for _, f := range []string{"names", "raw"} {
					rc.run(t, "purge", "dav:"+f)
					if keys := e.b.keys(t, keyPrefix+f+"/"); len(keys) != 0 {
						t.Errorf("rclone purge left %q", keys)
					}
					expect(t, "PROPFIND of the purged folder", e.alice(t, "PROPFIND", dir+f+"/", map[string]string{"Depth": "0"}, nil), http.StatusNotFound)
				}
			})
		}
	})
}

// dirDiff compares two local trees, names and bytes; "" when equal.
func dirDiff(t *testing.T, a, b string) string {
	t.Helper()
	read := func(root string) map[string][]byte {
		out := map[string][]byte{}
		err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			body, err := os.ReadFile(p)
			rel, _ := filepath.Rel(root, p)
			out[rel] = body
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	ta, tb := read(a), read(b)
	var diff []string
	for n, body := range ta {
		if got, ok := tb[n]; !ok || !bytes.Equal(got, body) {
			diff = append(diff, "missing or different: "+strconv.Quote(n))
		}
	}
	for n := range tb {
		if _, ok := ta[n]; !ok {
			diff = append(diff, "extra: "+strconv.Quote(n))
		}
	}
	slices.Sort(diff)
	return strings.Join(diff, "; ")
}
