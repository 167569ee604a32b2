package tests

import (
	"context"
	"fmt"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/davgw/davgw/gateway"
	"github.com/davgw/davgw/locks"
)

// redisServer is Debian's redis-server on a free loopback port, for the
// shared store ([locks].store = "redis://...").
type redisServer struct {
	URL  string
	bin  string
	args []string
	cmd  *exec.Cmd
}

// startRedis starts one that keeps nothing on disk.
func startRedis(t *testing.T) *redisServer {
	t.Helper()
	return launchRedis(t, "--save", "", "--appendonly", "no")
}

// startPersistentRedis starts one that writes every change to its
// append-only file (fsync always), so that after a SIGKILL (stop) it
// starts again (start) on the same port with the same data.
func startPersistentRedis(t *testing.T) *redisServer {
	t.Helper()
	return launchRedis(t, "--save", "", "--appendonly", "yes", "--appendfsync", "always", "--dir", t.TempDir())
}

func launchRedis(t *testing.T, args ...string) *redisServer {
	t.Helper()
	bin, err := toolPath("DAVGW_REDIS_SERVER", "redis-server", "")
	requireTool(t, err)
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	s := &redisServer{URL: fmt.Sprintf("redis://127.0.0.1:%d/0", port), bin: bin,
		args: append([]string{"--port", strconv.Itoa(port), "--bind", "127.0.0.1"}, args...)}
	t.Cleanup(s.stop)
	s.start(t)
	return s
}

// start runs the server and waits until it answers.
func (s *redisServer) start(t *testing.T) {
	t.Helper()
	s.cmd = exec.Command(s.bin, s.args...)
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	probe, err := locks.NewRedis(s.URL, locks.Limits{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer probe.Close()
	if !waitFor(10*time.Second, func() bool { return probe.Ping(context.Background()) == nil }) {
		t.Fatal("redis-server did not answer within 10 s")
	}
}

// stop kills the server (SIGKILL, as a crash would).
func (s *redisServer) stop() {
	if s.cmd != nil && s.cmd.ProcessState == nil {
		_ = s.cmd.Process.Kill()
		_ = s.cmd.Wait()
	}
}

// redisGateway starts a gateway over back end name whose locks live in
// the Redis at url.
func redisGateway(t *testing.T, name, url string) *davEnv {
	t.Helper()
	shared, err := locks.NewRedis(url, locks.Limits{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	b := getBackend(t, name)
	e, err := newDavEnv(staticAuth(t), b, b.proxy.URL, gatewayPartSize, 2, func(o *gateway.Options) { o.Locks = shared })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		e.srv.Close()
		_ = shared.Close()
	})
	return e
}

const lockDiscoveryBody = `<?xml version="1.0" encoding="utf-8"?><D:propfind xmlns:D="DAV:"><D:prop><D:lockdiscovery/></D:prop></D:propfind>`

// TestRedisLocksAcrossGateways: two gateways over one bucket share their
// WebDAV locks through Redis; with Redis gone, locking answers 503.
func TestRedisLocksAcrossGateways(t *testing.T) {
	rs := startRedis(t)
	a := redisGateway(t, "versitygw", rs.URL)
	b := redisGateway(t, "versitygw", rs.URL)
	_, dir := a.caseDir(t)
	f := dir + "shared.txt"

	expect(t, "PUT on A", a.alice(t, "PUT", f, nil, []byte("v1")), http.StatusCreated)
	expect(t, "PUT on A", a.alice(t, "PUT", dir+"other.txt", nil, []byte("o")), http.StatusCreated)
	_, tok := a.lock(t, f, http.StatusOK)

	expect(t, "PUT on B without the token", b.alice(t, "PUT", f, nil, []byte("v2")), http.StatusLocked)
	expect(t, "DELETE of the folder on B", b.alice(t, "DELETE", dir, nil, nil), http.StatusLocked)
	expect(t, "MOVE onto the locked file on B", b.alice(t, "MOVE", dir+"other.txt",
		map[string]string{"Destination": f, "Overwrite": "T"}, nil), http.StatusLocked)
	deep := b.alice(t, "LOCK", dir, map[string]string{"Timeout": "Second-600", "Depth": "infinity"}, []byte(lockBody))
	expect(t, "deep LOCK of the folder on B", deep, http.StatusLocked)
	expect(t, "LOCK of the same file on B", b.alice(t, "LOCK", f, map[string]string{"Timeout": "Second-600", "Depth": "0"}, []byte(lockBody)), http.StatusLocked)
	// bob has his own namespace: alice's lock is not his.
	bobPut := b.do(t, req{Method: "PUT", Path: "/dav/" + strings.TrimPrefix(f, "/dav/"), User: "bob", Body: strings.NewReader("bob")})
	if bobPut.Status == http.StatusLocked {
		t.Fatalf("bob's PUT is blocked by alice's lock: %s", bobPut)
	}

	// B lists A's lock.
	pf := b.alice(t, "PROPFIND", f, map[string]string{"Depth": "0"}, []byte(lockDiscoveryBody))
	expect(t, "PROPFIND lockdiscovery on B", pf, http.StatusMultiStatus)
	if !strings.Contains(string(pf.Body), tok) {
		t.Fatalf("B's lockdiscovery does not show A's lock %s: %s", tok, pf)
	}

	// The token works on B.
	expect(t, "PUT on B with the token", b.alice(t, "PUT", f, map[string]string{"If": "(<" + tok + ">)"}, []byte("v3")), http.StatusNoContent)
	expect(t, "GET on A", a.alice(t, "GET", f, nil, nil), http.StatusOK)
	// Refresh on B.
	ref := b.alice(t, "LOCK", f, map[string]string{"Timeout": "Second-300", "If": "(<" + tok + ">)"}, nil)
	expect(t, "LOCK refresh on B", ref, http.StatusOK)
	b.unlock(t, f, tok)
	expect(t, "PUT on A after UNLOCK on B", a.alice(t, "PUT", f, nil, []byte("v4")), http.StatusNoContent)

	// A deep lock on B blocks a new member on A.
	_, dtok := b.lock(t, dir, http.StatusOK) // Depth 0 in lock(): lock the folder itself
	b.unlock(t, dir, dtok)
	r := b.alice(t, "LOCK", dir, map[string]string{"Timeout": "Second-600", "Depth": "infinity"}, []byte(lockBody))
	expect(t, "deep LOCK on B", r, http.StatusOK)
	dtok = strings.TrimSuffix(strings.TrimPrefix(r.Header.Get("Lock-Token"), "<"), ">")
	expect(t, "PUT of a new member on A", a.alice(t, "PUT", dir+"new.txt", nil, []byte("x")), http.StatusLocked)
	expect(t, "MKCOL of a new member on A", a.alice(t, "MKCOL", dir+"sub/", nil, nil), http.StatusLocked)
	a.unlock(t, dir, dtok)
	expect(t, "PUT of a new member on A after UNLOCK", a.alice(t, "PUT", dir+"new.txt", nil, []byte("x")), http.StatusCreated)

	// Redis gone: 503 with Retry-After, never 500.
	rs.stop()
	for _, c := range []struct {
		what string
		r    reply
	}{
		{"LOCK on A", a.alice(t, "LOCK", f, map[string]string{"Timeout": "Second-600", "Depth": "0"}, []byte(lockBody))},
		{"PUT on B", b.alice(t, "PUT", f, nil, []byte("v5"))},
		{"PUT with an If token on B", b.alice(t, "PUT", f, map[string]string{"If": "(<" + tok + ">)"}, []byte("v5"))},
		{"DELETE on A", a.alice(t, "DELETE", dir+"new.txt", nil, nil)},
		{"UNLOCK on B", b.alice(t, "UNLOCK", f, map[string]string{"Lock-Token": "<" + tok + ">"}, nil)},
	} {
		expect(t, c.what+" with Redis stopped", c.r, http.StatusServiceUnavailable)
		if c.r.Header.Get("Retry-After") == "" {
			t.Errorf("%s with Redis stopped: 503 without Retry-After", c.what)
		}
	}
	// Reads need no lock.
	expect(t, "GET on A with Redis stopped", a.alice(t, "GET", f, nil, nil), http.StatusOK)
}

// TestLitmusRedisLocks runs litmus (its locks suite among the rest)
// against a gateway whose lock store is Redis: the same results as with
// the memory store (only move_coll and lock_shared may fail).
func TestLitmusRedisLocks(t *testing.T) {
	bin, err := toolPath("DAVGW_LITMUS", "litmus", "")
	requireTool(t, err)
	rs := startRedis(t)
	e := redisGateway(t, "versitygw", rs.URL)
	run := runLitmus(t, e, bin)
	if s, ok := run.summaries["locks"]; ok {
		report(t, "litmus locks with the Redis lock store: %s", s)
	}
}

// TestARedisLockRefreshesWhileARequestUsesIt is refreshWhileInUse with the
// Redis lock store, where a lock in use expires on time: a refresh is what
// keeps it.
func TestARedisLockRefreshesWhileARequestUsesIt(t *testing.T) {
	rs := startRedis(t)
	refreshWhileInUse(t, redisGateway(t, "versitygw", rs.URL))
}
