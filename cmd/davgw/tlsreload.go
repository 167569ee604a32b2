package main

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"
)

// certReloader serves [server].tls_cert and tls_key and picks up new files
// without a restart: a handshake that comes more than certCheckEvery after
// the last check compares the files' size and modification time, and a
// changed pair is loaded for that and later handshakes. Connections already
// open keep the certificate they were made with; none is dropped. A pair
// that does not load (a half-copied file, a key that does not match) is
// logged and the previous certificate stays in use. SIGHUP checks at once.
type certReloader struct {
	certFile, keyFile string
	log               *slog.Logger
	now               func() time.Time

	mu        sync.Mutex
	cert      *tls.Certificate
	stamp     string // size and mtime of both files when cert was loaded
	checked   time.Time
	lastError string // the last failure logged, so a broken pair logs once
}

// certCheckEvery bounds how often handshakes look at the files.
const certCheckEvery = time.Second

// newCertReloader loads the pair once: a pair that does not load at start
// is an error.
func newCertReloader(certFile, keyFile string, log *slog.Logger) (*certReloader, error) {
	r := &certReloader{certFile: certFile, keyFile: keyFile, log: log, now: time.Now}
	stamp, err := r.fileStamp()
	if err != nil {
		return nil, err
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("tls_cert/tls_key: %w", err)
	}
	r.cert, r.stamp, r.checked = &cert, stamp, r.now()
	return r, nil
}

// fileStamp is the size and modification time of both files.
func (r *certReloader) fileStamp() (string, error) {
	var stamp string
	for _, f := range []string{r.certFile, r.keyFile} {
		fi, err := os.Stat(f)
		if err != nil {
			return "", fmt.Errorf("tls_cert/tls_key: %w", err)
		}
		stamp += fmt.Sprintf("%d/%d;", fi.Size(), fi.ModTime().UnixNano())
	}
	return stamp, nil
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
	stamp, err := r.fileStamp()
	if err == nil && stamp == r.stamp {
		return
	}
	var cert tls.Certificate
	if err == nil {
		cert, err = tls.LoadX509KeyPair(r.certFile, r.keyFile)
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
