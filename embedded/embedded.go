// Package embedded runs davgw's embedded default S3 store: versitygw with
// its posix backend, in process, on a free 127.0.0.1 port, with data under
// a directory (./davgw-data/ by default).
//
// Layout of the directory:
//
//	s3/                    objects; s3/davgw/ is the bucket
//	s3-credentials.json    the generated root S3 keys (mode 0600)
//	dev-user.json          the dev user's password, in clear (mode 0600)
//
// The dev user's password is kept in clear in a 0600 file on purpose: it is
// printed only on the first start, and the file is how a user reads it
// again. Delete the file to get a new password.
//
// Security notes: the store listens on loopback only, with random root keys
// that never leave the process except through the 0600 file. Caveats of
// versitygw v1.8.0: only one store can run per process at a time, and its
// posix backend changes the process working directory to the object
// directory (it works with relative paths) until Close, so callers must
// make every other path absolute before calling Start. It never fsyncs; the posix
// backend keeps metadata in extended attributes, which the file system
// must support.
package embedded

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	vauth "github.com/versity/versitygw/auth"
	"github.com/versity/versitygw/backend/meta"
	"github.com/versity/versitygw/backend/posix"
	"github.com/versity/versitygw/embedgw"
)

// Names and defaults of the embedded store.
const (
	// DefaultDir is where the embedded default keeps its data.
	DefaultDir = "davgw-data"
	// Bucket is the bucket the embedded store serves.
	Bucket = "davgw"
	// Region is the region the embedded store reports.
	Region = "us-east-1"
	// DevUserName is the name of the embedded default's only user.
	DevUserName = "dev"

	objectsDir      = "s3"
	credentialsFile = "s3-credentials.json"
	devUserFile     = "dev-user.json"
	startTimeout    = 15 * time.Second
)

// Store is a running embedded S3 store.
type Store struct {
	// Endpoint is the S3 endpoint, "http://127.0.0.1:PORT".
	Endpoint string
	// AccessKeyID is the root access key ID.
	AccessKeyID string
	// SecretAccessKey is the root secret key (do not log it).
	SecretAccessKey string
	// Bucket is the bucket name ("davgw").
	Bucket string
	// Region is the region ("us-east-1").
	Region string
	// Dir is the absolute data directory.
	Dir string

	cancel    context.CancelFunc
	done      chan error
	closeOnce sync.Once
	closeErr  error
	prevWD    string // working directory before Start, restored by Close
}

type s3Credentials struct {
	AccessKeyID     string `json:"access_key_id"`
	SecretAccessKey string `json:"secret_access_key"`
}

// Start starts the embedded store with its data under dir (created with
// mode 0700 if missing), creates the bucket if it is missing, and returns
// once the store answers. Cancelling ctx or calling Close stops it.
// Start changes the working directory of the process until Close (see the
// package comment).
func Start(ctx context.Context, dir string) (*Store, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	objects := filepath.Join(abs, objectsDir)
	if err := os.MkdirAll(objects, 0o700); err != nil {
		return nil, fmt.Errorf("embedded: create data directory: %w", err)
	}
	var creds s3Credentials
	if _, err := loadOrCreate(filepath.Join(abs, credentialsFile), &creds, func() error {
		creds.AccessKeyID = randomString(20, upperAlnum)
		creds.SecretAccessKey = randomString(40, alnum)
		return nil
	}); err != nil {
		return nil, err
	}
	if creds.AccessKeyID == "" || creds.SecretAccessKey == "" {
		return nil, fmt.Errorf("embedded: %s is incomplete: delete it (and %s) to start afresh", filepath.Join(abs, credentialsFile), objects)
	}

	// The port is picked before versitygw binds it, so another process can
	// take it in between: try a few ports. Each attempt gets a fresh
	// backend, since a stopped gateway shuts its backend down.
	prevWD, err := os.Getwd()
	if err != nil {
		return nil, fmt.Errorf("embedded: %w", err)
	}
	var lastErr error
	for range 3 {
		be, err := posix.New(objects, meta.XattrMeta{}, posix.PosixOpts{CopyObjectThreshold: 5 << 30})
		if err != nil {
			return nil, fmt.Errorf("embedded: open object directory: %w", err)
		}
		s, err := run(ctx, be, abs, creds)
		if err == nil {
			s.prevWD = prevWD
			if err := s.ensureBucket(ctx); err != nil {
				s.Close()
				return nil, err
			}
			return s, nil
		}
		lastErr = err
		if ctx.Err() != nil {
			break
		}
	}
	_ = os.Chdir(prevWD)
	return nil, lastErr
}

// run starts versitygw on a free port and waits until it accepts
// connections.
func run(ctx context.Context, be *posix.Posix, dir string, creds s3Credentials) (*Store, error) {
	addr, err := freePort()
	if err != nil {
		return nil, err
	}
	runCtx, cancel := context.WithCancel(ctx)
	s := &Store{
		Endpoint:        "http://" + addr,
		AccessKeyID:     creds.AccessKeyID,
		SecretAccessKey: creds.SecretAccessKey,
		Bucket:          Bucket,
		Region:          Region,
		Dir:             dir,
		cancel:          cancel,
		done:            make(chan error, 1),
	}
	cfg := &embedgw.Config{
		RootUserAccess:    creds.AccessKeyID,
		RootUserSecret:    creds.SecretAccessKey,
		Region:            Region,
		Ports:             []string{addr},
		MaxConnections:    1000,
		MaxRequests:       500,
		MultipartMaxParts: 10000,
		Quiet:             true,
		KeepAlive:         true,
		// What versitygw builds by default, given here so that it does
		// not print "No IAM service configured" on stdout.
		IAMService: vauth.NewIAMServiceSingle(vauth.Account{
			Access: creds.AccessKeyID, Secret: creds.SecretAccessKey, Role: vauth.RoleAdmin,
		}),
	}
	go func() { s.done <- embedgw.RunVersityGW(runCtx, be, cfg) }()

	deadline := time.NewTimer(startTimeout)
	defer deadline.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case err := <-s.done:
			cancel()
			be.Shutdown()
			if err == nil {
				err = errors.New("stopped during start-up")
			}
			return nil, fmt.Errorf("embedded: start S3 store: %w", err)
		case <-deadline.C:
			s.Close()
			be.Shutdown()
			return nil, errors.New("embedded: S3 store did not start listening")
		case <-tick.C:
			if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
				c.Close()
				return s, nil
			}
		}
	}
}

// Close stops the store and waits until it has released its port and
// files. It is safe to call more than once.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.cancel()
		err := <-s.done
		if err != nil && !errors.Is(err, context.Canceled) {
			s.closeErr = err
		}
		if s.prevWD != "" {
			if err := os.Chdir(s.prevWD); err != nil && s.closeErr == nil {
				s.closeErr = fmt.Errorf("embedded: restore working directory: %w", err)
			}
		}
	})
	return s.closeErr
}

// Client returns an S3 client for the store, for set-up and tests.
func (s *Store) Client() *s3.Client {
	return s3.New(s3.Options{
		Region:                     s.Region,
		BaseEndpoint:               aws.String(s.Endpoint),
		UsePathStyle:               true,
		Credentials:                credentials.NewStaticCredentialsProvider(s.AccessKeyID, s.SecretAccessKey, ""),
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenRequired,
	})
}

func (s *Store) ensureBucket(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	c := s.Client()
	if _, err := c.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(s.Bucket)}); err == nil {
		return nil
	}
	_, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(s.Bucket)})
	var owned *types.BucketAlreadyOwnedByYou
	if err != nil && !errors.As(err, &owned) {
		return fmt.Errorf("embedded: create bucket %q: %w", s.Bucket, err)
	}
	return nil
}

func freePort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("embedded: find a free port: %w", err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr, nil
}

type devUser struct {
	Name     string `json:"name"`
	Password string `json:"password"`
}

// DevUser returns the embedded default's user name ("dev") and password.
// The first call on a directory creates a random password and keeps it in
// dir/dev-user.json (mode 0600); created reports that, so that the caller
// prints the password only then. Later calls read the same file.
func DevUser(dir string) (name, password string, created bool, err error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", "", false, fmt.Errorf("embedded: create data directory: %w", err)
	}
	var u devUser
	created, err = loadOrCreate(filepath.Join(dir, devUserFile), &u, func() error {
		u.Name = DevUserName
		u.Password = randomString(20, passwordAlphabet)
		return nil
	})
	if err != nil {
		return "", "", false, err
	}
	if u.Name == "" || u.Password == "" {
		return "", "", false, fmt.Errorf("embedded: %s is incomplete: delete it to get a new password", filepath.Join(dir, devUserFile))
	}
	return u.Name, u.Password, created, nil
}

// DevUserFile returns the path of the file that keeps the dev password.
func DevUserFile(dir string) string { return filepath.Join(dir, devUserFile) }

// loadOrCreate reads the JSON file at path into v, or calls fill and
// writes v to a new 0600 file. A file readable by others is narrowed to 0600.
func loadOrCreate(path string, v any, fill func() error) (created bool, err error) {
	data, err := os.ReadFile(path)
	if err == nil {
		if err := json.Unmarshal(data, v); err != nil {
			return false, fmt.Errorf("embedded: %s is not valid JSON: fix or delete it", path)
		}
		if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
			if err := os.Chmod(path, 0o600); err != nil {
				return false, fmt.Errorf("embedded: restrict %s to 0600: %w", path, err)
			}
		}
		return false, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return false, fmt.Errorf("embedded: %w", err)
	}
	if err := fill(); err != nil {
		return false, err
	}
	data, err = json.MarshalIndent(v, "", "  ")
	if err != nil {
		return false, err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return false, fmt.Errorf("embedded: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return false, fmt.Errorf("embedded: %w", err)
	}
	if _, err := tmp.Write(append(data, '\n')); err != nil {
		tmp.Close()
		return false, fmt.Errorf("embedded: write %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return false, fmt.Errorf("embedded: write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return false, fmt.Errorf("embedded: write %s: %w", path, err)
	}
	// Link instead of rename, so that two processes starting at once do
	// not overwrite each other's secret: the second one reads the first's.
	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, os.ErrExist) {
			return loadOrCreate(path, v, fill)
		}
		return false, fmt.Errorf("embedded: write %s: %w", path, err)
	}
	return true, nil
}

const (
	upperAlnum = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	alnum      = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	// passwordAlphabet leaves out look-alikes (0/O, 1/l/I) so that a
	// password read from a terminal is typed right.
	passwordAlphabet = "abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"
)

// randomString returns n characters drawn uniformly from alphabet.
func randomString(n int, alphabet string) string {
	out := make([]byte, n)
	limit := 256 - 256%len(alphabet)
	var b [1]byte
	for i := 0; i < n; {
		_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
		if int(b[0]) >= limit {
			continue
		}
		out[i] = alphabet[int(b[0])%len(alphabet)]
		i++
	}
	return string(out)
}
