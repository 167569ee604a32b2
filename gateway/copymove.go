package gateway

import (
	"errors"
	"io/fs"
	"net/http"
	"net/url"
	"path"
	"strings"

	"github.com/davgw/davgw/davfs"
)

// copyMove serves COPY (server-side, files and whole folders) and MOVE
// (files only: copy, then delete the source). A folder MOVE answers 403
// before anything is touched, whatever the Overwrite header says. A missing
// Overwrite header means T (RFC 4918 10.6).
func (rq *request) copyMove() {
	r, ctx := rq.r, rq.r.Context()
	isMove := r.Method == "MOVE"

	dstHeader := r.Header.Get("Destination")
	if dstHeader == "" {
		rq.w.fail(http.StatusBadRequest, errors.New("missing Destination"))
		return
	}
	u, err := url.Parse(dstHeader)
	if err != nil {
		rq.w.fail(http.StatusBadRequest, errors.New("bad Destination"))
		return
	}
	if !rq.g.sameServer(u.Host, r) {
		rq.w.fail(http.StatusBadGateway, errors.New("destination on another server"))
		return
	}
	dst, ok := rq.g.davName(u.Path)
	if !ok || davfs.IsReserved(dst) {
		rq.w.fail(http.StatusForbidden, errors.New("destination outside the WebDAV namespace"))
		return
	}

	if rq.g.opts.AppleFiles == AppleReject && IsAppleFile(path.Base(dst)) {
		rq.w.fail(http.StatusForbidden, errors.New("apple_files = reject"))
		return
	}

	overwrite := true
	switch r.Header.Get("Overwrite") {
	case "", "T", "t":
	case "F", "f":
		overwrite = false
	default:
		rq.w.fail(http.StatusBadRequest, errors.New("bad Overwrite header"))
		return
	}
	recursive := true
	switch d := r.Header.Get("Depth"); {
	case d == "" || d == "infinity":
	case d == "0" && !isMove:
		recursive = false
	default:
		rq.w.fail(http.StatusBadRequest, errors.New("bad Depth for "+r.Method))
		return
	}

	src, err := rq.lookup()
	if err != nil {
		rq.w.failErr(err, http.StatusNotFound)
		return
	}
	if rq.name == dst || dst == "/" || davfs.Within(rq.name, dst) || davfs.Within(dst, rq.name) {
		rq.w.fail(http.StatusForbidden, errors.New("source and destination overlap"))
		return
	}
	if isMove && src.IsDir() {
		rq.moveFolder(dst)
		return
	}
	if _, err := rq.fs.StatDir(ctx, path.Dir(dst)); err != nil {
		rq.w.failErr(err, http.StatusConflict)
		return
	}

	lockSrc := ""
	if isMove {
		lockSrc = rq.name
		if !rq.checkPreconditions(src) {
			return
		}
	}
	release, status := rq.confirmLocks(lockSrc, dst, true)
	if status != 0 {
		rq.w.fail(status, errors.New("lock or If header check failed"))
		return
	}
	defer release()

	// A COPY adds bytes: it must fit the quota like a PUT. (A MOVE of a
	// file adds nothing; it may free a replaced destination.)
	var added, freed int64
	if q := rq.g.quota; q != nil {
		if d, err := rq.fs.LookupFresh(ctx, dst, false); err == nil && !d.IsDir() && overwrite {
			freed = d.Size()
		}
		if !isMove {
			if src.IsDir() && recursive {
				if added, err = rq.fs.TreeSize(ctx, rq.name); err != nil {
					rq.w.failErr(err, http.StatusNotFound)
					return
				}
			} else if !src.IsDir() {
				added = src.Size()
			}
		}
	}
	// Reserved while the copy runs, so concurrent writes cannot pass the
	// quota together (a MOVE reserves nothing).
	quota, err := rq.g.quota.reserve(ctx, rq.root, added, freed)
	if err != nil {
		rq.w.failErr(err, http.StatusInternalServerError)
		return
	}
	defer quota.release()

	var created bool
	if isMove {
		created, err = rq.fs.Move(ctx, rq.name, dst, overwrite)
	} else {
		created, err = rq.fs.Copy(ctx, rq.name, dst, overwrite, recursive)
	}
	if err == nil {
		quota.commit(added)
	}
	switch {
	case err == nil && created:
		rq.w.WriteHeader(http.StatusCreated)
	case err == nil:
		rq.w.WriteHeader(http.StatusNoContent)
	case errors.Is(err, fs.ErrExist) && !errors.Is(err, davfs.ErrNotDir):
		if !overwrite {
			rq.w.fail(http.StatusPreconditionFailed, err)
			return
		}
		rq.w.failErr(err, http.StatusConflict)
	default:
		rq.w.failErr(err, http.StatusConflict)
	}
}

// moveFolder renames a folder only when it is empty (Explorer and Finder
// create "New folder" and rename it at once) and the destination does not
// exist. Anything else is 403 before anything is touched: S3 has no folder
// rename, and a copy-then-delete of a tree could half-complete.
func (rq *request) moveFolder(dst string) {
	ctx := rq.r.Context()
	if d := rq.r.Header.Get("Depth"); d != "" && d != "infinity" {
		rq.w.fail(http.StatusBadRequest, errors.New("bad Depth for MOVE"))
		return
	}
	if _, err := rq.fs.LookupFresh(ctx, dst, false); err == nil {
		if strings.EqualFold(rq.r.Header.Get("Overwrite"), "F") {
			rq.w.fail(http.StatusPreconditionFailed, errors.New("MOVE destination exists"))
			return
		}
		rq.w.fail(http.StatusForbidden, errors.New("folder MOVE onto an existing destination is not supported"))
		return
	} else if !errors.Is(err, fs.ErrNotExist) {
		rq.w.failErr(err, http.StatusConflict)
		return
	}
	if _, err := rq.fs.StatDir(ctx, path.Dir(dst)); err != nil {
		rq.w.failErr(err, http.StatusConflict)
		return
	}
	if src, err := rq.fs.Lookup(ctx, rq.name, true); err != nil {
		rq.w.failErr(err, http.StatusNotFound)
		return
	} else if !rq.checkPreconditions(src) {
		return
	}
	release, status := rq.confirmLocks(rq.name, dst, true)
	if status != 0 {
		rq.w.fail(status, errors.New("lock or If header check failed"))
		return
	}
	defer release()
	switch err := rq.fs.MoveEmptyDir(ctx, rq.name, dst); {
	case err == nil:
		rq.w.WriteHeader(http.StatusCreated)
	case errors.Is(err, davfs.ErrNotEmpty):
		rq.w.fail(http.StatusForbidden, errors.New("folder MOVE is not supported for folders with content: S3 has no folder rename"))
	default:
		rq.w.failErr(err, http.StatusConflict)
	}
}
