package redisstore

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"
)

func TestURLsNeverShowThePassword(t *testing.T) {
	if got := RedactURL("redis://:s3cret@h:1/0"); got != "redis://:xxxxx@h:1/0" {
		t.Errorf("RedactURL = %q", got)
	}
	for _, bad := range []string{"redis://:s3cret@127.0.0.1:bad/0", "redis://user:s3cret@127.0.0.1:6379/x", "http://:s3cret@h/"} {
		if _, err := Open(bad, "b/"); err == nil || strings.Contains(err.Error(), "s3cret") {
			t.Errorf("%s: err = %v", bad, err)
		}
	}
}

// TestAFailurePausesCalls: after a failed call, calls within the pause
// fail at once without trying; keys are scoped by kind and bucket.
func TestAFailurePausesCalls(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nobody listens
	c, err := Open("redis://"+addr+"/0", "bucket/team/")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if p := c.Prefix("sessions"); p != "davgw:bucket/team/sessions:" {
		t.Fatalf("prefix %q", p)
	}
	if err := c.Ping(context.Background()); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("ping: %v", err)
	}
	tried := false
	start := time.Now()
	err = c.Do(context.Background(), func(context.Context) error { tried = true; return nil })
	if !errors.Is(err, ErrUnavailable) || tried || time.Since(start) > 100*time.Millisecond {
		t.Fatalf("within the pause: err %v, tried %v", err, tried)
	}
	c.downUntil.Store(0)
	if err := c.Do(context.Background(), func(context.Context) error { tried = true; return nil }); err != nil || !tried {
		t.Fatalf("after the pause: %v %v", err, tried)
	}
}
