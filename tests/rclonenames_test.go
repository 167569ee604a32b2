package tests

import (
	"bytes"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// rcloneNames are names from rclone's own encoding list (FsEncoding) that
// a Linux file system can hold, with the S3 keys docs/names.md gives them:
// rclone's local backend reads them raw, and its webdav backend sends them
// raw (percent-encoded), as it does to rclone serve webdav.
var rcloneNames = []nameCase{
	{"invalid utf-8\xfe", "invalid utf-8‛FE"},
	{"\xc3", "‛C3"},
	{"cr\rlf\nname", "cr‛0Dlf‛0Aname"},
	{"\tleading HT", "‛09leading HT"},
	{"trailing VT\v", "trailing VT‛0B"},
	{`back\slash`, "back‛5Cslash"},
	{"quote‛rune", "quote‛‛rune"},
	{" leading space", ""},
	{"trailing dot.", ""},
	{"punctuation !#$%&'()*+,-.:;<=>?@[]^_`{|}~", ""},
	{"ｆｕｌｌｗｉｄｔｈ", ""},
}

// TestRclone176CopiesNamesFromItsEncodingList: on every back end, rclone
// 1.76 copies files with those names to davgw (S3 then holds each under
// its documented key), lists them, copies them back byte for byte under
// the same names, and purges the folder, which leaves nothing in S3.
func TestRclone176CopiesNamesFromItsEncodingList(t *testing.T) {
	bin, err := toolPath("DAVGW_RCLONE176", "rclone", rcloneTestsVersion)
	requireTool(t, err)
	src := t.TempDir()
	for _, c := range rcloneNames {
		if err := os.WriteFile(filepath.Join(src, c.name), []byte("content of "+c.name), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(src, "folder\xfe"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "folder\xfe", "inner\r"), []byte("inner"), 0o644); err != nil {
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
				if got, ok := e.getS3(t, keyPrefix+"names/folder‛FE/inner‛0D"); !ok || string(got) != "inner" {
					t.Errorf("S3 holds %q (exists=%v) under names/folder‛FE/inner‛0D", got, ok)
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
				rc.run(t, "purge", "dav:names")
				if keys := e.b.keys(t, keyPrefix+"names/"); len(keys) != 0 {
					t.Errorf("rclone purge left %q", keys)
				}
				expect(t, "PROPFIND of the purged folder", e.alice(t, "PROPFIND", dir+"names/", map[string]string{"Depth": "0"}, nil), http.StatusNotFound)
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
