package auth

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/davgw/davgw/internal/redisstore"
)

// SharedIn moves the limiter's counters to Redis, under c.Prefix(kind):
// every gateway whose limiter shares c and kind counts the same failures.
// Call it before use. Keys: P<key> (see Limiter), a user name replaced by
// a hash so that a key stays short; each counts by INCR and expires with
// its window, so nothing outlives it.
func (l *Limiter) SharedIn(c *redisstore.Client, kind string) *Limiter {
	l.shared = &redisFailures{c: c, prefix: c.Prefix(kind)}
	return l
}

type redisFailures struct {
	c      *redisstore.Client
	prefix string
}

// failScript: KEYS the counters, ARGV[1] the window (ms). The first
// failure of a window starts it.
var failScript = redis.NewScript(`
for _, k in ipairs(KEYS) do
  if redis.call('INCR', k) == 1 or redis.call('PTTL', k) < 0 then
    redis.call('PEXPIRE', k, ARGV[1])
  end
end
return 1
`)

// checkScript: KEYS the counters, ARGV their limits. The time (ms) until
// the last of the blocking windows ends, 0 if none blocks.
var checkScript = redis.NewScript(`
local wait = 0
for i, k in ipairs(KEYS) do
  local n = tonumber(redis.call('GET', k) or '0')
  if n >= tonumber(ARGV[i]) then
    local t = redis.call('PTTL', k)
    if t > wait then wait = t end
  end
end
return wait
`)

func (r *redisFailures) key(k string) string {
	if rest, ok := strings.CutPrefix(k, "user:"); ok {
		sum := sha256.Sum256([]byte(rest))
		return r.prefix + "user:" + hex.EncodeToString(sum[:16])
	}
	return r.prefix + k
}

func (r *redisFailures) check(ks []limitKey) (time.Duration, error) {
	if len(ks) == 0 {
		return 0, nil
	}
	keys := make([]string, len(ks))
	args := make([]any, len(ks))
	for i, k := range ks {
		keys[i], args[i] = r.key(k.key), strconv.Itoa(k.max)
	}
	var ms int64
	err := r.c.Do(context.Background(), func(ctx context.Context) error {
		var err error
		ms, err = checkScript.Run(ctx, r.c.R, keys, args...).Int64()
		return err
	})
	return time.Duration(ms) * time.Millisecond, err
}

func (r *redisFailures) fail(ks []limitKey, window time.Duration) error {
	if len(ks) == 0 {
		return nil
	}
	keys := make([]string, len(ks))
	for i, k := range ks {
		keys[i] = r.key(k.key)
	}
	return r.c.Do(context.Background(), func(ctx context.Context) error {
		return failScript.Run(ctx, r.c.R, keys, window.Milliseconds()).Err()
	})
}
