package main

import (
	"bytes"
	"context"
	"net"
	"strings"
	"testing"

	"github.com/davgw/davgw/config"
	"github.com/davgw/davgw/internal/redisstore/redistest"
)

// TestCheckProbesTheSharedStore: `davgw check` says "memory", checks that
// a Redis answers and does not evict keys, and never prints the password.
func TestCheckProbesTheSharedStore(t *testing.T) {
	rs := redistest.Start(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := "redis://:s3cret@" + ln.Addr().String() + "/0"
	ln.Close()
	run := func(store string) (string, bool) {
		cfg := &config.Config{Locks: config.Locks{Store: store}}
		var out bytes.Buffer
		c := &checker{w: &out}
		probeShared(context.Background(), c, cfg)
		return out.String(), c.failed
	}
	for _, tt := range []struct {
		store, want string
		failed      bool
	}{
		{"memory", "- shared store: memory", false},
		{rs.URL, "✓ Redis maxmemory-policy is noeviction", false},
		{down, "✗ shared store redis://:xxxxx@", true},
	} {
		out, failed := run(tt.store)
		if !strings.Contains(out, tt.want) || failed != tt.failed || strings.Contains(out, "s3cret") {
			t.Errorf("%s: failed=%v\n%s", tt.store, failed, out)
		}
	}
	c := rs.Client(t)
	if err := c.R.ConfigSet(context.Background(), "maxmemory-policy", "volatile-lru").Err(); err != nil {
		t.Fatal(err)
	}
	if out, failed := run(rs.URL); !failed || !strings.Contains(out, `✗ Redis maxmemory-policy: is "volatile-lru"`) {
		t.Errorf("an evicting Redis passes:\n%s", out)
	}
}
