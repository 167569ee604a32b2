package main

import (
	"crypto/sha256"
	"crypto/tls"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"
)

// certReloader serves [server].tls_cert and tls_key and picks up new files
// without a restart: a handshake that comes more than certCheckEvery after
// the last check reads both files (a few KB) and compares their content
// with the pair in use, and a changed pair is loaded for that and later
// handshakes. Content, not size and modification time: a renewed pair
// often has the sizes of the old one, and its files may keep a fixed time
// (the Nix store, cp -p, rsync -a) or be written within one tick of the
// file system's clock. Connections already
// open keep the certificate they were made with; none is dropped. A pair
// that does not load (a half-copied file, a key that does not match) is
// logged and the previous certificate stays in use. SIGHUP checks at once.
type certReloader struct {
	certFile, keyFile string
	log               *slog.Logger
	now               func() time.Time

	mu        sync.Mutex
	cert      *tls.Certificate
	stamp     [2][sha256.Size]byte // the content of both files when cert was loaded
	checked   time.Time
	lastError string // the last failure logged, so a broken pair logs once
}

// certCheckEvery bounds how often handshakes look at the files.
const certCheckEvery = time.Second

// newCertReloader loads the pair once: a pair that does not load at start
// is an error.
func newCertReloader(certFile, keyFile string, log *slog.Logger) (*certReloader, error) {
	r := &certReloader{certFile: certFile, keyFile: keyFile, log: log, now: time.Now}
	certPEM, keyPEM, err := r.readPair()
	if err != nil {
		return nil, err
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("tls_cert/tls_key: %w", err)
	}
	r.cert, r.stamp, r.checked = &cert, pairStamp(certPEM, keyPEM), r.now()
	return r, nil
}

// readPair reads both files.
func (r *certReloader) readPair() (certPEM, keyPEM []byte, err error) {
	if certPEM, err = os.ReadFile(r.certFile); err != nil {
		return nil, nil, fmt.Errorf("tls_cert: %w", err)
	}
	if keyPEM, err = os.ReadFile(r.keyFile); err != nil {
		return nil, nil, fmt.Errorf("tls_key: %w", err)
	}
	return certPEM, keyPEM, nil
}

func pairStamp(certPEM, keyPEM []byte) [2][sha256.Size]byte {
	return [2][sha256.Size]byte{sha256.Sum256(certPEM), sha256.Sum256(keyPEM)}
}

// GetCertificate is tls.Config.GetCertificate.
func (r *certReloader) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.now().Sub(r.checked) >= certCheckEvery {
		r.reloadLocked()
	}
	return r.cert, nil
}

// Reload checks the files now (SIGHUP).
func (r *certReloader) Reload() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.reloadLocked()
}

func (r *certReloader) reloadLocked() {
	r.checked = r.now()
	certPEM, keyPEM, err := r.readPair()
	stamp := pairStamp(certPEM, keyPEM)
	if err == nil && stamp == r.stamp {
		return
	}
	var cert tls.Certificate
	if err == nil {
		cert, err = tls.X509KeyPair(certPEM, keyPEM)
	}
	if err != nil {
		// Keep serving the pair that works; say so once per failure.
		if msg := err.Error(); msg != r.lastError {
			r.lastError = msg
			r.log.Warn("tls: the new certificate or key does not load; the previous one stays in use", "err", err)
		}
		return
	}
	r.cert, r.stamp, r.lastError = &cert, stamp, ""
	r.log.Info("tls: certificate reloaded", "cert", r.certFile)
}
