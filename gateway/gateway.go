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
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"golang.org/x/net/webdav"

	"github.com/davgw/davgw/auth"
	"github.com/davgw/davgw/davfs"
	"github.com/davgw/davgw/locks"
	"github.com/davgw/davgw/s3vfs"
)

// Gateway is davgw's HTTP handler.
type Gateway struct {
	opts    Options
	davBase string // DAVPrefix without its trailing slash, e.g. "/dav"
	pubHost string // host of PublicURL, "" if none
	locks   *locks.Table
	// stores are the default store ("") and Options.Stores, each with its
	// caches, index batcher and quota.
	stores map[string]*namedStore
	// The uploads of each user and each client address, with their
	// memory shares.
	userUploads, addrUploads *s3vfs.SharePool
	log                      *slog.Logger
	// requests are Options.Requests with defaults; SetRequestLimits
	// replaces them (a reload).
	requests atomic.Pointer[RequestLimits]
}

// SetRequestLimits replaces the bounds of one request ([limits]
// xml_depth, xml_elements, ranges_per_request; zero fields take the
// defaults) for the requests that begin after it.
func (g *Gateway) SetRequestLimits(l RequestLimits) {
	l = l.withDefaults()
	g.requests.Store(&l)
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
		opts.DAVPrefix = DefaultDAVPrefix
	}
	if !strings.HasPrefix(opts.DAVPrefix, "/") {
		errs = append(errs, errors.New("gateway: DAVPrefix must start with /"))
	}
	switch opts.ForwardedHeader {
	case "", HeaderXForwardedFor, HeaderForwarded:
	default:
		errs = append(errs, errors.New(`gateway: ForwardedHeader must be "X-Forwarded-For" or "Forwarded"`))
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
		opts.Realm = DefaultRealm
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
	lockTable := opts.Locks
	if lockTable == nil {
		lockTable = locks.NewMemory(locks.Limits{})
	}
	userUploads, addrUploads := newUploadPools(opts.Store, opts.Uploads)
	g := &Gateway{
		userUploads: userUploads,
		addrUploads: addrUploads,
		opts:        opts,
		davBase:     strings.TrimSuffix(path.Clean(opts.DAVPrefix), "/"),
		pubHost:     pubHost,
		locks:       lockTable,
		log:         logger,
	}
	if err := g.newStores(); err != nil {
		return nil, err
	}
	g.SetRequestLimits(opts.Requests)
	return g, nil
}

// Close writes what the gateway still holds for S3 (the kept times of
// recent uploads in every store, see davfs.IndexBatcher); call it once
// requests are done.
func (g *Gateway) Close(ctx context.Context) error {
	var errs []error
	for _, p := range g.allParts() {
		errs = append(errs, p.batcher.Close(ctx))
	}
	return errors.Join(errs...)
}

// WritePending writes at once what Close would write, and keeps serving.
func (g *Gateway) WritePending(ctx context.Context) error {
	var errs []error
	for _, p := range g.allParts() {
		errs = append(errs, p.batcher.WriteUnder(ctx, ""))
	}
	return errors.Join(errs...)
}

// davName maps a URL path to a clean name in the WebDAV namespace, in its
// key form (davfs.EncodeName: bytes that are not UTF-8, control characters,
// backslashes, U+FFFE and U+FFFF are escaped, docs/names.md); everything
// below the gateway sees names only in that form, and answers show them
// decoded (urlPath, displayName). ok is false for paths outside the prefix
// and for paths with dot segments.
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
	return davfs.Clean(davfs.EncodeName(rest)), true
}

// badName is the answer to a path in the WebDAV namespace that davName
// refuses; its text names the problem for the user.
func badName() *httpError {
	e := failWith(http.StatusBadRequest, errors.New("path with dot segments"))
	e.body = []byte("Bad Request: no path segment may be \".\" or \"..\".\n")
	return e
}

// maxKeyBytes is S3's limit on the length of a key.
const maxKeyBytes = 1024

// keyTooLong answers a name whose key (root included, in its escaped form,
// plus, when dir, the "/" of a folder's marker and the longest name davfs
// keeps inside a folder) is longer than S3 allows, or
// one of whose segments is longer in key form than davfs.MaxSegmentBytes,
// before any store is asked; nil if it fits.
func keyTooLong(root, name string, dir bool) *httpError {
	for _, seg := range strings.Split(name, "/") {
		if len(seg) > davfs.MaxSegmentBytes {
			e := failWith(http.StatusBadRequest, fmt.Errorf("name too long: a segment of its S3 key would be %d bytes, more than %d", len(seg), davfs.MaxSegmentBytes))
			e.body = fmt.Appendf(nil, "Bad Request: name too long: one of its segments would take %d bytes in its S3 key; at most %d fit every store (each escaped byte takes 5, see docs/names.md).\n", len(seg), davfs.MaxSegmentBytes)
			return e
		}
	}
	n := len(root) + len(strings.TrimPrefix(name, "/"))
	if dir {
		// The marker's "/", and room for the names davfs keeps inside.
		n += 1 + davfs.MaxHiddenNameBytes
	}
	if n <= maxKeyBytes {
		return nil
	}
	e := failWith(http.StatusBadRequest, fmt.Errorf("name too long: its S3 key would be %d bytes, more than %d", n, maxKeyBytes))
	e.body = fmt.Appendf(nil, "Bad Request: name too long: its S3 key would be %d bytes; S3 allows at most %d (each escaped byte takes 5, see docs/names.md).\n", n, maxKeyBytes)
	return e
}

// davPath is the URL path (unescaped) that answers show for a name in key
// form: its name decoded, under the WebDAV prefix davBase; folders end in
// "/".
func davPath(davBase, name string, dir bool) string {
	h := path.Join(davBase, davfs.DecodeName(name))
	if dir && h != "/" {
		h += "/"
	}
	return h
}

// displayName is the DAV:displayname of a base name in key form: the name
// decoded where XML can carry it (valid UTF-8 of XML characters: tab, CR
// and LF are written as character references), else the key form, which
// always can (docs/names.md).
func displayName(base string) string {
	name := davfs.DecodeName(base)
	if !utf8.ValidString(name) {
		return base
	}
	for _, r := range name {
		if (r < 0x20 && r != '\t' && r != '\n' && r != '\r') || r == 0xfffe || r == 0xffff {
			return base
		}
	}
	return name
}

// inNamespace reports whether a URL path lies in the WebDAV namespace
// (whether or not davName accepts it).
func (g *Gateway) inNamespace(p string) bool {
	return p == g.davBase || strings.HasPrefix(p, g.davBase+"/") || g.davBase == ""
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
	home  *namedStore // the user's store
	parts *storeParts // of the store, or of the bucket in a store of every bucket
	// bucket is the bucket of the request in a store of every bucket.
	bucket string
	// base is the URL path of the store's top ("/dav", "/dav/BUCKET" in
	// a store of every bucket): the names below are relative to it.
	base  string
	fs    *davfs.FS // nil for the list of buckets
	locks *locks.Root
	root  string // the user's key prefix
	name  string
	slash bool // the URL path ended in "/": the client expects a folder
}

// ServeHTTP implements http.Handler.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rec, r := g.begin(w, r)
	defer g.finish(rec, r)
	rec.answer(g.serve(rec, r))
}

// serve answers one request; a failure is returned for ServeHTTP to answer.
func (g *Gateway) serve(rec *recorder, r *http.Request) error {
	switch {
	case r.Method == http.MethodOptions:
		// Windows asks OPTIONS (also at "/") before it authenticates.
		serveOptions(rec)
		return nil
	case r.URL.Path == "/healthz" && (r.Method == http.MethodGet || r.Method == http.MethodHead):
		rec.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = rec.Write([]byte("ok\n"))
		return nil
	case r.URL.Path == "/readyz" && (r.Method == http.MethodGet || r.Method == http.MethodHead):
		if g.opts.Ready != nil {
			if err := g.opts.Ready(); err != nil {
				return failWith(http.StatusServiceUnavailable, err)
			}
		}
		rec.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = rec.Write([]byte("ready\n"))
		return nil
	}
	name, ok := g.davName(r.URL.Path)
	if !ok {
		if r.URL.Path == g.davBase || strings.HasPrefix(r.URL.Path, g.davBase+"/") {
			return badName()
		}
		if g.opts.Web != nil {
			g.opts.Web.ServeHTTP(rec, r)
			return nil
		}
		return failWith(http.StatusNotFound, nil)
	}

	user, ok, err := g.opts.Auth.Authenticate(r)
	var limited *auth.RateLimitError
	switch {
	case errors.As(err, &limited):
		rec.authRefused(r, err)
		return failWith(http.StatusTooManyRequests, err).
			withHeader("Retry-After", strconv.Itoa(max(1, int((limited.RetryAfter+time.Second-1)/time.Second))))
	case err != nil:
		rec.authRefused(r, err)
		return failWith(http.StatusServiceUnavailable, err)
	case !ok:
		rec.authRefused(r, err)
		challenges := []string{`Basic realm="` + g.opts.Realm + `", charset="UTF-8"`}
		if c, isC := g.opts.Auth.(auth.Challenger); isC {
			challenges = c.Challenges(g.opts.Realm)
		}
		refused := failWith(http.StatusUnauthorized, nil)
		for _, c := range challenges {
			refused.withHeader("WWW-Authenticate", c)
		}
		return refused
	}
	rec.user, rec.store = user.Username, user.Store
	if user.ReadOnly && isWrite(r.Method) {
		return failWith(http.StatusForbidden, errors.New("read-only user"))
	}

	if davfs.IsReserved(name) {
		return failWith(http.StatusNotFound, errors.New("reserved name"))
	}
	rq := &request{
		g:     g,
		r:     r,
		w:     rec,
		user:  user,
		name:  name,
		slash: strings.HasSuffix(r.URL.Path, "/"),
	}
	if err := rq.place(r.Context()); err != nil {
		return err
	}
	if rq.fs == nil {
		return rq.serveBucketList()
	}
	if e := keyTooLong(rq.root, rq.name, r.Method == "MKCOL"); e != nil {
		return e
	}
	err = rq.serve()
	if ws := rq.fs.Warnings(); len(ws) > 0 {
		rec.warning = errors.Join(ws...)
	}
	return err
}

// hidden reports names that listings leave out (apple_files = hide).
func (g *Gateway) hidden(base string) bool {
	return g.opts.AppleFiles == AppleHide && IsAppleFile(base)
}

// serve runs the request's method; a failure is returned, not answered.
func (rq *request) serve() error {
	if err := rq.appleRefused(); err != nil {
		return err
	}
	switch rq.r.Method {
	case http.MethodGet, http.MethodHead:
		return rq.get()
	case http.MethodPut:
		return rq.put()
	case http.MethodDelete:
		return rq.delete()
	case "MKCOL":
		return rq.mkcol()
	case "COPY", "MOVE":
		return rq.copyMove()
	case "PROPFIND":
		return rq.propfind()
	case "PROPPATCH":
		return rq.proppatch()
	case "LOCK":
		return rq.lock()
	case "UNLOCK":
		// Older Windows sends the token without its angle brackets.
		if t := strings.TrimSpace(rq.r.Header.Get("Lock-Token")); t != "" && !strings.HasPrefix(t, "<") {
			rq.r.Header.Set("Lock-Token", "<"+t+">")
		}
		buf, met := rq.delegate(rq.locks)
		return rq.relay(buf, met, buf.body.Bytes())
	default:
		return failWith(http.StatusMethodNotAllowed, nil).withHeader("Allow", allowedMethods)
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

// delegate runs x/net/webdav's handler over the user's davfs and ls, with
// the path made canonical, and returns its answer unwritten (LOCK, UNLOCK
// and PROPPATCH answers are small) with the error x/net met, for relay.
func (rq *request) delegate(ls webdav.LockSystem) (*bufferedWriter, error) {
	r := rq.r
	r.URL.Path = path.Join(rq.base, rq.name)
	if rq.name == "/" {
		r.URL.Path = rq.base + "/"
	}
	r.URL.RawPath = ""
	var met error
	h := &webdav.Handler{
		Prefix:     rq.base,
		FileSystem: rq.fs,
		LockSystem: ls,
		// x/net calls Logger once, after its answer, with the error
		// behind it.
		Logger: func(_ *http.Request, err error) { met = err },
	}
	buf := &bufferedWriter{header: make(http.Header)}
	h.ServeHTTP(buf, r)
	return buf, met
}

// relay answers x/net's answer buf with body (its own, or mended), or
// returns it as the request's failure. x/net's error statuses are coarse
// (a throttled or denied request is a 500 or a 405): where statusFor knows
// the error better (503 with Retry-After, 403...), and for any 500, the
// failure is answered like every other; other errors keep x/net's status
// and body.
func (rq *request) relay(buf *bufferedWriter, met error, body []byte) error {
	if buf.status >= 400 {
		honest := buf.status
		if met != nil {
			honest = statusFor(met, buf.status)
		}
		if buf.status == http.StatusInternalServerError || (honest != buf.status && honest != http.StatusInternalServerError) {
			return failWith(honest, met)
		}
		return &httpError{status: buf.status, err: met, header: buf.header, body: body}
	}
	for k, v := range buf.header {
		rq.w.Header()[k] = v
	}
	rq.w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	if buf.status != 0 {
		rq.w.WriteHeader(buf.status)
	}
	_, _ = rq.w.Write(body)
	return nil
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
