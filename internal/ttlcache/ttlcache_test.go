package ttlcache

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

var t0 = time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)

func at(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }

func TestCache(t *testing.T) {
	t.Run("an entry is live until its expiry, and gone from then on", func(t *testing.T) {
		c := New[string, int](10)
		c.Put("a", 1, at(10), at(0))
		if v, ok := c.Get("a", at(9)); !ok || v != 1 {
			t.Fatalf("Get before expiry = %d, %v; want 1, true", v, ok)
		}
		if _, ok := c.Get("a", at(10)); ok {
			t.Fatal("Get at the expiry found the entry")
		}
		if n := c.Len(); n != 0 {
			t.Fatalf("Len after Get of an expired entry = %d, want 0", n)
		}
	})
	t.Run("a missing key is not found", func(t *testing.T) {
		c := New[string, int](10)
		if _, ok := c.Get("x", at(0)); ok {
			t.Fatal("found a key never put")
		}
	})
	t.Run("Put replaces the value and the expiry", func(t *testing.T) {
		c := New[string, int](10)
		c.Put("a", 1, at(10), at(0))
		c.Put("a", 2, at(20), at(1))
		if v, ok := c.Get("a", at(15)); !ok || v != 2 {
			t.Fatalf("Get = %d, %v; want 2, true", v, ok)
		}
		if n := c.Len(); n != 1 {
			t.Fatalf("Len = %d, want 1", n)
		}
	})
	t.Run("Delete removes an entry and ignores a missing one", func(t *testing.T) {
		c := New[string, int](10)
		c.Put("a", 1, at(10), at(0))
		c.Delete("a")
		c.Delete("b")
		if _, ok := c.Get("a", at(1)); ok {
			t.Fatal("found a deleted entry")
		}
	})
	t.Run("the cache never holds more than its bound", func(t *testing.T) {
		c := New[int, int](100)
		for i := range 1000 {
			c.Put(i, i, at(1000+i), at(0))
			if n := c.Len(); n > 100 {
				t.Fatalf("Len = %d after %d puts, bound 100", n, i+1)
			}
		}
		if n := c.Len(); n != 100 {
			t.Fatalf("Len = %d, want 100", n)
		}
	})
	t.Run("a full cache drops the expired entries before any live one", func(t *testing.T) {
		c := New[string, int](3)
		c.Put("old", 0, at(5), at(0))
		c.Put("live1", 1, at(100), at(0))
		c.Put("live2", 2, at(50), at(0))
		c.Put("new", 3, at(100), at(10)) // "old" expired at 5
		mustHold(t, c, at(11), "live1", "live2", "new")
	})
	t.Run("a full cache of live entries evicts the one that expires first", func(t *testing.T) {
		c := New[string, int](3)
		c.Put("b", 0, at(30), at(0))
		c.Put("a", 0, at(10), at(0))
		c.Put("c", 0, at(20), at(0))
		c.Put("d", 0, at(40), at(1))
		if _, ok := c.Get("a", at(2)); ok {
			t.Fatal("a (expires first) was kept")
		}
		c.Put("e", 0, at(40), at(2))
		if _, ok := c.Get("c", at(3)); ok {
			t.Fatal("c (expires next) was kept")
		}
		mustHold(t, c, at(3), "b", "d", "e")
	})
	t.Run("of entries that expire together, the one put first goes first", func(t *testing.T) {
		c := New[int, int](3)
		for i := range 3 {
			c.Put(i, i, at(10), at(0))
		}
		c.Put(3, 3, at(10), at(0))
		c.Put(4, 4, at(10), at(0))
		for k, want := range []bool{false, false, true, true, true} {
			if _, ok := c.Get(k, at(1)); ok != want {
				t.Fatalf("entry %d kept = %v, want %v", k, ok, want)
			}
		}
	})
	t.Run("an entry renewed on use outlives the ones not used", func(t *testing.T) {
		c := New[string, int](2)
		c.Put("a", 0, at(10), at(0))
		c.Put("b", 0, at(11), at(1))
		// Renew a (sliding expiry, as for a credential in use).
		if _, ok := c.Update("a", at(5), func(_ *int, exp *time.Time) { *exp = at(15) }); !ok {
			t.Fatal("Update missed a live entry")
		}
		c.Put("c", 0, at(16), at(6))
		if _, ok := c.Get("b", at(7)); ok {
			t.Fatal("b (least recently used) was kept")
		}
		if _, ok := c.Get("a", at(12)); !ok {
			t.Fatal("the renewed entry expired at its old time")
		}
	})
	t.Run("Update changes the value and skips an expired entry", func(t *testing.T) {
		c := New[string, int](2)
		c.Put("a", 1, at(10), at(0))
		if v, ok := c.Update("a", at(1), func(v *int, _ *time.Time) { *v++ }); !ok || v != 2 {
			t.Fatalf("Update = %d, %v; want 2, true", v, ok)
		}
		called := false
		if _, ok := c.Update("a", at(10), func(*int, *time.Time) { called = true }); ok || called {
			t.Fatalf("Update of an expired entry: ok=%v, f called=%v", ok, called)
		}
	})
	t.Run("Add stores only over no entry or an expired one", func(t *testing.T) {
		c := New[string, int](2)
		if !c.Add("a", 1, at(10), at(0)) {
			t.Fatal("Add of a new key refused")
		}
		if c.Add("a", 2, at(20), at(5)) {
			t.Fatal("Add over a live entry stored")
		}
		if !c.Add("a", 3, at(30), at(10)) {
			t.Fatal("Add over an expired entry refused")
		}
		if v, _ := c.Get("a", at(11)); v != 3 {
			t.Fatalf("value = %d, want 3", v)
		}
	})
	t.Run("a bound below one holds one entry", func(t *testing.T) {
		c := New[string, int](0)
		c.Put("a", 1, at(10), at(0))
		c.Put("b", 2, at(10), at(0))
		if n := c.Len(); n != 1 {
			t.Fatalf("Len = %d, want 1", n)
		}
	})
}

// mustHold fails t unless c holds a live entry of every key at now.
func mustHold(t *testing.T, c *Cache[string, int], now time.Time, keys ...string) {
	t.Helper()
	for _, k := range keys {
		if _, ok := c.Get(k, now); !ok {
			t.Fatalf("%s was evicted", k)
		}
	}
}

// TestCacheConcurrent is for -race: every operation from many goroutines
// at once keeps the bound and the heap consistent.
func TestCacheConcurrent(t *testing.T) {
	c := New[string, int](50)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 2000 {
				k := fmt.Sprint((g*7 + i) % 120)
				now := at(i / 10)
				switch i % 5 {
				case 0:
					c.Put(k, i, now.Add(time.Duration(i%30)*time.Second), now)
				case 1:
					c.Get(k, now)
				case 2:
					c.Update(k, now, func(v *int, exp *time.Time) { *v++; *exp = exp.Add(time.Second) })
				case 3:
					c.Add(k, i, now.Add(5*time.Second), now)
				case 4:
					if i%20 == 4 {
						c.Delete(k)
					}
				}
				if n := c.Len(); n > 50 {
					t.Errorf("Len = %d, bound 50", n)
					return
				}
			}
		})
	}
	wg.Wait()
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.byExp) != len(c.items) {
		t.Fatalf("heap has %d items, map %d", len(c.byExp), len(c.items))
	}
	for i, it := range c.byExp {
		if it.index != i || c.items[it.key] != it {
			t.Fatalf("heap item %d (%q) is out of step with the map", i, it.key)
		}
		if l, r := 2*i+1, 2*i+2; (l < len(c.byExp) && c.byExp.Less(l, i)) || (r < len(c.byExp) && c.byExp.Less(r, i)) {
			t.Fatalf("heap order broken at %d", i)
		}
	}
}
