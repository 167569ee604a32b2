package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"iter"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/davgw/davgw/s3vfs"
)

// Both stores keep one immutable "<id>.json" per app password (name,
// created, hash, claims) and an empty "<id>.used" whose modification time
// is the last use. Revocation deletes both; a "last used" write racing
// with a revocation can only leave an orphan ".used", which List ignores
// and the next revocation sweep removes: it can never bring a revoked
// password back.

// Each user's folder may also hold "claims.json": the claims of the
// user's latest browser sign-in (SetClaims), which List puts in place of
// the stored claims of the entries of the same subject.

const (
	entrySuffix = ".json"
	usedSuffix  = ".used"
	claimsName  = "claims.json"
)

// FileAppPasswords keeps app passwords under a local directory:
// DIR/<lower-case user>/<id>.json (lower case, so that a case-insensitive
// disk cannot merge or split users). For a single gateway (the embedded
// default).
type FileAppPasswords struct {
	dir string
}

var _ AppPasswordStore = (*FileAppPasswords)(nil)

// NewFileAppPasswords returns a store under dir, creating it (mode 0700).
func NewFileAppPasswords(dir string) (*FileAppPasswords, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	return &FileAppPasswords{dir: dir}, nil
}

func (f *FileAppPasswords) userDir(user string) (string, error) {
	user = strings.ToLower(user)
	if err := SafeClaimValue(user); err != nil {
		return "", fmt.Errorf("auth: app passwords: user name: %w", err)
	}
	return filepath.Join(f.dir, user), nil
}

// SetClaims implements AppPasswordStore.
func (f *FileAppPasswords) SetClaims(_ context.Context, user string, c Claims) error {
	dir, err := f.userDir(user)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	data, err := json.Marshal(c)
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, ".claims.tmp")
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(dir, claimsName))
}

// List implements AppPasswordStore.
func (f *FileAppPasswords) List(_ context.Context, user string) ([]AppPassword, error) {
	dir, err := f.userDir(user)
	if err != nil {
		return nil, err
	}
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []AppPassword
	for _, e := range ents {
		id, ok := strings.CutSuffix(e.Name(), entrySuffix)
		if !ok || !validID(id) {
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, err
		}
		var p AppPassword
		if err := json.Unmarshal(data, &p); err != nil || p.ID != id {
			continue
		}
		if st, err := os.Stat(filepath.Join(dir, id+usedSuffix)); err == nil {
			p.LastUsed = st.ModTime().UTC()
		}
		out = append(out, p)
	}
	if data, err := os.ReadFile(filepath.Join(dir, claimsName)); err == nil {
		var c Claims
		if json.Unmarshal(data, &c) == nil {
			applyUserClaims(out, c)
		}
	}
	return out, nil
}

// Create implements AppPasswordStore.
func (f *FileAppPasswords) Create(_ context.Context, user string, p AppPassword) error {
	dir, err := f.userDir(user)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	data, err := json.Marshal(p)
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, "."+p.ID+".tmp")
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(dir, p.ID+entrySuffix))
}

// Delete implements AppPasswordStore.
func (f *FileAppPasswords) Delete(_ context.Context, user, id string) error {
	dir, err := f.userDir(user)
	if err != nil {
		return err
	}
	if !validID(id) {
		return errors.New("auth: bad app password id")
	}
	for _, s := range []string{entrySuffix, usedSuffix} {
		if err := os.Remove(filepath.Join(dir, id+s)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return nil
}

// Touch implements AppPasswordStore.
func (f *FileAppPasswords) Touch(_ context.Context, user, id string, t time.Time) error {
	dir, err := f.userDir(user)
	if err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(dir, id+entrySuffix)); err != nil {
		return nil // revoked meanwhile
	}
	p := filepath.Join(dir, id+usedSuffix)
	if err := os.WriteFile(p, nil, 0o600); err != nil {
		return err
	}
	return os.Chtimes(p, t, t)
}

// objectStore is what BucketAppPasswords needs of s3vfs.Store.
type objectStore interface {
	PutObject(ctx context.Context, key string, body []byte, opts s3vfs.WriteOptions) (s3vfs.ObjectInfo, error)
	List(ctx context.Context, opts s3vfs.ListOptions) iter.Seq2[s3vfs.Entry, error]
	Delete(ctx context.Context, keys []string) error
	NewReader(ctx context.Context, key string, info s3vfs.ObjectInfo) *s3vfs.Reader
}

var _ objectStore = (*s3vfs.Store)(nil)

// BucketAppPasswords keeps app passwords in the bucket under
// <s3.prefix>.davgw/app-passwords/<user>/, so every gateway on the bucket
// shares them without other infrastructure. ReservedPrefix keeps every
// user root away from these keys.
type BucketAppPasswords struct {
	store objectStore
	base  string // "<prefix>.davgw/app-passwords/"
}

var _ AppPasswordStore = (*BucketAppPasswords)(nil)

// NewBucketAppPasswords returns a store under prefix+ReservedPrefix
// ("app-passwords/"). prefix is [s3].prefix ("" or ending in "/").
func NewBucketAppPasswords(store *s3vfs.Store, prefix string) *BucketAppPasswords {
	return &BucketAppPasswords{store: store, base: prefix + ReservedPrefix + "app-passwords/"}
}

func (b *BucketAppPasswords) userPrefix(user string) (string, error) {
	user = strings.ToLower(user)
	if err := SafeClaimValue(user); err != nil {
		return "", fmt.Errorf("auth: app passwords: user name: %w", err)
	}
	return b.base + user + "/", nil
}

// List implements AppPasswordStore: one listing, plus one GET per entry.
func (b *BucketAppPasswords) List(ctx context.Context, user string) ([]AppPassword, error) {
	pfx, err := b.userPrefix(user)
	if err != nil {
		return nil, err
	}
	entries := map[string]s3vfs.ObjectInfo{}
	used := map[string]time.Time{}
	var claimsInfo *s3vfs.ObjectInfo
	for e, err := range b.store.List(ctx, s3vfs.ListOptions{Prefix: pfx}) {
		if err != nil {
			return nil, err
		}
		if e.Object == nil {
			continue
		}
		name := strings.TrimPrefix(e.Object.Key, pfx)
		if name == claimsName {
			claimsInfo = e.Object
		} else if id, ok := strings.CutSuffix(name, entrySuffix); ok && validID(id) {
			entries[id] = *e.Object
		} else if id, ok := strings.CutSuffix(name, usedSuffix); ok && validID(id) {
			used[id] = e.Object.LastModified.UTC()
		}
	}
	out := make([]AppPassword, 0, len(entries))
	for id, info := range entries {
		if info.Size > 64<<10 {
			continue
		}
		r := b.store.NewReader(ctx, info.Key, info)
		data, err := io.ReadAll(r)
		r.Close()
		if err != nil {
			if errors.Is(err, s3vfs.ErrNotFound) || errors.Is(err, s3vfs.ErrPreconditionFailed) {
				continue // revoked meanwhile
			}
			return nil, err
		}
		var p AppPassword
		if err := json.Unmarshal(data, &p); err != nil || p.ID != id {
			continue
		}
		p.LastUsed = used[id]
		out = append(out, p)
	}
	if claimsInfo != nil && claimsInfo.Size <= 64<<10 && len(out) > 0 {
		r := b.store.NewReader(ctx, claimsInfo.Key, *claimsInfo)
		data, err := io.ReadAll(r)
		r.Close()
		if err != nil && !errors.Is(err, s3vfs.ErrNotFound) && !errors.Is(err, s3vfs.ErrPreconditionFailed) {
			return nil, err
		}
		var c Claims
		if err == nil && json.Unmarshal(data, &c) == nil {
			applyUserClaims(out, c)
		}
	}
	return out, nil
}

// SetClaims implements AppPasswordStore.
func (b *BucketAppPasswords) SetClaims(ctx context.Context, user string, c Claims) error {
	pfx, err := b.userPrefix(user)
	if err != nil {
		return err
	}
	data, err := json.Marshal(c)
	if err != nil {
		return err
	}
	_, err = b.store.PutObject(ctx, pfx+claimsName, data, s3vfs.WriteOptions{ContentType: "application/json"})
	return err
}

// Create implements AppPasswordStore.
func (b *BucketAppPasswords) Create(ctx context.Context, user string, p AppPassword) error {
	pfx, err := b.userPrefix(user)
	if err != nil {
		return err
	}
	data, err := json.Marshal(p)
	if err != nil {
		return err
	}
	_, err = b.store.PutObject(ctx, pfx+p.ID+entrySuffix, data, s3vfs.WriteOptions{ContentType: "application/json"})
	return err
}

// Delete implements AppPasswordStore.
func (b *BucketAppPasswords) Delete(ctx context.Context, user, id string) error {
	pfx, err := b.userPrefix(user)
	if err != nil {
		return err
	}
	if !validID(id) {
		return errors.New("auth: bad app password id")
	}
	return b.store.Delete(ctx, []string{pfx + id + entrySuffix, pfx + id + usedSuffix})
}

// Touch implements AppPasswordStore: an empty "<id>.used" whose S3
// LastModified is the time of use.
func (b *BucketAppPasswords) Touch(ctx context.Context, user, id string, _ time.Time) error {
	pfx, err := b.userPrefix(user)
	if err != nil {
		return err
	}
	_, err = b.store.PutObject(ctx, pfx+id+usedSuffix, nil, s3vfs.WriteOptions{})
	return err
}
