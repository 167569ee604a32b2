package tests

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Folder moves for rclone users: davgw refuses a folder MOVE with 403 (S3
// has no folder rename), and rclone's webdav backend does not fall back on
// its own, so `rclone move dav:a dav:b` fails. With --disable DirMove
// rclone moves the files one by one (each a server-side MOVE, i.e. an S3
// CopyObject and DeleteObject). docs/clients/rclone.md tells users so.

// movedTree is the folder moved: files in nested folders, one of them
// larger than the gateway's part size (stored in several parts), and an
// empty folder.
var movedTree = []srcFile{
	{"top.txt", 1234, time.Date(2022, 5, 6, 7, 8, 9, 0, time.UTC)},
	{"sub/big.bin", gatewayPartSize + 1, time.Date(2021, 7, 4, 12, 0, 1, 0, time.UTC)},
	{"sub/deeper/note.md", 10_000, time.Date(2023, 10, 11, 12, 13, 14, 0, time.UTC)},
}

// TestRcloneFolderMoves runs rclone 1.76's move and moveto of a folder on
// every back end: without --disable DirMove they fail with 403 and change
// nothing; with it every file arrives byte for byte, with its
// modification time, as a server-side copy, and no file stays at the
// source. rclone leaves the source's root folder (move
// --delete-empty-src-dirs) or all its now empty folders (moveto, which
// has no such flag): rclone rmdir or rmdirs removes them.
func TestRcloneFolderMoves(t *testing.T) {
	bin, err := toolPath("DAVGW_RCLONE176", "rclone", rcloneTestsVersion)
	requireTool(t, err)
	src := t.TempDir()
	for _, f := range movedTree {
		writeRandomFile(t, filepath.Join(src, f.rel), f.size, f.mtime)
	}
	if err := os.MkdirAll(filepath.Join(src, "sub", "empty"), 0o755); err != nil {
		t.Fatal(err)
	}
	forEachBackend(t, backendNames, func(t *testing.T, e *davEnv) {
		keyPrefix, dir := e.caseDir(t)
		rc := newRcloneRunner(t, bin, e.URL+dir, "owncloud")
		rc.run(t, "copy", "--create-empty-src-dirs", src, "dav:a")
		sameTree(t, e, src, keyPrefix+"a/")
		if err := e.gw.WritePending(t.Context()); err != nil { // the kept times
			t.Fatal(err)
		}

		for _, cmd := range []string{"move", "moveto"} {
			t.Run("rclone "+cmd+" of a folder without --disable DirMove fails with 403 and changes nothing", func(t *testing.T) {
				before := e.b.snapshot(t, keyPrefix)
				out, err := rc.try(cmd, "dav:a", "dav:b")
				if err == nil {
					t.Fatalf("rclone %s dav:a dav:b succeeded, want the folder MOVE refused:\n%s", cmd, tail(out, 3000))
				}
				if !strings.Contains(out, "DirMove MOVE call failed: Forbidden: 403 Forbidden") {
					t.Errorf("rclone %s output does not show the 403 of the folder MOVE:\n%s", cmd, tail(out, 3000))
				}
				if d := diffSnapshots(before, e.b.snapshot(t, keyPrefix)); d != "" {
					t.Errorf("a refused folder move changed S3: %s", d)
				}
			})
		}

		// moveFolder runs one rclone command that moves folder from to
		// folder to, checks S3 and the listing, then removes the folders
		// rclone leaves behind with cleanup.
		moveFolder := func(t *testing.T, from, to string, emptyDirMoves bool, move, cleanup []string) {
			t.Helper()
			mark := e.b.proxy.Mark()
			out := rc.run(t, move...)
			if n := strings.Count(out, ": Moved (server-side)"); n != len(movedTree) {
				t.Errorf("rclone moved %d files server-side, want %d:\n%s", n, len(movedTree), tail(out, 3000))
			}
			calls := e.b.proxy.SinceUnder(mark, keyPrefix)
			ops := countOps(calls)
			if ops["CopyObject"] < len(movedTree) || ops["UploadPart"] != 0 {
				t.Errorf("the move made %d CopyObject and %d UploadPart calls, want a server-side copy of each of the %d files:%s",
					ops["CopyObject"], ops["UploadPart"], len(movedTree), describeCalls(calls))
			}
			for _, c := range calls {
				if c.Op() == "GetObject" && !strings.Contains(c.Key, "/.davgw-") {
					t.Errorf("the move read %s: a file move must not download it", c.Key)
				}
			}
			sameTree(t, e, src, keyPrefix+to+"/")
			if _, _, _, ok := e.headS3(t, keyPrefix+to+"/sub/empty/"); ok != emptyDirMoves {
				t.Errorf("the empty folder %s/sub/empty/ exists: %v, want %v", to, ok, emptyDirMoves)
			}
			list := rc.lsjson(t, "dav:"+to)
			for _, f := range movedTree {
				if got := list[f.rel]; !got.ModTime.Equal(f.mtime) {
					t.Errorf("%s/%s: modification time %v after the move, want %v", to, f.rel, got.ModTime.UTC(), f.mtime)
				}
			}
			for _, k := range userKeys(t, e, keyPrefix+from+"/") {
				if !strings.HasSuffix(k, "/") {
					t.Errorf("S3 still holds the file %s under the source folder", k)
				}
			}
			rc.run(t, cleanup...)
			if keys := e.b.keys(t, keyPrefix+from+"/"); len(keys) != 0 {
				t.Errorf("after rclone %s, S3 still holds %v", strings.Join(cleanup, " "), keys)
			}
			expect(t, "PROPFIND of the moved folder", e.alice(t, "PROPFIND", dir+from+"/", map[string]string{"Depth": "0"}, nil), http.StatusNotFound)
			ls := e.alice(t, "PROPFIND", dir, map[string]string{"Depth": "1"}, nil)
			expect(t, "PROPFIND of the parent", ls, http.StatusMultiStatus)
			for _, m := range parseMultistatus(t, ls.Body) {
				if strings.HasSuffix(hrefPath(t, m.Href), "/"+from+"/") {
					t.Errorf("the parent's listing still shows %s", m.Href)
				}
			}
		}

		t.Run("rclone move --disable DirMove --delete-empty-src-dirs moves every file; rclone rmdir removes the source folder it leaves", func(t *testing.T) {
			moveFolder(t, "a", "b", true,
				[]string{"move", "--disable", "DirMove", "--delete-empty-src-dirs", "--create-empty-src-dirs", "dav:a", "dav:b"},
				[]string{"rmdir", "dav:a"})
		})
		t.Run("rclone moveto --disable DirMove moves every file; rclone rmdirs removes the empty source folders it leaves", func(t *testing.T) {
			moveFolder(t, "b", "c", false,
				[]string{"moveto", "--disable", "DirMove", "dav:b", "dav:c"},
				[]string{"rmdirs", "dav:b"})
		})
	})
}
