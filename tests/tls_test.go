package tests

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/davgw/davgw/auth"
)

// writeCertPair writes a fresh self-signed certificate for 127.0.0.1 and
// its key to certFile and keyFile (each written to a temporary name and
// renamed, as certbot and cert-manager replace them), and returns the
// certificate's SHA-256 fingerprint.
func writeCertPair(t *testing.T, certFile, keyFile, cn string) [32]byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []struct {
		path  string
		block *pem.Block
	}{{keyFile, &pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}}, {certFile, &pem.Block{Type: "CERTIFICATE", Bytes: der}}} {
		tmp := f.path + ".new"
		if err := os.WriteFile(tmp, pem.EncodeToMemory(f.block), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, f.path); err != nil {
			t.Fatal(err)
		}
	}
	return sha256.Sum256(der)
}

// servedCert dials addr and returns the fingerprint of the certificate a new
// connection gets.
func servedCert(t *testing.T, addr string) [32]byte {
	t.Helper()
	c, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return sha256.Sum256(c.ConnectionState().PeerCertificates[0].Raw)
}

// TestTLSCertificatesAreReloadedWithoutDroppingConnections is issue 13's
// TLS item: the certificate files are replaced under a running `davgw
// serve`; new connections get the new certificate (at the next handshake
// a second later, or at once on SIGHUP), an upload in flight on the old
// connection completes whole, and a broken replacement keeps the working
// certificate in use.
func TestTLSCertificatesAreReloadedWithoutDroppingConnections(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	first := writeCertPair(t, certFile, keyFile, "first")
	alice := "a" + randHex(4)
	g := serveBinary(t, 256, "tls_cert = \""+certFile+"\"\ntls_key = \""+keyFile+"\"\n", "", map[string]string{alice: "a-pw"})
	if got := servedCert(t, g.addr); got != first {
		t.Fatal("the gateway does not serve the configured certificate")
	}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, ForceAttemptHTTP2: true}}
	base := "https://" + g.addr + "/dav/"

	// An upload whose body is still coming while the files change.
	pr, pw := io.Pipe()
	body := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB
	req, _ := http.NewRequest(http.MethodPut, base+"inflight.bin", pr)
	req.SetBasicAuth(alice, "a-pw")
	type result struct {
		status int
		proto  string
		err    error
	}
	done := make(chan result, 1)
	go func() {
		resp, err := client.Do(req)
		if err != nil {
			done <- result{err: err}
			return
		}
		resp.Body.Close()
		done <- result{status: resp.StatusCode, proto: resp.Proto}
	}()
	if _, err := pw.Write(body[:len(body)/2]); err != nil {
		t.Fatal(err)
	}

	second := writeCertPair(t, certFile, keyFile, "second")
	deadline := time.Now().Add(10 * time.Second)
	for servedCert(t, g.addr) != second {
		if time.Now().After(deadline) {
			t.Fatalf("new connections still get the old certificate 10 s after the files changed\n%s", g.p.log.String())
		}
		time.Sleep(200 * time.Millisecond)
	}

	// A broken replacement (a key that is not PEM): the working pair stays.
	if err := os.WriteFile(keyFile, []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := g.p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond)
	if got := servedCert(t, g.addr); got != second {
		t.Fatal("a broken key file replaced the working certificate")
	}
	// SIGHUP picks up a good pair at once, without a handshake (a
	// handshake would check the files itself): the reload is in the log
	// before any new connection.
	third := writeCertPair(t, certFile, keyFile, "third")
	if err := g.p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(5 * time.Second)
	for strings.Count(g.p.log.String(), "certificate reloaded") < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("SIGHUP did not load the new pair\n%s", g.p.log.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got := servedCert(t, g.addr); got != third {
		t.Fatal("after the SIGHUP reload, a new connection does not get the new pair")
	}
	if err := g.p.exited(); err != nil {
		t.Fatalf("SIGHUP stopped the gateway: %v", err)
	}

	// The upload on the first connection completes whole.
	if _, err := pw.Write(body[len(body)/2:]); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	r := <-done
	if r.err != nil || r.status != http.StatusCreated {
		t.Fatalf("the upload in flight: %d %v\n%s", r.status, r.err, g.p.log.String())
	}
	if r.proto != "HTTP/2.0" {
		t.Fatalf("the upload in flight went over %s, want HTTP/2.0", r.proto)
	}
	get, _ := http.NewRequest(http.MethodGet, base+"inflight.bin", nil)
	get.SetBasicAuth(alice, "a-pw")
	resp, err := client.Do(get)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !bytes.Equal(got, body) {
		t.Fatalf("GET after the reloads: %d, %d bytes of %d", resp.StatusCode, len(got), len(body))
	}
	log := g.p.log.String()
	if strings.Count(log, "certificate reloaded") < 2 || !strings.Contains(log, "does not load") {
		t.Errorf("the log should tell each reload and the refused pair:\n%s", log)
	}
	t.Logf("upload over %s completed across 2 reloads and 1 refused pair", r.proto)
}

// configPath is the -config file of a gateway started by serveBinary.
func (g *servedGateway) configPath(t *testing.T) string {
	t.Helper()
	args := g.p.cmd.Args
	for i := range args[:len(args)-1] {
		if args[i] == "-config" {
			return args[i+1]
		}
	}
	t.Fatalf("no -config in %q", args)
	return ""
}

// TestSIGHUPReloadsUsersAndLimits is issue 13's reload item: a changed
// config file under a running `davgw serve` takes effect on SIGHUP for
// users (added, removed, a changed password ends the old one at once even
// though it was cached) and for [limits]' request bounds; a file that
// does not load changes nothing; settings that need a restart are named
// in the log, and the gateway never stops.
func TestSIGHUPReloadsUsersAndLimits(t *testing.T) {
	alice, bob := "a"+randHex(4), "b"+randHex(4)
	g := serveBinary(t, 256, "", "", map[string]string{alice: "a-pw"})
	path := g.configPath(t)
	orig, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	content := []byte("0123456789")
	if st, _ := g.do(t, http.MethodPut, "/dav/r.txt", alice, "a-pw", content); st != http.StatusCreated {
		t.Fatalf("PUT: %d", st)
	}
	twoRanges := func() int {
		st, _ := g.do(t, http.MethodGet, "/dav/r.txt", alice, "a-new", nil, "Range", "bytes=0-1,4-5")
		return st
	}
	hup := func(wantLog string, n int) {
		t.Helper()
		if err := g.p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(10 * time.Second)
		for strings.Count(g.p.log.String(), wantLog) < n {
			if time.Now().After(deadline) {
				t.Fatalf("no %q in the log after SIGHUP:\n%s", wantLog, g.p.log.String())
			}
			time.Sleep(50 * time.Millisecond)
		}
		if err := g.p.exited(); err != nil {
			t.Fatal(err)
		}
	}

	// alice's password changes, bob is added, ranges_per_request drops to
	// 1 and part_size (not reloadable) changes.
	hash := func(pw string) string {
		h, err := auth.HashPasswordCost(pw, bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	var doc strings.Builder
	for _, line := range strings.Split(string(orig), "\n") {
		if strings.HasPrefix(line, "[[auth.users]]") {
			break
		}
		doc.WriteString(strings.Replace(line, `part_size = "5MiB"`, `part_size = "6MiB"`, 1) + "\n")
	}
	fmt.Fprintf(&doc, "[[auth.users]]\nname = %q\npassword_hash = %q\n[[auth.users]]\nname = %q\npassword_hash = %q\n[limits]\nranges_per_request = 1\n",
		alice, hash("a-new"), bob, hash("b-pw"))
	if err := os.WriteFile(path, []byte(doc.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	if st, _ := g.do(t, "PROPFIND", "/dav/", bob, "b-pw", nil, "Depth", "0"); st != http.StatusUnauthorized {
		t.Fatalf("bob before the SIGHUP: %d, want 401", st)
	}
	if st := twoRanges(); st != http.StatusUnauthorized {
		t.Fatalf("alice's new password before the SIGHUP: %d, want 401", st)
	}
	hup("SIGHUP: config reloaded", 1)
	for _, c := range []struct {
		user, pw string
		want     int
	}{{alice, "a-pw", http.StatusUnauthorized}, {alice, "a-new", http.StatusMultiStatus}, {bob, "b-pw", http.StatusMultiStatus}} {
		if st, _ := g.do(t, "PROPFIND", "/dav/", c.user, c.pw, nil, "Depth", "0"); st != c.want {
			t.Errorf("after the reload, %s with %q: %d, want %d", c.user, c.pw, st, c.want)
		}
	}
	if st := twoRanges(); st != http.StatusOK {
		t.Errorf("2 ranges with ranges_per_request = 1: %d, want 200 (the whole file)", st)
	}
	if log := g.p.log.String(); !strings.Contains(log, "only after a restart") || !strings.Contains(log, "[s3]") {
		t.Errorf("the changed part_size is not named as needing a restart:\n%s", log)
	}

	// A file that does not load changes nothing.
	if err := os.WriteFile(path, []byte(doc.String()+"\n[limits\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	hup("the config does not load; nothing changed", 1)
	if st, _ := g.do(t, "PROPFIND", "/dav/", bob, "b-pw", nil, "Depth", "0"); st != http.StatusMultiStatus {
		t.Errorf("bob after a refused reload: %d, want 207", st)
	}
	// Removing bob ends his cached sign-in at once.
	if err := os.WriteFile(path, []byte(strings.Replace(doc.String(), "name = \""+bob+"\"", "name = \"c"+randHex(4)+"\"", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	hup("SIGHUP: config reloaded", 2)
	if st, _ := g.do(t, "PROPFIND", "/dav/", bob, "b-pw", nil, "Depth", "0"); st != http.StatusUnauthorized {
		t.Errorf("bob removed by a reload: %d, want 401", st)
	}
	if log := g.p.log.String(); strings.Contains(log, "b-pw") || strings.Contains(log, "a-new") {
		t.Error("a password reached the log")
	}
}

// TestSIGHUPWhileStartingDoesNotStopTheGateway: SIGHUP never stops `davgw
// serve`, also while it starts. Here the start waits on a bucket check
// against an S3 endpoint that accepts connections and never answers, with
// the WebDAV port already bound: a SIGHUP then (a certificate renewal hook,
// a supervisor's reload) must leave the gateway running.
func TestSIGHUPWhileStartingDoesNotStopTheGateway(t *testing.T) {
	hole, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	accepted := make(chan net.Conn, 16)
	go func() {
		for {
			c, err := hole.Accept()
			if err != nil {
				return
			}
			accepted <- c // held open, never answered
		}
	}()
	t.Cleanup(func() {
		hole.Close()
		for {
			select {
			case c := <-accepted:
				c.Close()
			default:
				return
			}
		}
	})
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	h, err := auth.HashPasswordCost("pw", bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	doc := fmt.Sprintf("[server]\nlisten = %q\n[s3]\nendpoint = \"http://%s\"\nbucket = \"never-answers\"\npath_style = true\naccess_key_id = \"k\"\nsecret_access_key = \"s\"\n[[auth.users]]\nname = \"alice\"\npassword_hash = %q\n",
		addr, hole.Addr(), h)
	cfg := filepath.Join(t.TempDir(), "config.toml")
	if err := os.WriteFile(cfg, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	p, err := startProcess("davgw serve", t.TempDir(), davgwBinary(t), nil, "serve", "-config", cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.stop(5 * time.Second) })
	select { // the bucket check has begun
	case c := <-accepted:
		accepted <- c
	case <-time.After(20 * time.Second):
		t.Fatalf("the gateway never called the S3 endpoint\n%s", p.log.String())
	}
	if c, err := net.DialTimeout("tcp", addr, 5*time.Second); err != nil {
		t.Fatalf("the WebDAV port is not bound during the bucket check: %v", err)
	} else {
		c.Close()
	}
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	if err := p.exited(); err != nil {
		t.Fatalf("a SIGHUP while starting stopped the gateway: %v", err)
	}
}
