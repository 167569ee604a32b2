package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/davgw/davgw/auth"
	"github.com/davgw/davgw/embedded"
)

var adminListeningRE = regexp.MustCompile(`msg="admin listening" url=(http://127\.0\.0\.1:\d+)/metrics`)

// TestServeAdminListen runs `davgw serve` with [server].admin_listen over
// the embedded S3 store: /metrics, /healthz and /readyz answer on the admin
// listener, the metrics count the WebDAV requests, and the WebDAV listener
// does not serve /metrics.
func TestServeAdminListen(t *testing.T) {
	es, err := embedded.Start(t.Context(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer es.Close()
	hash, err := auth.HashPasswordCost("carol-pw", bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	cfgFile := filepath.Join(t.TempDir(), "config.toml")
	doc := fmt.Sprintf(`[server]
listen = "127.0.0.1:0"
admin_listen = "127.0.0.1:0"
[s3]
endpoint = %q
bucket = %q
path_style = true
access_key_id = %q
secret_access_key = %q
[[auth.users]]
name = "carol"
password_hash = %q
`, es.Endpoint, es.Bucket, es.AccessKeyID, es.SecretAccessKey, hash)
	if err := os.WriteFile(cfgFile, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithCancel(t.Context())
	stdout, stderr := &syncBuffer{}, &syncBuffer{}
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"serve", "-config", cfgFile}, strings.NewReader(""), stdout, stderr)
	}()
	defer func() {
		cancel()
		if code := <-done; code != exitOK {
			t.Errorf("serve exited with %d: %s", code, stderr.String())
		}
	}()
	var davURL, adminURL string
	deadline := time.Now().Add(20 * time.Second)
	for davURL == "" || adminURL == "" {
		if m := listeningRE.FindStringSubmatch(stderr.String()); m != nil {
			davURL = m[1]
		}
		if m := adminListeningRE.FindStringSubmatch(stderr.String()); m != nil {
			adminURL = m[1]
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve did not start both listeners: %s", stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}

	get := func(url string) (int, string) {
		t.Helper()
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	req, err := http.NewRequest("PUT", davURL+"notes.txt", strings.NewReader("hello"))
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth("carol", "carol-pw")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("PUT: %d", resp.StatusCode)
	}

	code, body := get(adminURL + "/metrics")
	if code != http.StatusOK {
		t.Fatalf("admin /metrics: %d", code)
	}
	for _, want := range []string{
		`davgw_http_requests_total{method="PUT",status_class="2xx"} 1`,
		`davgw_uploads_total{result="committed"} 1`,
		`davgw_upload_bytes_total 5`,
		`go_goroutines `,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("admin /metrics lacks %q:\n%s", want, body)
		}
	}
	if strings.Contains(body, "carol") || strings.Contains(body, "notes.txt") {
		t.Error("/metrics names the user or the path")
	}
	if code, body := get(adminURL + "/healthz"); code != http.StatusOK || body != "ok\n" {
		t.Errorf("admin /healthz: %d %q", code, body)
	}
	if code, body := get(adminURL + "/readyz"); code != http.StatusOK || body != "ready\n" {
		t.Errorf("admin /readyz: %d %q", code, body)
	}
	if code, _ := get(strings.TrimSuffix(davURL, "/dav/") + "/metrics"); code != http.StatusNotFound {
		t.Errorf("the WebDAV listener answers /metrics with %d, want 404", code)
	}
}
