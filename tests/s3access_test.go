package tests

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/davgw/davgw/s3vfs"
)

// The SeaweedFS instance with IAM and STS (AssumeRole on its S3 port)
// used by the credential, check and least-privilege tests of issue 3.
const (
	stsBucket      = "davgw-sts"
	stsPrefix      = "gw/"
	stsRoleARN     = "arn:aws:iam::000000000000:role/davgw"
	stsSessionLife = 6 * time.Second // the sts maxSessionLength: SeaweedFS caps every session at it
	// The identity allowed to assume the role, and one that can only read
	// and list (the crippled set-up of `davgw check`).
	stsAdminKey, stsAdminSecret   = "stsadmin", "stsadminsecret"
	stsReaderKey, stsReaderSecret = "stsreader", "stsreadersecret"
)

// stsServer is a running `weed mini` with STS.
type stsServer struct {
	endpoint string         // S3 and STS, http://127.0.0.1:PORT
	proxy    *countingProxy // what the gateway uses for S3
}

var (
	stsOnce sync.Once
	stsSrv  *stsServer
	stsErr  error
)

// getSTSServer starts the SeaweedFS STS instance once per run.
func getSTSServer(tb testing.TB) *stsServer {
	tb.Helper()
	stsOnce.Do(func() { stsSrv, stsErr = startSeaweedSTS() })
	requireTool(tb, stsErr)
	return stsSrv
}

// stsIAMConfig is SeaweedFS's -s3.iam.config: two identities, an STS
// signing key, and the role "davgw" whose attached policy grants exactly
// the least-privilege actions of docs/iam-policy.json on the bucket.
func stsIAMConfig() string {
	key := base64.StdEncoding.EncodeToString([]byte("davgw-test-sts-signing-key-32byt"))
	actions := `["s3:GetBucketLocation","s3:ListBucket","s3:ListBucketMultipartUploads",` +
		`"s3:PutObject","s3:AbortMultipartUpload","s3:ListMultipartUploadParts","s3:DeleteObject","s3:GetObject","s3:GetObjectAttributes"]`
	return fmt.Sprintf(`{
  "identities": [
    {"name": "admin", "credentials": [{"accessKey": %q, "secretKey": %q}], "actions": ["Admin", "Read", "List", "Tagging", "Write"]},
    {"name": "reader", "credentials": [{"accessKey": %q, "secretKey": %q}], "actions": ["Read", "List"]}
  ],
  "sts": {"tokenDuration": %q, "maxSessionLength": %q, "issuer": "seaweedfs-sts", "signingKey": %q},
  "policy": {"defaultEffect": "Deny", "storeType": "memory"},
  "policies": [
    {"name": "DavgwLeastPrivilege", "document": {"Version": "2012-10-17", "Statement": [
      {"Effect": "Allow", "Action": %s, "Resource": ["arn:aws:s3:::%s", "arn:aws:s3:::%s/*"]}
    ]}}
  ],
  "roles": [
    {"roleName": "davgw", "roleArn": %q, "attachedPolicies": ["DavgwLeastPrivilege"],
     "trustPolicy": {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": "*", "Action": ["sts:AssumeRole"]}]}}
  ]
}`, stsAdminKey, stsAdminSecret, stsReaderKey, stsReaderSecret, stsSessionLife.String(), stsSessionLife.String(), key,
		actions, stsBucket, stsBucket, stsRoleARN)
}

func startSeaweedSTS() (*stsServer, error) {
	bin, err := toolPath("DAVGW_WEED", "weed", seaweedfsVersion)
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "davgw-weed-sts-")
	if err != nil {
		return nil, err
	}
	registry.mu.Lock()
	registry.dirs = append(registry.dirs, dir)
	registry.mu.Unlock()
	cfgPath := filepath.Join(dir, "iam.json")
	if err := os.WriteFile(cfgPath, []byte(stsIAMConfig()), 0o600); err != nil {
		return nil, err
	}
	data := filepath.Join(dir, "data")
	if err := os.MkdirAll(data, 0o755); err != nil {
		return nil, err
	}
	var lastErr error
	for range 3 {
		ports, err := freePorts(len(weedPortFlags))
		if err != nil {
			return nil, err
		}
		args := []string{"mini", "-dir=" + data, "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
			"-master.telemetry=false", "-s3.config=" + cfgPath, "-s3.iam.config=" + cfgPath, "-s3.iam.readOnly=false",
			"-admin.ui=false", "-admin.port.legacy=0", "-s3.port.iceberg=0", "-s3.port.lance=0", "-webdav=false"}
		var s3Port int
		for i, flag := range weedPortFlags {
			args = append(args, fmt.Sprintf("%s=%d", flag, ports[i]))
			if flag == "-s3.port" {
				s3Port = ports[i]
			}
		}
		p, err := startProcess("weed mini (STS)", dir, bin, []string{"TMPDIR=" + dir}, args...)
		if err != nil {
			return nil, err
		}
		endpoint := fmt.Sprintf("http://127.0.0.1:%d", s3Port)
		if err := waitHTTP(context.Background(), p, endpoint+"/", 60*time.Second); err != nil {
			p.stop(3 * time.Second)
			lastErr = err
			continue
		}
		registry.mu.Lock()
		registry.stops = append(registry.stops, func() { p.stop(10 * time.Second) })
		registry.mu.Unlock()
		admin := newS3Client(endpoint, stsAdminKey, stsAdminSecret, &http.Client{Transport: &http.Transport{Proxy: nil}})
		if err := createBucket(context.Background(), admin, stsBucket); err != nil {
			return nil, fmt.Errorf("weed (STS): create bucket: %w; output:\n%s", err, p.log.String())
		}
		proxy, err := newCountingProxy(endpoint)
		if err != nil {
			return nil, err
		}
		registry.mu.Lock()
		registry.stops = append(registry.stops, proxy.Close)
		registry.mu.Unlock()
		return &stsServer{endpoint: endpoint, proxy: proxy}, nil
	}
	return nil, lastErr
}

// gatewayOver serves the real gateway over store on 127.0.0.1, stopped at
// the end of the test. b (may be nil) is the back end for the S3 helpers.
func gatewayOver(tb testing.TB, b *backend, store *s3vfs.Store) *davEnv {
	tb.Helper()
	e := gatewayStores(tb, staticAuth(tb), store, stsPrefixFor(b), nil)
	e.b = b
	return e
}

// stsPrefixFor is the gateway prefix: the STS bucket's role is scoped to
// stsPrefix; the shared back ends use the bucket root.
func stsPrefixFor(b *backend) string {
	if b == nil {
		return stsPrefix
	}
	return ""
}

// roundTrip does what a client does to a file (MKCOL, PUT, GET, PROPFIND,
// DELETE) in dir and returns how many requests failed and the last failure.
func roundTrip(e *davEnv, dir string, size int) (requests, failures int, last string) {
	body := bytes.Repeat([]byte("x"), size)
	steps := []struct {
		method, path string
		body         []byte
		header       map[string]string
		ok           []int
	}{
		{"MKCOL", dir, nil, nil, []int{201, 405}},
		{"PUT", dir + "f.txt", body, nil, []int{201, 204}},
		{"GET", dir + "f.txt", nil, nil, []int{200}},
		{"PROPFIND", dir, nil, map[string]string{"Depth": "1"}, []int{207}},
		{"DELETE", dir + "f.txt", nil, nil, []int{204}},
	}
	for _, s := range steps {
		requests++
		r, err := e.try(s.method, s.path, s.header, s.body)
		ok := err == nil
		if ok {
			ok = false
			for _, st := range s.ok {
				ok = ok || r.Status == st
			}
			if s.method == "GET" && !bytes.Equal(r.Body, body) {
				ok = false
			}
		}
		if !ok {
			failures++
			if err != nil {
				last = fmt.Sprintf("%s %s: %v", s.method, s.path, err)
			} else {
				last = fmt.Sprintf("%s %s: %s", s.method, s.path, r)
			}
		}
	}
	return requests, failures, last
}

// try is do as alice without failing the test: for loops that count failures.
func (e *davEnv) try(method, path string, header map[string]string, body []byte) (reply, error) {
	hr, err := http.NewRequest(method, e.URL+path, bytes.NewReader(body))
	if err != nil {
		return reply{}, err
	}
	hr.SetBasicAuth("alice", testUsers["alice"])
	for k, v := range header {
		hr.Header.Set(k, v)
	}
	resp, err := http.DefaultTransport.RoundTrip(hr)
	if err != nil {
		return reply{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return reply{Status: resp.StatusCode, Header: resp.Header, Body: b}, err
}

// countingForwardProxy is a loopback HTTP forward proxy (absolute-URI
// requests; no CONNECT: the S3 and STS endpoints here are plain HTTP) that
// counts the requests per target host.
type countingForwardProxy struct {
	URL   string
	mu    sync.Mutex
	hosts map[string]int
	total atomic.Int64
}

func newForwardProxy(tb testing.TB) *countingForwardProxy {
	tb.Helper()
	fp := &countingForwardProxy{hosts: map[string]int{}}
	tr := &http.Transport{Proxy: nil}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !r.URL.IsAbs() {
			http.Error(w, "not a proxy request", http.StatusBadRequest)
			return
		}
		fp.total.Add(1)
		fp.mu.Lock()
		fp.hosts[r.URL.Host]++
		fp.mu.Unlock()
		out := r.Clone(r.Context())
		out.RequestURI = ""
		out.Header.Del("Proxy-Connection")
		resp, err := tr.RoundTrip(out)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		for k, vs := range resp.Header {
			w.Header()[k] = vs
		}
		w.WriteHeader(resp.StatusCode)
		_, _ = io.Copy(w, resp.Body)
	}))
	tb.Cleanup(func() { srv.Close(); tr.CloseIdleConnections() })
	fp.URL = srv.URL
	return fp
}

// count returns the requests the proxy forwarded to host (host:port).
func (fp *countingForwardProxy) count(host string) int {
	fp.mu.Lock()
	defer fp.mu.Unlock()
	return fp.hosts[strings.TrimPrefix(host, "http://")]
}
