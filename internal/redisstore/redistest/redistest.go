// Package redistest starts a real redis-server for the unit tests of the
// packages that keep shared state in Redis.
package redistest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/davgw/davgw/internal/redisstore"
)

// Server is a redis-server of the test's own on a free loopback port.
type Server struct {
	// URL is its redis:// URL (database 0).
	URL string
	cmd *exec.Cmd
}

// Start starts Debian's redis-server (DAVGW_REDIS_SERVER, else $PATH);
// it stops with the test. Without one the test is skipped, or fails with
// CI=true.
func Start(t testing.TB) *Server {
	t.Helper()
	bin := os.Getenv("DAVGW_REDIS_SERVER")
	if bin == "" {
		var err error
		if bin, err = exec.LookPath("redis-server"); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatal("redis-server not found (bash .ci/tools.sh installs it)")
			}
			t.Skip("redis-server not found (run `eval \"$(bash .ci/tools.sh)\"`)")
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	cmd := exec.Command(bin, "--save", "", "--appendonly", "no", "--port", strconv.Itoa(port), "--bind", "127.0.0.1")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &Server{URL: fmt.Sprintf("redis://127.0.0.1:%d/0", port), cmd: cmd}
	t.Cleanup(s.Stop)
	c := redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", port)})
	defer c.Close()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if c.Ping(context.Background()).Err() == nil {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatal("redis-server did not answer within 10 s")
		}
	}
}

// Stop kills the server (a second Stop does nothing).
func (s *Server) Stop() {
	if s.cmd.Process != nil && s.cmd.ProcessState == nil {
		_ = s.cmd.Process.Kill()
		_ = s.cmd.Wait()
	}
}

// Client opens a redisstore.Client on the server, scoped to the bucket
// "bucket"; it closes with the test.
func (s *Server) Client(t testing.TB) *redisstore.Client {
	t.Helper()
	c, err := redisstore.Open(s.URL, "bucket/")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}
