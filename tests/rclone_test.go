package tests

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/rand"
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// rclone (Debian's 1.60, or DAVGW_RCLONE) as a real client of the webdav
// remote, with vendor=other (no modification times, sizes only) and
// vendor=owncloud (X-OC-Mtime on PUT, oc:checksums in listings), against
// the gateway on every back end.

// rcloneVendors are the remote flavours tested; mtimes says whether rclone
// keeps modification times with that vendor.
var rcloneVendors = []struct {
	vendor string
	mtimes bool
}{{"other", false}, {"owncloud", true}}

// srcFile is one file of the source tree.
type srcFile struct {
	rel   string
	size  int
	mtime time.Time
}

// sharedTree is the big part of every source tree, written once per run
// and hard-linked into each tree.
var sharedTree = []srcFile{
	{"media/big.bin", 100 << 20, time.Date(2020, 2, 29, 23, 59, 58, 500_000_000, time.UTC)},
	{"media/mid.bin", 6<<20 + 1, time.Date(2021, 7, 4, 12, 0, 1, 0, time.UTC)},
}

// ownTree is rewritten for each run (sync changes it).
var ownTree = []srcFile{
	{"empty.txt", 0, time.Date(2019, 1, 1, 0, 0, 0, 0, time.UTC)},
	{"small.txt", 1234, time.Date(2022, 5, 6, 7, 8, 9, 250_000_000, time.UTC)},
	{"notes/readme.md", 10_000, time.Date(2023, 10, 11, 12, 13, 14, 0, time.UTC)},
}

// TestRclone runs rclone copy, sync (twice), check --download, lsjson,
// moveto, deletefile and purge through the gateway and checks S3 after each.
func TestRclone(t *testing.T) {
	bin, err := toolPath("DAVGW_RCLONE", "rclone", "")
	requireTool(t, err)
	shared := t.TempDir()
	for _, f := range sharedTree {
		writeRandomFile(t, filepath.Join(shared, f.rel), f.size, f.mtime)
	}
	forEachBackend(t, backendNames, func(t *testing.T, e *davEnv) {
		for _, v := range rcloneVendors {
			t.Run("with vendor "+v.vendor, func(t *testing.T) {
				runRcloneScenario(t, e, bin, shared, v.vendor, v.mtimes)
			})
		}
	})
}

// rcloneRunner runs rclone with the remote "dav:" configured by
// environment variables only (RCLONE_CONFIG points to an empty file).
type rcloneRunner struct {
	bin     string
	env     []string
	timeout time.Duration // per rclone command; 0 = 3 minutes
}

func newRcloneRunner(t testing.TB, bin, url, vendor string) *rcloneRunner {
	t.Helper()
	out, err := exec.Command(bin, "obscure", testUsers["alice"]).Output()
	if err != nil {
		t.Fatalf("rclone obscure: %v", err)
	}
	dir := t.TempDir()
	conf := filepath.Join(dir, "rclone.conf")
	if err := os.WriteFile(conf, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	var env []string
	for _, kv := range os.Environ() {
		// rclone 1.60 fails while AWS_CA_BUNDLE is set (TOOLING.md); no
		// RCLONE_* from the caller's environment either.
		if strings.HasPrefix(kv, "AWS_CA_BUNDLE=") || strings.HasPrefix(kv, "RCLONE_") {
			continue
		}
		env = append(env, kv)
	}
	env = append(env,
		"RCLONE_CONFIG="+conf,
		"RCLONE_CACHE_DIR="+filepath.Join(dir, "cache"),
		"RCLONE_CONFIG_DAV_TYPE=webdav",
		"RCLONE_CONFIG_DAV_URL="+url,
		"RCLONE_CONFIG_DAV_VENDOR="+vendor,
		"RCLONE_CONFIG_DAV_USER=alice",
		"RCLONE_CONFIG_DAV_PASS="+strings.TrimSpace(string(out)),
	)
	return &rcloneRunner{bin: bin, env: env}
}

// run executes rclone with args and returns its combined output; it fails
// the test if rclone fails.
func (r *rcloneRunner) run(t testing.TB, args ...string) string {
	t.Helper()
	out, err := r.try(args...)
	if err != nil {
		t.Fatalf("rclone %s: %v\n%s", strings.Join(args, " "), err, tail(out, 4000))
	}
	return out
}

func (r *rcloneRunner) try(args ...string) (string, error) {
	timeout := r.timeout
	if timeout == 0 {
		timeout = 3 * time.Minute
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, r.bin, append([]string{"-v", "--retries", "1", "--low-level-retries", "2"}, args...)...)
	cmd.Env = r.env
	out, err := cmd.CombinedOutput()
	return string(out), err
}

var rcloneTransferred = regexp.MustCompile(`(?m)^Transferred:\s+(\d+) / \d+, `)

// rcloneCounts tallies the -v log of a copy or sync.
type rcloneCounts struct{ copied, deleted, touched, transferred int }

func countRclone(out string) rcloneCounts {
	c := rcloneCounts{
		copied:  strings.Count(out, ": Copied ("),
		deleted: strings.Count(out, ": Deleted"),
		touched: strings.Count(out, ": Updated modification time"),
	}
	if m := rcloneTransferred.FindStringSubmatch(out); m != nil {
		c.transferred, _ = strconv.Atoi(m[1])
	}
	return c
}

// rcloneEntry is one line of `rclone lsjson`.
type rcloneEntry struct {
	Path    string
	Size    int64
	ModTime time.Time
	IsDir   bool
	Hashes  map[string]string
}

func (r *rcloneRunner) lsjson(t *testing.T, args ...string) map[string]rcloneEntry {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, r.bin, append([]string{"lsjson", "-R"}, args...)...)
	cmd.Env = r.env
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("rclone lsjson %v: %v\n%s", args, err, stderr.String())
	}
	var list []rcloneEntry
	if err := json.Unmarshal(out, &list); err != nil {
		t.Fatalf("rclone lsjson output does not parse: %v\n%s", err, out)
	}
	m := map[string]rcloneEntry{}
	for _, e := range list {
		m[e.Path] = e
	}
	return m
}

func runRcloneScenario(t *testing.T, e *davEnv, bin, shared, vendor string, mtimes bool) {
	keyPrefix, dir := e.caseDir(t)
	rc := newRcloneRunner(t, bin, e.URL+dir, vendor)
	src := t.TempDir()
	for _, f := range sharedTree {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(src, f.rel)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Link(filepath.Join(shared, f.rel), filepath.Join(src, f.rel)); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range ownTree {
		writeRandomFile(t, filepath.Join(src, f.rel), f.size, f.mtime)
	}

	t.Run("copy uploads the whole tree and S3 holds every byte", func(t *testing.T) {
		out := rc.run(t, "copy", src, "dav:")
		if c := countRclone(out); c.copied != 5 {
			t.Errorf("rclone copy reported %d files copied, want 5:\n%s", c.copied, tail(out, 3000))
		}
		sameTree(t, e, src, keyPrefix)
	})

	t.Run("lsjson shows the sizes and, with X-OC-Mtime, the source modification times", func(t *testing.T) {
		list := rc.lsjson(t, "dav:")
		again := rc.lsjson(t, "dav:")
		for _, f := range append(append([]srcFile{}, sharedTree...), ownTree...) {
			got, ok := list[f.rel]
			if !ok {
				t.Errorf("lsjson lacks %s", f.rel)
				continue
			}
			if got.Size != int64(f.size) {
				t.Errorf("%s: lsjson Size %d, want %d", f.rel, got.Size, f.size)
			}
			if !again[f.rel].ModTime.Equal(got.ModTime) {
				t.Errorf("%s: ModTime changed between two listings: %v then %v", f.rel, got.ModTime, again[f.rel].ModTime)
			}
			if mtimes && !got.ModTime.Truncate(time.Second).Equal(f.mtime.Truncate(time.Second)) {
				t.Errorf("%s: lsjson ModTime %v, want the source's %v (kept from X-OC-Mtime)", f.rel, got.ModTime.UTC(), f.mtime.Truncate(time.Second))
			}
		}
	})

	if mtimes {
		t.Run("lsjson --hash reports correct oc:checksums, MD5 at least for single-part uploads", func(t *testing.T) {
			list := rc.lsjson(t, "--hash", "dav:")
			var coverage []string
			for _, f := range append(append([]srcFile{}, sharedTree...), ownTree...) {
				md5sum, sha1sum := fileHashes(t, filepath.Join(src, f.rel))
				h := list[f.rel].Hashes
				if got := h["md5"]; got != "" && got != md5sum {
					t.Errorf("%s: MD5 %s reported, the file's is %s", f.rel, got, md5sum)
				}
				if got := h["sha1"]; got != "" && got != sha1sum {
					t.Errorf("%s: SHA1 %s reported, the file's is %s", f.rel, got, sha1sum)
				}
				if h["md5"] == "" && f.size < gatewayPartSize {
					t.Errorf("%s (%d bytes, one PutObject whose ETag is its MD5): no MD5 in oc:checksums", f.rel, f.size)
				}
				coverage = append(coverage, f.rel+"="+hashNames(h))
			}
			report(t, "rclone owncloud hashes on %s: %s", e.b.name, strings.Join(coverage, " "))
		})
	}

	t.Run("sync transfers the changes once and the second sync transfers nothing", func(t *testing.T) {
		if err := os.Remove(filepath.Join(src, "small.txt")); err != nil {
			t.Fatal(err)
		}
		writeRandomFile(t, filepath.Join(src, "added.txt"), 777, time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC))
		writeRandomFile(t, filepath.Join(src, "notes/readme.md"), 12_345, time.Date(2024, 2, 3, 4, 5, 6, 0, time.UTC))
		first := countRclone(rc.run(t, "sync", src, "dav:"))
		if first.copied != 2 || first.deleted != 1 {
			t.Errorf("the first sync copied %d and deleted %d, want 2 and 1", first.copied, first.deleted)
		}
		if err := e.gw.WritePending(context.Background()); err != nil { // the first sync's kept times
			t.Fatal(err)
		}
		mark := e.b.proxy.Mark()
		out := rc.run(t, "sync", src, "dav:")
		second := countRclone(out)
		writes := 0
		calls := e.b.proxy.SinceUnder(mark, keyPrefix)
		for op, n := range countOps(calls) {
			switch op {
			case "PutObject", "UploadPart", "CopyObject", "DeleteObject", "DeleteObjects", "CreateMultipartUpload":
				writes += n
			}
		}
		if second.copied+second.deleted+second.touched+second.transferred != 0 || writes != 0 {
			t.Errorf("the second sync copied %d, deleted %d, set %d times, transferred %d and made %d S3 writes, want none:\n%s%s",
				second.copied, second.deleted, second.touched, second.transferred, writes, tail(out, 3000), describeCalls(calls))
		}
		report(t, "rclone sync (vendor %s) on %s: first copied %d deleted %d; second copied %d, %d S3 requests, %d writes",
			vendor, e.b.name, first.copied, first.deleted, second.copied, len(calls), writes)
		sameTree(t, e, src, keyPrefix)
	})

	t.Run("check --download finds no differences", func(t *testing.T) {
		out := rc.run(t, "check", "--download", src, "dav:")
		if !strings.Contains(out, "0 differences found") {
			t.Errorf("rclone check --download:\n%s", tail(out, 3000))
		}
	})

	if mtimes {
		t.Run("an object overwritten directly in S3 shows its new time, not the kept one", func(t *testing.T) {
			before := time.Now().Add(-2 * time.Minute)
			e.putS3(t, keyPrefix+"added.txt", []byte("changed outside the gateway"), "")
			got := rc.lsjson(t, "dav:")["added.txt"]
			if got.ModTime.Before(before) || got.Size != int64(len("changed outside the gateway")) {
				t.Errorf("added.txt after a direct S3 write: ModTime %v size %d, want S3's new LastModified and size", got.ModTime, got.Size)
			}
		})
	}

	t.Run("moveto renames a file server-side", func(t *testing.T) {
		before := rc.lsjson(t, "dav:")["notes/readme.md"]
		rc.run(t, "moveto", "dav:notes/readme.md", "dav:renamed/readme.md")
		if _, ok := e.getS3(t, keyPrefix+"notes/readme.md"); ok {
			t.Error("the old key is still in S3")
		}
		got, ok := e.getS3(t, keyPrefix+"renamed/readme.md")
		want, _ := os.ReadFile(filepath.Join(src, "notes/readme.md"))
		if !ok || !bytes.Equal(got, want) {
			t.Errorf("renamed/readme.md holds %d bytes (exists=%v), want %d", len(got), ok, len(want))
		}
		if after := rc.lsjson(t, "dav:")["renamed/readme.md"]; mtimes && !after.ModTime.Equal(before.ModTime) {
			t.Errorf("the kept time did not follow the MOVE: %v before, %v after", before.ModTime, after.ModTime)
		}
	})

	t.Run("deletefile removes one object", func(t *testing.T) {
		rc.run(t, "deletefile", "dav:empty.txt")
		if _, ok := e.getS3(t, keyPrefix+"empty.txt"); ok {
			t.Error("empty.txt is still in S3")
		}
	})

	t.Run("purge removes a folder and everything in it", func(t *testing.T) {
		rc.run(t, "purge", "dav:media")
		if keys := userKeys(t, e, keyPrefix+"media/"); len(keys) != 0 {
			t.Errorf("S3 still holds %v", keys)
		}
		if ups := e.b.openUploads(t, keyPrefix); len(ups) != 0 {
			t.Errorf("open multipart uploads: %v", ups)
		}
	})
}

// writeRandomFile writes size random bytes to path with modification time mtime.
func writeRandomFile(t *testing.T, path string, size int, mtime time.Time) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.CopyN(f, rand.Reader, int64(size)); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(path, mtime, mtime); err != nil {
		t.Fatal(err)
	}
}

// sameTree fails unless S3 under keyPrefix holds exactly the files of src.
func sameTree(t *testing.T, e *davEnv, src, keyPrefix string) {
	t.Helper()
	for _, d := range treeDiff(t, e, src, keyPrefix) {
		t.Error(d)
	}
}

// treeDiff lists how S3 under keyPrefix differs from the files of src
// (folder markers aside); nil when it holds exactly them, byte for byte.
func treeDiff(t *testing.T, e *davEnv, src, keyPrefix string) []string {
	t.Helper()
	var diff []string
	want := map[string]bool{}
	err := filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		want[keyPrefix+filepath.ToSlash(rel)] = true
		local, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		got, ok := e.getS3(t, keyPrefix+filepath.ToSlash(rel))
		if !ok || !bytes.Equal(got, local) {
			diff = append(diff, fmt.Sprintf("S3 %s: %d bytes (exists=%v), the source has %d", rel, len(got), ok, len(local)))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range userKeys(t, e, keyPrefix) {
		if !want[k] && !strings.HasSuffix(k, "/") {
			diff = append(diff, fmt.Sprintf("S3 holds %s, which the source does not have", k))
		}
	}
	return diff
}

func fileHashes(t *testing.T, path string) (md5sum, sha1sum string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m, s := md5.New(), sha1.New()
	if _, err := io.Copy(io.MultiWriter(m, s), f); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(m.Sum(nil)), hex.EncodeToString(s.Sum(nil))
}

func hashNames(h map[string]string) string {
	var n []string
	for _, k := range []string{"md5", "sha1"} {
		if h[k] != "" {
			n = append(n, k)
		}
	}
	if len(n) == 0 {
		return "none"
	}
	return strings.Join(n, "+")
}

// TestRcloneRequests replays the single requests rclone's webdav backend
// relies on, on every back end: X-OC-Mtime on PUT (answered "accepted")
// and the PROPPATCH newer rclone versions send to set a modification time.
func TestRcloneRequests(t *testing.T) {
	forEachBackend(t, backendNames, func(t *testing.T, e *davEnv) {
		rc := newClientApp(e, "rclone", map[string]string{"User-Agent": "rclone/v1.60.1-DEV"})
		t.Run("PUT with X-OC-Mtime is answered accepted and the time is kept", func(t *testing.T) {
			_, dir := e.caseDir(t)
			const mtime = 1600000000
			p := rc.send(t, call{Method: http.MethodPut, Path: dir + "oc.txt", Body: []byte("owncloud"),
				Header: map[string]string{"X-OC-Mtime": strconv.Itoa(mtime), "OC-Checksum": "SHA1:" + sha1Hex("owncloud")}})
			expect(t, "PUT with X-OC-Mtime", p, http.StatusCreated)
			if got := p.Header.Get("X-OC-Mtime"); got != "accepted" {
				t.Errorf("X-OC-Mtime answer = %q, want accepted (else rclone sets the time again)", got)
			}
			m := onlyResponse(t, "PROPFIND", rc.send(t, call{Method: "PROPFIND", Path: dir + "oc.txt", Header: map[string]string{"Depth": "0"}}))
			sameHTTPTime(t, "getlastmodified", m.Props["DAV: getlastmodified"].Text, time.Unix(mtime, 0))
		})
		for _, c := range []struct{ what, prop string }{
			{"DAV:getlastmodified as an HTTP date", `<D:getlastmodified>Sun, 13 Sep 2020 12:26:40 GMT</D:getlastmodified>`},
			{"DAV:lastmodified in Unix seconds, as rclone 1.65 and later send it", `<lastmodified xmlns="DAV:">1600000000</lastmodified>`},
		} {
			t.Run("PROPPATCH of "+c.what+" is kept as the modification time", func(t *testing.T) {
				keyPrefix, dir := e.caseDir(t)
				e.putS3(t, keyPrefix+"f.txt", []byte("f"), "")
				body := `<?xml version="1.0" encoding="utf-8" ?><D:propertyupdate xmlns:D="DAV:"><D:set><D:prop>` + c.prop + `</D:prop></D:set></D:propertyupdate>`
				allPropsOK(t, "PROPPATCH", rc.send(t, call{Method: "PROPPATCH", Path: dir + "f.txt", Body: []byte(body)}))
				m := onlyResponse(t, "PROPFIND", rc.send(t, call{Method: "PROPFIND", Path: dir + "f.txt", Header: map[string]string{"Depth": "0"}}))
				sameHTTPTime(t, "getlastmodified", m.Props["DAV: getlastmodified"].Text, time.Unix(1600000000, 0))
			})
		}
	})
}

func sha1Hex(s string) string {
	h := sha1.Sum([]byte(s))
	return hex.EncodeToString(h[:])
}
