package tests

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// What the Linux mount tests (tests/mount_rclone_test.go and
// tests/mount_davfs2_test.go) share: finding out whether a folder is a
// mount point, running the mount tools with bounded time, and comparing a
// mounted tree with the local model of what it should hold.

// mountTimeout bounds every mount, unmount and wait for a FUSE daemon.
const mountTimeout = 2 * time.Minute

// requireFUSE fails (or skips outside CI) unless this process can mount
// FUSE file systems: /dev/fuse and root.
func requireFUSE(t *testing.T) {
	t.Helper()
	if _, err := os.Stat("/dev/fuse"); err != nil {
		requireTool(t, fmt.Errorf("%w: /dev/fuse: %v", errToolMissing, err))
	}
	if os.Geteuid() != 0 {
		requireTool(t, fmt.Errorf("%w: mounting needs root (euid %d)", errToolMissing, os.Geteuid()))
	}
}

// isMounted reports whether dir is a mount point, from /proc/self/mountinfo.
func isMounted(dir string) (bool, error) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return false, err
	}
	for line := range strings.Lines(string(b)) {
		f := strings.Fields(line)
		if len(f) > 4 && unescapeMountinfo(f[4]) == dir {
			return true, nil
		}
	}
	return false, nil
}

// unescapeMountinfo undoes the octal escapes (\040 for a space) of a
// mountinfo field.
func unescapeMountinfo(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// waitMount polls until dir's mount state is want, alive reports a dead
// daemon, or the timeout passes.
func waitMount(dir string, want bool, alive func() error) error {
	deadline := time.Now().Add(mountTimeout)
	for {
		got, err := isMounted(dir)
		if err != nil {
			return err
		}
		if got == want {
			return nil
		}
		if alive != nil {
			if err := alive(); err != nil {
				return err
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: still mounted=%v after %v", dir, got, mountTimeout)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// runBounded runs a tool to the end within mountTimeout and returns its
// combined output.
func runBounded(bin string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), mountTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
	if ctx.Err() != nil {
		err = fmt.Errorf("%w (after %v)", ctx.Err(), mountTimeout)
	}
	return string(out), err
}

// lazyUnmount detaches dir however busy it is: the last resort of a
// cleanup, so that t.TempDir's removal never walks into a mount.
func lazyUnmount(t testing.TB, dir string) {
	if m, err := isMounted(dir); err != nil || !m {
		return
	}
	if out, err := runBounded("umount", "-l", dir); err != nil {
		t.Errorf("umount -l %s: %v\n%s", dir, err, out)
	}
}

// entry is what a listing shows of one name.
type entry struct {
	dir  bool
	size int64
}

// listTree walks root and returns every name below it (slash-separated,
// relative) with its type and size; skip names are left out.
func listTree(root string, skip ...string) (map[string]entry, error) {
	out := map[string]entry{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if rel == "." {
			return nil
		}
		rel = filepath.ToSlash(rel)
		for _, s := range skip {
			if rel == s {
				if d.IsDir() {
					return filepath.SkipDir
				}
				return nil
			}
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		e := entry{dir: d.IsDir()}
		if !e.dir {
			e.size = info.Size()
		}
		out[rel] = e
		return nil
	})
	return out, err
}

// sameListing fails unless the mounted tree lists exactly what the model
// tree holds, names, types and sizes.
func sameListing(t *testing.T, mounted, model string, skip ...string) {
	t.Helper()
	got, err := listTree(mounted, skip...)
	if err != nil {
		t.Fatalf("list the mount %s: %v", mounted, err)
	}
	want, err := listTree(model)
	if err != nil {
		t.Fatal(err)
	}
	var diff []string
	for n, w := range want {
		if g, ok := got[n]; !ok {
			diff = append(diff, "missing "+n)
		} else if g != w {
			diff = append(diff, fmt.Sprintf("%s: dir=%v size=%d, want dir=%v size=%d", n, g.dir, g.size, w.dir, w.size))
		}
	}
	for n := range got {
		if _, ok := want[n]; !ok {
			diff = append(diff, "unexpected "+n)
		}
	}
	if len(diff) > 0 {
		sort.Strings(diff)
		t.Fatalf("the mount lists %d names, the model %d; differences:\n%s", len(got), len(want), strings.Join(diff, "\n"))
	}
}

// writeAt opens path for reading and writing (no truncation), writes p at
// off and closes it: an edit in place as an editor or a database does it.
func writeAt(path string, off int64, p []byte) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	if _, err := f.WriteAt(p, off); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// onBoth applies the same file-system change to the mount and to the model.
func onBoth(t *testing.T, mounted, model string, what string, op func(root string) error) {
	t.Helper()
	if err := op(mounted); err != nil {
		t.Fatalf("%s in the mount: %v", what, err)
	}
	if err := op(model); err != nil {
		t.Fatalf("%s in the model: %v", what, err)
	}
}

// errnoOf returns the errno inside err, 0 if none.
func errnoOf(err error) syscall.Errno {
	var e syscall.Errno
	if errors.As(err, &e) {
		return e
	}
	return 0
}

// steps runs the steps of one scenario in order as subtests and stops at
// the first that fails, since each builds on the last.
type steps struct {
	t      *testing.T
	failed bool
}

func (s *steps) run(name string, fn func(t *testing.T)) {
	if s.failed {
		return
	}
	if !s.t.Run(name, fn) {
		s.failed = true
	}
}
