package davfs

import (
	"errors"
	"fmt"
	"io/fs"

	"github.com/davgw/davgw/s3vfs"
)

// ErrTooManyEntries is returned by Readdir when a folder holds more entries
// than Options.MaxEntries. The HTTP edge answers 507.
var ErrTooManyEntries = errors.New("davfs: folder has too many entries to list")

// ErrIsDir is returned when a file operation names a folder.
var ErrIsDir = errors.New("davfs: is a folder")

// ErrNotDir is returned when a path's parent is a file, or a folder operation
// names a file.
var ErrNotDir = errors.New("davfs: not a folder")

// ErrFileNamedAsFolder is returned when a name written with a trailing
// slash (a folder's name) finds a file: as on a file system, nothing is
// there, so it matches fs.ErrNotExist.
var ErrFileNamedAsFolder = fmt.Errorf("davfs: a file named with a trailing slash: %w", fs.ErrNotExist)

// pathError turns a backend error into an *fs.PathError whose Err matches
// both the io/fs sentinel that x/net/webdav understands (fs.ErrNotExist,
// fs.ErrPermission, fs.ErrExist) and the original s3vfs sentinel, so that the
// HTTP edge can still tell a throttled request from a denied one.
func pathError(op, name string, err error) error {
	if err == nil {
		return nil
	}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return err
	}
	return &fs.PathError{Op: op, Path: name, Err: mapError(err)}
}

func mapError(err error) error {
	switch {
	case errors.Is(err, fs.ErrNotExist), errors.Is(err, fs.ErrPermission), errors.Is(err, fs.ErrExist):
		return err
	case errors.Is(err, s3vfs.ErrNotFound):
		return fmt.Errorf("%w: %w", fs.ErrNotExist, err)
	case errors.Is(err, s3vfs.ErrAccessDenied):
		return fmt.Errorf("%w: %w", fs.ErrPermission, err)
	case errors.Is(err, s3vfs.ErrConflict):
		return fmt.Errorf("%w: %w", fs.ErrExist, err)
	}
	return err
}
