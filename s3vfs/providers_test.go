package s3vfs

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/base64"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// recordingTransport records method, query and Content-MD5 of every
// request, and whether the Content-MD5 matched the body.
type recordingTransport struct {
	mu   sync.Mutex
	reqs []recorded
	next http.RoundTripper
}

type recorded struct {
	method, query, contentMD5, crc32 string
	md5OK                            bool
}

func (rt *recordingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	rec := recorded{method: r.Method, query: r.URL.RawQuery, contentMD5: r.Header.Get("Content-MD5"), crc32: r.Header.Get("X-Amz-Checksum-Crc32")}
	if r.Body != nil && rec.contentMD5 != "" {
		body, err := io.ReadAll(r.Body)
		r.Body.Close()
		if err != nil {
			return nil, err
		}
		sum := md5.Sum(body)
		rec.md5OK = base64.StdEncoding.EncodeToString(sum[:]) == rec.contentMD5
		r.Body = io.NopCloser(bytes.NewReader(body))
	}
	rt.mu.Lock()
	rt.reqs = append(rt.reqs, rec)
	rt.mu.Unlock()
	return rt.next.RoundTrip(r)
}

func (rt *recordingTransport) batchDeletes() []recorded {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	var out []recorded
	for _, r := range rt.reqs {
		if r.method == http.MethodPost && strings.Contains(r.query, "delete") {
			out = append(out, r)
		}
	}
	return out
}

func TestDeleteObjectsCarriesContentMD5(t *testing.T) {
	for _, mode := range []string{ChecksumsWhenRequired, ChecksumsWhenSupported} {
		t.Run(mode, func(t *testing.T) {
			rt := &recordingTransport{next: http.DefaultTransport}
			s, gw := newTestStore(t, func(c *Config) { c.Checksums = mode; c.HTTPClient = &http.Client{Transport: rt} })
			ctx := context.Background()
			keys := []string{"d/a", "d/b", "d/c"}
			for _, k := range keys {
				if _, err := s.PutObject(ctx, k, []byte(k), WriteOptions{}); err != nil {
					t.Fatal(err)
				}
			}
			if err := s.Delete(ctx, keys); err != nil {
				t.Fatal(err)
			}
			dels := rt.batchDeletes()
			if len(dels) != 1 {
				t.Fatalf("%d DeleteObjects requests, want 1", len(dels))
			}
			if mode == ChecksumsWhenRequired && (dels[0].contentMD5 == "" || !dels[0].md5OK) {
				t.Fatalf("DeleteObjects without a correct Content-MD5: %+v", dels[0])
			}
			if _, err := gw.Admin.HeadObject(ctx, headInput("d/a")); err == nil {
				t.Fatal("d/a still exists")
			}
		})
	}
}

// TestGCSDeletesOneKeyAtATime: the GCS preset never sends DeleteObjects.
func TestGCSDeletesOneKeyAtATime(t *testing.T) {
	rt := &recordingTransport{next: http.DefaultTransport}
	s, gw := newTestStore(t, func(c *Config) { c.HTTPClient = &http.Client{Transport: rt} })
	s.applyQuirks(providerQuirks(ProviderGCS))
	ctx := context.Background()
	var keys []string
	for i := range 20 {
		k := "g/" + string(rune('a'+i))
		keys = append(keys, k)
		if _, err := s.PutObject(ctx, k, []byte(k), WriteOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Delete(ctx, append(keys, "g/missing")); err != nil {
		t.Fatal(err)
	}
	if n := len(rt.batchDeletes()); n != 0 {
		t.Fatalf("%d DeleteObjects requests with the GCS preset", n)
	}
	for _, k := range keys {
		if _, err := gw.Admin.HeadObject(ctx, headInput(k)); err == nil {
			t.Fatalf("%s still exists", k)
		}
	}
	if err := s.DeletePrefix(ctx, "g/"); err != nil {
		t.Fatal(err)
	}
}

// hostRecorder records the host and path of each request and fails it.
type hostRecorder struct {
	mu   sync.Mutex
	urls []string
}

func (h *hostRecorder) RoundTrip(r *http.Request) (*http.Response, error) {
	h.mu.Lock()
	h.urls = append(h.urls, r.URL.Host+r.URL.Path)
	h.mu.Unlock()
	return nil, errors.New("recorded")
}

func TestProviderPresetsSelectPathStyle(t *testing.T) {
	tests := []struct {
		provider, endpoint string
		pathStyle, set     bool
		want               string
	}{
		{provider: "ceph", endpoint: "https://rgw.example.com", want: "rgw.example.com/mybucket/k"},
		{provider: "minio", endpoint: "https://rgw.example.com", want: "rgw.example.com/mybucket/k"},
		{provider: "b2", endpoint: "https://rgw.example.com", want: "rgw.example.com/mybucket/k"},
		{provider: "other", endpoint: "https://rgw.example.com", want: "rgw.example.com/mybucket/k"},
		{provider: "gcs", want: "storage.googleapis.com/mybucket/k"},
		{provider: "aws", want: "mybucket.s3.us-east-1.amazonaws.com/k"},
		{provider: "", endpoint: "https://rgw.example.com", want: "mybucket.rgw.example.com/k"},
		{provider: "ceph", endpoint: "https://rgw.example.com", set: true, want: "mybucket.rgw.example.com/k"},
		{provider: "aws", pathStyle: true, set: true, want: "s3.us-east-1.amazonaws.com/mybucket/k"},
	}
	for _, tt := range tests {
		rec := &hostRecorder{}
		st, err := New(t.Context(), Config{Provider: tt.provider, Endpoint: tt.endpoint, Bucket: "mybucket", AccessKeyID: "a", SecretAccessKey: "b",
			PathStyle: tt.pathStyle, PathStyleSet: tt.set, HTTPClient: &http.Client{Transport: rec}})
		if err != nil {
			t.Fatal(err)
		}
		_, _ = st.Head(t.Context(), "k")
		if len(rec.urls) == 0 || rec.urls[0] != tt.want {
			t.Errorf("provider %q (path_style %v, set %v): request to %v, want %s", tt.provider, tt.pathStyle, tt.set, rec.urls, tt.want)
		}
	}
}

func headInput(key string) *s3.HeadObjectInput {
	return &s3.HeadObjectInput{Bucket: aws.String(testBucket), Key: aws.String(key)}
}
