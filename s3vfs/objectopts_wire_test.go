package s3vfs

import (
	"bytes"
	"context"
	"encoding/base64"
	"net/http"
	"strings"
	"sync"
	"testing"
)

// headerRecorder records the object-option headers of every request.
type headerRecorder struct {
	mu   sync.Mutex
	reqs []recordedHeaders
}

type recordedHeaders struct {
	op     string // method and query, e.g. "PUT partNumber=1&uploadId=..."
	header http.Header
}

func (h *headerRecorder) RoundTrip(r *http.Request) (*http.Response, error) {
	rec := recordedHeaders{op: r.Method + " " + r.URL.RawQuery, header: http.Header{}}
	for k, v := range r.Header {
		if strings.HasPrefix(k, "X-Amz-Server-Side-Encryption") || strings.HasPrefix(k, "X-Amz-Copy-Source-Server-Side-Encryption") ||
			k == "X-Amz-Storage-Class" || k == "X-Amz-Acl" || k == "X-Amz-Copy-Source" {
			rec.header[k] = v
		}
	}
	h.mu.Lock()
	h.reqs = append(h.reqs, rec)
	h.mu.Unlock()
	return http.DefaultTransport.RoundTrip(r)
}

// TestMultipartCopySendsTheCustomerKeyOnTheWire copies an object in parts
// (UploadPartCopy, above a lowered threshold) with an SSE-C key, against
// versitygw, and checks the headers each request carried.
func TestMultipartCopySendsTheCustomerKeyOnTheWire(t *testing.T) {
	rec := &headerRecorder{}
	key := base64.StdEncoding.EncodeToString(testCustomerKey)
	s, _ := newTestStore(t, func(c *Config) {
		c.HTTPClient = &http.Client{Transport: rec}
		c.SSECustomerKey, c.StorageClass = key, "STANDARD"
	})
	ctx := context.Background()
	body := bytes.Repeat([]byte("0123456789abcdef"), (11<<20)/16)
	w := s.NewWriter(ctx, "src/big", WriteOptions{Size: int64(len(body))})
	if _, err := w.Write(body); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	mp := *s
	mp.copyThreshold, mp.copyPartSize = MinPartSize, MinPartSize
	mark := len(rec.reqs)
	if _, err := mp.Copy(ctx, "src/big", ObjectInfo{}, "dst/big", CopyOptions{}); err != nil {
		t.Fatal(err)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	var partCopies int
	for _, r := range rec.reqs[mark:] {
		if r.header.Get("X-Amz-Server-Side-Encryption-Customer-Key") != key {
			t.Errorf("%s: no SSE-C key", r.op)
		}
		isPartCopy := strings.Contains(r.op, "partNumber=") && r.header.Get("X-Amz-Copy-Source") != ""
		if isPartCopy {
			partCopies++
			if r.header.Get("X-Amz-Copy-Source-Server-Side-Encryption-Customer-Key") != key {
				t.Errorf("%s: UploadPartCopy without the source's SSE-C key", r.op)
			}
		}
		if strings.HasPrefix(r.op, "POST uploads") && r.header.Get("X-Amz-Storage-Class") != "STANDARD" {
			t.Errorf("%s: CreateMultipartUpload without the storage class", r.op)
		}
	}
	if partCopies != 3 {
		t.Errorf("%d UploadPartCopy requests, want 3", partCopies)
	}
}
