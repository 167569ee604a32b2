package web

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/davgw/davgw/auth"
	"github.com/davgw/davgw/internal/redisstore"
)

// In Redis, under the client's prefixes:
//
//	sessions:<hex SHA-256 of the cookie>  JSON of the session, PX its lifetime
//	pending:s:<hex SHA-256 of the state>  hash: nonce, verifier, addr; PX loginTTL
//	pending:a:<address key>               sorted set: the address's sign-ins (score: expiry ms)
//	pending:all                           sorted set: every sign-in in progress
//
// Neither the cookie nor the state is stored: reading Redis does not
// give a session or a sign-in to complete. The nonce and the PKCE
// verifier are, for the callback on whichever gateway it reaches.

type redisSessions struct {
	c      *redisstore.Client
	prefix string
}

var (
	_ sessionStore = (*redisSessions)(nil)
	_ pendingStore = (*redisPending)(nil)
)

func newRedisSessions(c *redisstore.Client) *redisSessions {
	return &redisSessions{c: c, prefix: c.Prefix("sessions")}
}

func (s *redisSessions) key(k string) string { return s.prefix + hex.EncodeToString([]byte(k)) }

func (s *redisSessions) get(ctx context.Context, k string) (*session, error) {
	var data []byte
	err := s.c.Do(ctx, func(ctx context.Context) error {
		var err error
		data, err = s.c.R.Get(ctx, s.key(k)).Bytes()
		return err
	})
	return decodeSession(data, err)
}

func decodeSession(data []byte, err error) (*session, error) {
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var v session
	if json.Unmarshal(data, &v) != nil || time.Now().After(v.Expires) {
		return nil, nil
	}
	return &v, nil
}

func (s *redisSessions) put(ctx context.Context, k string, v *session) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return s.c.Do(ctx, func(ctx context.Context) error {
		return s.c.R.Set(ctx, s.key(k), data, time.Until(v.Expires)).Err()
	})
}

func (s *redisSessions) remove(ctx context.Context, k string) (*session, error) {
	var get *redis.StringCmd
	err := s.c.Do(ctx, func(ctx context.Context) error {
		_, err := s.c.R.TxPipelined(ctx, func(p redis.Pipeliner) error {
			get = p.Get(ctx, s.key(k))
			p.Del(ctx, s.key(k))
			return nil
		})
		return err
	})
	if err != nil {
		return nil, err
	}
	data, err := get.Bytes()
	return decodeSession(data, err)
}

type redisPending struct {
	c              *redisstore.Client
	prefix         string
	perAddr, total int
}

func newRedisPending(c *redisstore.Client, perAddr, total int) *redisPending {
	if perAddr <= 0 {
		perAddr = DefaultPendingPerAddress
	}
	if total <= 0 {
		total = DefaultMaxPending
	}
	return &redisPending{c: c, prefix: c.Prefix("pending"), perAddr: perAddr, total: total}
}

// pendingAddScript: KEYS entry, the address's set, the set of all; ARGV
// member, lifetime ms, per-address limit, total limit, nonce, verifier,
// address key. {1, 0} added; {-1, ms} or {-2, ms}: refused per address or
// in all, with the time until the set's oldest entry expires. Times are
// Redis's (TIME).
var pendingAddScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[2])
local function room(k, limit)
  redis.call('ZREMRANGEBYSCORE', k, '-inf', now)
  if redis.call('ZCARD', k) < limit then return -1 end
  local o = redis.call('ZRANGE', k, 0, 0, 'WITHSCORES')
  return math.max(tonumber(o[2]) - now, 1000)
end
local w = room(KEYS[2], tonumber(ARGV[3]))
if w >= 0 then return {-1, w} end
w = room(KEYS[3], tonumber(ARGV[4]))
if w >= 0 then return {-2, w} end
local exp = now + ttl
redis.call('HSET', KEYS[1], 'nonce', ARGV[5], 'verifier', ARGV[6], 'addr', ARGV[7])
redis.call('PEXPIRE', KEYS[1], ttl)
for _, k in ipairs({KEYS[2], KEYS[3]}) do
  redis.call('ZADD', k, exp, ARGV[1])
  redis.call('PEXPIREAT', k, exp)
end
return {1, 0}
`)

// pendingTakeScript: KEYS entry, the set of all; ARGV member, the prefix
// of the address sets. {nonce, verifier} removed, or false.
var pendingTakeScript = redis.NewScript(`
local h = redis.call('HMGET', KEYS[1], 'nonce', 'verifier', 'addr')
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
if not h[1] then return false end
redis.call('ZREM', ARGV[2] .. h[3], ARGV[1])
return {h[1], h[2]}
`)

func (s *redisPending) member(state string) string {
	sum := sha256.Sum256([]byte(state))
	return hex.EncodeToString(sum[:])
}

func (s *redisPending) add(ctx context.Context, _ time.Time, addr, state string, p *pending) (time.Duration, error) {
	p.addr = auth.AddrKey(addr)
	m := s.member(state)
	var res []int64
	err := s.c.Do(ctx, func(ctx context.Context) error {
		var err error
		res, err = pendingAddScript.Run(ctx, s.c.R,
			[]string{s.prefix + "s:" + m, s.prefix + "a:" + p.addr, s.prefix + "all"},
			m, loginTTL.Milliseconds(), strconv.Itoa(s.perAddr), strconv.Itoa(s.total), p.nonce, p.verifier, p.addr).Int64Slice()
		return err
	})
	if err != nil {
		return 0, err
	}
	if len(res) != 2 {
		return 0, redisstore.Fail(errors.New("pending sign-in script answered badly"))
	}
	retry := time.Duration(res[1]) * time.Millisecond
	switch res[0] {
	case -1:
		return retry, errPendingPerAddress
	case -2:
		return retry, errPendingFull
	}
	return 0, nil
}

func (s *redisPending) take(ctx context.Context, _ time.Time, state string) (*pending, error) {
	m := s.member(state)
	var v []string
	err := s.c.Do(ctx, func(ctx context.Context) error {
		var err error
		v, err = pendingTakeScript.Run(ctx, s.c.R, []string{s.prefix + "s:" + m, s.prefix + "all"}, m, s.prefix+"a:").StringSlice()
		return err
	})
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if len(v) != 2 {
		return nil, redisstore.Fail(errors.New("pending sign-in script answered badly"))
	}
	return &pending{nonce: v[0], verifier: v[1]}, nil
}
