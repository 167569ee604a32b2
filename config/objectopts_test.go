package config

import (
	"encoding/base64"
	"strings"
	"testing"
)

func TestObjectOptionKeys(t *testing.T) {
	key := base64.StdEncoding.EncodeToString([]byte("0123456789abcdef-davgw-test-key!"))
	t.Run("the keys reach the store's config, the SSE-C key through ${ENV}", func(t *testing.T) {
		c, err := Parse([]byte(minimal+"sse_c_key = \"${SSE_C}\"\nstorage_class = \"STANDARD_IA\"\nacl = \"bucket-owner-full-control\"\n"),
			env(map[string]string{"SSE_C": key}))
		if err != nil {
			t.Fatal(err)
		}
		got := c.S3Config()
		if got.SSECustomerKey != key || got.StorageClass != "STANDARD_IA" || got.ACL != "bucket-owner-full-control" || got.SSE != "" {
			t.Fatalf("S3Config = SSE %q, class %q, ACL %q, key given: %v", got.SSE, got.StorageClass, got.ACL, got.SSECustomerKey == key)
		}
	})
	t.Run("sse and sse_kms_key_id reach the store's config", func(t *testing.T) {
		c, err := Parse([]byte(minimal+"sse = \"aws:kms\"\nsse_kms_key_id = \"alias/davgw\"\n"), env(nil))
		if err != nil {
			t.Fatal(err)
		}
		if got := c.S3Config(); got.SSE != "aws:kms" || got.SSEKMSKeyID != "alias/davgw" {
			t.Fatalf("S3Config = SSE %q key %q", got.SSE, got.SSEKMSKeyID)
		}
	})
	t.Run("each problem names its key and never quotes the SSE-C key", func(t *testing.T) {
		doc := `
[s3]
endpoint = "http://s3.example.com"
bucket = "b"
sse = "AES256"
sse_kms_key_id = "alias/x"
sse_c_key = "` + key + `"
sse_c_key_file = "/etc/davgw/sse-c.key"
storage_class = "DEEP_ARCHIVE"
acl = "everyone"
`
		_, err := Parse([]byte(doc), env(nil))
		want := map[string]string{
			"s3.sse_kms_key_id": `needs sse = "aws:kms"`,
			"s3.sse":            "cannot be combined with an SSE-C key (sse_c_key or sse_c_key_file)",
			"s3.sse_c_key":      "and sse_c_key_file are two ways",
			"s3.endpoint":       "must be https:// with an SSE-C key",
			"s3.storage_class":  "unreadable until they are restored",
			"s3.acl":            "must be a canned ACL",
		}
		got := map[string]string{}
		for _, p := range problems(err) {
			got[p.Key] += p.Msg
		}
		for k, w := range want {
			if !strings.Contains(got[k], w) {
				t.Errorf("%s: got %q, want %q", k, got[k], w)
			}
		}
		if strings.Contains(err.Error(), key) {
			t.Errorf("the error quotes the SSE-C key: %v", err)
		}
	})
}
