package main

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"strings"
	"testing"

	"github.com/davgw/davgw/locks"
)

// TestOpenLocks: "memory" gives a table in this process; a Redis URL gives
// a shared one even while Redis is down (logged, without the password);
// a bad URL is an error that does not show the password either.
func TestOpenLocks(t *testing.T) {
	var logBuf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logBuf, nil))
	if m, c, err := openShared(context.Background(), "memory", "b/", locks.Limits{}, log); m == nil || c != nil || err != nil {
		t.Fatalf("memory: %v, %v, %v", m, c, err)
	}
	// A port nobody listens on.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	m, c, err := openShared(context.Background(), "redis://:s3cret@"+addr+"/0", "b/", locks.Limits{}, log)
	if err != nil || m == nil || c == nil {
		t.Fatalf("unreachable redis: %v, %v, %v", m, c, err)
	}
	_ = m.Close()
	_ = c.Close()
	if !strings.Contains(logBuf.String(), "not reachable") || strings.Contains(logBuf.String(), "s3cret") {
		t.Fatalf("log: %s", logBuf.String())
	}
	if _, _, err := openShared(context.Background(), "redis://:s3cret@"+addr+"/x", "b/", locks.Limits{}, log); err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("bad URL: %v", err)
	}
}
