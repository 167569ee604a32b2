package s3vfs

import (
	"context"
	"net/http"
	"sync/atomic"
)

// callCounterKey is the context key under which WithCallCounter stores its counter.
type callCounterKey struct{}

// callCounter is one counter plus the counter of an enclosing
// WithCallCounter, so nested counters all see a request.
type callCounter struct {
	n      *atomic.Int64
	parent *callCounter
}

// WithCallCounter returns a context whose S3 HTTP requests are counted: every
// request the SDK sends for an operation run with ctx (or a context derived
// from it) increments the counter, each retry attempt included. Counters
// nest: an enclosing WithCallCounter keeps counting too.
func WithCallCounter(ctx context.Context) (context.Context, *atomic.Int64) {
	c := &callCounter{n: new(atomic.Int64)}
	c.parent, _ = ctx.Value(callCounterKey{}).(*callCounter)
	return context.WithValue(ctx, callCounterKey{}, c), c.n
}

// countingTransport counts each request against the counters found in its context.
type countingTransport struct {
	next http.RoundTripper
}

// RoundTrip implements http.RoundTripper.
func (t countingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	c, _ := req.Context().Value(callCounterKey{}).(*callCounter)
	for ; c != nil; c = c.parent {
		c.n.Add(1)
	}
	return t.next.RoundTrip(req)
}

var _ http.RoundTripper = countingTransport{}

// countingClient returns a shallow copy of c whose transport counts requests.
func countingClient(c *http.Client) *http.Client {
	cc := *c
	next := c.Transport
	if next == nil {
		next = http.DefaultTransport
	}
	cc.Transport = countingTransport{next: next}
	return &cc
}
