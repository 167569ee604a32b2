package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/davgw/davgw/internal/ttlcache"
	"github.com/davgw/davgw/s3vfs"
)

// ErrIdentityMismatch: the user name is bound to another {issuer, subject}
// than the one signing in (the IdP gave the name to someone else, or the
// account was recreated). The caller answers 401 and audits it.
var ErrIdentityMismatch = errors.New("auth: user name bound to another identity")

// identityCacheTTL bounds how long a binding read from the store is
// trusted in memory (bindings only change when an administrator deletes
// one).
const (
	identityCacheTTL    = 5 * time.Minute
	maxCachedIdentities = 10000
)

// Identity binds a user name to the IdP account that first signed in with
// it: the user's folder and app passwords follow the name, so the name must
// never pass to another account.
type Identity struct {
	Issuer   string    `json:"iss"`
	Subject  string    `json:"sub"`
	Username string    `json:"username"`
	Bound    time.Time `json:"bound"`
}

// IdentityStore keeps bindings by lower-case user name.
type IdentityStore interface {
	// Get returns the binding of user, ok == false if none.
	Get(ctx context.Context, user string) (id Identity, ok bool, err error)
	// Create stores a binding unless user has one already; created is
	// false (and err nil) when another binding won.
	Create(ctx context.Context, user string, id Identity) (created bool, err error)
}

// Identities checks and records bindings of user names to {iss, sub}.
type Identities struct {
	store  IdentityStore
	issuer string
	now    func() time.Time
	cache  *ttlcache.Cache[string, Identity]
}

// NewIdentities returns Identities over store for the issuer.
func NewIdentities(store IdentityStore, issuer string) *Identities {
	return &Identities{store: store, issuer: issuer, now: time.Now, cache: ttlcache.New[string, Identity](maxCachedIdentities)}
}

// Check binds c.Username to {issuer, c.Subject} if the name is not bound
// yet, and otherwise returns an error wrapping ErrIdentityMismatch when the
// binding names another issuer or subject. Store failures are returned as
// they are (the caller answers 503).
func (i *Identities) Check(ctx context.Context, c Claims) error {
	user := strings.ToLower(c.Username)
	if err := SafeClaimValue(user); err != nil {
		return fmt.Errorf("%w: user name: %v", ErrIdentityMismatch, err)
	}
	if c.Subject == "" {
		return fmt.Errorf("%w: no subject", ErrIdentityMismatch)
	}
	id, err := i.get(ctx, user)
	if errors.Is(err, errNoIdentity) {
		want := Identity{Issuer: i.issuer, Subject: c.Subject, Username: user, Bound: i.now().UTC().Truncate(time.Second)}
		created, cerr := i.store.Create(ctx, user, want)
		if cerr != nil {
			return cerr
		}
		if created {
			i.remember(user, want)
			return nil
		}
		// Someone bound it at the same moment: judge by what won.
		i.forget(user)
		id, err = i.get(ctx, user)
	}
	if err != nil {
		return err
	}
	if id.Issuer != i.issuer || id.Subject != c.Subject {
		return fmt.Errorf("%w: %q is bound to subject %q of %s since %s, not to subject %q", ErrIdentityMismatch, user, id.Subject, id.Issuer, id.Bound.Format(time.RFC3339), c.Subject)
	}
	return nil
}

var errNoIdentity = errors.New("auth: no identity")

func (i *Identities) get(ctx context.Context, user string) (Identity, error) {
	if id, hit := i.cache.Get(user, i.now()); hit {
		return id, nil
	}
	id, ok, err := i.store.Get(ctx, user)
	if err != nil {
		return Identity{}, err
	}
	if !ok {
		return Identity{}, errNoIdentity
	}
	i.remember(user, id)
	return id, nil
}

func (i *Identities) remember(user string, id Identity) {
	// Evicting a live binding when full only costs a re-read.
	now := i.now()
	i.cache.Put(user, id, now.Add(identityCacheTTL), now)
}

func (i *Identities) forget(user string) { i.cache.Delete(user) }

// FileIdentities keeps bindings under a local directory:
// DIR/<lower-case user>.json (for app_password_store = "local:DIR", in
// DIR/.identities/).
type FileIdentities struct {
	dir string
	mu  sync.Mutex
}

var _ IdentityStore = (*FileIdentities)(nil)

// NewFileIdentities returns a store under dir, creating it (mode 0700).
func NewFileIdentities(dir string) (*FileIdentities, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	return &FileIdentities{dir: dir}, nil
}

func (f *FileIdentities) path(user string) (string, error) {
	user = strings.ToLower(user)
	if err := SafeClaimValue(user); err != nil {
		return "", fmt.Errorf("auth: identities: user name: %w", err)
	}
	return filepath.Join(f.dir, user+".json"), nil
}

// Get implements IdentityStore.
func (f *FileIdentities) Get(_ context.Context, user string) (Identity, bool, error) {
	p, err := f.path(user)
	if err != nil {
		return Identity{}, false, err
	}
	data, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return Identity{}, false, nil
	}
	if err != nil {
		return Identity{}, false, err
	}
	var id Identity
	if err := json.Unmarshal(data, &id); err != nil {
		return Identity{}, false, fmt.Errorf("auth: identity of %q: %w", user, err)
	}
	return id, true, nil
}

// Create implements IdentityStore: O_EXCL, so a binding is never replaced.
func (f *FileIdentities) Create(_ context.Context, user string, id Identity) (bool, error) {
	p, err := f.path(user)
	if err != nil {
		return false, err
	}
	data, err := json.Marshal(id)
	if err != nil {
		return false, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	tmp := filepath.Join(f.dir, "."+filepath.Base(p)+".tmp")
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return false, err
	}
	defer os.Remove(tmp)
	// Link fails if the name exists: the first binding wins, complete.
	if err := os.Link(tmp, p); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return false, nil
		}
		return false, err
	}
	return true, nil
}

// identityObjects is what BucketIdentities needs of s3vfs.Store.
type identityObjects interface {
	GetSmall(ctx context.Context, key string, limit int64) ([]byte, s3vfs.ObjectInfo, error)
	PutObject(ctx context.Context, key string, body []byte, opts s3vfs.WriteOptions) (s3vfs.ObjectInfo, error)
}

// BucketIdentities keeps bindings in the bucket under
// <s3.prefix>.davgw/identities/<lower-case user>.json, shared by every
// gateway; no user root can reach them.
type BucketIdentities struct {
	store identityObjects
	base  string
}

var _ IdentityStore = (*BucketIdentities)(nil)

// NewBucketIdentities returns a store under prefix+ReservedPrefix
// ("identities/"). prefix is [s3].prefix ("" or ending in "/").
func NewBucketIdentities(store *s3vfs.Store, prefix string) *BucketIdentities {
	return &BucketIdentities{store: store, base: prefix + ReservedPrefix + "identities/"}
}

func (b *BucketIdentities) key(user string) (string, error) {
	user = strings.ToLower(user)
	if err := SafeClaimValue(user); err != nil {
		return "", fmt.Errorf("auth: identities: user name: %w", err)
	}
	return b.base + user + ".json", nil
}

// Get implements IdentityStore.
func (b *BucketIdentities) Get(ctx context.Context, user string) (Identity, bool, error) {
	k, err := b.key(user)
	if err != nil {
		return Identity{}, false, err
	}
	// One bounded GET (not HEAD then GET): this runs on sign-ins.
	data, _, err := b.store.GetSmall(ctx, k, 64<<10)
	if errors.Is(err, s3vfs.ErrNotFound) {
		return Identity{}, false, nil
	}
	if err != nil {
		return Identity{}, false, fmt.Errorf("auth: identity of %q: %w", user, err)
	}
	var id Identity
	if err := json.Unmarshal(data, &id); err != nil {
		return Identity{}, false, fmt.Errorf("auth: identity of %q: %w", user, err)
	}
	return id, true, nil
}

// Create implements IdentityStore with a conditional write (If-None-Match:
// *), so that two gateways binding one name at once cannot both win.
func (b *BucketIdentities) Create(ctx context.Context, user string, id Identity) (bool, error) {
	k, err := b.key(user)
	if err != nil {
		return false, err
	}
	data, err := json.Marshal(id)
	if err != nil {
		return false, err
	}
	_, err = b.store.PutObject(ctx, k, data, s3vfs.WriteOptions{ContentType: "application/json", IfNoneMatch: "*"})
	if errors.Is(err, s3vfs.ErrPreconditionFailed) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	// A back end that ignores If-None-Match lets the last writer win:
	// read back, so that only the stored binding is reported as created.
	got, ok, err := b.Get(ctx, user)
	if err != nil {
		return false, err
	}
	return ok && got.Issuer == id.Issuer && got.Subject == id.Subject, nil
}
