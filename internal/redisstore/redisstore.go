// Package redisstore is the one Redis connection of a davgw process
// ([locks].store = "redis://..."): the store that gateways share. The lock
// table, the sign-in failure limits, browser sessions, pending sign-ins and
// the app-password change marks all go through one Client, each under a
// key prefix of its own, every key with a TTL.
//
// Security notes: the URL's password never reaches an error or a log line
// (RedactURL). Values that would let a reader of Redis act as a user are
// stored under a hash of the secret that names them (the session cookie,
// the sign-in state), never under the secret itself.
package redisstore

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// ErrUnavailable marks a failed call to Redis (down, unreachable, too
// slow): callers answer 503 with Retry-After, or fall back where that is
// safe.
var ErrUnavailable = errors.New("shared store unavailable")

// Timeout bounds one call (a script or a pipeline).
const Timeout = 5 * time.Second

// pause is how long after a failed call further calls fail at once
// without trying: a Redis that swallows packets costs one dial timeout a
// second, not one per request.
const pause = time.Second

// Client is the process's Redis client with the outage pause. The zero
// value is not usable; see Open.
type Client struct {
	// R is the go-redis client, for scripts and pipelines.
	R redis.UniversalClient
	// scope is "<bucket>/<s3 prefix>": two deployments on one Redis keep
	// their sign-in state apart.
	scope     string
	downUntil atomic.Int64 // unix nanoseconds
}

// Open returns a Client for rawURL (redis://[user:password@]host:port/db
// or rediss:// for TLS) whose keys are scoped by scope (the bucket and
// [s3].prefix, "bucket/" or "bucket/prefix/"). It does not connect yet.
func Open(rawURL, scope string) (*Client, error) {
	opts, err := Options(rawURL)
	if err != nil {
		return nil, err
	}
	return &Client{R: redis.NewClient(opts), scope: scope}, nil
}

// Options parses a redis:// or rediss:// URL, with timeouts that make an
// outage answer 503 within about a second rather than hang. Errors never
// show the URL's password.
func Options(rawURL string) (*redis.Options, error) {
	opts, err := redis.ParseURL(rawURL)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // url.Error repeats the URL, password and all
		}
		return nil, fmt.Errorf("shared store %s: %v", RedactURL(rawURL), err)
	}
	opts.DialTimeout = 2 * time.Second
	opts.ReadTimeout = 2 * time.Second
	opts.WriteTimeout = 2 * time.Second
	opts.MaxRetries = 1
	opts.DialerRetries = 2
	return opts, nil
}

// RedactURL hides the password of a URL (for logs and errors).
func RedactURL(raw string) string {
	if u, err := url.Parse(raw); err == nil {
		return u.Redacted()
	}
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok {
		return "(unparsable URL)"
	}
	host, _, _ := strings.Cut(rest, "/")
	if i := strings.LastIndex(host, "@"); i >= 0 {
		rest = "xxxxx" + rest[i:]
	}
	return scheme + "://" + rest
}

// Prefix is the key prefix of one kind of state: "davgw:<scope><kind>:",
// e.g. "davgw:bucket/sessions:".
func (c *Client) Prefix(kind string) string {
	return "davgw:" + c.scope + kind + ":"
}

// Do runs fn under Timeout. An error of fn other than redis.Nil is an
// outage: it is returned wrapping ErrUnavailable, and calls within the
// next second fail the same way without trying.
func (c *Client) Do(ctx context.Context, fn func(ctx context.Context) error) error {
	if time.Now().UnixNano() < c.downUntil.Load() {
		return fmt.Errorf("%w: redis failed within the last %s", ErrUnavailable, pause)
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), Timeout)
	defer cancel()
	err := fn(ctx)
	if err == nil || errors.Is(err, redis.Nil) {
		return err
	}
	c.downUntil.Store(time.Now().Add(pause).UnixNano())
	return Fail(err)
}

// Fail marks err (not nil) as an outage of the store.
func Fail(err error) error {
	return fmt.Errorf("%w: redis: %v", ErrUnavailable, err)
}

// Ping checks that Redis answers.
func (c *Client) Ping(ctx context.Context) error {
	return c.Do(ctx, func(ctx context.Context) error { return c.R.Ping(ctx).Err() })
}

// Close closes the connections.
func (c *Client) Close() error { return c.R.Close() }
