package main

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/davgw/davgw/embedded"
)

// TestCheckReportsADeniedUploadPart puts a proxy that denies UploadPart in
// front of a real S3 server: the multipart probe reports the part upload
// as failed (not ✓), the others pass, and no upload is left behind.
func TestCheckReportsADeniedUploadPart(t *testing.T) {
	es, err := embedded.Start(t.Context(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer es.Close()
	target, _ := url.Parse(es.Endpoint)
	rp := httputil.NewSingleHostReverseProxy(target)
	deny := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		if r.Method == http.MethodPut && q.Has("partNumber") && q.Has("uploadId") {
			_, _ = io.Copy(io.Discard, r.Body)
			w.Header().Set("Content-Type", "application/xml")
			w.WriteHeader(http.StatusForbidden)
			fmt.Fprint(w, `<Error><Code>AccessDenied</Code><Message>denied by the test</Message></Error>`)
			return
		}
		rp.ServeHTTP(w, r)
	}))
	defer deny.Close()
	cfgFile := filepath.Join(t.TempDir(), "config.toml")
	doc := fmt.Sprintf("[s3]\nendpoint = %q\nbucket = %q\nprefix = \"gw/\"\npath_style = true\naccess_key_id = %q\nsecret_access_key = %q\npart_size = \"5MiB\"\n",
		deny.URL, es.Bucket, es.AccessKeyID, es.SecretAccessKey)
	if err := os.WriteFile(cfgFile, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	code := run(t.Context(), []string{"check", "-config", cfgFile}, strings.NewReader(""), &out, &errb)
	if code != exitRuntime {
		t.Fatalf("exit %d, want %d\n%s%s", code, exitRuntime, out.String(), errb.String())
	}
	for _, w := range []string{"✓ multipart create (CreateMultipartUpload)", "✗ multipart upload part (UploadPart)",
		"fix: grant s3:PutObject", "✓ multipart list (ListMultipartUploads)", "✓ multipart list parts (ListParts)",
		"✓ multipart abort (AbortMultipartUpload)", "✓ delete"} {
		if !strings.Contains(out.String(), w) {
			t.Errorf("output lacks %q:\n%s", w, out.String())
		}
	}
	ups, err := es.Client().ListMultipartUploads(t.Context(), &s3.ListMultipartUploadsInput{Bucket: aws.String(es.Bucket)})
	if err != nil {
		t.Fatal(err)
	}
	if len(ups.Uploads) != 0 {
		t.Fatalf("%d uploads left behind", len(ups.Uploads))
	}
}
