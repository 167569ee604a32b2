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
	if m, err := openLocks(context.Background(), "memory", locks.Limits{}, log); m == nil || err != nil {
		t.Fatalf("memory: %v, %v", m, err)
	}
	// A port nobody listens on.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	m, err := openLocks(context.Background(), "redis://:s3cret@"+addr+"/0", locks.Limits{}, log)
	if err != nil || m == nil {
		t.Fatalf("unreachable redis: %v, %v", m, err)
	}
	_ = m.Close()
	if !strings.Contains(logBuf.String(), "not reachable") || strings.Contains(logBuf.String(), "s3cret") {
		t.Fatalf("log: %s", logBuf.String())
	}
	if _, err := openLocks(context.Background(), "redis://:s3cret@"+addr+"/x", locks.Limits{}, log); err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("bad URL: %v", err)
	}
}
