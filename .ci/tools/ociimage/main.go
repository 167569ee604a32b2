// Command ociimage assembles davgw's container image without a Docker
// daemon or a registry: one layer with the static binary, the CA bundle,
// a non-root user (65532, as distroless's "nonroot") and its home, on an
// empty base, with the same entrypoint, user and environment as the
// Dockerfile. It writes an OCI image layout (-layout DIR) and a tarball
// that `docker load` and `podman load` read (-tar FILE).
//
//	ociimage -binary davgw -ca /etc/ssl/certs/ca-certificates.crt \
//	  -tag davgw:dev -layout out/oci -tar out/davgw-image.tar
package main

import (
	"archive/tar"
	"bytes"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// The user the image runs as: distroless's nonroot.
const (
	uid  = 65532
	home = "/home/nonroot"
)

func main() {
	binary := flag.String("binary", "", "the static davgw binary")
	ca := flag.String("ca", "/etc/ssl/certs/ca-certificates.crt", "the CA bundle for HTTPS to S3 and the IdP")
	tag := flag.String("tag", "davgw:dev", "the image's name in the tarball")
	layoutDir := flag.String("layout", "", "write an OCI image layout here")
	tarFile := flag.String("tar", "", "write a docker-loadable tarball here")
	created := flag.String("created", "", "image creation time (RFC 3339); empty = the epoch, for reproducible builds")
	arch := flag.String("arch", runtime.GOARCH, "the binary's architecture (GOARCH)")
	flag.Parse()
	if *binary == "" || (*layoutDir == "" && *tarFile == "") {
		flag.Usage()
		os.Exit(2)
	}
	if err := run(*binary, *ca, *tag, *layoutDir, *tarFile, *created, *arch); err != nil {
		fmt.Fprintln(os.Stderr, "ociimage:", err)
		os.Exit(1)
	}
}

func run(binary, ca, tag, layoutDir, tarFile, created, arch string) error {
	when := time.Unix(0, 0).UTC()
	if created != "" {
		t, err := time.Parse(time.RFC3339, created)
		if err != nil {
			return err
		}
		when = t
	}
	bin, err := os.ReadFile(binary)
	if err != nil {
		return err
	}
	caPEM, err := os.ReadFile(ca)
	if err != nil {
		return err
	}
	layerTar, err := rootfs(bin, caPEM, when)
	if err != nil {
		return err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerTar)), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return err
	}
	base := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	img, err := mutate.Append(base, mutate.Addendum{
		Layer:     layer,
		History:   v1.History{CreatedBy: "ociimage (.ci/image)", Created: v1.Time{Time: when}},
		MediaType: types.OCILayer,
	})
	if err != nil {
		return err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return err
	}
	cfg := cf.Config
	cfg.Entrypoint = []string{"/davgw", "serve"}
	cfg.User = fmt.Sprintf("%d:%d", uid, uid)
	cfg.WorkingDir = home
	cfg.Env = []string{"DAVGW_CONFIG=/etc/davgw/config.toml", "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt"}
	cfg.ExposedPorts = map[string]struct{}{"8080/tcp": {}}
	cfg.Labels = map[string]string{"org.opencontainers.image.title": "davgw"}
	img, err = mutate.Config(img, cfg)
	if err != nil {
		return err
	}
	img, err = mutate.CreatedAt(img, v1.Time{Time: when})
	if err != nil {
		return err
	}
	cf, err = img.ConfigFile()
	if err != nil {
		return err
	}
	cf.OS, cf.Architecture = "linux", arch
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		return err
	}
	if layoutDir != "" {
		p, err := layout.Write(layoutDir, empty.Index)
		if err != nil {
			return err
		}
		if err := p.AppendImage(img, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": tag})); err != nil {
			return err
		}
	}
	if tarFile != "" {
		ref, err := name.NewTag(tag)
		if err != nil {
			return err
		}
		if err := tarball.WriteToFile(tarFile, ref, img); err != nil {
			return err
		}
	}
	return nil
}

// rootfs is the image's one layer: directories, the binary, the CA bundle,
// and passwd/group entries for root and nonroot.
func rootfs(bin, caPEM []byte, when time.Time) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	dir := func(name string, mode int64, owner int) error {
		return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: name + "/", Mode: mode, Uid: owner, Gid: owner, ModTime: when, Format: tar.FormatPAX})
	}
	file := func(name string, mode int64, data []byte) error {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(len(data)), ModTime: when, Format: tar.FormatPAX}); err != nil {
			return err
		}
		_, err := tw.Write(data)
		return err
	}
	steps := []func() error{
		func() error { return dir("etc", 0o755, 0) },
		func() error { return dir("etc/davgw", 0o755, 0) },
		func() error { return dir("etc/ssl", 0o755, 0) },
		func() error { return dir("etc/ssl/certs", 0o755, 0) },
		func() error { return dir("home", 0o755, 0) },
		func() error { return dir(home[1:], 0o700, uid) },
		func() error { return dir("tmp", 0o1777, 0) },
		func() error {
			return file("etc/passwd", 0o644, fmt.Appendf(nil, "root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:%d:%d:nonroot:%s:/sbin/nologin\n", uid, uid, home))
		},
		func() error { return file("etc/group", 0o644, fmt.Appendf(nil, "root:x:0:\nnonroot:x:%d:\n", uid)) },
		func() error { return file("etc/ssl/certs/ca-certificates.crt", 0o644, caPEM) },
		func() error { return file("davgw", 0o755, bin) },
	}
	for _, s := range steps {
		if err := s(); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
