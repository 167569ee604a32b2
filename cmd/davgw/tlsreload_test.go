package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"log/slog"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// pairPEM is a fresh self-signed certificate and its key, each padded with
// leading text (which PEM ignores) to size bytes.
func pairPEM(t *testing.T, cn string, size int) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	pad := func(b []byte) []byte {
		if len(b) >= size {
			t.Fatalf("a PEM of %d bytes does not fit %d", len(b), size)
		}
		return append(bytes.Repeat([]byte("#"), size-len(b)-1), append([]byte("\n"), b...)...)
	}
	return pad(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
		pad(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}))
}

func servedCN(t *testing.T, r *certReloader) string {
	t.Helper()
	c, err := r.GetCertificate(nil)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(c.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	return leaf.Subject.CommonName
}

// replace writes data to path by a rename, as certbot and most tools do,
// giving the new file the modification time mtime.
func replace(t *testing.T, path string, data []byte, mtime time.Time) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(tmp, mtime, mtime); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// TestCertReloaderNoticesAPairOfTheSameSizeAndTime: a renewed pair of the
// same sizes whose files keep a fixed modification time (the Nix store's
// epoch+1, cp -p, rsync -a, tar with --mtime) is a new pair all the same.
func TestCertReloaderNoticesAPairOfTheSameSizeAndTime(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	fixed := time.Unix(1, 0)
	c1, k1 := pairPEM(t, "first", 2048)
	replace(t, certFile, c1, fixed)
	replace(t, keyFile, k1, fixed)
	r, err := newCertReloader(certFile, keyFile, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if cn := servedCN(t, r); cn != "first" {
		t.Fatalf("serves %q, want first", cn)
	}
	c2, k2 := pairPEM(t, "second", 2048)
	replace(t, keyFile, k2, fixed)
	replace(t, certFile, c2, fixed)
	r.Reload()
	if cn := servedCN(t, r); cn != "second" {
		t.Fatalf("after a new pair of the same sizes and times and a reload: serves %q, want second", cn)
	}
}

// TestCertReloaderFollowsAKubernetesSecretSwap: a Secret volume holds
// tls.crt -> ..data/tls.crt and ..data -> ..<timestamp>; an update writes a
// new timestamped folder and renames a new ..data link over the old one.
func TestCertReloaderFollowsAKubernetesSecretSwap(t *testing.T) {
	dir := t.TempDir()
	write := func(ts, cn string) {
		c, k := pairPEM(t, cn, 2048)
		d := filepath.Join(dir, ts)
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
		for name, b := range map[string][]byte{"tls.crt": c, "tls.key": k} {
			if err := os.WriteFile(filepath.Join(d, name), b, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.Symlink(ts, filepath.Join(dir, "..data_tmp")); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(filepath.Join(dir, "..data_tmp"), filepath.Join(dir, "..data")); err != nil {
			t.Fatal(err)
		}
	}
	write("..2026_12_07_10_00_00.1", "first")
	for _, name := range []string{"tls.crt", "tls.key"} {
		if err := os.Symlink(filepath.Join("..data", name), filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	r, err := newCertReloader(filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key"), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	write("..2026_12_07_11_00_00.2", "second")
	if err := os.RemoveAll(filepath.Join(dir, "..2026_12_07_10_00_00.1")); err != nil {
		t.Fatal(err)
	}
	r.Reload()
	if cn := servedCN(t, r); cn != "second" {
		t.Fatalf("after the ..data swap: serves %q, want second", cn)
	}
}
