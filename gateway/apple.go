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

// appleRefused refuses a request for an Apple side file under the reject
// policy: writes get 403, reads 404, and no S3 request is made. It returns
// nil for any other request.
func (rq *request) appleRefused() error {
	if rq.g.opts.AppleFiles != AppleReject || rq.name == "/" {
		return nil
	}
	base := path.Base(rq.name)
	if !IsAppleFile(base) && !finderProbes[base] {
		return nil
	}
	switch rq.r.Method {
	case http.MethodGet, http.MethodHead, "PROPFIND", http.MethodDelete, "UNLOCK":
		return failWith(http.StatusNotFound, errAppleRejected)
	default:
		return failWith(http.StatusForbidden, errAppleRejected)
	}
}

// errAppleRejected: apple_files = reject refused the name.
var errAppleRejected = errors.New("apple_files = reject")
