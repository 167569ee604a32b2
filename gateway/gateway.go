// Package gateway assembles davgw's http.Handler: authentication, a
// per-request webdav.Handler over the user's davfs root, and the fixes for
// golang.org/x/net/webdav's traps (folder MOVE refused before anything is
// touched, Overwrite defaulting to T, finite PROPFIND depth, server-side
// COPY, conditional and length-checked PUT, honest error statuses).
//
// Security notes: a user's file system is rooted at [s3].prefix plus the
// Principal's Root and every name is cleaned before it becomes a key, so no
// path, Destination header or If resource tag can reach another user's keys.
// Paths with dot segments are refused outright. Internal error text goes to
// the log, never to the client.
package gateway

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"strings"
	"time"

	"golang.org/x/net/webdav"

	"github.com/davgw/davgw/auth"
	"github.com/davgw/davgw/davfs"
	"github.com/davgw/davgw/s3vfs"
)

// Gateway is davgw's HTTP handler.
type Gateway struct {
	opts    Options
	davBase string // DAVPrefix without its trailing slash, e.g. "/dav"
	pubHost string // host of PublicURL, "" if none
	locks   *LockManager
	indexes *davfs.IndexLocks
	icache  *davfs.IndexCache
	dcache  *davfs.DirCache
	moves   *davfs.MoveLog
	batcher *davfs.IndexBatcher
	quota   *quotaTracker // nil without a quota
	// The uploads of each user and each client address, with their
	// memory shares.
	userUploads, addrUploads *s3vfs.SharePool
	log                      *slog.Logger
}

var _ http.Handler = (*Gateway)(nil)

// New checks opts and returns a Gateway.
func New(opts Options) (*Gateway, error) {
	var errs []error
	if opts.Store == nil {
		errs = append(errs, errors.New("gateway: Store is required"))
	}
	if opts.Auth == nil {
		errs = append(errs, errors.New("gateway: Auth is required"))
	}
	if opts.Prefix != "" && !strings.HasSuffix(opts.Prefix, "/") {
		errs = append(errs, errors.New("gateway: Prefix must be empty or end in /"))
	}
	if opts.DAVPrefix == "" {
		opts.DAVPrefix = "/dav/"
	}
	if !strings.HasPrefix(opts.DAVPrefix, "/") {
		errs = append(errs, errors.New("gateway: DAVPrefix must start with /"))
	}
	var pubHost string
	if opts.PublicURL != "" {
		u, err := url.Parse(opts.PublicURL)
		if err != nil || u.Host == "" {
			errs = append(errs, errors.New("gateway: PublicURL must be an absolute URL"))
		} else {
			pubHost = u.Host
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if opts.Realm == "" {
		opts.Realm = "davgw"
	}
	switch opts.AppleFiles {
	case "":
		opts.AppleFiles = AppleAllow
	case AppleAllow, AppleHide, AppleReject:
	default:
		return nil, errors.New(`gateway: AppleFiles must be "allow", "hide" or "reject"`)
	}
	if opts.BodyIdleTimeout <= 0 {
		opts.BodyIdleTimeout = DefaultBodyIdleTimeout
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.Default()
	}
	locks := opts.Locks
	if locks == nil {
		locks = NewLockManager()
	}
	userUploads, addrUploads := newUploadPools(opts.Store, opts.Uploads)
	var quota *quotaTracker
	if opts.QuotaBytes > 0 {
		quota = newQuotaTracker(opts.QuotaBytes, opts.Store, logger)
	}
	batcher := davfs.NewIndexBatcher()
	batcher.OnError = func(err error) {
		logger.LogAttrs(context.Background(), slog.LevelWarn, "index", slog.String("error", err.Error()))
	}
	return &Gateway{
		batcher:     batcher,
		userUploads: userUploads,
		addrUploads: addrUploads,
		quota:       quota,
		indexes:     &davfs.IndexLocks{},
		// A few seconds: a listing and the requests that follow it share
		// one read of the folder's index.
		icache: davfs.NewIndexCache(3*time.Second, 32<<20),
		// What was listed or written: a PUT into a known folder is one
		// PutObject. Changes made elsewhere are missed for at most its TTL.
		dcache:  davfs.NewDirCache(davfs.DefaultDirCacheTTL, 200000),
		moves:   davfs.NewMoveLog(davfs.DefaultMoveLogTTL, 10000),
		opts:    opts,
		davBase: strings.TrimSuffix(path.Clean(opts.DAVPrefix), "/"),
		pubHost: pubHost,
		locks:   locks,
		log:     logger,
	}, nil
}

// Close writes what the gateway still holds for S3 (the kept times of
// recent uploads, see davfs.IndexBatcher); call it once requests are done.
func (g *Gateway) Close(ctx context.Context) error {
	return g.batcher.Close(ctx)
}

// WritePending writes at once what Close would write, and keeps serving.
func (g *Gateway) WritePending(ctx context.Context) error {
	return g.batcher.WriteUnder(ctx, "")
}

// davName maps a URL path to a clean name in the WebDAV namespace. ok is
// false for paths outside the prefix and for paths with dot segments, NUL or
// other control characters.
func (g *Gateway) davName(p string) (name string, ok bool) {
	var rest string
	switch {
	case p == g.davBase || (g.davBase == "" && p == "/"):
		rest = "/"
	case strings.HasPrefix(p, g.davBase+"/"):
		rest = p[len(g.davBase):]
	default:
		return "", false
	}
	for _, seg := range strings.Split(rest, "/") {
		if seg == "." || seg == ".." {
			return "", false
		}
	}
	for _, c := range rest {
		if c < 0x20 || c == 0x7f {
			return "", false
		}
	}
	return davfs.Clean(rest), true
}

// sameServer reports whether a URL host (from Destination or an If tag)
// names this gateway: empty (an absolute path), the request's Host, or the
// public URL's host.
func (g *Gateway) sameServer(host string, r *http.Request) bool {
	return host == "" || host == r.Host || (g.pubHost != "" && host == g.pubHost)
}

// request is the state of one authenticated WebDAV request.
type request struct {
	g     *Gateway
	r     *http.Request
	w     *recorder
	user  auth.Principal
	fs    *davfs.FS
	locks webdav.LockSystem
	root  string // the user's key prefix
	name  string
	slash bool // the URL path ended in "/": the client expects a folder
}

// ServeHTTP implements http.Handler.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rec, r := g.begin(w, r)
	defer g.finish(rec, r)

	switch {
	case r.Method == http.MethodOptions:
		// Windows asks OPTIONS (also at "/") before it authenticates.
		serveOptions(rec)
		return
	case r.URL.Path == "/healthz" && (r.Method == http.MethodGet || r.Method == http.MethodHead):
		rec.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = rec.Write([]byte("ok\n"))
		return
	case r.URL.Path == "/readyz" && (r.Method == http.MethodGet || r.Method == http.MethodHead):
		if g.opts.Ready != nil {
			if err := g.opts.Ready(); err != nil {
				rec.fail(http.StatusServiceUnavailable, err)
				return
			}
		}
		rec.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = rec.Write([]byte("ready\n"))
		return
	}
	name, ok := g.davName(r.URL.Path)
	if !ok {
		if r.URL.Path == g.davBase || strings.HasPrefix(r.URL.Path, g.davBase+"/") {
			rec.fail(http.StatusBadRequest, errors.New("path with dot segments or control characters"))
			return
		}
		if g.opts.Web != nil {
			g.opts.Web.ServeHTTP(rec, r)
			return
		}
		rec.fail(http.StatusNotFound, nil)
		return
	}

	user, ok, err := g.opts.Auth.Authenticate(r)
	var limited *auth.RateLimitError
	switch {
	case errors.As(err, &limited):
		rec.authRefused(r, err)
		rec.Header().Set("Retry-After", strconv.Itoa(max(1, int((limited.RetryAfter+time.Second-1)/time.Second))))
		rec.fail(http.StatusTooManyRequests, err)
		return
	case err != nil:
		rec.authRefused(r, err)
		rec.fail(http.StatusServiceUnavailable, err)
		return
	case !ok:
		rec.authRefused(r, err)
		challenges := []string{`Basic realm="` + g.opts.Realm + `", charset="UTF-8"`}
		if c, isC := g.opts.Auth.(auth.Challenger); isC {
			challenges = c.Challenges(g.opts.Realm)
		}
		for _, c := range challenges {
			rec.Header().Add("WWW-Authenticate", c)
		}
		rec.fail(http.StatusUnauthorized, nil)
		return
	}
	rec.user = user.Username
	if user.ReadOnly && isWrite(r.Method) {
		rec.fail(http.StatusForbidden, errors.New("read-only user"))
		return
	}

	if davfs.IsReserved(name) {
		rec.fail(http.StatusNotFound, errors.New("reserved name"))
		return
	}
	root := g.opts.Prefix + user.Root
	rq := &request{
		g:    g,
		r:    r,
		w:    rec,
		user: user,
		fs: davfs.New(g.opts.Store, root, davfs.Options{
			MaxEntries: g.opts.MaxPropfindEntries,
			Hide:       g.hidden,
			IndexLocks: g.indexes,
			IndexCache: g.icache,
			DirCache:   g.dcache,
			Moves:      g.moves,
			Batcher:    g.batcher,
		}),
		locks: g.locks.ForRoot(root),
		root:  root,
		name:  name,
		slash: strings.HasSuffix(r.URL.Path, "/"),
	}
	rq.serve()
	if ws := rq.fs.Warnings(); len(ws) > 0 {
		rec.warning = errors.Join(ws...)
	}
}

// hidden reports names that listings leave out (apple_files = hide).
func (g *Gateway) hidden(base string) bool {
	return g.opts.AppleFiles == AppleHide && IsAppleFile(base)
}

func (rq *request) serve() {
	if rq.appleRefused() {
		return
	}
	switch rq.r.Method {
	case http.MethodGet, http.MethodHead:
		rq.get()
	case http.MethodPut:
		rq.put()
	case http.MethodDelete:
		rq.delete()
	case "MKCOL":
		rq.mkcol()
	case "COPY", "MOVE":
		rq.copyMove()
	case "PROPFIND":
		rq.propfind()
	case "PROPPATCH":
		rq.proppatch()
	case "LOCK":
		rq.lock()
	case "UNLOCK":
		// Older Windows sends the token without its angle brackets.
		if t := strings.TrimSpace(rq.r.Header.Get("Lock-Token")); t != "" && !strings.HasPrefix(t, "<") {
			rq.r.Header.Set("Lock-Token", "<"+t+">")
		}
		rq.delegate(rq.locks, rq.w)
	default:
		rq.w.Header().Set("Allow", allowedMethods)
		rq.w.fail(http.StatusMethodNotAllowed, nil)
	}
}

const allowedMethods = "OPTIONS, GET, HEAD, PUT, DELETE, MKCOL, COPY, MOVE, PROPFIND, PROPPATCH, LOCK, UNLOCK"

func serveOptions(w http.ResponseWriter) {
	h := w.Header()
	h.Set("DAV", "1, 2")
	h.Set("MS-Author-Via", "DAV")
	h.Set("Allow", allowedMethods)
	h.Set("Content-Length", "0")
	w.WriteHeader(http.StatusOK)
}

func isWrite(method string) bool {
	switch method {
	case http.MethodPut, http.MethodDelete, "MKCOL", "COPY", "MOVE", "PROPPATCH", "LOCK", "UNLOCK", http.MethodPost, http.MethodPatch:
		return true
	}
	return false
}

// delegate hands the request to x/net/webdav's handler over the user's
// davfs and ls, with the path made canonical and its error statuses made
// honest, answering on w.
func (rq *request) delegate(ls webdav.LockSystem, w http.ResponseWriter) {
	r := rq.r
	r.URL.Path = path.Join(rq.g.davBase, rq.name)
	if rq.name == "/" {
		r.URL.Path = rq.g.davBase + "/"
	}
	r.URL.RawPath = ""
	h := &webdav.Handler{
		Prefix:     rq.g.davBase,
		FileSystem: rq.fs,
		LockSystem: ls,
		Logger: func(_ *http.Request, err error) {
			if err != nil && rq.w.err == nil {
				rq.w.err = err
			}
		},
	}
	h.ServeHTTP(&honestWriter{ResponseWriter: w, rec: rq.w, fs: rq.fs, locks: rq.lockFailure}, r)
}

// newUploadPools applies the defaults of lim and returns the pools of the
// per-user and per-address upload shares.
func newUploadPools(store *s3vfs.Store, lim UploadLimits) (user, addr *s3vfs.SharePool) {
	if lim.PerUser <= 0 {
		lim.PerUser = DefaultUploadsPerUser
	}
	if lim.PerAddress <= 0 {
		lim.PerAddress = DefaultUploadsPerAddress
	}
	// A share smaller than one part would fail every upload: at least the
	// largest part the Store uses (its part size, or the fair share of a
	// huge declared length).
	budget := store.UploadMemory()
	part := max(store.PartSize(), budget/int64(2*store.UploadConcurrency()))
	if lim.MemoryPerUser <= 0 {
		lim.MemoryPerUser = budget / 4
	}
	if lim.MemoryPerAddress <= 0 {
		lim.MemoryPerAddress = budget / 2
	}
	return s3vfs.NewSharePool(max(lim.MemoryPerUser, part), lim.PerUser),
		s3vfs.NewSharePool(max(lim.MemoryPerAddress, part), lim.PerAddress)
}
