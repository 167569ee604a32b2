package tests

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// ociDescriptor, ociManifest and ociConfig are the parts of the OCI image
// spec the test reads (by hand: the image is checked by other code than
// the library that wrote it).
type ociDescriptor struct {
	MediaType   string            `json:"mediaType"`
	Digest      string            `json:"digest"`
	Size        int64             `json:"size"`
	Annotations map[string]string `json:"annotations"`
}

type ociManifest struct {
	MediaType string          `json:"mediaType"`
	Config    ociDescriptor   `json:"config"`
	Layers    []ociDescriptor `json:"layers"`
}

type ociConfig struct {
	OS           string `json:"os"`
	Architecture string `json:"architecture"`
	Config       struct {
		User       string   `json:"User"`
		Env        []string `json:"Env"`
		Entrypoint []string `json:"Entrypoint"`
		Cmd        []string `json:"Cmd"`
		WorkingDir string   `json:"WorkingDir"`
	} `json:"config"`
}

// TestTheImageServesTheEmbeddedDefaultAsNonRoot is issue 13's item 4: the
// container image is built by .ci/image without a Docker daemon, its OCI
// layout is read and checked (digests, media types, config), its layers
// are unpacked into a root file system, and the image's entrypoint runs
// there as a container runtime would run it: chrooted, as the image's
// user, in its working directory, with its environment (DAVGW_CONFIG
// emptied as with `docker run -e DAVGW_CONFIG=`). It must serve the
// embedded default as user 65532 and keep its data there.
func TestTheImageServesTheEmbeddedDefaultAsNonRoot(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("CI") != "" {
			t.Fatal("the image test chroots and changes user: it runs as root in CI")
		}
		t.Skip("needs root (chroot, setuid) to run the image's file system")
	}
	_, self, _, _ := runtime.Caller(0)
	repo := filepath.Dir(filepath.Dir(self))
	out := t.TempDir()
	build := exec.Command("bash", filepath.Join(repo, ".ci", "image"), out)
	build.Dir = repo
	if b, err := build.CombinedOutput(); err != nil {
		t.Fatalf(".ci/image: %v\n%s", err, b)
	}
	if fi, err := os.Stat(filepath.Join(out, "davgw-image.tar")); err != nil || fi.Size() == 0 {
		t.Fatalf("the docker-loadable tarball: %v", err)
	}

	layout := filepath.Join(out, "oci")
	var marker struct {
		Version string `json:"imageLayoutVersion"`
	}
	readJSON(t, filepath.Join(layout, "oci-layout"), &marker)
	if marker.Version != "1.0.0" {
		t.Fatalf("oci-layout version %q", marker.Version)
	}
	var index struct {
		Manifests []ociDescriptor `json:"manifests"`
	}
	readJSON(t, filepath.Join(layout, "index.json"), &index)
	if len(index.Manifests) != 1 || index.Manifests[0].MediaType != "application/vnd.oci.image.manifest.v1+json" ||
		!strings.HasPrefix(index.Manifests[0].Annotations["org.opencontainers.image.ref.name"], "davgw:") {
		t.Fatalf("index.json: %+v", index.Manifests)
	}
	var m ociManifest
	if err := json.Unmarshal(blob(t, layout, index.Manifests[0]), &m); err != nil {
		t.Fatal(err)
	}
	if m.Config.MediaType != "application/vnd.oci.image.config.v1+json" || len(m.Layers) != 1 ||
		m.Layers[0].MediaType != "application/vnd.oci.image.layer.v1.tar+gzip" {
		t.Fatalf("manifest: %+v", m)
	}
	var cfg ociConfig
	if err := json.Unmarshal(blob(t, layout, m.Config), &cfg); err != nil {
		t.Fatal(err)
	}
	c := cfg.Config
	if cfg.OS != "linux" || cfg.Architecture != runtime.GOARCH || c.User != "65532:65532" || c.WorkingDir != "/home/nonroot" ||
		strings.Join(c.Entrypoint, " ") != "/davgw serve" || len(c.Cmd) != 0 {
		t.Fatalf("image config: %+v", cfg)
	}

	checkDockerTarball(t, filepath.Join(out, "davgw-image.tar"), index.Manifests[0].Annotations["org.opencontainers.image.ref.name"], m)

	rootfs := filepath.Join(out, "rootfs")
	for _, l := range m.Layers {
		unpackLayer(t, blob(t, layout, l), rootfs)
	}
	// The CA bundle the environment names is there and holds certificates
	// (HTTPS to S3 and the IdP need it; the embedded default below does not).
	caFile := ""
	for _, kv := range c.Env {
		if v, ok := strings.CutPrefix(kv, "SSL_CERT_FILE="); ok {
			caFile = v
		}
	}
	if ca, err := os.ReadFile(filepath.Join(rootfs, caFile)); caFile == "" || err != nil || strings.Count(string(ca), "-----BEGIN CERTIFICATE-----") < 10 {
		t.Fatalf("the image's CA bundle (SSL_CERT_FILE=%q): %v, %d bytes", caFile, err, len(ca))
	}
	uid, gid := userOf(t, c.User)

	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	cmd := exec.Command(c.Entrypoint[0], append(c.Entrypoint[1:], "-listen", addr)...)
	cmd.Dir = c.WorkingDir
	cmd.Env = append(append([]string{}, c.Env...), "DAVGW_CONFIG=")
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Chroot:     rootfs,
		Credential: &syscall.Credential{Uid: uid, Gid: gid, Groups: []uint32{}},
		Setpgid:    true,
		Pdeathsig:  syscall.SIGKILL,
	}
	p := &process{name: "davgw from the image", cmd: cmd, log: &syncBuffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.log, p.log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.err = cmd.Wait(); close(p.done) }()
	t.Cleanup(func() { p.stop(10 * time.Second) })
	if err := waitHTTP(context.Background(), p, "http://"+addr+"/healthz", 60*time.Second); err != nil {
		t.Fatal(err)
	}

	// The process runs as the image's user, not root.
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("Uid:\t%d\t%d\t%d\t%d", uid, uid, uid, uid); !strings.Contains(string(status), want) {
		t.Fatalf("the gateway's credentials: want %q in\n%s", want, status)
	}
	// Its data, the dev password included, lives in the working directory,
	// owned by that user and private to it.
	data := filepath.Join(rootfs, c.WorkingDir, "davgw-data")
	var dev struct{ Name, Password string }
	readJSON(t, filepath.Join(data, "dev-user.json"), &dev)
	fi, err := os.Stat(filepath.Join(data, "dev-user.json"))
	if err != nil {
		t.Fatal(err)
	}
	if st := fi.Sys().(*syscall.Stat_t); st.Uid != uid || fi.Mode().Perm() != 0o600 {
		t.Fatalf("dev-user.json: owner %d, mode %v; want %d, 0600", st.Uid, fi.Mode().Perm(), uid)
	}

	// It serves WebDAV: a file round-trips and is listed.
	base := "http://" + addr + "/dav/"
	call := func(method, path string, body string, hdr ...string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, base+path, strings.NewReader(body))
		req.SetBasicAuth(dev.Name, dev.Password)
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v\n%s", method, path, err, p.log.String())
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if st, _ := call(http.MethodPut, "hello.txt", "from the image"); st != http.StatusCreated {
		t.Fatalf("PUT: %d\n%s", st, p.log.String())
	}
	if st, body := call(http.MethodGet, "hello.txt", ""); st != http.StatusOK || body != "from the image" {
		t.Fatalf("GET: %d %q", st, body)
	}
	if st, body := call("PROPFIND", "", "", "Depth", "1"); st != http.StatusMultiStatus || !strings.Contains(body, "hello.txt") {
		t.Fatalf("PROPFIND: %d %q", st, body)
	}
	if st, _ := call("PROPFIND", "", "", "Depth", "0"); st != http.StatusMultiStatus {
		t.Fatalf("PROPFIND Depth 0: %d", st)
	}
	// Nothing it wrote belongs to root.
	err = filepath.Walk(data, func(path string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if st := fi.Sys().(*syscall.Stat_t); st.Uid != uid {
			return fmt.Errorf("%s belongs to %d", path, st.Uid)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// checkDockerTarball checks the docker-loadable tarball against the OCI
// layout: it is tagged ref, and its config and layers are the layout's
// blobs, byte for byte.
func checkDockerTarball(t *testing.T, path, ref string, m ociManifest) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sums := map[string]string{} // entry name -> sha256:hex
	var manifest []struct {
		Config   string
		RepoTags []string
		Layers   []string
	}
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(b)
		sums[h.Name] = "sha256:" + hex.EncodeToString(sum[:])
		if h.Name == "manifest.json" {
			if err := json.Unmarshal(b, &manifest); err != nil {
				t.Fatalf("%s: manifest.json: %v", path, err)
			}
		}
	}
	if len(manifest) != 1 || len(manifest[0].RepoTags) != 1 || manifest[0].RepoTags[0] != ref ||
		sums[manifest[0].Config] != m.Config.Digest || len(manifest[0].Layers) != len(m.Layers) {
		t.Fatalf("%s: manifest %+v (entries %v), want tag %s, config %s, %d layers", path, manifest, sums, ref, m.Config.Digest, len(m.Layers))
	}
	for i, l := range manifest[0].Layers {
		if sums[l] != m.Layers[i].Digest {
			t.Fatalf("%s: layer %s is %s, the layout's is %s", path, l, sums[l], m.Layers[i].Digest)
		}
	}
}

func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// blob reads a blob of the layout and checks its size and digest.
func blob(t *testing.T, layout string, d ociDescriptor) []byte {
	t.Helper()
	hexDigest, ok := strings.CutPrefix(d.Digest, "sha256:")
	if !ok {
		t.Fatalf("digest %q is not sha256", d.Digest)
	}
	b, err := os.ReadFile(filepath.Join(layout, "blobs", "sha256", hexDigest))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	if hex.EncodeToString(sum[:]) != hexDigest || int64(len(b)) != d.Size {
		t.Fatalf("blob %s: %d bytes, sha256 %x; want %d bytes", d.Digest, len(b), sum, d.Size)
	}
	return b
}

// unpackLayer extracts a gzipped layer into root with its modes and owners,
// as a runtime does (no whiteouts: the image has one layer).
func unpackLayer(t *testing.T, gz []byte, root string) {
	t.Helper()
	zr, err := gzip.NewReader(strings.NewReader(string(gz)))
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		name := filepath.Clean(h.Name)
		if !filepath.IsLocal(name) {
			t.Fatalf("layer entry %q leaves the root", h.Name)
		}
		dst := filepath.Join(root, name)
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(dst, 0o755); err != nil {
				t.Fatal(err)
			}
		case tar.TypeReg:
			f, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := io.Copy(f, tr); err != nil {
				t.Fatal(err)
			}
			f.Close()
		default:
			t.Fatalf("layer entry %q of type %c", h.Name, h.Typeflag)
		}
		if err := os.Chown(dst, h.Uid, h.Gid); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(dst, os.FileMode(h.Mode).Perm()|modeBits(h.Mode)); err != nil {
			t.Fatal(err)
		}
	}
}

// modeBits maps tar's sticky, setuid and setgid bits to os.FileMode's.
func modeBits(m int64) os.FileMode {
	var out os.FileMode
	if m&0o1000 != 0 {
		out |= os.ModeSticky
	}
	if m&0o2000 != 0 {
		out |= os.ModeSetgid
	}
	if m&0o4000 != 0 {
		out |= os.ModeSetuid
	}
	return out
}

// userOf parses the image's numeric "UID:GID" user.
func userOf(t *testing.T, user string) (uid, gid uint32) {
	t.Helper()
	u, g, ok := strings.Cut(user, ":")
	a, err1 := strconv.ParseUint(u, 10, 32)
	b, err2 := strconv.ParseUint(g, 10, 32)
	if !ok || err1 != nil || err2 != nil || a == 0 {
		t.Fatalf("image user %q: want a numeric non-root UID:GID", user)
	}
	return uint32(a), uint32(b)
}
