package gateway

import (
	"errors"
	"net/http"
	"path"
	"strings"
)

// Apple file policies ([webdav].apple_files).
const (
	// AppleAllow stores and lists ._* and .DS_Store like any file.
	AppleAllow = "allow"
	// AppleHide stores them but leaves them out of listings.
	AppleHide = "hide"
	// AppleReject refuses to store them (403) and answers reads of them,
	// and of Finder's probe names, with 404 without asking S3.
	AppleReject = "reject"
)

// IsAppleFile reports whether a base name is one of macOS's side files:
// AppleDouble "._name" files and ".DS_Store".
func IsAppleFile(base string) bool {
	return strings.HasPrefix(base, "._") || base == ".DS_Store"
}

// finderProbes are names Finder asks for on every mount and in every
// folder; they never hold user data.
var finderProbes = map[string]bool{
	".localized": true, ".metadata_never_index": true, ".metadata_never_index_unless_rootfs": true,
	".Spotlight-V100": true, ".ql_disablethumbnails": true, ".ql_disablecache": true,
	"Backups.backupdb": true, "mach_kernel": true, ".hidden": true, ".VolumeIcon.icns": true,
	".Trashes": true, ".fseventsd": true, ".TemporaryItems": true, ".metadata_direct_scope_only": true,
}

// appleRefused answers a request for an Apple side file under the reject
// policy and reports whether it did: writes get 403, reads 404, and no S3
// request is made.
func (rq *request) appleRefused() bool {
	if rq.g.opts.AppleFiles != AppleReject || rq.name == "/" {
		return false
	}
	base := path.Base(rq.name)
	if !IsAppleFile(base) && !finderProbes[base] {
		return false
	}
	switch rq.r.Method {
	case http.MethodGet, http.MethodHead, "PROPFIND", http.MethodDelete, "UNLOCK":
		rq.w.fail(http.StatusNotFound, errors.New("apple_files = reject"))
	default:
		rq.w.fail(http.StatusForbidden, errors.New("apple_files = reject"))
	}
	return true
}
