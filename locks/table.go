// Package locks is the gateway's WebDAV lock table: in memory (x/net/webdav's
// MemLS behind random tokens) or in Redis, shared by several gateways. A
// Table serves every user; ForRoot gives the webdav.LockSystem of one user
// root, with the lockdiscovery listing (Discover) that x/net cannot give.
// What the If header means, and which status a lock failure gets, is the
// gateway's.
//
// Security notes: names are scoped by the user's key root and a token only
// works for the root that created it; tokens are 122 random bits; Limits
// bound what one root may keep in the table; the Redis URL's password never
// reaches an error or a log line (redisstore.RedactURL).
package locks

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"path"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/net/webdav"
)

// Table is the gateway's one lock table, shared by every request and
// user. Its default backend wraps x/net/webdav's in-memory LockSystem; a
// Redis backend (NewRedis) shares the table between gateways.
// Either way:
//
//   - names are scoped by the user's key root, so alice's lock on "/a.txt"
//     does not block bob's "/a.txt", while two users sharing a root (a group
//     rule) do share locks;
//   - tokens are unguessable (opaquelocktoken with a random UUID), where
//     MemLS hands out a counter, and a token only works for the root that
//     created it.
//
// Limits bound what one user root may keep in the table: the
// size of each lock's owner XML (which lockdiscovery repeats in every
// answer) and the number of client locks, so no client can fill the
// gateway's memory or Redis with locks.
type Table struct {
	b      backend
	limits atomic.Pointer[Limits] // SetLimits replaces them (a reload)
}

// newTable is a Table over b with limits.
func newTable(b backend, limits Limits) *Table {
	t := &Table{b: b}
	t.SetLimits(limits)
	return t
}

// SetLimits replaces the limits (zero fields take the defaults); locks
// already held stay, and count against the new PerUser.
func (t *Table) SetLimits(limits Limits) {
	l := limits.withDefaults()
	t.limits.Store(&l)
}

// Limits bound the locks of one user root ([limits]); zero fields take
// the defaults. Users who share a root (a group rule) share its count.
type Limits struct {
	// OwnerBytes caps a lock's DAV:owner XML (default
	// DefaultOwnerBytes): a LOCK with a larger one answers 413.
	OwnerBytes int
	// PerUser caps the client locks of one root (default
	// DefaultPerUser): one more answers 429 with Retry-After until a
	// lock is unlocked or expires. A request's own short locks (If header
	// checks) do not count.
	PerUser int
}

// Defaults of Limits. Clients send an owner of a few dozen bytes (a
// user name or a URL), and hold a handful of locks at a time.
const (
	DefaultOwnerBytes = 4 << 10
	DefaultPerUser    = 1000
)

// MaxTimeout caps lock lifetimes. Windows asks for "Infinite": a client
// that crashes holding such a lock would keep the file locked for everyone
// until a restart. Clients refresh locks they keep (Finder every ~300 s).
const MaxTimeout = time.Hour

func (l Limits) withDefaults() Limits {
	if l.OwnerBytes <= 0 {
		l.OwnerBytes = DefaultOwnerBytes
	}
	if l.PerUser <= 0 {
		l.PerUser = DefaultPerUser
	}
	return l
}

// ErrOwnerTooLarge: a LOCK's owner XML is past Limits.OwnerBytes
// (413).
var ErrOwnerTooLarge = errors.New("lock owner too large")

// ErrTooMany: the user root holds Limits.PerUser client locks
// already (429 with Retry-After).
var ErrTooMany = errors.New("too many locks")

// backend is a lock table in scoped names (see Root.scope). Every
// method checks that a token belongs to root. An error other than the
// webdav.Err* values is an outage of the store and wraps
// ErrStoreUnavailable.
type backend interface {
	// confirm, refresh and unlock accept only tokens of root's locks
	// that user created (RFC 4918 6.4: a lock token is of use only to
	// its creator); names conflict whoever holds them.
	confirm(now time.Time, root, user, name0, name1 string, conditions []webdav.Condition) (func(), error)
	// create treats a negative Duration as a request's temporary lock. It
	// fails with ErrTooMany when root already holds maxLocks client
	// (not temporary) locks.
	create(now time.Time, root, user string, details webdav.LockDetails, maxLocks int) (string, error)
	refresh(now time.Time, root, user, token string, duration time.Duration) (webdav.LockDetails, error)
	unlock(now time.Time, root, user, token string) error
	// discover lists root's client (not temporary) locks covering name.
	discover(now time.Time, root, name string) ([]Active, error)
	// ping checks that the store answers; close releases it (once).
	ping(ctx context.Context) error
	close() error
}

var (
	_ backend = (*memLocks)(nil)
	_ backend = (*redisLocks)(nil)
)

// ErrStoreUnavailable marks a failure of a shared lock store (Redis):
// the gateway answers 503 with Retry-After.
var ErrStoreUnavailable = errors.New("lock store unavailable")

// NewMemory returns an empty in-memory lock table with limits (zero
// fields take the defaults).
func NewMemory(limits Limits) *Table {
	return newTable(newMemLocks(), limits)
}

// Close releases the lock store's resources (the Redis connections); a
// second Close does nothing.
func (m *Table) Close() error {
	if m == nil {
		return nil
	}
	return m.b.close()
}

// Ping checks that the lock store answers (always nil for the memory
// store); a failure wraps ErrStoreUnavailable.
func (m *Table) Ping(ctx context.Context) error {
	return m.b.ping(ctx)
}

// ForRoot returns the LockSystem seen by requests whose file system is
// rooted at root (a key prefix). A store outage is an error wrapping
// ErrStoreUnavailable, returned by the method that met it.
func (m *Table) ForRoot(root string) *Root {
	return &Root{m: m, root: root}
}

// By is the same root as seen by user: the locks it creates are user's,
// and only user's lock tokens confirm, refresh or unlock, so that users
// who share a root (a group rule) can see each other's locks but never
// use or remove them. Every user's names conflict alike.
func (l *Root) By(user string) *Root {
	return &Root{m: l.m, root: l.root, user: user}
}

// Root is the Table as seen from one key root (and one user, By).
type Root struct {
	m    *Table
	root string
	user string // the creator of the locks it makes and uses
}

var _ webdav.LockSystem = (*Root)(nil)

// scope maps a name of the user's namespace into the shared table.
func (l *Root) scope(name string) string {
	if name == "" {
		return ""
	}
	return path.Join("/", l.root, path.Clean("/"+name))
}

func (l *Root) unscope(name string) string {
	base := path.Join("/", l.root)
	if base == "/" {
		return name
	}
	rest := strings.TrimPrefix(name, base)
	if rest == "" {
		return "/"
	}
	return rest
}

// Confirm implements webdav.LockSystem.
func (l *Root) Confirm(now time.Time, name0, name1 string, conditions ...webdav.Condition) (func(), error) {
	return l.m.b.confirm(now, l.root, l.user, l.scope(name0), l.scope(name1), conditions)
}

// Create implements webdav.LockSystem.
func (l *Root) Create(now time.Time, details webdav.LockDetails) (string, error) {
	limits := l.m.limits.Load()
	if len(details.OwnerXML) > limits.OwnerBytes {
		return "", fmt.Errorf("%w: %d bytes, at most %d", ErrOwnerTooLarge, len(details.OwnerXML), limits.OwnerBytes)
	}
	details.Root = l.scope(details.Root)
	return l.m.b.create(now, l.root, l.user, details, limits.PerUser)
}

// Refresh implements webdav.LockSystem.
func (l *Root) Refresh(now time.Time, token string, duration time.Duration) (webdav.LockDetails, error) {
	ld, err := l.m.b.refresh(now, l.root, l.user, token, duration)
	if err != nil {
		return ld, err
	}
	ld.Root = l.unscope(ld.Root)
	return ld, nil
}

// Unlock implements webdav.LockSystem.
func (l *Root) Unlock(now time.Time, token string) error {
	return l.m.b.unlock(now, l.root, l.user, token)
}

// Discover lists the clients' locks that cover name (a lock on name, or a
// depth-infinity lock on a folder above it), in the user's namespace. A
// store outage lists none.
func (l *Root) Discover(now time.Time, name string) []Active {
	locks, err := l.m.b.discover(now, l.root, l.scope(name))
	if err != nil {
		return nil
	}
	for i := range locks {
		locks[i].Name = l.unscope(locks[i].Name)
	}
	return locks
}

// covers reports whether a lock on lockName covers name.
func covers(lockName string, zeroDepth bool, name string) bool {
	return lockName == name || (!zeroDepth && (lockName == "/" || strings.HasPrefix(name, lockName+"/")))
}

// newToken returns an opaquelocktoken URI with a random (version 4) UUID.
func newToken() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("opaquelocktoken:%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:]), nil
}

// Active is one client lock as DAV:lockdiscovery reports it.
type Active struct {
	// Token is the lock token (an opaquelocktoken URI).
	Token string
	// Name is the lock root in the user's namespace.
	Name string
	// ZeroDepth is a lock on Name alone (Depth: 0), not on what is below.
	ZeroDepth bool
	// Owner is the client's DAV:owner XML as it sent it.
	Owner string
	// Left is the time until the lock expires.
	Left time.Duration
}
