package tests

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/davgw/davgw/auth"
	"github.com/davgw/davgw/gateway"
)

// servedGateway is `davgw serve` run as operators run it (the binary, its
// http.Server and config), over the versitygw back end.
type servedGateway struct {
	base string // http://127.0.0.1:PORT
	addr string // 127.0.0.1:PORT
	p    *process
	b    *backend
}

// serveBinary starts `davgw serve` under prlimit with at most nofile open
// files, with [server] extra lines, [s3] extra lines and the users given
// (name -> password), over versitygw through its counting proxy; parts
// are 5 MiB unless s3Extra sets part_size.
func serveBinary(t testing.TB, nofile int, serverExtra, s3Extra string, users map[string]string) *servedGateway {
	t.Helper()
	return serveBinaryCost(t, bcrypt.MinCost, nofile, serverExtra, s3Extra, users)
}

// serveBinaryCost is serveBinary with the users' passwords hashed at the
// given bcrypt cost.
func serveBinaryCost(t testing.TB, cost, nofile int, serverExtra, s3Extra string, users map[string]string) *servedGateway {
	t.Helper()
	b := getBackend(t, "versitygw")
	prlimit, err := exec.LookPath("prlimit")
	if err != nil {
		t.Fatalf("prlimit (util-linux) is needed to run the gateway with a low file limit: %v", err)
	}
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(t.TempDir(), "config.toml")
	if err := os.WriteFile(cfg, []byte(gatewayConfig(t, b, port, cost, serverExtra, s3Extra, users)), 0o600); err != nil {
		t.Fatal(err)
	}
	p, err := startProcess("davgw serve", t.TempDir(), prlimit, nil,
		"--nofile="+strconv.Itoa(nofile)+":"+strconv.Itoa(nofile), davgwBinary(t), "serve", "-config", cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.stop(5 * time.Second) })
	addr := "127.0.0.1:" + strconv.Itoa(port)
	if err := waitHTTP(context.Background(), p, "http://"+addr+"/healthz", 20*time.Second); err != nil {
		t.Fatal(err)
	}
	return &servedGateway{base: "http://" + addr, addr: addr, p: p, b: b}
}

// gatewayConfig is a config for `davgw serve` on 127.0.0.1:port over b
// (through its counting proxy), with [server] extra lines, [s3] extra
// lines (parts are 5 MiB unless they set part_size) and the users given
// (name -> password, hashed at the bcrypt cost).
func gatewayConfig(t testing.TB, b *backend, port, cost int, serverExtra, s3Extra string, users map[string]string) string {
	t.Helper()
	var doc strings.Builder
	fmt.Fprintf(&doc, "[server]\nlisten = \"127.0.0.1:%d\"\n%s\n", port, serverExtra)
	if !strings.Contains(s3Extra, "part_size") {
		s3Extra = "part_size = \"5MiB\"\n" + s3Extra
	}
	fmt.Fprintf(&doc, "[s3]\nendpoint = %q\nbucket = %q\npath_style = true\naccess_key_id = %q\nsecret_access_key = %q\n%s\n",
		b.proxy.URL, b.bucket, b.server.access, b.server.secret, s3Extra)
	for name, pw := range users {
		h, err := auth.HashPasswordCost(pw, cost)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&doc, "[[auth.users]]\nname = %q\npassword_hash = %q\n", name, h)
	}
	return doc.String()
}

// do sends one request as user (password pw) and returns the status and body.
func (g *servedGateway) do(t *testing.T, method, path, user, pw string, body []byte, hdr ...string) (int, []byte) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, g.base+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth(user, pw)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	client := &http.Client{Timeout: 60 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s as %s: %v\n%s", method, path, user, err, g.p.log.String())
	}
	defer resp.Body.Close()
	got, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s as %s: reading the body: %v", method, path, user, err)
	}
	return resp.StatusCode, got
}

// stalledRequest opens a raw connection, sends head (a request head ending
// in a blank line) and then drip (if any) one byte at a time every
// dripEvery, and returns the status line the gateway answers and whether
// it then closed the connection, all within limit.
func stalledRequest(addr, head string, drip []byte, dripEvery, limit time.Duration) (status string, closed bool, err error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return "", false, err
	}
	defer c.Close()
	if _, err := io.WriteString(c, head); err != nil {
		return "", false, err
	}
	stop := make(chan struct{})
	defer close(stop)
	if len(drip) > 0 {
		go func() {
			for _, b := range drip {
				select {
				case <-stop:
					return
				case <-time.After(dripEvery):
				}
				if _, err := c.Write([]byte{b}); err != nil {
					return
				}
			}
		}()
	}
	_ = c.SetReadDeadline(time.Now().Add(limit))
	br := bufio.NewReader(c)
	line, err := br.ReadString('\n')
	if err != nil {
		return "", false, fmt.Errorf("no answer within %v: %w", limit, err)
	}
	// Read the rest of the answer and then wait for the close (a reset
	// is a close too: the gateway closed with our body bytes unread).
	_, err = io.Copy(io.Discard, br)
	return strings.TrimSpace(line), err == nil || errors.Is(err, syscall.ECONNRESET), nil
}

// TestStalledBodiesCannotHoldTheGateway is row F1 of the bounded-resources
// issue: clients that send a request head (with or without credentials)
// and then no body, or an XML body a byte at a time, must be answered and
// disconnected, so that a gateway with few file descriptors keeps serving
// everyone else; a body that keeps flowing, however slowly, is never cut.
func TestStalledBodiesCannotHoldTheGateway(t *testing.T) {
	users := map[string]string{"f1alice": "pw-f1-alice", "f1bob": "pw-f1-bob"}
	// 48 open files: the listener, S3 connections and the runtime's own
	// use about 15, so 40 held connections would exhaust it.
	g := serveBinary(t, 48, `body_idle_timeout = "2s"`, "", users)
	const limit = 30 * time.Second // far beyond every deadline; only a hang reaches it

	type outcome struct {
		what   string
		status string
		closed bool
		err    error
	}
	var (
		mu       sync.Mutex
		outcomes []outcome
		wg       sync.WaitGroup
	)
	run := func(what, head string, drip []byte) {
		defer wg.Done()
		st, closed, err := stalledRequest(g.addr, head, drip, 500*time.Millisecond, limit)
		mu.Lock()
		outcomes = append(outcomes, outcome{what, st, closed, err})
		mu.Unlock()
	}
	host := "Host: " + g.addr + "\r\n"
	for i := range 20 {
		wg.Add(2)
		go run("PUT without credentials, Content-Length and no body",
			fmt.Sprintf("PUT /dav/f1-%d.bin HTTP/1.1\r\n%sContent-Length: 200000\r\n\r\n", i, host), nil)
		go run("PUT without credentials, chunked and no body",
			fmt.Sprintf("PUT /dav/f1-c%d.bin HTTP/1.1\r\n%sTransfer-Encoding: chunked\r\n\r\n", i, host), nil)
	}
	basic := "Authorization: Basic " + basicToken("f1alice", "pw-f1-alice") + "\r\n"
	xml := []byte(`<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:allprop/></D:propfind>`)
	for range 10 {
		wg.Add(1)
		go run("signed-in PROPFIND whose body drips a byte every 0.5 s",
			fmt.Sprintf("PROPFIND /dav/ HTTP/1.1\r\n%s%sDepth: 1\r\nContent-Type: application/xml\r\nContent-Length: %d\r\n\r\n", host, basic, len(xml)), xml)
	}
	for i := range 4 {
		wg.Add(1)
		go run("signed-in PUT that sends 10 of its 100 bytes and stalls",
			fmt.Sprintf("PUT /dav/f1-put-%d.bin HTTP/1.1\r\n%s%sContent-Length: 100\r\n\r\n", i, host, basic), []byte("0123456789"))
	}
	wg.Wait()

	want := map[string]string{
		"signed-in PUT that sends 10 of its 100 bytes and stalls": "HTTP/1.1 408 Request Timeout",
		"PUT without credentials, Content-Length and no body":     "HTTP/1.1 401 Unauthorized",
		"PUT without credentials, chunked and no body":            "HTTP/1.1 401 Unauthorized",
		"signed-in PROPFIND whose body drips a byte every 0.5 s":  "HTTP/1.1 408 Request Timeout",
	}
	for _, o := range outcomes {
		if o.err != nil {
			t.Errorf("%s: %v", o.what, o.err)
			continue
		}
		if o.status != want[o.what] {
			t.Errorf("%s: answered %q, want %q", o.what, o.status, want[o.what])
		}
		if !o.closed {
			t.Errorf("%s: the connection stayed open after the answer", o.what)
		}
	}
	if t.Failed() {
		t.Fatalf("gateway log:\n%s", g.p.log.String())
	}

	// The service is still there for another user, and nothing was stored.
	if code, _ := g.do(t, http.MethodGet, "/healthz", "", "", nil); code != http.StatusOK {
		t.Fatalf("/healthz: %d", code)
	}
	content := bytes.Repeat([]byte("f1 "), 1000)
	if code, _ := g.do(t, http.MethodPut, "/dav/after.txt", "f1bob", "pw-f1-bob", content); code != http.StatusCreated {
		t.Fatalf("PUT as f1bob after the stalled clients: %d", code)
	}
	if code, got := g.do(t, http.MethodGet, "/dav/after.txt", "f1bob", "pw-f1-bob", nil); code != http.StatusOK || !bytes.Equal(got, content) {
		t.Fatalf("GET as f1bob: %d, %d bytes (want 200, %d bytes)", code, len(got), len(content))
	}
	if keys := g.b.keys(t, "users/f1alice/"); len(keys) != 0 {
		t.Fatalf("keys stored for the stalled requests: %v", keys)
	}

	// A body that keeps flowing is never cut, even when it takes several
	// idle timeouts: 12 pieces, one every second, with a 2 s idle timeout.
	slow := bytes.Repeat([]byte("0123456789abcdef"), 12*1024)
	pr, pw := io.Pipe()
	go func() {
		piece := len(slow) / 12
		for i := 0; i < 12; i++ {
			time.Sleep(time.Second)
			if _, err := pw.Write(slow[i*piece : (i+1)*piece]); err != nil {
				return
			}
		}
		pw.Close()
	}()
	req, _ := http.NewRequest(http.MethodPut, g.base+"/dav/slow.bin", pr)
	req.ContentLength = int64(len(slow))
	req.SetBasicAuth("f1bob", "pw-f1-bob")
	resp, err := (&http.Client{Timeout: limit}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("slow but flowing PUT: %d, want 201\n%s", resp.StatusCode, g.p.log.String())
	}
	if code, got := g.do(t, http.MethodGet, "/dav/slow.bin", "f1bob", "pw-f1-bob", nil); code != http.StatusOK || !bytes.Equal(got, slow) {
		t.Fatalf("GET slow.bin: %d, %d bytes (want 200, %d bytes)", code, len(got), len(slow))
	}
}

func basicToken(user, pw string) string {
	return base64.StdEncoding.EncodeToString([]byte(user + ":" + pw))
}

// TestStalledUploadsCannotRefuseOtherUsers is row F2 of the
// bounded-resources issue: one user opening many uploads that send a byte
// and then stall must not make every other user's upload fail. The user's
// own uploads are held to its memory share (the ones past it answer 429),
// another user's upload goes through, and nothing is stored or left behind.
func TestStalledUploadsCannotRefuseOtherUsers(t *testing.T) {
	users := map[string]string{"f2mallory": "pw-f2-mallory", "f2bob": "pw-f2-bob"}
	// 64 MiB of upload memory, 5 MiB parts: 16 stalled uploads holding a
	// part each would take it all. A user's share is 15 MiB: three parts.
	g := serveBinary(t, 1024, "", `upload_memory = "64MiB"`+"\n\n[limits]\nupload_memory_per_user = \"15MiB\"\n", users)
	const stalled = 16

	type answer struct {
		status string
		err    error
	}
	answers := make(chan answer, stalled)
	conns := make([]net.Conn, 0, stalled)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	basic := "Authorization: Basic " + basicToken("f2mallory", "pw-f2-mallory") + "\r\n"
	for i := range stalled {
		c, err := net.DialTimeout("tcp", g.addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		head := fmt.Sprintf("PUT /dav/stall-%d.bin HTTP/1.1\r\nHost: %s\r\n%sTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n", i, g.addr, basic)
		if _, err := io.WriteString(c, head); err != nil {
			t.Fatal(err)
		}
		go func() {
			_ = c.SetReadDeadline(time.Now().Add(45 * time.Second))
			line, err := bufio.NewReader(c).ReadString('\n')
			answers <- answer{strings.TrimSpace(line), err}
		}()
	}
	time.Sleep(time.Second) // let the stalled uploads take what they can

	// Another user uploads a multipart file (12 MiB, three parts) meanwhile.
	content := bytes.Repeat([]byte("bob's data "), 12<<20/11)
	if code, _ := g.do(t, http.MethodPut, "/dav/big.bin", "f2bob", "pw-f2-bob", content); code != http.StatusCreated {
		t.Fatalf("PUT as f2bob while f2mallory's uploads stall: %d, want 201\n%s", code, g.p.log.String())
	}
	if code, got := g.do(t, http.MethodGet, "/dav/big.bin", "f2bob", "pw-f2-bob", nil); code != http.StatusOK || !bytes.Equal(got, content) {
		t.Fatalf("GET big.bin: %d, %d bytes (want 200, %d bytes)", code, len(got), len(content))
	}

	// Mallory's uploads past her share gave up with 429 after the 15 s
	// wait; the three holding her share are still waiting for bytes.
	refused, open := 0, 0
	for range stalled {
		a := <-answers
		switch {
		case a.err == nil && a.status == "HTTP/1.1 429 Too Many Requests":
			refused++
		case a.err != nil && errors.Is(a.err, os.ErrDeadlineExceeded):
			open++
		default:
			t.Errorf("stalled upload answered %q, %v", a.status, a.err)
		}
	}
	if refused != stalled-3 || open != 3 {
		t.Errorf("%d stalled uploads refused with 429 and %d still open, want %d and 3\n%s", refused, open, stalled-3, g.p.log.String())
	}
	for _, c := range conns {
		c.Close()
	}
	// Nothing of the stalled uploads is stored or left as a multipart upload.
	deadline := time.Now().Add(20 * time.Second)
	for {
		keys, uploads := g.b.keys(t, "users/f2mallory/"), g.b.openUploads(t, "users/f2mallory/")
		if len(keys) == 0 && len(uploads) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("left behind by the stalled uploads: keys %v, uploads %v", keys, uploads)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestAFlowingBodyIsNeverCutWhileS3IsSlow: the gateway stops reading a PUT
// body while its parts wait for a slow S3 (upload_concurrency 1, each part
// held 2.5 s, a 1 s body idle timeout). Over HTTP/1.1 and over HTTP/2
// (where a read deadline resets the stream even when nobody reads) the
// upload completes whole.
func TestAFlowingBodyIsNeverCutWhileS3IsSlow(t *testing.T) {
	base := getEnv(t, "versitygw")
	up, err := url.Parse(base.b.proxy.URL)
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(up)
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut && r.URL.Query().Has("partNumber") {
			time.Sleep(2500 * time.Millisecond)
		}
		rp.ServeHTTP(w, r)
	}))
	defer slow.Close()
	e, err := newDavEnv(staticAuth(t), base.b, slow.URL, gatewayPartSize, 1, func(o *gateway.Options) { o.BodyIdleTimeout = time.Second })
	if err != nil {
		t.Fatal(err)
	}
	h := e.srv.Config.Handler
	e.srv.Close()
	body := bytes.Repeat([]byte("flowing "), 12<<20/8) // three parts of 5 MiB
	for _, h2 := range []bool{false, true} {
		t.Run(map[bool]string{false: "HTTP/1.1", true: "HTTP/2"}[h2], func(t *testing.T) {
			ts := httptest.NewUnstartedServer(h)
			ts.EnableHTTP2 = h2
			ts.StartTLS()
			defer ts.Close()
			name := fmt.Sprintf("/dav/slow-s3-h2-%v.bin", h2)
			req, _ := http.NewRequest(http.MethodPut, ts.URL+name, bytes.NewReader(body))
			req.SetBasicAuth("alice", testUsers["alice"])
			resp, err := ts.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if wantProto := map[bool]int{false: 1, true: 2}[h2]; resp.ProtoMajor != wantProto {
				t.Fatalf("answered over %s, want HTTP/%d", resp.Proto, wantProto)
			}
			if resp.StatusCode != http.StatusCreated {
				t.Fatalf("PUT while S3 is slow: %d, want 201", resp.StatusCode)
			}
			if got, ok := base.getS3(t, "users/alice"+strings.TrimPrefix(name, "/dav")); !ok || !bytes.Equal(got, body) {
				t.Fatalf("stored %d bytes (exists=%v), want %d", len(got), ok, len(body))
			}
		})
	}
}

// TestDeepOrHugeXMLBodiesAreRefusedCheaply is row F5 of the
// bounded-resources issue: bodies of nested elements (1 MiB of <a>) or of
// too many elements are refused with 400 before x/net decodes them, while
// several arrive at once and another user keeps working; ordinary bodies
// pass.
func TestDeepOrHugeXMLBodiesAreRefusedCheaply(t *testing.T) {
	e := getEnv(t, "versitygw")
	_, dir := e.caseDir(t)
	deep := []byte(`<?xml version="1.0"?><D:propfind xmlns:D="DAV:">` + strings.Repeat("<a>", (1<<20-100)/3) + `</D:propfind>`)
	many := []byte(`<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:prop>` + strings.Repeat("<D:x/>", 25000) + `</D:prop></D:propfind>`)
	patch := []byte(`<?xml version="1.0"?><D:propertyupdate xmlns:D="DAV:"><D:set><D:prop><Z:p xmlns:Z="urn:z">` +
		strings.Repeat("<Z:n>", 40) + strings.Repeat("</Z:n>", 40) + `</Z:p></D:prop></D:set></D:propertyupdate>`)
	expect(t, "PUT f.txt", e.alice(t, http.MethodPut, dir+"f.txt", nil, []byte("f")), http.StatusCreated)
	var wg sync.WaitGroup
	statuses := make(chan int, 16)
	for range 8 {
		wg.Go(func() { statuses <- e.alice(t, "PROPFIND", dir, map[string]string{"Depth": "1"}, deep).Status })
	}
	for range 4 {
		wg.Go(func() { statuses <- e.alice(t, "PROPFIND", dir, map[string]string{"Depth": "0"}, many).Status })
		wg.Go(func() { statuses <- e.alice(t, "PROPPATCH", dir+"f.txt", nil, patch).Status })
	}
	r := e.do(t, req{Method: http.MethodGet, Path: dir + "f.txt", User: "bob"})
	wg.Wait()
	close(statuses)
	for st := range statuses {
		if st != http.StatusBadRequest {
			t.Errorf("a body past the XML bounds answered %d, want 400", st)
		}
	}
	if r.Status != http.StatusNotFound { // bob's own root: the request was served
		t.Errorf("another user's request meanwhile: %d, want 404 (served)", r.Status)
	}
	ok := []byte(`<?xml version="1.0"?><D:propertyupdate xmlns:D="DAV:"><D:set><D:prop><Z:p xmlns:Z="urn:z"><Z:n><Z:m>v</Z:m></Z:n></Z:p></D:prop></D:set></D:propertyupdate>`)
	expect(t, "an ordinary PROPPATCH", e.alice(t, "PROPPATCH", dir+"f.txt", nil, ok), http.StatusMultiStatus)
}

// TestTheEmbeddedDefaultLimitsAndAuditsFailedSignIns is row F8 of the
// bounded-resources issue: `davgw serve` without a config file had no
// limiter and wrote no audit line. 30 wrong passwords for "dev" from one
// address now end in 429 with Retry-After, each refusal audited.
func TestTheEmbeddedDefaultLimitsAndAuditsFailedSignIns(t *testing.T) {
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	p, err := startProcess("davgw serve (embedded default)", t.TempDir(), davgwBinary(t), []string{"DAVGW_CONFIG="}, "serve", "-listen", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.stop(10 * time.Second) })
	if err := waitHTTP(context.Background(), p, "http://"+addr+"/healthz", 60*time.Second); err != nil {
		t.Fatal(err)
	}
	statuses := map[int]int{}
	retryAfter := ""
	for i := range 30 {
		req, _ := http.NewRequest("PROPFIND", "http://"+addr+"/dav/", nil)
		req.Header.Set("Depth", "0")
		req.SetBasicAuth("dev", fmt.Sprintf("wrong-%d", i))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		statuses[resp.StatusCode]++
		if resp.StatusCode == http.StatusTooManyRequests {
			retryAfter = resp.Header.Get("Retry-After")
		}
	}
	if statuses[http.StatusTooManyRequests] == 0 || retryAfter == "" {
		t.Fatalf("30 wrong passwords answered %v (Retry-After %q), want 429s with Retry-After", statuses, retryAfter)
	}
	// The limiter's wait, not a default second: the window lasts minutes.
	if secs, err := strconv.Atoi(retryAfter); err != nil || secs <= 1 {
		t.Errorf("the 429 says Retry-After %q, want the seconds left in the limiter's window", retryAfter)
	}
	if statuses[http.StatusUnauthorized]+statuses[http.StatusTooManyRequests] != 30 {
		t.Fatalf("30 wrong passwords answered %v", statuses)
	}
	if n := strings.Count(p.log.String(), "audit: sign-in refused"); n < statuses[http.StatusUnauthorized] {
		t.Fatalf("%d audit lines for %d refused sign-ins:\n%s", n, statuses[http.StatusUnauthorized], p.log.String())
	}
}
