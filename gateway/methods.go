package gateway

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/davgw/davgw/auth"
	"github.com/davgw/davgw/davfs"
	"github.com/davgw/davgw/s3vfs"
)

// get serves GET and HEAD with one S3 request in the common case: a
// GetObject (of the one range asked for) or a HeadObject, whose answer
// carries size, ETag, type and time; the kept time comes from the
// parent's index alongside. A name with no object is then probed as a
// folder (405). Conditional GETs HEAD first, so a 304 or 412 reads no
// body. Range, If-Range and the conditional headers are then handled by
// http.ServeContent over the (open or lazy) ranged reader.
func (rq *request) get() error {
	header := rq.w.Header().Clone()
	for attempt := 1; ; attempt++ {
		err := rq.getAttempt()
		var changed *changedError
		if !errors.As(err, &changed) {
			return err
		}
		if attempt < maxGetAttempts {
			// Read it again, from the HEAD: a fresh answer, as if the
			// request had come a moment later.
			clear(rq.w.Header())
			for k, v := range header {
				rq.w.Header()[k] = v
			}
			continue
		}
		status := statusFor(changed.err, http.StatusNotFound)
		if status == http.StatusPreconditionFailed && !hasConditionals(rq.r.Header) {
			// The object keeps changing: no precondition of the client's
			// failed, so not 412.
			status = http.StatusServiceUnavailable
		}
		return failWith(status, changed.err)
	}
}

// maxGetAttempts bounds the reads of a GET whose object changed between
// its HEAD and its GetObject.
const maxGetAttempts = 2

// changedError is a read that failed, having answered nothing, because the
// object was replaced or deleted between the HEAD and the read of its
// bytes: get tries again.
type changedError struct{ err error }

func (e *changedError) Error() string { return e.err.Error() }
func (e *changedError) Unwrap() error { return e.err }

// getAttempt is one try of get.
func (rq *request) getAttempt() error {
	ctx := rq.r.Context()
	rangeHdr := rq.r.Header.Get("Range")
	if strings.Count(rangeHdr, ",") >= rq.g.requests.Load().Ranges {
		// Past [limits].ranges_per_request: the whole file, 200.
		rq.r.Header.Del("Range")
		rangeHdr = ""
	}
	direct := rq.r.Method == http.MethodGet && !hasConditionals(rq.r.Header) && !rq.slash
	s3Range := ""
	if direct && rangeHdr != "" {
		if !oneRangeSpec(rangeHdr) {
			direct = false // several ranges: ServeContent reads each
		} else {
			s3Range = rangeHdr
		}
	}
	var (
		fi   *davfs.FileInfo
		file *davfs.File
		err  error
	)
	if rq.slash {
		fi, err = rq.lookup() // a URL ending in "/" names a folder
	} else {
		fi, file, err = rq.fs.OpenRead(ctx, rq.name, s3Range, !direct)
		if errors.Is(err, s3vfs.ErrInvalidRange) {
			// Past the end: HEAD, and let ServeContent answer 416.
			direct = false
			fi, file, err = rq.fs.OpenRead(ctx, rq.name, "", true)
		}
	}
	if err != nil {
		return err
	}
	if file != nil {
		defer file.Close()
	}
	if fi.IsDir() || file == nil {
		return failWith(http.StatusMethodNotAllowed, nil).withHeader("Allow", "OPTIONS, PROPFIND, PROPPATCH, MKCOL, DELETE, COPY, LOCK, UNLOCK")
	}
	h := rq.w.Header()
	switch {
	case fi.Size() == 0 && rangeHdr != "":
		// http.ServeContent would answer a malformed 206 (bytes 0--1/0).
		rq.r.Header.Del("Range")
		rangeHdr = ""
	case zeroSuffixRange(rangeHdr):
		// bytes=-0 names no byte (RFC 9110 14.1.2); ServeContent would
		// answer 206 with an empty, malformed range.
		return failWith(http.StatusRequestedRangeNotSatisfiable, nil).withHeader("Content-Range", "bytes */"+strconv.FormatInt(fi.Size(), 10))
	}
	if etag, err := fi.ETag(ctx); err == nil {
		h.Set("ETag", etag)
	}
	ct, _ := fi.ContentType(ctx)
	h.Set("Content-Type", ct)
	h.Set("Accept-Ranges", "bytes")
	// Files are served from the origin of the sign-in pages: a stored HTML
	// or SVG file must never run as a page of that origin (it could mint
	// app passwords with the reader's session). A sandboxed CSP keeps
	// scripts from running, nosniff keeps the type honest, and active types
	// are downloaded rather than shown. WebDAV clients ignore all three.
	h.Set("Content-Security-Policy", "sandbox; default-src 'none'; style-src 'unsafe-inline'; img-src data:")
	h.Set("X-Content-Type-Options", "nosniff")
	if activeContent(ct) {
		h.Set("Content-Disposition", "attachment")
	}
	rd := file.Reader()
	var windows [][2]int64
	if !direct {
		// Every range asked for is a window, so that no S3 read goes past
		// the bytes it is for (a multi-range GET once read each range to
		// the end of the file).
		windows = rangeWindows(rangeHdr, fi.Size())
		rd.SetWindows(windows)
	}
	// The body is opened before ServeContent writes a 200 or 206 (a direct
	// read's is open already), so that an S3 failure, or the object
	// replaced or deleted since the HEAD, is answered honestly instead of
	// as a status with a short body.
	ow := &openingWriter{recorder: rq.w, rd: rd, windows: windows}
	if rq.r.Method == http.MethodHead {
		ow.opened = true // no body to open
	}
	modTime := fi.ModTime()
	if fi.KeptTimeUnknown() {
		// The folder's index is unreadable: no Last-Modified rather than
		// a wrong one (and no If-Modified-Since answered 304 on its word).
		modTime = time.Time{}
	}
	body := &sentBody{ReadSeeker: file}
	http.ServeContent(ow, rq.r, "", modTime, body)
	switch {
	case ow.err != nil && changedUnderRead(ow.err):
		return &changedError{ow.err}
	case ow.err != nil:
		return ow.err // nothing was sent
	}
	return body.err // the status went out: only logged
}

// sentBody keeps the first read error of a file being sent:
// http.ServeContent drops it, and the request's log line needs it.
type sentBody struct {
	io.ReadSeeker
	err error
}

func (b *sentBody) Read(p []byte) (int, error) {
	n, err := b.ReadSeeker.Read(p)
	if err != nil && err != io.EOF && b.err == nil {
		b.err = err
	}
	return n, err
}

// activeContent reports content types a browser would run or render as a
// document of the serving origin. A stored type may list several
// ("text/plain, text/html", issue 10 F12): any active one counts, and so
// does one that does not parse.
func activeContent(ct string) bool {
	for _, part := range strings.Split(strings.ToLower(ct), ",") {
		mt, _, _ := strings.Cut(part, ";")
		mt = strings.TrimSpace(mt)
		switch {
		case mt == "text/html", mt == "application/xhtml+xml", mt == "image/svg+xml",
			mt == "text/xml", mt == "application/xml", mt == "application/javascript",
			mt == "text/javascript", mt == "application/pdf", strings.HasSuffix(mt, "+xml"),
			mt == "text/xsl", strings.HasPrefix(mt, "multipart/"),
			strings.ContainsAny(mt, " \t\"'<>"):
			return true
		}
	}
	return false
}

func hasConditionals(h http.Header) bool {
	for _, k := range []string{"If-Match", "If-None-Match", "If-Modified-Since", "If-Unmodified-Since", "If-Range"} {
		if h.Get(k) != "" {
			return true
		}
	}
	return false
}

// byteRange is one range of a Range header: first-last (last < 0: to the
// end), or the last suffix bytes.
type byteRange struct {
	first, last int64
	suffix      int64 // the length of a suffix range (isSuffix)
	isSuffix    bool
}

// parseOneRange reads a Range header that names exactly one well-formed
// byte range ("bytes=A-B", "bytes=A-" or "bytes=-N"); ok is false for
// anything else (several ranges, another unit, garbage). It is the one
// parser of the header; what each form means is decided by its callers.
func parseOneRange(h string) (r byteRange, ok bool) {
	spec, found := strings.CutPrefix(h, "bytes=")
	if !found || strings.Contains(spec, ",") {
		return r, false
	}
	a, b, found := strings.Cut(strings.TrimSpace(spec), "-")
	if !found || (a == "" && b == "") {
		return r, false
	}
	num := func(v string) (int64, bool) {
		n, err := strconv.ParseInt(v, 10, 64)
		return n, err == nil && n >= 0
	}
	if a == "" {
		n, ok := num(b)
		return byteRange{suffix: n, isSuffix: true}, ok
	}
	first, ok := num(a)
	if !ok {
		return r, false
	}
	if b == "" {
		return byteRange{first: first, last: -1}, true
	}
	last, ok := num(b)
	return byteRange{first: first, last: last}, ok && last >= first
}

// oneRangeSpec reports whether a Range header is one range S3 can answer
// as it stands (not bytes=-0, which names no byte).
func oneRangeSpec(h string) bool {
	r, ok := parseOneRange(h)
	return ok && !(r.isSuffix && r.suffix == 0)
}

// zeroSuffixRange reports a Range header that is the one range "-0".
func zeroSuffixRange(h string) bool {
	r, ok := parseOneRange(h)
	return ok && r.isSuffix && r.suffix == 0
}

// singleRange resolves a Range header naming exactly one satisfiable,
// closed range against size (an open-ended range is read to the end
// anyway, so it gives no window).
func singleRange(h string, size int64) (start, end int64, ok bool) {
	r, ok := parseOneRange(h)
	switch {
	case !ok || size <= 0:
		return 0, 0, false
	case r.isSuffix:
		if r.suffix == 0 {
			return 0, 0, false
		}
		return max(size-r.suffix, 0), size - 1, true
	case r.last < 0 || r.first >= size:
		return 0, 0, false
	}
	return r.first, min(r.last, size-1), true
}

// rangeWindows resolves each range of a Range header against size, for
// the reader's windows; parts that do not parse, or are open-ended (read
// to the end anyway), give none.
func rangeWindows(h string, size int64) [][2]int64 {
	spec, found := strings.CutPrefix(h, "bytes=")
	if !found {
		return nil
	}
	var ws [][2]int64
	for _, part := range strings.Split(spec, ",") {
		if start, end, ok := singleRange("bytes="+strings.TrimSpace(part), size); ok {
			ws = append(ws, [2]int64{start, end})
		}
	}
	return ws
}

// lookup finds the request's resource (a URL ending in "/" names a
// folder: see davfs.FS.Lookup).
func (rq *request) lookup() (*davfs.FileInfo, error) {
	return rq.fs.Lookup(rq.r.Context(), rq.name, rq.slash)
}

// checkPreconditions evaluates If-Match and If-None-Match against the
// current resource (fi == nil: it does not exist): a 412 when one fails.
func (rq *request) checkPreconditions(fi *davfs.FileInfo) error {
	etag := ""
	if fi != nil && !fi.IsDir() {
		etag, _ = fi.ETag(rq.r.Context())
	}
	if im := rq.r.Header.Get("If-Match"); im != "" {
		if fi == nil || !etagListMatches(im, etag, fi != nil) {
			return failWith(http.StatusPreconditionFailed, errors.New("If-Match failed"))
		}
	}
	if inm := rq.r.Header.Get("If-None-Match"); inm != "" {
		if fi != nil && etagListMatches(inm, etag, true) {
			return failWith(http.StatusPreconditionFailed, errors.New("If-None-Match failed"))
		}
	}
	return nil
}

// etagListMatches compares a header's ETag list ("*" or "a", "b") with the
// resource's ETag (weak comparison: W/ prefixes are ignored).
func etagListMatches(list, etag string, exists bool) bool {
	if strings.TrimSpace(list) == "*" {
		return exists
	}
	if etag == "" {
		return false
	}
	want := strings.TrimPrefix(etag, "W/")
	for _, t := range strings.Split(list, ",") {
		if strings.TrimPrefix(strings.TrimSpace(t), "W/") == want {
			return true
		}
	}
	return false
}

// put streams the body into S3. The object appears only if the whole body
// arrived (Content-Length, chunked, or chunked with Finder's
// X-Expected-Entity-Length); anything else leaves the previous version as
// it was and no multipart upload behind.
func (rq *request) put() error {
	r, ctx := rq.r, rq.r.Context()
	if rq.name == "/" || strings.HasSuffix(r.URL.Path, "/") {
		return failWith(http.StatusMethodNotAllowed, errors.New("PUT on a collection"))
	}
	if r.Header.Get("Content-Range") != "" {
		return failWith(http.StatusBadRequest, errors.New("partial PUT (Content-Range) is not supported"))
	}
	size := r.ContentLength
	if size < 0 {
		if x := r.Header.Get("X-Expected-Entity-Length"); x != "" {
			n, err := strconv.ParseInt(strings.TrimSpace(x), 10, 64)
			if err != nil || n < 0 {
				return failWith(http.StatusBadRequest, errors.New("bad X-Expected-Entity-Length"))
			}
			size = n
		}
	}
	release, err := rq.confirmLocks(rq.name, "", false)
	if err != nil {
		return err
	}
	defer release()

	fi, err := rq.fs.CreateTarget(ctx, rq.name) // the file replaced, or nil
	if err != nil {
		return conflictIfMissing(err) // a folder is 405 (davfs.ErrIsDir)
	}
	if err := rq.checkPreconditions(fi); err != nil {
		return err
	}
	// The conditions the client asked for are also sent to S3, which closes
	// the race between the check above and the write.
	opts := davfs.PutOptions{Size: size, ContentType: r.Header.Get("Content-Type")}
	mtimeAccepted := false
	if v := r.Header.Get("X-OC-Mtime"); v != "" {
		if t, ok := davfs.ParseMTime(v); ok {
			opts.MTime, mtimeAccepted = t, true
		}
	}
	if fi == nil && r.Header.Get("If-None-Match") == "*" {
		opts.IfNoneMatch = "*"
	}
	if fi != nil && r.Header.Get("If-Match") != "" {
		opts.IfMatch, _ = fi.ETag(ctx)
	}
	var replaced int64
	if fi != nil {
		replaced = fi.Size()
	}
	quota, err := rq.parts.quota.reserve(ctx, rq.root, size, replaced)
	if err != nil {
		return failWith(statusFor(err, http.StatusInternalServerError), err)
	}
	defer quota.release()
	body := quota.reader(r.Body)
	shares, done, err := rq.uploadShares()
	if err != nil {
		return err
	}
	defer done()
	opts.Shares = shares
	w, err := rq.fs.Create(ctx, rq.name, opts)
	if err != nil {
		return conflictIfMissing(err)
	}
	// No overall timeout limits an upload (large files take long), but a
	// client that stops sending for the body idle timeout is dropped
	// (bodyReader), so that a stalled upload does not hold its share of
	// the upload memory.
	if _, err := w.ReadFrom(body); err != nil {
		aerr := w.Abort() // logged with the request (issue 10 F14)
		rq.w.uploadAborted()
		return failWith(statusFor(err, http.StatusBadRequest), errors.Join(err, aerr))
	}
	info, err := w.Commit()
	if err != nil {
		rq.w.uploadAborted()
		return conflictIfMissing(err)
	}
	rq.w.uploadCommitted(info.Size())
	quota.commit(info.Size())
	if etag, err := info.ETag(ctx); err == nil {
		rq.w.Header().Set("ETag", etag)
	}
	rq.w.Header().Set("Last-Modified", info.ModTime().UTC().Format(http.TimeFormat))
	if mtimeAccepted && w.MTimeKept() {
		rq.w.Header().Set("X-OC-Mtime", "accepted")
	}
	if fi == nil {
		rq.w.WriteHeader(http.StatusCreated)
	} else {
		rq.w.WriteHeader(http.StatusNoContent)
	}
	return nil
}

// uploadShares counts the upload against the user's and the client
// address's running uploads and returns their memory shares, with the
// function that ends the count. Past a count it fails with 429.
func (rq *request) uploadShares() (shares []*s3vfs.MemoryShare, done func(), err error) {
	user, releaseUser, ok := rq.g.userUploads.Acquire(rq.user.Username)
	if !ok {
		return nil, nil, failWith(http.StatusTooManyRequests, fmt.Errorf("user %q already runs the most uploads allowed", rq.user.Username))
	}
	addr, releaseAddr, ok := rq.g.addrUploads.Acquire(auth.AddrKey(rq.w.addr))
	if !ok {
		releaseUser()
		return nil, nil, failWith(http.StatusTooManyRequests, errors.New("this client address already runs the most uploads allowed"))
	}
	return []*s3vfs.MemoryShare{user, addr}, func() { releaseAddr(); releaseUser() }, nil
}

// delete removes a file, or a folder with everything below it.
func (rq *request) delete() error {
	ctx := rq.r.Context()
	if rq.name == "/" {
		return failWith(http.StatusForbidden, errors.New("DELETE of the root"))
	}
	release, err := rq.confirmLocks(rq.name, "", true)
	if err != nil {
		return err
	}
	defer release()
	fi, err := rq.lookup()
	if err != nil {
		return err
	}
	if err := rq.checkPreconditions(fi); err != nil {
		return err
	}
	var freed int64 = -1
	if rq.parts.quota != nil && fi.IsDir() {
		if n, err := rq.fs.TreeSize(ctx, rq.name); err == nil {
			freed = n // so the space is free at once, not after the next count
		}
	}
	if err := rq.fs.RemoveAll(ctx, rq.name); err != nil {
		return err
	}
	if q := rq.parts.quota; q != nil {
		switch {
		case !fi.IsDir():
			q.add(rq.root, -fi.Size())
		case freed >= 0:
			q.add(rq.root, -freed)
		default:
			q.invalidate(rq.root) // recounted by the next background listing
		}
	}
	rq.w.WriteHeader(http.StatusNoContent)
	return nil
}

// mkcol creates a folder marker: 201, 405 if the name exists, 409 if the
// parent is missing, 415 with a body (RFC 4918 9.3).
func (rq *request) mkcol() error {
	r := rq.r
	if r.ContentLength > 0 || len(r.TransferEncoding) > 0 {
		n, _ := io.Copy(io.Discard, io.LimitReader(r.Body, 1))
		if n > 0 {
			return failWith(http.StatusUnsupportedMediaType, errors.New("MKCOL with a body"))
		}
	}
	release, err := rq.confirmLocks(rq.name, "", false)
	if err != nil {
		return err
	}
	defer release()
	err = rq.fs.Mkdir(r.Context(), rq.name, 0o755)
	switch {
	case err == nil:
		rq.w.WriteHeader(http.StatusCreated)
		return nil
	case errors.Is(err, fs.ErrExist):
		return failWith(http.StatusMethodNotAllowed, err).withHeader("Allow", allowedMethods)
	}
	return conflictIfMissing(err)
}
