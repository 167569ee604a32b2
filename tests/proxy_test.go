package tests

import (
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// s3Call is one S3 request the gateway made, as the counting proxy saw it.
type s3Call struct {
	Method     string
	Bucket     string // "" for a call on the service (ListBuckets)
	Key        string // object key (path without the bucket), unescaped
	Query      url.Values
	CopySource string // x-amz-copy-source, for CopyObject / UploadPartCopy
	Range      string // Range header of a GET
	Size       int64  // the request body's Content-Length (-1 unknown)
	Status     int    // 0 while the call is in flight
	// Options are the request's object-option headers (objectOptionHeaders)
	// that were present, by canonical name. Never printed: they may hold
	// an SSE-C key.
	Options map[string]string
}

// objectOptionHeaders are the headers of the store's object options
// ([s3] sse, sse_kms_key_id, sse_c_key, storage_class, acl) that the proxy
// records.
var objectOptionHeaders = []string{
	"X-Amz-Server-Side-Encryption",
	"X-Amz-Server-Side-Encryption-Aws-Kms-Key-Id",
	"X-Amz-Server-Side-Encryption-Customer-Algorithm",
	"X-Amz-Server-Side-Encryption-Customer-Key",
	"X-Amz-Server-Side-Encryption-Customer-Key-Md5",
	"X-Amz-Copy-Source-Server-Side-Encryption-Customer-Algorithm",
	"X-Amz-Copy-Source-Server-Side-Encryption-Customer-Key",
	"X-Amz-Copy-Source-Server-Side-Encryption-Customer-Key-Md5",
	"X-Amz-Storage-Class",
	"X-Amz-Acl",
}

// Op names the S3 API operation of the call.
func (c s3Call) Op() string {
	q := c.Query
	switch c.Method {
	case http.MethodGet:
		switch {
		case q.Get("list-type") == "2":
			return "ListObjectsV2"
		case q.Has("uploads"):
			return "ListMultipartUploads"
		case q.Has("uploadId"):
			return "ListParts"
		case c.Key == "" && (q.Has("prefix") || q.Has("delimiter") || len(q) == 0):
			return "ListObjects"
		case c.Key == "":
			return "GetBucket?" + encodeKeys(q)
		}
		return "GetObject"
	case http.MethodHead:
		if c.Key == "" {
			return "HeadBucket"
		}
		return "HeadObject"
	case http.MethodPut:
		switch {
		case q.Has("partNumber") && c.CopySource != "":
			return "UploadPartCopy"
		case q.Has("partNumber"):
			return "UploadPart"
		case c.CopySource != "":
			return "CopyObject"
		case c.Key == "":
			return "PutBucket?" + encodeKeys(q)
		}
		return "PutObject"
	case http.MethodPost:
		switch {
		case q.Has("delete"):
			return "DeleteObjects"
		case q.Has("uploads"):
			return "CreateMultipartUpload"
		case q.Has("uploadId"):
			return "CompleteMultipartUpload"
		}
		return "POST?" + encodeKeys(q)
	case http.MethodDelete:
		if q.Has("uploadId") {
			return "AbortMultipartUpload"
		}
		return "DeleteObject"
	}
	return c.Method
}

func encodeKeys(q url.Values) string {
	keys := make([]string, 0, len(q))
	for k := range q {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return strings.Join(keys, ",")
}

// String is a one-line description for logs.
func (c s3Call) String() string {
	s := c.Op() + " " + c.Key
	if len(c.Query) > 0 {
		s += "?" + c.Query.Encode()
	}
	if c.CopySource != "" {
		s += " copy-source=" + c.CopySource
	}
	if c.Range != "" {
		s += " range=" + c.Range
	}
	return fmt.Sprintf("%s -> %d", s, c.Status)
}

// countingProxy is a reverse proxy in front of an S3 server that records
// every request. The Host header is kept, so SigV4 signatures stay valid.
type countingProxy struct {
	URL       string // what the gateway uses as its S3 endpoint
	srv       *http.Server
	ln        net.Listener
	transport *http.Transport
	// everyBucket: the proxy of a store with bucket = "*", whose calls may
	// need bucketRootPermissions too.
	everyBucket bool

	mu    sync.Mutex
	calls []s3Call
	fault *proxyFault    // nil: every request is forwarded
	cut   *proxyCut      // nil: every answer is forwarded whole
	hook  *proxyHook     // nil: nothing runs before a call is forwarded
	synth map[string]int // prefix -> objects of a generated listing
}

// synthesize makes the proxy answer ListObjectsV2 of prefix itself with n
// generated objects (prefix+"f-%07d", 10 bytes each), page by page, so
// that a benchmark can list a million objects no S3 server here holds in
// one folder and lists in reasonable time. Everything else is forwarded.
func (p *countingProxy) synthesize(prefix string, n int) (clear func()) {
	p.mu.Lock()
	if p.synth == nil {
		p.synth = map[string]int{}
	}
	p.synth[prefix] = n
	p.mu.Unlock()
	return func() {
		p.mu.Lock()
		delete(p.synth, prefix)
		p.mu.Unlock()
	}
}

// writeSyntheticList answers one ListObjectsV2 page of a generated listing
// (the continuation token is the index of the next object).
func writeSyntheticList(w http.ResponseWriter, c s3Call, n int) {
	prefix := c.Query.Get("prefix")
	start, _ := strconv.Atoi(c.Query.Get("continuation-token"))
	size := 1000
	if m, err := strconv.Atoi(c.Query.Get("max-keys")); err == nil && m > 0 && m < size {
		size = m
	}
	end := min(n, start+size)
	var b strings.Builder
	b.WriteString(`<?xml version="1.0" encoding="UTF-8"?><ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">`)
	fmt.Fprintf(&b, "<Prefix>%s</Prefix><KeyCount>%d</KeyCount><MaxKeys>%d</MaxKeys><IsTruncated>%v</IsTruncated>", prefix, end-start, size, end < n)
	if end < n {
		fmt.Fprintf(&b, "<NextContinuationToken>%d</NextContinuationToken>", end)
	}
	for i := start; i < end; i++ {
		fmt.Fprintf(&b, `<Contents><Key>%sf-%07d</Key><LastModified>2026-01-02T03:04:05.000Z</LastModified><ETag>"%032x"</ETag><Size>10</Size><StorageClass>STANDARD</StorageClass></Contents>`, prefix, i, i)
	}
	b.WriteString("</ListBucketResult>")
	w.Header().Set("Content-Type", "application/xml")
	_, _ = io.WriteString(w, b.String())
}

// synthFor returns the size of the generated listing that answers c, or 0.
func (p *countingProxy) synthFor(c s3Call) int {
	if c.Op() != "ListObjectsV2" {
		return 0
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.synth[c.Query.Get("prefix")]
}

// s3Fault is an S3 error answer the proxy gives instead of forwarding.
type s3Fault struct {
	Status     int
	Code       string // S3 error code, e.g. SlowDown
	Message    string
	RetryAfter string // Retry-After header, "" for none
}

type proxyFault struct {
	match func(c s3Call) bool
	s3Fault
}

// injectFault makes the proxy answer f, without forwarding, to every call
// that match accepts, until the returned func is called. One fault at a
// time; see davEnv.fault for the form that cleans up after the test.
func (p *countingProxy) injectFault(match func(c s3Call) bool, f s3Fault) (clear func()) {
	return install(p, &p.fault, &proxyFault{match: match, s3Fault: f})
}

// install sets *slot to v under the proxy's lock and returns the func
// that clears it again (unless another value took the slot since).
func install[T any](p *countingProxy, slot **T, v *T) (clear func()) {
	p.mu.Lock()
	*slot = v
	p.mu.Unlock()
	return func() {
		p.mu.Lock()
		if *slot == v {
			*slot = nil
		}
		p.mu.Unlock()
	}
}

// takeOnce returns *slot when its matcher accepts c, and clears the slot.
func takeOnce[T any](p *countingProxy, slot **T, match func(*T) func(s3Call) bool, c s3Call) *T {
	p.mu.Lock()
	defer p.mu.Unlock()
	v := *slot
	if v == nil || !match(v)(c) {
		return nil
	}
	*slot = nil
	return v
}

// proxyCut cuts one answer's body: see cutBodyOnce.
type proxyCut struct {
	match func(c s3Call) bool
	after int64
	onCut func()
}

// cutBodyOnce makes the proxy forward the next call that match accepts but
// reset the connection after after bytes of the answer's body, as an S3
// node failing mid-transfer does; onCut (if set) runs at the cut, before
// the gateway sees it. Later calls are forwarded whole.
func (p *countingProxy) cutBodyOnce(match func(c s3Call) bool, after int64, onCut func()) (clear func()) {
	return install(p, &p.cut, &proxyCut{match: match, after: after, onCut: onCut})
}

// proxyHook runs once before a matching call is forwarded: see beforeOnce.
type proxyHook struct {
	match func(c s3Call) bool
	run   func()
}

// beforeOnce runs fn before the proxy forwards the next call that match
// accepts (a change made in S3 between two steps of the gateway's work).
func (p *countingProxy) beforeOnce(match func(c s3Call) bool, fn func()) (clear func()) {
	return install(p, &p.hook, &proxyHook{match: match, run: fn})
}

// takeHook returns the hook for c, once, or nil.
func (p *countingProxy) takeHook(c s3Call) *proxyHook {
	return takeOnce(p, &p.hook, func(h *proxyHook) func(s3Call) bool { return h.match }, c)
}

// takeCut returns the cut for c, once, or nil.
func (p *countingProxy) takeCut(c s3Call) *proxyCut {
	return takeOnce(p, &p.cut, func(pc *proxyCut) func(s3Call) bool { return pc.match }, c)
}

// cuttingWriter passes on the first left bytes of a body, then fails the
// write; the reverse proxy then aborts the connection.
type cuttingWriter struct {
	*statusWriter
	left  int64
	onCut func()
}

func (w *cuttingWriter) Write(b []byte) (int, error) {
	if int64(len(b)) <= w.left {
		w.left -= int64(len(b))
		return w.statusWriter.Write(b)
	}
	n, _ := w.statusWriter.Write(b[:w.left])
	w.left = 0
	w.Flush()
	if w.onCut != nil {
		w.onCut()
		w.onCut = nil
	}
	return n, errors.New("test proxy: body cut")
}

// faultFor returns the fault to answer c with, or nil.
func (p *countingProxy) faultFor(c s3Call) *s3Fault {
	p.mu.Lock()
	pf := p.fault
	p.mu.Unlock()
	if pf == nil || !pf.match(c) {
		return nil
	}
	return &pf.s3Fault
}

// writeFault answers an S3 error the way S3 does: an XML body (none for a
// HEAD) and the status.
func writeFault(w http.ResponseWriter, r *http.Request, f *s3Fault) {
	_, _ = io.Copy(io.Discard, io.LimitReader(r.Body, 64<<20)) // let the client finish sending
	h := w.Header()
	if f.RetryAfter != "" {
		h.Set("Retry-After", f.RetryAfter)
	}
	h.Set("Content-Type", "application/xml")
	h.Set("X-Amz-Request-Id", "davgw-test-fault")
	body := `<?xml version="1.0" encoding="UTF-8"?>` + "\n<Error><Code>" + f.Code + "</Code><Message>" + f.Message +
		"</Message><RequestId>davgw-test-fault</RequestId></Error>"
	if r.Method == http.MethodHead {
		w.WriteHeader(f.Status)
		return
	}
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(f.Status)
	_, _ = io.WriteString(w, body)
}

func newCountingProxy(target string) (*countingProxy, error) {
	tu, err := url.Parse(target)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &countingProxy{URL: "http://" + ln.Addr().String(), ln: ln, transport: &http.Transport{
		Proxy:               nil, // never an HTTP(S)_PROXY from the environment
		DisableCompression:  true,
		MaxIdleConnsPerHost: 64,
		IdleConnTimeout:     30 * time.Second,
	}}
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(tu)
			pr.Out.Host = pr.In.Host // the signature covers Host
		},
		Transport:     p.transport,
		FlushInterval: -1,
		// A client that goes away mid-request (the abort cases) is expected.
		ErrorLog: log.New(io.Discard, "", 0),
	}
	p.srv = &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			// Record before forwarding: the gateway may act on the answer
			// before this handler returns.
			i := p.record(r)
			sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
			p.mu.Lock()
			c := p.calls[i]
			p.mu.Unlock()
			defer func() { // also when a cut body aborts the handler
				p.mu.Lock()
				p.calls[i].Status = sw.status
				p.mu.Unlock()
			}()
			if h := p.takeHook(c); h != nil {
				h.run()
			}
			if f := p.faultFor(c); f != nil {
				writeFault(sw, r, f)
			} else if n := p.synthFor(c); n > 0 {
				writeSyntheticList(sw, c, n)
			} else if pc := p.takeCut(c); pc != nil {
				rp.ServeHTTP(&cuttingWriter{statusWriter: sw, left: pc.after, onCut: pc.onCut}, r)
			} else {
				rp.ServeHTTP(sw, r)
			}
		}),
		ReadHeaderTimeout: 10 * time.Second,
	}
	go func() { _ = p.srv.Serve(ln) }()
	recordedProxies.add(p) // for the least-privilege check after the run
	return p, nil
}

// statusWriter remembers the status the proxy answered.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// record appends the call and returns its index.
func (p *countingProxy) record(r *http.Request) int {
	// Path-style: /bucket/key...
	path := strings.TrimPrefix(r.URL.Path, "/")
	bucket, key, _ := strings.Cut(path, "/")
	c := s3Call{
		Method:     r.Method,
		Bucket:     bucket,
		Key:        key,
		Query:      r.URL.Query(),
		CopySource: r.Header.Get("X-Amz-Copy-Source"),
		Range:      r.Header.Get("Range"),
		Size:       r.ContentLength,
	}
	for _, h := range objectOptionHeaders {
		if v := r.Header.Values(h); len(v) > 0 {
			if c.Options == nil {
				c.Options = map[string]string{}
			}
			c.Options[h] = strings.Join(v, ",")
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls = append(p.calls, c)
	return len(p.calls) - 1
}

// Mark returns a position; Since(mark) returns the calls made after it.
func (p *countingProxy) Mark() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.calls)
}

// Since returns a copy of the calls recorded after mark.
func (p *countingProxy) Since(mark int) []s3Call {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]s3Call(nil), p.calls[mark:]...)
}

// SinceUnder returns the calls after mark on keys under keyPrefix, plus
// bucket-level calls (listings, DeleteObjects): late calls of earlier tests
// on their own keys (an abort being verified) are left out.
func (p *countingProxy) SinceUnder(mark int, keyPrefix string) []s3Call {
	var out []s3Call
	for _, c := range p.Since(mark) {
		if c.Key == "" || strings.HasPrefix(c.Key, keyPrefix) {
			out = append(out, c)
		}
	}
	return out
}

// Close stops the proxy.
func (p *countingProxy) Close() {
	_ = p.srv.Close()
	p.transport.CloseIdleConnections()
}

// countOps tallies calls by operation, e.g. {"ListObjectsV2": 3}.
func countOps(calls []s3Call) map[string]int {
	m := map[string]int{}
	for _, c := range calls {
		m[c.Op()]++
	}
	return m
}

// describeCalls lists calls one per line for failure messages.
func describeCalls(calls []s3Call) string {
	var b strings.Builder
	for _, c := range calls {
		b.WriteString("\n\t")
		b.WriteString(c.String())
	}
	return b.String()
}
