package gateway

import (
	"io"
	"net/http"
	"time"
)

// DefaultBodyIdleTimeout is how long a request body may send nothing
// ([server].body_idle_timeout).
const DefaultBodyIdleTimeout = 60 * time.Second

// drainWindow is how long a client gets to finish sending a body the
// gateway did not read (a refused sign-in, an error answer) before its
// connection is closed. net/http reads up to 256 KiB of such a body so
// that the connection can be reused; a client still sending at any
// useful speed is done well within it.
const drainWindow = 5 * time.Second

// bodyReader wraps every request body. Before each read it renews the
// connection's read deadline, so a body that keeps flowing is never cut
// and one that sends nothing for idle is. With until set (XML bodies) the
// whole body must also have arrived by then. At the end of the body it
// clears the deadline: net/http then watches the idle connection for the
// client going away, and that watch must not time out under a handler
// that takes long after reading its body.
//
// On HTTP/1 the deadline is set when the request begins, so a body nobody
// reads is bounded too: net/http's drain of an unread body (after a 401,
// say) runs under it, and finish shortens it to drainWindow. On HTTP/2 a
// read deadline is a timer that resets the stream when it fires, reading
// or not, so there it is armed only while a read waits: a handler busy
// between reads (parts waiting for S3) never cuts a body that flows, and
// an unread body holds only its stream, not the connection.
type bodyReader struct {
	io.ReadCloser
	rc    *http.ResponseController
	idle  time.Duration
	until time.Time // zero: no limit on the whole body
	eof   bool
	err   error // a read error other than the end (a deadline past)
	ok    bool  // the connection supports read deadlines
	h2    bool  // HTTP/2: the deadline is armed only during a read
}

// newBodyReader wraps r.Body, or returns nil when the request has none.
func newBodyReader(w http.ResponseWriter, r *http.Request, idle time.Duration) *bodyReader {
	if r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 {
		return nil
	}
	b := &bodyReader{ReadCloser: r.Body, rc: http.NewResponseController(w), idle: idle, h2: r.ProtoMajor >= 2}
	if b.h2 {
		b.ok = b.rc.SetReadDeadline(time.Time{}) == nil
	} else {
		b.ok = b.rc.SetReadDeadline(time.Now().Add(idle)) == nil
	}
	return b
}

func (b *bodyReader) Read(p []byte) (int, error) {
	if b.ok && !b.eof {
		d := time.Now().Add(b.idle)
		if !b.until.IsZero() && b.until.Before(d) {
			d = b.until
		}
		_ = b.rc.SetReadDeadline(d)
	}
	n, err := b.ReadCloser.Read(p)
	if b.ok && b.h2 {
		_ = b.rc.SetReadDeadline(time.Time{})
	}
	switch {
	case err == io.EOF && !b.eof:
		b.eof = true
		if b.ok {
			_ = b.rc.SetReadDeadline(time.Time{})
		}
	case err != nil && err != io.EOF:
		b.err = err
	}
	return n, err
}

// whole requires the rest of the body to arrive within the idle timeout
// (for small bodies read whole: XML).
func (b *bodyReader) whole() {
	if b != nil {
		b.until = time.Now().Add(b.idle)
	}
}

// unread shortens the deadline of a body the handler left unread, so that
// net/http's drain after the answer cannot hold the connection. After a
// failed read (its deadline passed) it leaves the deadline as it is: the
// drain fails at once and the connection closes.
func (b *bodyReader) unread() {
	if b != nil && b.ok && !b.h2 && !b.eof && b.err == nil {
		_ = b.rc.SetReadDeadline(time.Now().Add(min(drainWindow, b.idle)))
	}
}
