package auth

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/davgw/davgw/internal/redisstore"
)

// Change marks tell every gateway at once that a user's app passwords
// changed (one revoked, one minted, their claims refreshed). A gateway
// that changes them writes a new random mark under the user's name in
// Redis; a gateway checks the mark on every use of its cached copy of the
// user's list (one GET), and reads the list again from the store when the
// mark is not the one it read the list with. So a revocation on one
// gateway is refused by all from the next request on.
//
// While Redis is down, a cached copy is trusted for its TTL
// (AppPasswordCacheTTL, 30 s) as without Redis, then read again from the
// store: a revocation made just before the outage reaches the other
// gateways within that time.

// markTTL is how long a mark is kept; far longer than a cached list lives
// (its TTL), so no cached copy can outlive a mark it was read with. A
// missing mark reads as "".
const markTTL = time.Hour

// unknownMark tags a list read while Redis was down: it never equals a
// mark, so the list is read again once Redis answers.
const unknownMark = "?"

type changeMarks struct {
	c      *redisstore.Client
	prefix string
}

// SharedIn makes the app passwords' changes known to every gateway
// sharing c at once (see the change marks above), under
// c.Prefix("app-passwords"). Call it before use.
func (a *AppPasswords) SharedIn(c *redisstore.Client) *AppPasswords {
	a.marks = &changeMarks{c: c, prefix: c.Prefix("app-passwords")}
	return a
}

// current returns user's mark ("" if none).
func (m *changeMarks) current(ctx context.Context, user string) (string, error) {
	var v string
	err := m.c.Do(ctx, func(ctx context.Context) error {
		var err error
		v, err = m.c.R.Get(ctx, m.prefix+user).Result()
		return err
	})
	if errors.Is(err, redis.Nil) {
		return "", nil
	}
	return v, err
}

// change writes a new mark for user.
func (m *changeMarks) change(ctx context.Context, user string) error {
	var b [16]byte
	_, _ = rand.Read(b[:])
	err := m.c.Do(ctx, func(ctx context.Context) error {
		return m.c.R.Set(ctx, m.prefix+user, hex.EncodeToString(b[:]), markTTL).Err()
	})
	if err != nil {
		return fmt.Errorf("auth: other gateways may use their copy of %q's app passwords for up to %s: %w", user, AppPasswordCacheTTL, err)
	}
	return nil
}
