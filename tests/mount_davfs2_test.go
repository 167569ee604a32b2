package tests

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// davfs2 (Debian's 1.6.1, mount.davfs) mounting a folder of alice's: the
// kernel-side WebDAV file system of Linux desktops. davfs2 LOCKs a file it
// opens for writing, keeps changes in its cache and uploads them after
// delay_upload or at the unmount, which waits for the uploads.

// davfs2BufSize is the davfs2.conf buf_size (KiB) of the test mounts and
// docs/clients/linux.md. With the default of 16, davfs2 refuses every
// FUSE READDIR larger than its buffer with EINVAL, and recent kernels
// (6.18 here) ask for as much as the caller's getdents buffer, up to
// 128 KiB: glibc's readdir asks 32 KiB, so `ls` fails. Above 128 every
// listing works.
const davfs2BufSize = 256

// davfs2Mount is a running mount.davfs daemon the test started.
type davfs2Mount struct {
	dir string
	pid int // the daemon, from its pid file
}

// startDavfs2 mounts url at a new folder with a davfs2.conf naming a
// secrets file; extraConf lines are appended to the conf. The mount is
// taken down at cleanup whatever happens.
func startDavfs2(t *testing.T, bin, url, user, pass string, extraConf ...string) *davfs2Mount {
	t.Helper()
	// The daemon drops root for the davfs2 user: its cache folder must be
	// the davfs2 group's, and every folder above reachable.
	base, err := os.MkdirTemp("", "davgw-davfs2-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	dir, cache := filepath.Join(base, "mnt"), filepath.Join(base, "cache")
	for _, d := range []string{dir, cache} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(base, 0o755); err != nil {
		t.Fatal(err)
	}
	g, err := davfs2Group()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(cache, 0, g); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(cache, 0o775); err != nil {
		t.Fatal(err)
	}
	secrets := filepath.Join(base, "secrets")
	if err := os.WriteFile(secrets, fmt.Appendf(nil, "%s %s %s\n", url, user, pass), 0o600); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(base, "davfs2.conf")
	lines := append([]string{"secrets " + secrets, "cache_dir " + cache, "buf_size " + strconv.Itoa(davfs2BufSize)}, extraConf...)
	if err := os.WriteFile(conf, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	m := &davfs2Mount{dir: dir}
	// Cleanup order: this runs before base is removed.
	t.Cleanup(func() {
		if mounted, _ := isMounted(dir); mounted {
			if out, err := runBounded("umount", dir); err != nil {
				t.Errorf("umount %s: %v\n%s", dir, err, out)
			}
		}
		lazyUnmount(t, dir)
		if m.pid > 0 && syscall.Kill(m.pid, 0) == nil {
			_ = syscall.Kill(m.pid, syscall.SIGKILL)
		}
	})
	// mount.davfs forks its daemon and returns once the mount is up.
	if out, err := runBounded(bin, url, dir, "-o", "conf="+conf); err != nil {
		t.Fatalf("mount.davfs %s: %v\n%s", url, err, out)
	}
	pidFile := "/var/run/mount.davfs/" + strings.ReplaceAll(strings.TrimPrefix(dir, "/"), "/", "-") + ".pid"
	if b, err := os.ReadFile(pidFile); err == nil {
		m.pid, _ = strconv.Atoi(strings.TrimSpace(string(b)))
	}
	if err := waitMount(dir, true, nil); err != nil {
		t.Fatal(err)
	}
	return m
}

// davfs2Group is the gid of Debian's davfs2 group, which the daemon runs as.
func davfs2Group() (int, error) {
	g, err := user.LookupGroup("davfs2")
	if err != nil {
		return 0, fmt.Errorf("davfs2 group (Debian's davfs2 package makes it): %w", err)
	}
	return strconv.Atoi(g.Gid)
}

// unmount runs umount as a user would; umount.davfs returns when the daemon
// has uploaded every changed file and ended.
func (m *davfs2Mount) unmount(t *testing.T) {
	t.Helper()
	if out, err := runBounded("umount", m.dir); err != nil {
		t.Fatalf("umount %s: %v\n%s", m.dir, err, out)
	}
	if mounted, err := isMounted(m.dir); err != nil || mounted {
		t.Fatalf("%s still mounted (%v) after umount", m.dir, err)
	}
}

// lockDiscovery returns the active locks davgw reports on path.
func (e *davEnv) lockDiscovery(t *testing.T, path string) []activeLockOwner {
	t.Helper()
	r := e.alice(t, "PROPFIND", path, map[string]string{"Depth": "0"},
		[]byte(`<?xml version="1.0" encoding="utf-8"?><D:propfind xmlns:D="DAV:"><D:prop><D:lockdiscovery/></D:prop></D:propfind>`))
	expect(t, "PROPFIND lockdiscovery "+path, r, http.StatusMultiStatus)
	var ms struct {
		Locks []activeLockOwner `xml:"response>propstat>prop>lockdiscovery>activelock"`
	}
	if err := xml.Unmarshal(r.Body, &ms); err != nil {
		t.Fatalf("PROPFIND lockdiscovery %s: %v\n%s", path, err, r)
	}
	return ms.Locks
}

// activeLockOwner is one activelock of a lockdiscovery, with its owner.
type activeLockOwner struct {
	Owner string `xml:"owner"`
	Token string `xml:"locktoken>href"`
}

// TestDavfs2 mounts a folder of alice's with davfs2 on every back end:
// listing (with buf_size set), reading a file S3 already had, writing,
// reading back, overwriting, the LOCK davfs2 holds while a file is open
// for writing, rename, mkdir, delete, and the unmount's flush of files
// closed moments before.
func TestDavfs2(t *testing.T) {
	requireFUSE(t)
	bin, err := toolPath("DAVGW_MOUNT_DAVFS", "mount.davfs", "")
	requireTool(t, err)
	forEachBackend(t, backendNames, func(t *testing.T, e *davEnv) {
		runDavfs2Scenario(t, e, bin)
	})
}

func runDavfs2Scenario(t *testing.T, e *davEnv, bin string) {
	keyPrefix, dir := e.caseDir(t)
	seed := randBytes(100 << 10)
	e.putS3(t, keyPrefix+"seed.bin", seed, "")
	e.putS3(t, keyPrefix+"sub/", nil, "")
	e.putS3(t, keyPrefix+"gone.txt", []byte("to be deleted"), "")
	start := time.Now()
	m := startDavfs2(t, bin, e.URL+dir, "alice", testUsers["alice"])
	mnt := m.dir
	model := filepath.Join(t.TempDir(), "model")
	if err := os.MkdirAll(filepath.Join(model, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(model, "seed.bin"), seed, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(model, "gone.txt"), []byte("to be deleted"), 0o644); err != nil {
		t.Fatal(err)
	}
	big := randBytes(12 << 20) // more than one gateway part
	s := &steps{t: t}

	s.run("ls lists what S3 holds (with buf_size above 128)", func(t *testing.T) {
		out, err := exec.Command("ls", "-1A", mnt).CombinedOutput()
		if err != nil {
			t.Fatalf("ls %s: %v\n%s", mnt, err, out)
		}
		// lost+found is davfs2's own, local to the mount.
		want := []string{"gone.txt", "lost+found", "seed.bin", "sub"}
		if got := strings.Fields(string(out)); !slices.Equal(got, want) {
			t.Errorf("ls -1A = %q, want %q", got, want)
		}
		sameListing(t, mnt, model, "lost+found")
	})
	s.run("a file S3 already had reads back whole", func(t *testing.T) {
		got, err := os.ReadFile(filepath.Join(mnt, "seed.bin"))
		if err != nil || !bytes.Equal(got, seed) {
			t.Fatalf("read seed.bin: %d bytes, %v; want %d bytes", len(got), err, len(seed))
		}
	})
	s.run("written files read back, and a 12 MiB one too", func(t *testing.T) {
		onBoth(t, mnt, model, "write small.txt", func(root string) error {
			return os.WriteFile(filepath.Join(root, "small.txt"), []byte("written through davfs2\n"), 0o644)
		})
		onBoth(t, mnt, model, "write sub/big.bin", func(root string) error {
			return os.WriteFile(filepath.Join(root, "sub/big.bin"), big, 0o644)
		})
		for _, n := range []string{"small.txt", "sub/big.bin"} {
			got, err := os.ReadFile(filepath.Join(mnt, n))
			want, _ := os.ReadFile(filepath.Join(model, n))
			if err != nil || !bytes.Equal(got, want) {
				t.Errorf("read back %s: %d bytes, %v; want %d bytes", n, len(got), err, len(want))
			}
		}
	})
	s.run("a file open for writing is LOCKed in davgw, and other writers get 423", func(t *testing.T) {
		f, err := os.OpenFile(filepath.Join(mnt, "held.txt"), os.O_CREATE|os.O_WRONLY, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if _, err := f.WriteString("held open\n"); err != nil {
			t.Fatal(err)
		}
		locks := e.lockDiscovery(t, dir+"held.txt")
		if len(locks) != 1 || locks[0].Owner != "alice" || !strings.HasPrefix(locks[0].Token, "opaquelocktoken:") {
			t.Fatalf("lockdiscovery of held.txt while open = %+v, want one lock owned by alice (davfs2's lock_owner)", locks)
		}
		// WebDAV's LOCK of a missing name makes an empty file.
		if _, size, _, ok := e.headS3(t, keyPrefix+"held.txt"); !ok || size != 0 {
			t.Errorf("S3 held.txt while davfs2 holds it open: exists=%v, %d bytes; want the empty file its LOCK made", ok, size)
		}
		put := e.alice(t, http.MethodPut, dir+"held.txt", nil, []byte("another writer"))
		expect(t, "PUT held.txt without the lock token", put, http.StatusLocked)
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(model, "held.txt"), []byte("held open\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	})
	s.run("an overwrite, a rename, a mkdir and rename of an empty folder, a delete; a folder that holds files does not rename (EIO)", func(t *testing.T) {
		onBoth(t, mnt, model, "overwrite small.txt shorter", func(root string) error {
			return os.WriteFile(filepath.Join(root, "small.txt"), []byte("overwritten\n"), 0o644)
		})
		onBoth(t, mnt, model, "rename seed.bin", func(root string) error {
			return os.Rename(filepath.Join(root, "seed.bin"), filepath.Join(root, "sub/seed-renamed.bin"))
		})
		onBoth(t, mnt, model, "mkdir made", func(root string) error {
			return os.Mkdir(filepath.Join(root, "made"), 0o755)
		})
		onBoth(t, mnt, model, "rename the empty folder made", func(root string) error {
			return os.Rename(filepath.Join(root, "made"), filepath.Join(root, "made-renamed"))
		})
		// davgw answers 403 to a MOVE of a folder with content.
		if err := os.Rename(filepath.Join(mnt, "sub"), filepath.Join(mnt, "sub-renamed")); errnoOf(err) != syscall.EIO {
			t.Errorf("rename of a folder that holds files: %v (errno %d), want EIO", err, errnoOf(err))
		}
		onBoth(t, mnt, model, "rm gone.txt", func(root string) error {
			return os.Remove(filepath.Join(root, "gone.txt"))
		})
		sameListing(t, mnt, model, "lost+found")
		if _, ok := e.getS3(t, keyPrefix+"gone.txt"); ok {
			t.Errorf("gone.txt is still in S3 after rm")
		}
		if _, ok := e.getS3(t, keyPrefix+"sub/seed-renamed.bin"); !ok {
			t.Errorf("sub/seed-renamed.bin is not in S3 after the rename")
		}
	})
	s.run("a file closed just before the unmount is in S3 when umount returns, and no lock is left", func(t *testing.T) {
		last := []byte("the last write, closed right before umount\n")
		onBoth(t, mnt, model, "write last.txt", func(root string) error {
			return os.WriteFile(filepath.Join(root, "last.txt"), last, 0o644)
		})
		m.unmount(t)
		sameTree(t, e, model, keyPrefix)
		for _, k := range []string{"sub/", "made-renamed/"} {
			if _, ok := e.headS3Marker(t, keyPrefix+k); !ok {
				t.Errorf("no folder marker %s%s in S3", keyPrefix, k)
			}
		}
		for _, k := range []string{"made/", "lost+found/"} {
			if _, ok := e.headS3Marker(t, keyPrefix+k); ok {
				t.Errorf("S3 holds %s%s", keyPrefix, k)
			}
		}
		for _, n := range []string{"held.txt", "last.txt", "small.txt"} {
			if locks := e.lockDiscovery(t, dir+n); len(locks) != 0 {
				t.Errorf("%s still locked after the unmount: %+v", n, locks)
			}
		}
		if ups := e.b.openUploads(t, keyPrefix); len(ups) != 0 {
			t.Errorf("open multipart uploads: %v", ups)
		}
	})
	if !s.failed {
		report(t, "davfs2 on %s: ls, read, write (12 MiB), LOCK, overwrite, renames, mkdir, rm, flush at umount: %.1f s",
			e.b.name, time.Since(start).Seconds())
	}
}
