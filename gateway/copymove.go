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
func (rq *request) copyMove() error {
	r, ctx := rq.r, rq.r.Context()
	isMove := r.Method == "MOVE"

	dstHeader := r.Header.Get("Destination")
	if dstHeader == "" {
		return failWith(http.StatusBadRequest, errors.New("missing Destination"))
	}
	u, err := url.Parse(dstHeader)
	if err != nil {
		return failWith(http.StatusBadRequest, errors.New("bad Destination"))
	}
	if !rq.g.sameServer(u.Host, r) {
		return failWith(http.StatusBadGateway, errors.New("destination on another server"))
	}
	dst, ok := rq.g.davName(u.Path)
	if !ok && rq.g.inNamespace(u.Path) {
		return badName()
	}
	if !ok || davfs.IsReserved(dst) {
		return failWith(http.StatusForbidden, errors.New("destination outside the WebDAV namespace"))
	}
	if dst, err = rq.localName(dst); err != nil {
		return err
	}
	if rq.fs.Reserved(davfs.Clean(dst)) {
		return failWith(http.StatusForbidden, errors.New("destination outside the WebDAV namespace"))
	}
	if e := keyTooLong(rq.root, dst, false); e != nil {
		return e
	}

	if rq.g.opts.AppleFiles == AppleReject && IsAppleFile(path.Base(dst)) {
		return failWith(http.StatusForbidden, errAppleRejected)
	}

	overwrite := true
	switch r.Header.Get("Overwrite") {
	case "", "T", "t":
	case "F", "f":
		overwrite = false
	default:
		return failWith(http.StatusBadRequest, errors.New("bad Overwrite header"))
	}
	recursive := true
	switch d := r.Header.Get("Depth"); {
	case d == "" || d == "infinity":
	case d == "0" && !isMove:
		recursive = false
	default:
		return failWith(http.StatusBadRequest, errors.New("bad Depth for "+r.Method))
	}

	// The source exists, the names do not overlap (403), the destination's
	// parent is a folder (409).
	src, err := rq.fs.CheckCopy(ctx, rq.name, dst, rq.slash)
	if err != nil {
		return err
	}
	if isMove && src.IsDir() {
		return rq.moveFolder(src, dst)
	}

	// A folder's copies are keyed under dst: with a longer name than the
	// source's, the longest of them may not fit S3 (one more listing, only
	// then).
	if src.IsDir() && recursive && !isMove && len(dst) > len(rq.name) {
		longest, err := rq.fs.LongestBelow(ctx, rq.name)
		if err != nil {
			return err
		}
		deepest := strings.TrimSuffix(dst, "/") + "/" + longest
		if e := keyTooLong(rq.root, strings.TrimSuffix(deepest, "/"), strings.HasSuffix(deepest, "/")); e != nil {
			return e
		}
	}

	lockSrc := ""
	if isMove {
		lockSrc = rq.name
		if err := rq.checkPreconditions(src); err != nil {
			return err
		}
	}
	release, err := rq.confirmLocks(lockSrc, dst, true)
	if err != nil {
		return err
	}
	defer release()

	// A COPY adds bytes: it must fit the quota like a PUT. (A MOVE of a
	// file adds nothing; it may free a replaced destination.)
	var added, freed int64
	if q := rq.parts.quota; q != nil {
		if d, err := rq.fs.LookupFresh(ctx, dst, false); err == nil && !d.IsDir() && overwrite {
			freed = d.Size()
		}
		if !isMove {
			if src.IsDir() && recursive {
				if added, err = rq.fs.TreeSize(ctx, rq.name); err != nil {
					return err
				}
			} else if !src.IsDir() {
				added = src.Size()
			}
		}
	}
	// Reserved while the copy runs, so concurrent writes cannot pass the
	// quota together (a MOVE reserves nothing).
	quota, err := rq.parts.quota.reserve(ctx, rq.root, added, freed)
	if err != nil {
		return failWith(statusFor(err, http.StatusInternalServerError), err)
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
	case errors.Is(err, fs.ErrExist) && !errors.Is(err, davfs.ErrNotDir) && !overwrite:
		return failWith(http.StatusPreconditionFailed, err)
	default:
		return conflictIfMissing(err)
	}
	return nil
}

// moveFolder renames a folder only when it is empty (Explorer and Finder
// create "New folder" and rename it at once) and the destination does not
// exist. Anything else is 403 before anything is touched: S3 has no folder
// rename, and a copy-then-delete of a tree could half-complete.
//
// Whether the destination exists is asked by MoveEmptyDir, once the locks
// are held: a check before them could predate a folder that another
// request (whose lock this one waited out) made there.
func (rq *request) moveFolder(src *davfs.FileInfo, dst string) error {
	ctx := rq.r.Context()
	if err := rq.checkPreconditions(src); err != nil {
		return err
	}
	release, err := rq.confirmLocks(rq.name, dst, true)
	if err != nil {
		return err
	}
	defer release()
	switch err := rq.fs.MoveEmptyDir(ctx, rq.name, dst); {
	case err == nil:
		rq.w.WriteHeader(http.StatusCreated)
		return nil
	case errors.Is(err, fs.ErrExist) && strings.EqualFold(rq.r.Header.Get("Overwrite"), "F"):
		return failWith(http.StatusPreconditionFailed, errors.New("MOVE destination exists"))
	case errors.Is(err, fs.ErrExist):
		return failWith(http.StatusForbidden, errors.New("folder MOVE onto an existing destination is not supported"))
	case errors.Is(err, davfs.ErrNotEmpty):
		return failWith(http.StatusForbidden, errors.New("folder MOVE is not supported for folders with content: S3 has no folder rename"))
	default:
		return conflictIfMissing(err)
	}
}
