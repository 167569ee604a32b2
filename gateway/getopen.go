package gateway

import (
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"

	"github.com/davgw/davgw/davfs"
	"github.com/davgw/davgw/s3vfs"
)

// openingWriter is the ResponseWriter http.ServeContent answers a file
// through. When ServeContent is about to send bytes (200 or 206) it first
// opens the S3 body at the first byte to send, so that an object deleted or
// replaced since the HEAD of a conditional or multi-range GET is found
// before the status line goes out (issue 10 F11): the caller then reads
// the object again or answers 404, instead of a status followed by a cut
// connection. Once the open failed, nothing more is sent.
type openingWriter struct {
	*recorder
	rd      davfs.ObjectReader
	windows [][2]int64 // the ranges asked for, in the header's order
	opened  bool
	err     error // the open failed: nothing was sent
}

// WriteHeader opens the body before it passes on a 200 or 206.
func (w *openingWriter) WriteHeader(code int) {
	if w.err != nil {
		return
	}
	if !w.opened && (code == http.StatusOK || code == http.StatusPartialContent) {
		w.opened = true
		if w.err = w.open(); w.err != nil {
			return
		}
	}
	w.recorder.WriteHeader(code)
}

// open opens the reader where ServeContent will read first: it has sought
// to the start of a single range already; for several ranges (a multipart
// answer, whose parts it seeks to only as it writes them, after the status)
// that is the first range asked for.
func (w *openingWriter) open() error {
	if strings.HasPrefix(w.Header().Get("Content-Type"), "multipart/byteranges") && len(w.windows) > 0 {
		if _, err := w.rd.Seek(w.windows[0][0], io.SeekStart); err != nil {
			return err
		}
	}
	return w.rd.Open()
}

func (w *openingWriter) Write(p []byte) (int, error) {
	if !w.opened && w.err == nil && w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	if w.err != nil {
		return 0, w.err
	}
	return w.recorder.Write(p)
}

// changedUnderRead reports whether a read failed because the object was
// replaced or deleted since its HEAD: the GET is worth one more try.
func changedUnderRead(err error) bool {
	return errors.Is(err, s3vfs.ErrPreconditionFailed) || errors.Is(err, s3vfs.ErrNotFound)
}

// ReadFrom copies a body to the client in copyBufSize steps rather than
// io.Copy's 32 KiB, for fewer system calls on both sockets.
func (w *openingWriter) ReadFrom(src io.Reader) (int64, error) {
	bp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bp)
	return io.CopyBuffer(writerOnly{w}, src, *bp)
}

// writerOnly hides ReadFrom from io.CopyBuffer.
type writerOnly struct{ io.Writer }

const copyBufSize = 128 << 10

var copyBufs = sync.Pool{New: func() any { b := make([]byte, copyBufSize); return &b }}
