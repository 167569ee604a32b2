package s3vfs

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

func TestRefreshMargin(t *testing.T) {
	tests := []struct {
		name string
		life time.Duration
		want time.Duration
	}{
		{name: "an hour-long session is renewed five minutes early", life: time.Hour, want: 5 * time.Minute},
		{name: "a fifteen-minute session is renewed three minutes early", life: 15 * time.Minute, want: 3 * time.Minute},
		{name: "a six-second session is renewed 1.2 seconds early", life: 6 * time.Second, want: 1200 * time.Millisecond},
		{name: "expired credentials get no margin", life: -time.Second, want: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := refreshMargin(tt.life); got != tt.want {
				t.Fatalf("refreshMargin(%v) = %v, want %v", tt.life, got, tt.want)
			}
		})
	}
}

type fixedCreds struct{ c aws.Credentials }

func (f fixedCreds) Retrieve(context.Context) (aws.Credentials, error) { return f.c, nil }

func TestRefreshBeforeExpiryMovesOnlyExpiringCredentials(t *testing.T) {
	exp := time.Now().Add(time.Hour)
	tests := []struct {
		name string
		in   aws.Credentials
		want func(aws.Credentials) bool
	}{
		{name: "hour-long credentials are refreshed within the cache's window", in: aws.Credentials{AccessKeyID: "K", CanExpire: true, Expires: exp},
			want: func(c aws.Credentials) bool {
				return !c.Expires.Before(exp.Add(-maxRefreshMargin)) && !c.Expires.After(exp.Add(-maxRefreshMargin/2))
			}},
		{name: "static credentials are left alone", in: aws.Credentials{AccessKeyID: "K"},
			want: func(c aws.Credentials) bool { return !c.CanExpire && c.Expires.IsZero() }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := newCredentialsCache(&refreshBeforeExpiry{next: fixedCreds{tt.in}}).Retrieve(t.Context())
			if err != nil || !tt.want(got) {
				t.Fatalf("got %+v, %v", got, err)
			}
		})
	}
	t.Run("six-second credentials are refreshed 1.2 seconds early", func(t *testing.T) {
		exp := time.Now().Add(6 * time.Second)
		got, _ := (&refreshBeforeExpiry{}).AdjustExpiresBy(aws.Credentials{CanExpire: true, Expires: exp}, -maxRefreshMargin)
		if d := exp.Sub(got.Expires); d < time.Second || d > 1200*time.Millisecond {
			t.Fatalf("refreshed %v early", d)
		}
	})
}

// flakyCreds succeeds once with credentials valid until exp, then fails.
type flakyCreds struct {
	mu    sync.Mutex
	calls int
	exp   time.Time
}

func (p *flakyCreds) Retrieve(context.Context) (aws.Credentials, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls++
	if p.calls > 1 {
		return aws.Credentials{}, errors.New("sts: throttled")
	}
	return aws.Credentials{AccessKeyID: testAccessKey, SecretAccessKey: testSecretKey, CanExpire: true, Expires: p.exp}, nil
}

// TestFailedRefreshKeepsValidCredentials: when the early refresh fails
// while the credentials still have time left, requests keep being signed
// with them (and the refresh is retried); once really expired, they fail.
func TestFailedRefreshKeepsValidCredentials(t *testing.T) {
	gw := startVersitygw(t)
	defer func(d time.Duration) { minCredentialLife = d }(minCredentialLife)
	minCredentialLife = 500 * time.Millisecond
	life := 8 * time.Second
	p := &flakyCreds{exp: time.Now().Add(life)}
	creds := newCredentialsCache(&refreshBeforeExpiry{next: p})
	client := s3.New(s3.Options{Region: "us-east-1", BaseEndpoint: aws.String(gw.Endpoint), UsePathStyle: true,
		Credentials: creds, HTTPClient: &http.Client{}})
	list := func() error {
		_, err := client.ListObjectsV2(t.Context(), &s3.ListObjectsV2Input{Bucket: aws.String(testBucket)})
		return err
	}
	if err := list(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(life*4/5 + 300*time.Millisecond) // past the early refresh, before the expiry
	for i := range 3 {
		if err := list(); err != nil {
			t.Fatalf("request %d after a failed refresh, with %v of validity left: %v", i, time.Until(p.exp).Round(time.Millisecond), err)
		}
	}
	p.mu.Lock()
	calls := p.calls
	p.mu.Unlock()
	if calls < 2 {
		t.Fatalf("%d Retrieve calls: the early refresh was not tried", calls)
	}
	time.Sleep(time.Until(p.exp) + 100*time.Millisecond)
	if _, err := creds.Retrieve(t.Context()); err == nil {
		t.Fatal("expired credentials were still handed out")
	}
}

func TestMatchNoProxy(t *testing.T) {
	tests := []struct {
		name, list, target string
		want               bool
	}{
		{name: "an empty list proxies everything", list: "", target: "https://s3.amazonaws.com/b", want: false},
		{name: "a star bypasses everything", list: "*", target: "https://s3.amazonaws.com/b", want: true},
		{name: "a domain covers its subdomains", list: "amazonaws.com", target: "https://s3.eu-west-1.amazonaws.com/", want: true},
		{name: "a leading dot is the same", list: ".amazonaws.com", target: "https://sts.amazonaws.com/", want: true},
		{name: "a domain does not cover a look-alike", list: "amazonaws.com", target: "https://evilamazonaws.com/", want: false},
		{name: "an IP matches itself", list: "10.0.0.5", target: "http://10.0.0.5:9000/", want: true},
		{name: "a CIDR block matches its addresses", list: "10.0.0.0/8, 192.168.0.0/16", target: "http://10.1.2.3:9000/", want: true},
		{name: "a port limits the entry", list: "minio.local:9000", target: "http://minio.local:9001/", want: false},
		{name: "the default port is implied", list: "minio.local:443", target: "https://minio.local/", want: true},
		{name: "loopback is proxied unless listed", list: "example.com", target: "http://127.0.0.1:8333/", want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u, _ := url.Parse(tt.target)
			if got := matchNoProxy(tt.list, u); got != tt.want {
				t.Fatalf("matchNoProxy(%q, %s) = %v, want %v", tt.list, tt.target, got, tt.want)
			}
		})
	}
}

// TestGCSPresetLeavesAcceptEncodingUnsigned checks the request a gcs
// Store sends: Accept-Encoding present but not among the signed headers,
// path style, and the default endpoint replaced by the given one.
func TestGCSPresetLeavesAcceptEncodingUnsigned(t *testing.T) {
	var mu sync.Mutex
	var auth, acceptEncoding, path string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		auth, acceptEncoding, path = r.Header.Get("Authorization"), r.Header.Get("Accept-Encoding"), r.URL.Path
		mu.Unlock()
		w.Header().Set("Content-Length", "0")
		w.Header().Set("ETag", `"e"`)
	}))
	defer srv.Close()
	tests := []struct {
		name       string
		provider   string
		wantSigned bool
	}{
		{name: "gcs signs without Accept-Encoding", provider: ProviderGCS, wantSigned: false},
		{name: "aws signs Accept-Encoding as the SDK does", provider: ProviderAWS, wantSigned: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, err := New(t.Context(), Config{Endpoint: srv.URL, Bucket: "bucket", PathStyle: true, Provider: tt.provider,
				AccessKeyID: "K", SecretAccessKey: "S"})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := st.Head(t.Context(), "key"); err != nil {
				t.Fatal(err)
			}
			mu.Lock()
			defer mu.Unlock()
			if acceptEncoding == "" {
				t.Fatal("no Accept-Encoding sent")
			}
			if got := strings.Contains(auth, "accept-encoding"); got != tt.wantSigned {
				t.Fatalf("Accept-Encoding signed = %v, want %v (Authorization: %s)", got, tt.wantSigned, auth)
			}
			if path != "/bucket/key" {
				t.Fatalf("path %q, want path style", path)
			}
		})
	}
	if q := providerQuirks(ProviderGCS); !q.noMultipartCopy || q.defaultEndpoint != GCSEndpoint {
		t.Fatalf("gcs quirks = %+v", q)
	}
}
