package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/davgw/davgw/embedded"
)

// TestCheckAgainstTheEmbeddedStore runs every probe of `davgw check`
// against a real S3 server (the embedded versitygw).
func TestCheckAgainstTheEmbeddedStore(t *testing.T) {
	es, err := embedded.Start(t.Context(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer es.Close()
	cfgFile := filepath.Join(t.TempDir(), "config.toml")
	write := func(secretExpr string) {
		doc := fmt.Sprintf("[s3]\nendpoint = %q\nbucket = %q\nprefix = \"gw/\"\npath_style = true\naccess_key_id = %q\nsecret_access_key = %q\npart_size = \"5MiB\"\n",
			es.Endpoint, es.Bucket, es.AccessKeyID, secretExpr)
		if err := os.WriteFile(cfgFile, []byte(doc), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name     string
		secret   string
		wantCode int
		want     []string
	}{
		{
			name: "every probe passes with the right keys", secret: es.SecretAccessKey, wantCode: exitOK,
			want: []string{"✓ bucket davgw reachable", "✓ put gw/.davgw-check-", "✓ head", "✓ get", "✓ copy", "✓ multipart", "✓ delete"},
		},
		{
			name: "a wrong secret fails with a fix and is never printed", secret: "WrongSecret123", wantCode: exitRuntime,
			want: []string{"✗ bucket davgw reachable", "fix: check the keys"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			write(tt.secret)
			var out, errb bytes.Buffer
			code := run(t.Context(), []string{"check", "-config", cfgFile}, strings.NewReader(""), &out, &errb)
			if code != tt.wantCode {
				t.Fatalf("exit %d, want %d\n%s%s", code, tt.wantCode, out.String(), errb.String())
			}
			for _, w := range tt.want {
				if !strings.Contains(out.String(), w) {
					t.Errorf("output lacks %q:\n%s", w, out.String())
				}
			}
			if strings.Contains(out.String()+errb.String(), tt.secret) {
				t.Error("the secret was printed")
			}
		})
	}
	// The scratch keys are gone.
	if n := countKeys(t, es, "gw/"); n != 0 {
		t.Fatalf("%d scratch keys left under gw/", n)
	}
}

func countKeys(t *testing.T, es *embedded.Store, prefix string) int {
	t.Helper()
	out, err := es.Client().ListObjectsV2(t.Context(), listInput(es.Bucket, prefix))
	if err != nil {
		t.Fatal(err)
	}
	return len(out.Contents)
}

func listInput(bucket, prefix string) *s3.ListObjectsV2Input {
	return &s3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String(prefix)}
}
