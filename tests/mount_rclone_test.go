package tests

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// rclone mount (v1.76.0, FUSE through Debian's fusermount3) of a webdav
// remote pointing at davgw, with --vfs-cache-mode writes, used as a Linux
// user uses a mounted folder: cp -r, listings, edits in place, renames,
// mkdir, rm -r; after the unmount S3 must hold exactly the model tree.

// rcloneMountSmallFiles and rcloneMountBigSize shape the copied tree.
const (
	rcloneMountSmallFiles = 50
	rcloneMountBigSize    = 40 << 20 // several gateway parts: multipart through davgw
)

// rcloneMountWriteBack is --vfs-write-back: how long rclone waits after a
// close before uploading (the default, 5 s, only makes the test slower).
const rcloneMountWriteBack = "1s"

// rcloneMount is a running `rclone mount` the test started.
type rcloneMount struct {
	dir        string
	proc       *process
	rcURL      string // rclone's remote control, for vfs/stats
	fusermount string
}

// startRcloneMount mounts remote at a new temporary folder with
// --vfs-cache-mode writes plus extra flags; cacheDir "" = a new one. The
// mount is taken down at cleanup whatever happens.
func startRcloneMount(t *testing.T, r *rcloneRunner, fusermount, remote, cacheDir string, extra ...string) *rcloneMount {
	t.Helper()
	dir := t.TempDir()
	if cacheDir == "" {
		cacheDir = t.TempDir()
	}
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	args := append([]string{"mount", remote, dir,
		"--vfs-cache-mode", "writes",
		"--cache-dir", cacheDir,
		"--rc", "--rc-addr", "127.0.0.1:" + strconv.Itoa(port), "--rc-no-auth",
		"-v", "--retries", "1", "--low-level-retries", "2",
	}, extra...)
	p, err := startProcess("rclone mount", dir, r.bin, r.env, args...)
	if err != nil {
		t.Fatal(err)
	}
	m := &rcloneMount{dir: dir, proc: p, rcURL: "http://127.0.0.1:" + strconv.Itoa(port) + "/", fusermount: fusermount}
	// Cleanup order: this runs before t.TempDir's removal of dir.
	t.Cleanup(func() {
		if mounted, _ := isMounted(dir); mounted {
			if out, err := runBounded(fusermount, "-uz", dir); err != nil {
				t.Errorf("fusermount3 -uz %s: %v\n%s", dir, err, out)
			}
		}
		p.stop(10 * time.Second)
		lazyUnmount(t, dir)
	})
	if err := waitMount(dir, true, p.exited); err != nil {
		t.Fatalf("rclone mount: %v\n%s", err, p.log.String())
	}
	return m
}

// settle waits until rclone has nothing left to upload and pending, which
// lists what S3 still lacks, returns nothing. An idle upload queue alone
// can be seen too early: rclone queues a file's upload when FUSE's
// RELEASE arrives, a moment after close(2) has returned.
func (m *rcloneMount) settle(t *testing.T, pending func() []string) {
	t.Helper()
	deadline := time.Now().Add(mountTimeout)
	for {
		inProgress, queued, err := m.uploads()
		var left []string
		if err == nil && inProgress == 0 && queued == 0 {
			if left = pending(); len(left) == 0 {
				return
			}
		}
		if e := m.proc.exited(); e != nil {
			t.Fatal(e)
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v rclone has %d uploads in progress, %d queued (%v), and S3 lacks:\n%s\n%s",
				mountTimeout, inProgress, queued, err, strings.Join(left, "\n"), m.proc.log.String())
		}
		time.Sleep(300 * time.Millisecond)
	}
}

// settleTree waits until S3 under keyPrefix holds exactly the model tree.
func (m *rcloneMount) settleTree(t *testing.T, e *davEnv, model, keyPrefix string) {
	t.Helper()
	m.settle(t, func() []string { return treeDiff(t, e, model, keyPrefix) })
}

func (m *rcloneMount) uploads() (inProgress, queued int, err error) {
	resp, err := http.Post(m.rcURL+"vfs/stats", "application/json", strings.NewReader("{}"))
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, 0, fmt.Errorf("vfs/stats: %s", resp.Status)
	}
	var st struct {
		DiskCache *struct {
			UploadsInProgress int `json:"uploadsInProgress"`
			UploadsQueued     int `json:"uploadsQueued"`
		} `json:"diskCache"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return 0, 0, err
	}
	if st.DiskCache == nil {
		return 0, 0, fmt.Errorf("vfs/stats has no diskCache (is --vfs-cache-mode set?)")
	}
	return st.DiskCache.UploadsInProgress, st.DiskCache.UploadsQueued, nil
}

// unmount runs fusermount3 -u as a user would and waits for rclone to exit.
func (m *rcloneMount) unmount(t *testing.T) {
	t.Helper()
	if out, err := runBounded(m.fusermount, "-u", m.dir); err != nil {
		t.Fatalf("fusermount3 -u %s: %v\n%s", m.dir, err, out)
	}
	select {
	case <-m.proc.done:
	case <-time.After(mountTimeout):
		t.Fatalf("rclone mount still running %v after the unmount\n%s", mountTimeout, m.proc.log.String())
	}
	if mounted, err := isMounted(m.dir); err != nil || mounted {
		t.Fatalf("%s still mounted (%v) after fusermount3 -u", m.dir, err)
	}
}

// rcloneMountTools finds rclone 1.76 and fusermount3 (or fails under CI).
func rcloneMountTools(t *testing.T) (rclone, fusermount string) {
	t.Helper()
	requireFUSE(t)
	rclone, err := toolPath("DAVGW_RCLONE176", "rclone", "v1.76.0")
	requireTool(t, err)
	fusermount, err = toolPath("DAVGW_FUSERMOUNT3", "fusermount3", "")
	requireTool(t, err)
	// rclone finds fusermount3 in $PATH.
	if _, err := exec.LookPath("fusermount3"); err != nil {
		requireTool(t, fmt.Errorf("%w: fusermount3 not in $PATH (rclone mount runs it)", errToolMissing))
	}
	return rclone, fusermount
}

// TestRcloneMount mounts a folder of alice's with rclone mount on every
// back end and works in it; S3 is compared with the model after the
// unmount. On versitygw it also checks two things users trip over:
// folders that hold files rename only with --disable DirMove, and a file
// closed just before the unmount reaches S3 only at the next mount.
func TestRcloneMount(t *testing.T) {
	bin, fusermount := rcloneMountTools(t)
	src := t.TempDir()
	for i := range rcloneMountSmallFiles {
		size := (i * 1237) % (64 << 10) // 0 B (i = 0) up to 64 KiB
		writeRandomFile(t, filepath.Join(src, fmt.Sprintf("docs/part%d/f%02d.txt", i%5, i)), size, time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC))
	}
	writeRandomFile(t, filepath.Join(src, "media/big.bin"), rcloneMountBigSize, time.Date(2024, 6, 1, 0, 0, 0, 0, time.UTC))

	forEachBackend(t, backendNames, func(t *testing.T, e *davEnv) {
		t.Run("a copied tree, edited, renamed and deleted in the mount, is what S3 holds after the unmount", func(t *testing.T) {
			runRcloneMountScenario(t, e, bin, fusermount, src)
		})
		if e.b.name != "versitygw" {
			return // the rest is rclone's behaviour, the same on every store
		}
		t.Run("a folder that holds files renames with --disable DirMove and fails with EIO without it", func(t *testing.T) {
			runRcloneMountFolderRename(t, e, bin, fusermount)
		})
		t.Run("a file closed just before the unmount reaches S3 at the next mount with the same cache", func(t *testing.T) {
			runRcloneMountPendingUpload(t, e, bin, fusermount)
		})
	})
}

func runRcloneMountScenario(t *testing.T, e *davEnv, bin, fusermount, src string) {
	keyPrefix, dir := e.caseDir(t)
	slug := strings.Trim(strings.TrimPrefix(dir, "/dav/"), "/")
	r := newRcloneRunner(t, bin, e.URL+"/dav/", "owncloud")
	model := filepath.Join(t.TempDir(), "model")
	if out, err := exec.Command("cp", "-a", src, model).CombinedOutput(); err != nil {
		t.Fatalf("cp the source to the model: %v\n%s", err, out)
	}
	start := time.Now()
	m := startRcloneMount(t, r, fusermount, "dav:"+slug, "", "--vfs-write-back", rcloneMountWriteBack)
	mnt := m.dir
	s := &steps{t: t}

	s.run("cp -r of 50 small files and a 40 MiB file reaches S3 byte for byte", func(t *testing.T) {
		if out, err := runBounded("cp", "-r", src+"/.", mnt+"/"); err != nil {
			t.Fatalf("cp -r into the mount: %v\n%s", err, out)
		}
		m.settleTree(t, e, model, keyPrefix)
	})
	s.run("the mount lists every name with its size", func(t *testing.T) {
		sameListing(t, mnt, model)
	})
	s.run("an edit in place of a small and of the big file is uploaded whole", func(t *testing.T) {
		onBoth(t, mnt, model, "edit f07.txt", func(root string) error {
			return writeAt(filepath.Join(root, "docs/part2/f07.txt"), 10, []byte("EDITED IN PLACE"))
		})
		patch := randBytes(4096)
		onBoth(t, mnt, model, "edit big.bin at 20 MiB", func(root string) error {
			return writeAt(filepath.Join(root, "media/big.bin"), 20<<20, patch)
		})
		m.settleTree(t, e, model, keyPrefix)
	})
	s.run("a file renames within its folder and into another", func(t *testing.T) {
		onBoth(t, mnt, model, "rename f11.txt", func(root string) error {
			return os.Rename(filepath.Join(root, "docs/part1/f11.txt"), filepath.Join(root, "docs/part1/f11-renamed.txt"))
		})
		onBoth(t, mnt, model, "move f12.txt to media/", func(root string) error {
			return os.Rename(filepath.Join(root, "docs/part2/f12.txt"), filepath.Join(root, "media/f12-moved.txt"))
		})
		m.settleTree(t, e, model, keyPrefix)
	})
	s.run("an empty folder is made and renamed", func(t *testing.T) {
		onBoth(t, mnt, model, "mkdir new-folder", func(root string) error {
			return os.Mkdir(filepath.Join(root, "new-folder"), 0o755)
		})
		if _, ok := e.headS3Marker(t, keyPrefix+"new-folder/"); !ok {
			t.Fatalf("mkdir made no folder marker %snew-folder/ in S3", keyPrefix)
		}
		onBoth(t, mnt, model, "rename new-folder", func(root string) error {
			return os.Rename(filepath.Join(root, "new-folder"), filepath.Join(root, "renamed-folder"))
		})
		if _, ok := e.headS3Marker(t, keyPrefix+"renamed-folder/"); !ok {
			t.Errorf("no folder marker %srenamed-folder/ in S3 after the rename", keyPrefix)
		}
		if _, ok := e.headS3Marker(t, keyPrefix+"new-folder/"); ok {
			t.Errorf("the old folder marker %snew-folder/ is still in S3", keyPrefix)
		}
	})
	s.run("rm of a file and rm -r of a folder of files delete them in S3", func(t *testing.T) {
		onBoth(t, mnt, model, "rm f20.txt", func(root string) error {
			return os.Remove(filepath.Join(root, "docs/part0/f20.txt"))
		})
		onBoth(t, mnt, model, "rm -r docs/part3", func(root string) error {
			return os.RemoveAll(filepath.Join(root, "docs/part3"))
		})
		if keys := userKeys(t, e, keyPrefix+"docs/part3/"); len(keys) != 0 {
			t.Errorf("S3 still holds %v after rm -r", keys)
		}
		sameListing(t, mnt, model)
	})
	s.run("after the unmount S3 holds exactly the model tree and no open upload", func(t *testing.T) {
		m.settleTree(t, e, model, keyPrefix)
		m.unmount(t)
		sameTree(t, e, model, keyPrefix)
		if _, ok := e.headS3Marker(t, keyPrefix+"renamed-folder/"); !ok {
			t.Errorf("the empty folder renamed-folder/ is gone from S3")
		}
		if ups := e.b.openUploads(t, keyPrefix); len(ups) != 0 {
			t.Errorf("open multipart uploads: %v", ups)
		}
	})
	if !s.failed {
		report(t, "rclone mount on %s: %d small files + %d MiB, edits, renames, mkdir, rm -r: %.1f s",
			e.b.name, rcloneMountSmallFiles, rcloneMountBigSize>>20, time.Since(start).Seconds())
	}
}

// headS3Marker reports whether a folder marker key exists (with its size).
func (e *davEnv) headS3Marker(t *testing.T, key string) (int64, bool) {
	t.Helper()
	_, size, _, ok := e.headS3(t, key)
	return size, ok
}

func runRcloneMountFolderRename(t *testing.T, e *davEnv, bin, fusermount string) {
	keyPrefix, dir := e.caseDir(t)
	slug := strings.Trim(strings.TrimPrefix(dir, "/dav/"), "/")
	files := []string{"a.txt", "b.txt", "sub/c.txt"}
	// made/ and made/sub/ have folder markers, as MKCOL (mkdir in a
	// mount, cp -r into it) leaves them; bare/ and bare/sub/ have none, as
	// when another S3 tool wrote the files.
	e.putS3(t, keyPrefix+"made/", nil, "")
	e.putS3(t, keyPrefix+"made/sub/", nil, "")
	for _, folder := range []string{"made/", "bare/"} {
		for _, n := range files {
			e.putS3(t, keyPrefix+folder+n, []byte("in a folder: "+n), "")
		}
	}
	movedAll := func(t *testing.T, from, to string) {
		t.Helper()
		for _, n := range files {
			if got, ok := e.getS3(t, keyPrefix+to+n); !ok || string(got) != "in a folder: "+n {
				t.Errorf("S3 %s%s = %q (exists=%v)", to, n, got, ok)
			}
		}
		if keys := userKeys(t, e, keyPrefix+from); len(keys) != 0 {
			t.Errorf("S3 still holds %v after the rename", keys)
		}
	}
	r := newRcloneRunner(t, bin, e.URL+"/dav/", "owncloud")

	m := startRcloneMount(t, r, fusermount, "dav:"+slug, "")
	err := os.Rename(filepath.Join(m.dir, "made"), filepath.Join(m.dir, "made-renamed"))
	if errnoOf(err) != syscall.EIO {
		t.Errorf("rename of a folder that holds files: %v (errno %d), want EIO (davgw answers 403)", err, errnoOf(err))
	}
	m.unmount(t)
	if keys := userKeys(t, e, keyPrefix+"made-renamed/"); len(keys) != 0 {
		t.Errorf("the failed rename left %v in S3", keys)
	}
	if keys := userKeys(t, e, keyPrefix+"made/"); len(keys) != 2+len(files) {
		t.Errorf("after the failed rename S3 holds %v under made/, want 2 markers and %d files", keys, len(files))
	}

	m = startRcloneMount(t, r, fusermount, "dav:"+slug, "", "--disable", "DirMove")
	if err := os.Rename(filepath.Join(m.dir, "made"), filepath.Join(m.dir, "made-renamed")); err != nil {
		t.Errorf("rename with --disable DirMove: %v\n%s", err, m.proc.log.String())
	}
	// rclone moves the files one by one, then removes each source folder,
	// deepest first, and fails if one is gone: without a marker a folder
	// vanishes with its last file (S3 folders are prefixes), so the rename
	// reports ENOENT although every file moved.
	err = os.Rename(filepath.Join(m.dir, "bare"), filepath.Join(m.dir, "bare-renamed"))
	if errnoOf(err) != syscall.ENOENT {
		t.Errorf("rename of a folder without a marker, --disable DirMove: %v (errno %d), want ENOENT after moving every file (rclone's rmdir of the vanished folder; docs/clients/linux.md)", err, errnoOf(err))
	}
	m.unmount(t)
	movedAll(t, "made/", "made-renamed/")
	movedAll(t, "bare/", "bare-renamed/")
}

func runRcloneMountPendingUpload(t *testing.T, e *davEnv, bin, fusermount string) {
	keyPrefix, dir := e.caseDir(t)
	slug := strings.Trim(strings.TrimPrefix(dir, "/dav/"), "/")
	r := newRcloneRunner(t, bin, e.URL+"/dav/", "owncloud")
	cache := t.TempDir()
	body := []byte("closed a moment before the unmount")

	// A write-back delay far longer than the unmount takes.
	m := startRcloneMount(t, r, fusermount, "dav:"+slug, cache, "--vfs-write-back", "30s")
	if err := os.WriteFile(filepath.Join(m.dir, "late.txt"), body, 0o644); err != nil {
		t.Fatal(err)
	}
	m.unmount(t)
	if _, ok := e.getS3(t, keyPrefix+"late.txt"); ok {
		t.Fatalf("late.txt is in S3 although rclone was unmounted before its write-back delay (rclone now flushes at unmount: update docs/clients/linux.md)")
	}

	m = startRcloneMount(t, r, fusermount, "dav:"+slug, cache, "--vfs-write-back", rcloneMountWriteBack)
	m.settle(t, func() []string {
		if got, ok := e.getS3(t, keyPrefix+"late.txt"); !ok || string(got) != string(body) {
			return []string{fmt.Sprintf("late.txt = %q (exists=%v)", got, ok)}
		}
		return nil
	})
	m.unmount(t)
	if got, ok := e.getS3(t, keyPrefix+"late.txt"); !ok || string(got) != string(body) {
		t.Errorf("S3 late.txt after the second mount = %q (exists=%v), want %q", got, ok, body)
	}
}
