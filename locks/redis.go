package locks

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"golang.org/x/net/webdav"

	"github.com/davgw/davgw/internal/redisstore"
)

// The Redis lock store ([locks].store = "redis://..." or "rediss://...")
// lets several gateways share one lock table. Its keys, under a prefix P
// (scoped names, see Root.scope):
//
//	P t:<token>  hash: root, name, zd ("1" zero depth), owner, exp (ms), temp
//	P d:<name>   sorted set: tokens of infinite-depth locks on name
//	P z:<name>   sorted set: tokens of zero-depth locks on name
//	P b:<name>   sorted set: tokens of locks strictly below name
//	P n:<root>   sorted set: tokens of root's client locks (its count)
//
// Scores are expiry times (ms, Redis's clock); the hash expires by
// PEXPIREAT at the same time, and a set member whose score has passed
// counts as gone. Creating a lock checks d: and z: of its name, d: of each
// ancestor and, for an infinite-depth request, b: of its name, then writes,
// all in one Lua script: O(depth), and atomic across gateways. Every time
// comes from Redis (TIME), so the gateways' clocks do not matter; the now
// arguments of the LockSystem methods are ignored.
//
// A request's temporary lock (Duration < 0) lives in Redis too, flagged
// temp and never listed, with a safety TTL that this process renews while
// the request runs; a crashed gateway's temporary locks vanish after it.
// "Held" (Confirm until release) is per process.
//
// Limits: a client lock held by a running request on one gateway can still
// be UNLOCKed through another, and expires on time even while a request
// uses it (MemLS pauses expiry while held). Redis must keep what it is
// given: maxmemory-policy noeviction (every key here has a TTL, so volatile
// policies would drop locks), and a failover to an asynchronous replica
// can lose the newest locks. Scripts call TIME before writing: Redis 5 or
// later.

// redisTempTTL is the lifetime of a temporary lock between renewals.
const redisTempTTL = 2 * time.Minute

// redisTimeout bounds one lock operation.
const redisTimeout = 5 * time.Second

type redisLocks struct {
	c       redis.UniversalClient
	prefix  string
	tempTTL time.Duration
	log     *slog.Logger
	owns    bool // close closes c

	mu   sync.Mutex
	held map[string]int      // token -> holds by this process's Confirm
	temp map[string]tempLock // temporary token -> its lock, renewed until unlocked
	stop chan struct{}
	done chan struct{}
	once sync.Once // of close
}

// NewRedis returns a lock table kept in Redis at rawURL
// (redis://[user:password@]host:port/db or rediss:// for TLS), on a client
// of its own. It does not connect yet: an unreachable Redis makes lock
// operations fail (503), and Ping tells. Errors never show the URL's
// password. Close it when done.
func NewRedis(rawURL string, limits Limits, log *slog.Logger) (*Table, error) {
	opts, err := redisstore.Options(rawURL)
	if err != nil {
		return nil, fmt.Errorf("locks: %w", err)
	}
	t := OnRedis(redis.NewClient(opts), limits, log)
	t.b.(*redisLocks).owns = true
	return t, nil
}

// OnRedis returns a lock table kept in Redis over c, the process's shared
// client (redisstore.Client.R); closing the table leaves c open.
func OnRedis(c redis.UniversalClient, limits Limits, log *slog.Logger) *Table {
	if log == nil {
		log = slog.Default()
	}
	return newTable(newRedisLocks(c, "davgw:locks:", redisTempTTL, log), limits)
}

// newRedisLocks starts the backend's renewal of temporary locks; close
// stops it.
func newRedisLocks(c redis.UniversalClient, prefix string, tempTTL time.Duration, log *slog.Logger) *redisLocks {
	r := &redisLocks{c: c, prefix: prefix, tempTTL: tempTTL, log: log,
		held: make(map[string]int), temp: make(map[string]tempLock),
		stop: make(chan struct{}), done: make(chan struct{})}
	go r.renewLoop()
	return r
}

func (r *redisLocks) ping(ctx context.Context) error { return r.fail(r.c.Ping(ctx).Err()) }

func (r *redisLocks) close() error {
	var err error
	r.once.Do(func() {
		close(r.stop)
		<-r.done
		if r.owns {
			err = r.c.Close()
		}
	})
	return err
}

// fail marks err (not nil) as a store outage.
func (r *redisLocks) fail(err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%w: redis: %v", ErrStoreUnavailable, err)
}

func (r *redisLocks) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), redisTimeout)
}

// luaPrelude is shared by every script: ARGV[1] is the key prefix.
const luaPrelude = `
local P = ARGV[1]
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function parents(name)
  local out = {}
  while name ~= '/' and name ~= '' do
    name = string.match(name, '^(.*)/[^/]*$')
    if name == '' then name = '/' end
    out[#out + 1] = name
  end
  return out
end
local function live(key, now)
  return redis.call('ZCOUNT', key, '(' .. now, '+inf') > 0
end
local function put(key, tok, exp, now)
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
  redis.call('ZADD', key, exp, tok)
  local ttl = redis.call('PTTL', key)
  if ttl < 0 or now + ttl < exp then redis.call('PEXPIREAT', key, exp) end
end
local function place(tok, name, zd, exp, now)
  if zd == '1' then put(P .. 'z:' .. name, tok, exp, now) else put(P .. 'd:' .. name, tok, exp, now) end
  for _, a in ipairs(parents(name)) do put(P .. 'b:' .. a, tok, exp, now) end
end
`

// countKey of root's client locks, and its upkeep: members whose score
// (expiry) passed are gone; the set expires with its last lock.
const luaCount = `
local function count_key(root) return P .. 'n:' .. root end
local function count_put(root, tok, exp, now)
  local nk = count_key(root)
  redis.call('ZADD', nk, exp, tok)
  local last = redis.call('ZRANGE', nk, -1, -1, 'WITHSCORES')
  redis.call('PEXPIREAT', nk, tonumber(last[2]))
end
`

// createScript: ARGV token, root, name, zd, owner, duration ms (< 0:
// temporary), temporary TTL ms, most client locks of root, creator. 1
// created, 0 locked, -1 token taken, -2 root holds the most locks allowed.
var createScript = redis.NewScript(luaPrelude + luaCount + `
local tok, root, name, zd = ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local now = now_ms()
local d = tonumber(ARGV[7])
if d >= 0 then
  local nk = count_key(root)
  redis.call('ZREMRANGEBYSCORE', nk, '-inf', now)
  if redis.call('ZCARD', nk) >= tonumber(ARGV[9]) then return -2 end
end
if live(P .. 'd:' .. name, now) or live(P .. 'z:' .. name, now) then return 0 end
if zd ~= '1' and live(P .. 'b:' .. name, now) then return 0 end
for _, a in ipairs(parents(name)) do
  if live(P .. 'd:' .. a, now) then return 0 end
end
local hk = P .. 't:' .. tok
if redis.call('EXISTS', hk) == 1 then return -1 end
local temp, exp = '0', 0
if d < 0 then temp = '1'; exp = now + tonumber(ARGV[8]) else exp = now + d end
redis.call('HSET', hk, 'root', root, 'name', name, 'zd', zd, 'owner', ARGV[6], 'exp', exp, 'temp', temp, 'user', ARGV[10])
redis.call('PEXPIREAT', hk, exp)
place(tok, name, zd, exp, now)
if temp == '0' then count_put(root, tok, exp, now) end
return 1
`)

// refreshScript: ARGV token, root, duration ms, user. {name, zd, owner},
// or false for no such lock (of root, made by user; a lock from before
// creators were kept has none and is anyone's of its root).
var refreshScript = redis.NewScript(luaPrelude + luaCount + `
local tok, root = ARGV[2], ARGV[3]
local hk = P .. 't:' .. tok
local h = redis.call('HMGET', hk, 'root', 'name', 'zd', 'owner', 'temp', 'user')
if h[1] ~= root then return false end
if h[6] and h[6] ~= ARGV[5] then return false end
local now = now_ms()
local exp = now + tonumber(ARGV[4])
redis.call('HSET', hk, 'exp', exp)
redis.call('PEXPIREAT', hk, exp)
place(tok, h[2], h[3], exp, now)
if h[5] == '0' then count_put(root, tok, exp, now) end
return {h[2], h[3], h[4]}
`)

// unlockScript: ARGV token, root, user. 1 unlocked, 0 no such lock (of
// root, made by user).
var unlockScript = redis.NewScript(luaPrelude + `
local tok, root = ARGV[2], ARGV[3]
local hk = P .. 't:' .. tok
local h = redis.call('HMGET', hk, 'root', 'name', 'zd', 'user')
if h[1] ~= root then return 0 end
if h[4] and h[4] ~= ARGV[4] then return 0 end
redis.call('DEL', hk)
if h[3] == '1' then redis.call('ZREM', P .. 'z:' .. h[2], tok) else redis.call('ZREM', P .. 'd:' .. h[2], tok) end
for _, a in ipairs(parents(h[2])) do redis.call('ZREM', P .. 'b:' .. a, tok) end
redis.call('ZREM', P .. 'n:' .. root, tok)
return 1
`)

// discoverScript: ARGV name, root. Flat {token, name, zd, owner, ms left}
// for root's client locks covering name.
var discoverScript = redis.NewScript(luaPrelude + `
local name, root = ARGV[2], ARGV[3]
local now = now_ms()
local keys = {P .. 'z:' .. name, P .. 'd:' .. name}
for _, a in ipairs(parents(name)) do keys[#keys + 1] = P .. 'd:' .. a end
local out = {}
for _, k in ipairs(keys) do
  for _, tok in ipairs(redis.call('ZRANGEBYSCORE', k, '(' .. now, '+inf')) do
    local h = redis.call('HMGET', P .. 't:' .. tok, 'root', 'name', 'zd', 'owner', 'exp', 'temp')
    if h[1] == root and h[6] == '0' then
      for _, v in ipairs({tok, h[2], h[3], h[4], tostring(tonumber(h[5]) - now)}) do out[#out + 1] = v end
    end
  end
end
return out
`)

type redisLock struct {
	name      string
	zeroDepth bool
}

// tempLock is a request's temporary lock that this process renews.
type tempLock struct{ root, user string }

func (r *redisLocks) confirm(_ time.Time, root, user, name0, name1 string, conditions []webdav.Condition) (func(), error) {
	var toks []string
	for _, c := range conditions {
		if c.Token != "" {
			toks = append(toks, c.Token)
		}
	}
	cmds := make([]*redis.SliceCmd, len(toks))
	if len(toks) > 0 {
		ctx, cancel := r.ctx()
		defer cancel()
		_, err := r.c.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i, t := range toks {
				cmds[i] = p.HMGet(ctx, r.prefix+"t:"+t, "root", "name", "zd", "user")
			}
			return nil
		})
		if err != nil {
			return nil, r.fail(err)
		}
	}
	locks := make(map[string]redisLock, len(toks))
	for i, t := range toks {
		v := cmds[i].Val()
		// A lock from before creators were kept (no user) is anyone's
		// of its root.
		if len(v) == 4 && v[0] == root && (v[3] == nil || v[3] == user) {
			name, _ := v[1].(string)
			zd, _ := v[2].(string)
			locks[t] = redisLock{name: name, zeroDepth: zd == "1"}
		}
	}

	r.mu.Lock()
	defer r.mu.Unlock()
	lookup := func(name string) string {
		for _, t := range toks {
			l, ok := locks[t]
			if ok && r.held[t] == 0 && covers(l.name, l.zeroDepth, name) {
				return t
			}
		}
		return ""
	}
	var t0, t1 string
	if name0 != "" {
		if t0 = lookup(name0); t0 == "" {
			return nil, webdav.ErrConfirmationFailed
		}
	}
	if name1 != "" {
		if t1 = lookup(name1); t1 == "" {
			return nil, webdav.ErrConfirmationFailed
		}
	}
	if t1 == t0 {
		t1 = ""
	}
	for _, t := range []string{t0, t1} {
		if t != "" {
			r.held[t]++
		}
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			r.mu.Lock()
			defer r.mu.Unlock()
			for _, t := range []string{t0, t1} {
				if t == "" {
					continue
				}
				if r.held[t]--; r.held[t] <= 0 {
					delete(r.held, t)
				}
			}
		})
	}, nil
}

func (r *redisLocks) create(_ time.Time, root, user string, details webdav.LockDetails, maxLocks int) (string, error) {
	zd := "0"
	if details.ZeroDepth {
		zd = "1"
	}
	dur := int64(-1)
	if details.Duration >= 0 {
		dur = details.Duration.Milliseconds()
	}
	ctx, cancel := r.ctx()
	defer cancel()
	for range 3 {
		tok, err := newToken()
		if err != nil {
			return "", err
		}
		res, err := createScript.Run(ctx, r.c, nil, r.prefix, tok, root, details.Root, zd,
			details.OwnerXML, dur, r.tempTTL.Milliseconds(), maxLocks, user).Int()
		if err != nil {
			return "", r.fail(err)
		}
		switch res {
		case 1:
			if details.Duration < 0 {
				r.mu.Lock()
				r.temp[tok] = tempLock{root: root, user: user}
				r.mu.Unlock()
			}
			return tok, nil
		case 0:
			return "", webdav.ErrLocked
		case -2:
			return "", fmt.Errorf("%w: at most %d", ErrTooMany, maxLocks)
		}
		// -1: a random token already taken; draw again.
	}
	return "", errors.New("locks: could not draw a fresh lock token")
}

func (r *redisLocks) isHeld(token string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.held[token] > 0
}

// refresh works on a lock a request holds too: Redis keeps no lock past
// its timeout, in use or not, so a client's refresh during its own long
// upload is what keeps the lock.
func (r *redisLocks) refresh(_ time.Time, root, user, token string, duration time.Duration) (webdav.LockDetails, error) {
	if duration < 0 || duration > MaxTimeout {
		duration = MaxTimeout // Redis keeps no lock for ever
	}
	ctx, cancel := r.ctx()
	defer cancel()
	v, err := refreshScript.Run(ctx, r.c, nil, r.prefix, token, root, duration.Milliseconds(), user).StringSlice()
	if errors.Is(err, redis.Nil) {
		return webdav.LockDetails{}, webdav.ErrNoSuchLock
	}
	if err != nil {
		return webdav.LockDetails{}, r.fail(err)
	}
	if len(v) != 3 {
		return webdav.LockDetails{}, r.fail(fmt.Errorf("refresh answered %d values", len(v)))
	}
	return webdav.LockDetails{Root: v[0], ZeroDepth: v[1] == "1", OwnerXML: v[2], Duration: duration}, nil
}

func (r *redisLocks) unlock(_ time.Time, root, user, token string) error {
	if r.isHeld(token) {
		return webdav.ErrLocked
	}
	// A request's temporary lock is released once, whatever happens: if
	// Redis fails now, the lock expires within tempTTL.
	r.mu.Lock()
	delete(r.temp, token)
	r.mu.Unlock()
	ctx, cancel := r.ctx()
	defer cancel()
	res, err := unlockScript.Run(ctx, r.c, nil, r.prefix, token, root, user).Int()
	if err != nil {
		return r.fail(err)
	}
	if res == 0 {
		return webdav.ErrNoSuchLock
	}
	return nil
}

func (r *redisLocks) discover(_ time.Time, root, name string) ([]Active, error) {
	ctx, cancel := r.ctx()
	defer cancel()
	v, err := discoverScript.Run(ctx, r.c, nil, r.prefix, name, root).StringSlice()
	if err != nil {
		return nil, r.fail(err)
	}
	var out []Active
	for i := 0; i+5 <= len(v); i += 5 {
		left, _ := strconv.ParseInt(v[i+4], 10, 64)
		out = append(out, Active{Token: v[i], Name: v[i+1], ZeroDepth: v[i+2] == "1",
			Owner: v[i+3], Left: time.Duration(left) * time.Millisecond})
	}
	return out, nil
}

// renewLoop keeps this process's temporary locks alive while their
// requests run (a request can outlast redisTempTTL: a large PUT).
func (r *redisLocks) renewLoop() {
	defer close(r.done)
	t := time.NewTicker(r.tempTTL / 4)
	defer t.Stop()
	for {
		select {
		case <-r.stop:
			return
		case <-t.C:
		}
		r.mu.Lock()
		temp := make(map[string]tempLock, len(r.temp))
		for tok, l := range r.temp {
			temp[tok] = l
		}
		r.mu.Unlock()
		for tok, l := range temp {
			ctx, cancel := r.ctx()
			err := refreshScript.Run(ctx, r.c, nil, r.prefix, tok, l.root, r.tempTTL.Milliseconds(), l.user).Err()
			cancel()
			if err != nil && !errors.Is(err, redis.Nil) {
				r.log.Warn("locks: renewing a request's temporary lock failed", "err", r.fail(err))
			}
		}
	}
}
