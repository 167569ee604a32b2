package tests

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"math/big"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// The shipped reverse-proxy configurations, tested as they are: the test
// only fills in ports, listen addresses, certificate paths and (for Caddy,
// which routes by host name) the site's host.
const (
	nginxSnippet = "deploy/nginx/davgw.conf"
	caddySnippet = "deploy/caddy/Caddyfile"
)

// proxyBigSize is the size of the uploads streamed through each proxy.
const proxyBigSize = 200 << 20

// proxiedGateway is a reverse proxy, run from a file in deploy/, in front
// of `davgw serve` on versitygw.
type proxiedGateway struct {
	g       *servedGateway
	url     string // https://127.0.0.1:PORT, the proxy
	tunnel  string // http://127.0.0.1:PORT, plain TCP into the proxy's TLS (for litmus)
	client  *http.Client
	spools  []string // the proxy's own temporary-file folders (nginx)
	errLog  string   // the proxy's error log (nginx), "" = none
	proxyIn string   // davgw's view of the proxy's address
}

// proxyUsers are the davgw users of these tests.
var proxyUsers = map[string]string{"pxalice": "pw-proxy-alice", "pxlitmus": "pw-proxy-litmus"}

// TestBehindReverseProxy puts Debian's nginx and Caddy, configured by the
// shipped deploy/ files, in front of `davgw serve` on versitygw, and checks
// what breaks behind a careless proxy: litmus passes through it exactly as
// it does directly; 200 MiB uploads, chunked and with Content-Length, reach
// davgw (its multipart upload to S3 under way) while the client is only
// half way, with nothing spooled to the proxy's disk, and read back
// byte-identical; COPY and MOVE with the absolute Destination a client
// sends through the proxy work, and a Destination on another host is
// still refused; davgw logs the client's address from X-Forwarded-For via
// trusted_proxies, whatever forwarding headers the client forges.
func TestBehindReverseProxy(t *testing.T) {
	litmusBin, err := toolPath("DAVGW_LITMUS", "litmus", "")
	requireTool(t, err)
	for _, tc := range []struct {
		name  string
		start func(t *testing.T, g *servedGateway, tlsDir string) *proxiedGateway
	}{
		{"nginx", startNginx},
		{"caddy", startCaddy},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := serveBinary(t, 4096, `public_url = "https://dav.example.test"
trusted_proxies = ["127.0.0.1"]`, "", proxyUsers)
			p := tc.start(t, g, t.TempDir())
			t.Run("the client address in davgw's log comes from the proxy's X-Forwarded-For", func(t *testing.T) {
				checkProxiedClientAddr(t, p)
			})
			t.Run("litmus passes through the proxy as it does directly", func(t *testing.T) {
				direct := runLitmusAt(t, g.b, tc.name+" direct", g.base+"/dav/", "pxlitmus", proxyUsers["pxlitmus"], litmusBin)
				proxied := runLitmusAt(t, g.b, "through "+tc.name, p.tunnel+"/dav/", "pxlitmus", proxyUsers["pxlitmus"], litmusBin)
				if d, q := failedNames(direct.failed), failedNames(proxied.failed); d != q || direct.ran != proxied.ran || direct.passed != proxied.passed {
					t.Errorf("litmus through %s: %d/%d passed, failed %s; directly: %d/%d passed, failed %s",
						tc.name, proxied.passed, proxied.ran, q, direct.passed, direct.ran, d)
				}
			})
			t.Run("COPY and MOVE with an absolute Destination work through the proxy", func(t *testing.T) {
				checkProxiedCopyMove(t, p)
			})
			for _, chunked := range []bool{true, false} {
				name := "a 200 MiB PUT with Content-Length streams through the proxy"
				if chunked {
					name = "a 200 MiB chunked PUT streams through the proxy"
				}
				t.Run(name, func(t *testing.T) {
					checkProxiedBigPut(t, p, chunked)
				})
			}
		})
	}
}

// proxyDAV returns the key prefix and DAV path of a fresh folder of
// pxalice's, made through the proxy.
func proxyDAV(t *testing.T, p *proxiedGateway) (keyPrefix, davPath string) {
	t.Helper()
	slug := "px-" + randHex(4)
	if st, _ := p.do(t, "MKCOL", "/dav/"+slug+"/", nil, -1); st != http.StatusCreated {
		t.Fatalf("MKCOL /dav/%s/ through the proxy: %d, want 201", slug, st)
	}
	return "users/pxalice/" + slug + "/", "/dav/" + slug + "/"
}

// do sends a request as pxalice through the proxy: header pairs, a body
// of the given length (-1 = chunked when body is set). It returns the
// status and the body.
func (p *proxiedGateway) do(t *testing.T, method, path string, body io.Reader, length int64, hdr ...string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, p.url+path, body)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.ContentLength = length
	}
	req.SetBasicAuth("pxalice", proxyUsers["pxalice"])
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := p.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s through the proxy: %v\n--- davgw ---\n%s", method, path, err, p.g.p.log.String())
	}
	defer resp.Body.Close()
	got, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s through the proxy: reading the answer: %v", method, path, err)
	}
	return resp.StatusCode, got
}

func checkProxiedClientAddr(t *testing.T, p *proxiedGateway) {
	_, dir := proxyDAV(t, p)
	name := dir + "whoami-" + randHex(4) + ".txt"
	if st, _ := p.do(t, "PUT", name, strings.NewReader("who"), 3); st != http.StatusCreated {
		t.Fatalf("PUT %s: %d, want 201", name, st)
	}
	// Forged by the client: neither may become its address.
	st, _ := p.do(t, "GET", name, nil, 0, "X-Forwarded-For", "198.51.100.7", "Forwarded", "for=198.51.100.8")
	if st != http.StatusOK {
		t.Fatalf("GET %s: %d, want 200", name, st)
	}
	// The log line is written once the answer went out: wait for it.
	var line string
	for deadline := time.Now().Add(10 * time.Second); line == "" && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		for _, l := range strings.Split(p.g.p.log.all(), "\n") {
			if strings.Contains(l, "msg=request") && strings.Contains(l, "method=GET path="+name+" ") {
				line = l
			}
		}
	}
	if line == "" {
		t.Fatalf("davgw logged no GET of %s:\n%s", name, p.g.p.log.String())
	}
	// The client connects from 127.0.0.2; the proxy reaches davgw from
	// 127.0.0.1, the trusted proxy.
	if !strings.Contains(line, " addr=127.0.0.2 ") || !strings.Contains(line, " proxy="+p.proxyIn) {
		t.Errorf("davgw's log line of a request from 127.0.0.2 through the proxy %s should say addr=127.0.0.2 proxy=%s:\n%s", p.proxyIn, p.proxyIn, line)
	}
}

func checkProxiedCopyMove(t *testing.T, p *proxiedGateway) {
	_, dir := proxyDAV(t, p)
	body := "copy and move through a proxy"
	if st, _ := p.do(t, "PUT", dir+"a.txt", strings.NewReader(body), int64(len(body))); st != http.StatusCreated {
		t.Fatalf("PUT a.txt: %d, want 201", st)
	}
	steps := []struct {
		what, method, from, dest string
		want                     int
	}{
		{"COPY to the proxy's own URL", "COPY", "a.txt", p.url + dir + "b.txt", http.StatusCreated},
		{"MOVE to the proxy's own URL", "MOVE", "b.txt", p.url + dir + "c.txt", http.StatusCreated},
		{"MOVE to public_url's host", "MOVE", "c.txt", "https://dav.example.test" + dir + "d.txt", http.StatusCreated},
		{"MOVE to an absolute path", "MOVE", "d.txt", dir + "e.txt", http.StatusCreated},
		{"MOVE to another server", "MOVE", "e.txt", "https://elsewhere.example" + dir + "f.txt", http.StatusBadGateway},
	}
	for _, s := range steps {
		if st, got := p.do(t, s.method, dir+s.from, nil, 0, "Destination", s.dest); st != s.want {
			t.Errorf("%s (%s %s, Destination %s): %d %q, want %d", s.what, s.method, s.from, s.dest, st, got, s.want)
		}
	}
	for name, want := range map[string]int{"a.txt": 200, "b.txt": 404, "c.txt": 404, "d.txt": 404, "e.txt": 200, "f.txt": 404} {
		st, got := p.do(t, "GET", dir+name, nil, 0)
		if st != want || (want == 200 && string(got) != body) {
			t.Errorf("GET %s after the moves: %d %q, want %d", name, st, got, want)
		}
	}
}

// halfwayReader is a deterministic body of size bytes that, when half of
// it has been read, calls check once before going on: the client is then
// still sending. Its SHA-256 is in sum once it is read whole.
type halfwayReader struct {
	rng      *mrand.ChaCha8
	size, n  int64
	check    func() error
	checked  bool
	checkErr error
	hash     hash.Hash
}

func (r *halfwayReader) Read(p []byte) (int, error) {
	if r.n >= r.size {
		return 0, io.EOF
	}
	if !r.checked && r.n >= r.size/2 {
		r.checked = true
		if r.checkErr = r.check(); r.checkErr != nil {
			return 0, r.checkErr
		}
	}
	if rest := r.size - r.n; int64(len(p)) > rest {
		p = p[:rest]
	}
	_, _ = r.rng.Read(p)
	_, _ = r.hash.Write(p)
	r.n += int64(len(p))
	return len(p), nil
}

func checkProxiedBigPut(t *testing.T, p *proxiedGateway, chunked bool) {
	keyPrefix, dir := proxyDAV(t, p)
	name := dir + "big.bin"
	key := keyPrefix + "big.bin"
	b := p.g.b
	mark := b.proxy.Mark()
	var halfway string // what was true when the client was half way
	body := &halfwayReader{
		rng:  mrand.NewChaCha8([32]byte{byte(len(name)), 7}),
		size: proxyBigSize,
		hash: sha256.New(),
		check: func() error {
			// davgw uploads 5 MiB parts as the body arrives: a proxy that
			// streams has let part of the first 100 MiB through.
			deadline := time.Now().Add(30 * time.Second)
			for time.Now().Before(deadline) {
				if countOps(b.proxy.SinceUnder(mark, key))["UploadPart"] > 0 {
					if files := p.spooled(); len(files) > 0 {
						return fmt.Errorf("the proxy spooled the body to disk: %s", strings.Join(files, ", "))
					}
					halfway = fmt.Sprintf("%d parts on their way to S3", countOps(b.proxy.SinceUnder(mark, key))["UploadPart"])
					return nil
				}
				time.Sleep(20 * time.Millisecond)
			}
			return errors.New("davgw sent S3 no part within 30 s while the client was half way: the proxy holds the body back")
		},
	}
	length := int64(proxyBigSize)
	if chunked {
		length = -1
	}
	start := time.Now()
	st, got := p.do(t, "PUT", name, body, length)
	took := time.Since(start)
	if body.checkErr != nil {
		t.Fatal(body.checkErr)
	}
	if st != http.StatusCreated {
		t.Fatalf("PUT %s of %d bytes (chunked %v): %d %q, want 201", name, proxyBigSize, chunked, st, got)
	}
	if !body.checked {
		t.Fatal("the body was never read half way")
	}
	sent := body.hash.Sum(nil)

	resp, err := p.client.Do(authRequest(t, "GET", p.url+name, "pxalice"))
	if err != nil {
		t.Fatal(err)
	}
	// A slow reader: a proxy that buffers answers would now spool the
	// rest of the file to its disk.
	h := sha256.New()
	n, err := io.CopyN(h, resp.Body, 1<<20)
	if err == nil {
		time.Sleep(500 * time.Millisecond)
		if files := p.spooled(); len(files) > 0 {
			t.Errorf("the proxy spooled the answer to a slow reader to disk: %s", strings.Join(files, ", "))
		}
		var rest int64
		rest, err = io.Copy(h, resp.Body)
		n += rest
	}
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK || n != proxyBigSize || string(h.Sum(nil)) != string(sent) {
		t.Fatalf("GET %s through the proxy: %d, %d bytes (%v), same bytes %v; want 200 and the %d bytes sent",
			name, resp.StatusCode, n, err, string(h.Sum(nil)) == string(sent), proxyBigSize)
	}
	if files := p.spooled(); len(files) > 0 {
		t.Errorf("the proxy spooled to disk: %s", strings.Join(files, ", "))
	}
	if t.Failed() {
		return
	}
	report(t, "behind %s: PUT of 200 MiB (chunked %v) in %v (%.0f MB/s); at half way %s, nothing spooled by the proxy",
		strings.Split(t.Name(), "/")[1], chunked, took.Round(time.Millisecond), float64(proxyBigSize)/1e6/took.Seconds(), halfway)
	b.deleteS3(t, key)
}

// authRequest is a request without a body as user.
func authRequest(t *testing.T, method, url, user string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth(user, proxyUsers[user])
	return req
}

// spooled lists what shows that the proxy wrote a body to its disk: files
// in its temporary folders, and the warnings nginx logs when it does
// ("a client request body is buffered to a temporary file", "an upstream
// response is buffered to a temporary file").
func (p *proxiedGateway) spooled() []string {
	var files []string
	if p.errLog != "" {
		log, _ := os.ReadFile(p.errLog)
		for _, l := range strings.Split(string(log), "\n") {
			if strings.Contains(l, "buffered to a temporary file") {
				files = append(files, l)
			}
		}
	}
	for _, d := range p.spools {
		_ = filepath.WalkDir(d, func(path string, e fs.DirEntry, err error) error {
			if err == nil && !e.IsDir() {
				files = append(files, path)
			}
			return nil
		})
	}
	return files
}

// deployFile reads a file of deploy/ and applies the replacements (old,
// new pairs), each of which must match exactly once, so that the test
// fails when the file no longer has what it fills in.
func deployFile(t *testing.T, rel string, repl ...string) string {
	t.Helper()
	_, self, _, _ := runtime.Caller(0)
	data, err := os.ReadFile(filepath.Join(filepath.Dir(filepath.Dir(self)), rel))
	if err != nil {
		t.Fatal(err)
	}
	s := string(data)
	for i := 0; i+1 < len(repl); i += 2 {
		if n := strings.Count(s, repl[i]); n != 1 {
			t.Fatalf("%s: %q occurs %d times, want once (the test fills it in)", rel, repl[i], n)
		}
		s = strings.Replace(s, repl[i], repl[i+1], 1)
	}
	return s
}

// selfSignedTLS writes a certificate for 127.0.0.1, ::1 and
// dav.example.com with its key into dir, and returns their paths and a
// pool that trusts it.
func selfSignedTLS(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "dav.example.com"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		DNSNames:              []string{"dav.example.com"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "fullchain.pem"), filepath.Join(dir, "privkey.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

// proxyClient is an HTTPS client that trusts pool and connects from
// 127.0.0.2, so that davgw's log can tell the client from the proxy.
func proxyClient(pool *x509.CertPool) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}, Timeout: 10 * time.Second}
	return &http.Client{
		Timeout: 5 * time.Minute,
		Transport: &http.Transport{
			DialContext:        d.DialContext,
			TLSClientConfig:    &tls.Config{RootCAs: pool},
			DisableCompression: true,
		},
	}
}

// tlsTunnel listens on a loopback port and relays each connection's bytes
// into a TLS connection to addr, so that litmus (whose TLS library trusts
// only the system's certificates) speaks plain HTTP to the tunnel and its
// requests reach the proxy over TLS unchanged, byte for byte.
func tlsTunnel(t *testing.T, addr string, pool *x509.CertPool) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				up, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", addr, &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"})
				if err != nil {
					return
				}
				defer up.Close()
				done := make(chan struct{})
				go func() {
					_, _ = io.Copy(up, c)
					_ = up.CloseWrite()
					close(done)
				}()
				_, _ = io.Copy(c, up)
				_ = c.(*net.TCPConn).CloseWrite()
				<-done
			}()
		}
	}()
	return "http://" + ln.Addr().String()
}

// dualLoopbackPort is a port free on both 127.0.0.1 and ::1.
func dualLoopbackPort(t *testing.T) int {
	t.Helper()
	for range 20 {
		l4, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l4.Addr().(*net.TCPAddr).Port
		l6, err := net.Listen("tcp", net.JoinHostPort("::1", strconv.Itoa(port)))
		l4.Close()
		if err == nil {
			l6.Close()
			return port
		}
	}
	t.Fatal("no port free on both 127.0.0.1 and ::1")
	return 0
}

// startNginx runs Debian's nginx with deploy/nginx/davgw.conf in front of
// g, as the test's own process with its prefix in a temporary folder.
func startNginx(t *testing.T, g *servedGateway, tlsDir string) *proxiedGateway {
	bin, err := toolPath("DAVGW_NGINX", "nginx", "")
	requireTool(t, err)
	certFile, keyFile, pool := selfSignedTLS(t, tlsDir)
	// nginx's workers run as an unprivileged user when the test is root:
	// they must reach the prefix (t.TempDir is private to root).
	dir, err := os.MkdirTemp("", "davgw-nginx-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	port := dualLoopbackPort(t)
	site := deployFile(t, nginxSnippet,
		"server 127.0.0.1:8080;", "server "+g.addr+";",
		"listen 443 ssl;", fmt.Sprintf("listen 127.0.0.1:%d ssl;", port),
		"listen [::]:443 ssl;", fmt.Sprintf("listen [::1]:%d ssl;", port),
		"/etc/ssl/davgw/fullchain.pem", certFile,
		"/etc/ssl/davgw/privkey.pem", keyFile,
	)
	if err := os.WriteFile(filepath.Join(dir, "davgw.conf"), []byte(site), 0o644); err != nil {
		t.Fatal(err)
	}
	spools := []string{filepath.Join(dir, "client_body_temp"), filepath.Join(dir, "proxy_temp")}
	main := fmt.Sprintf(`worker_processes 1;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log info;
events { worker_connections 512; }
http {
    access_log %[1]s/access.log;
    client_body_temp_path %[2]s;
    proxy_temp_path %[3]s;
    fastcgi_temp_path %[1]s/fastcgi_temp;
    uwsgi_temp_path %[1]s/uwsgi_temp;
    scgi_temp_path %[1]s/scgi_temp;
    include %[1]s/davgw.conf;
}
`, dir, spools[0], spools[1])
	conf := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(conf, []byte(main), 0o644); err != nil {
		t.Fatal(err)
	}
	p, err := startProcess("nginx", dir, bin, nil, "-p", dir+"/", "-e", dir+"/error.log", "-c", conf, "-g", "daemon off;")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.stop(5 * time.Second)
		if t.Failed() {
			log, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			t.Logf("nginx error.log:\n%s", tail(string(log), 4000))
		}
	})
	addr := "127.0.0.1:" + strconv.Itoa(port)
	waitTLS(t, p, addr, pool)
	return &proxiedGateway{g: g, url: "https://" + addr, tunnel: tlsTunnel(t, addr, pool), client: proxyClient(pool), spools: spools, errLog: filepath.Join(dir, "error.log"), proxyIn: "127.0.0.1"}
}

// startCaddy runs Debian's caddy with deploy/caddy/Caddyfile in front of g.
func startCaddy(t *testing.T, g *servedGateway, tlsDir string) *proxiedGateway {
	bin, err := toolPath("DAVGW_CADDY", "caddy", "")
	requireTool(t, err)
	certFile, keyFile, pool := selfSignedTLS(t, tlsDir)
	dir := t.TempDir()
	ports, err := freePorts(2)
	if err != nil {
		t.Fatal(err)
	}
	site := deployFile(t, caddySnippet,
		"admin localhost:2019", fmt.Sprintf("admin 127.0.0.1:%d", ports[1]),
		"#default_bind 192.0.2.10", "default_bind 127.0.0.1",
		"dav.example.com {", fmt.Sprintf("127.0.0.1:%d {", ports[0]),
		"reverse_proxy 127.0.0.1:8080", "reverse_proxy "+g.addr,
		"/etc/ssl/davgw/fullchain.pem", certFile,
		"/etc/ssl/davgw/privkey.pem", keyFile,
	)
	conf := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(conf, []byte(site), 0o644); err != nil {
		t.Fatal(err)
	}
	// Caddy keeps its state under $HOME / $XDG_*: the test's folder.
	env := []string{"HOME=" + dir, "XDG_DATA_HOME=" + dir + "/data", "XDG_CONFIG_HOME=" + dir + "/config"}
	p, err := startProcess("caddy", dir, bin, env, "run", "--config", conf, "--adapter", "caddyfile")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.stop(5 * time.Second)
		if t.Failed() {
			t.Logf("caddy output:\n%s", p.log.String())
		}
	})
	addr := "127.0.0.1:" + strconv.Itoa(ports[0])
	waitTLS(t, p, addr, pool)
	return &proxiedGateway{g: g, url: "https://" + addr, tunnel: tlsTunnel(t, addr, pool), client: proxyClient(pool), proxyIn: "127.0.0.1"}
}

// waitTLS waits until the proxy at addr answers /healthz (davgw's, through
// it) over TLS.
func waitTLS(t *testing.T, p *process, addr string, pool *x509.CertPool) {
	t.Helper()
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	defer client.CloseIdleConnections()
	deadline := time.Now().Add(20 * time.Second)
	for {
		if err := p.exited(); err != nil {
			t.Fatal(err)
		}
		req, _ := http.NewRequestWithContext(context.Background(), http.MethodGet, "https://"+addr+"/healthz", nil)
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
			err = fmt.Errorf("status %d", resp.StatusCode)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not pass /healthz through at %s within 20 s: %v; output:\n%s", p.name, addr, err, p.log.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}
