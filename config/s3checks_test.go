package config

import (
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/davgw/davgw/s3vfs"
)

// TestEachBadS3SettingNamesItsKey: s3vfs checks the [s3] settings (one rule
// each), and every problem it finds reaches the user under the TOML key,
// with the other settings it mentions named as keys too, never as Go
// fields.
func TestEachBadS3SettingNamesItsKey(t *testing.T) {
	goName := regexp.MustCompile(`\b(AccessKeyID|SecretAccessKey|SessionToken|IMDSEndpoint|IMDSv1Fallback|RoleARN|ExternalID|STSEndpoint|PartSize|Provider|Credentials|Endpoint)\b`)
	tests := []struct {
		name, doc, key, says string
	}{
		{"a two-letter bucket", `bucket = "ab"`, "s3.bucket", "3 to 255 characters"},
		{"a bucket with a space", `bucket = "a b c"`, "s3.bucket", "not a bucket name"},
		{"an endpoint without a scheme", `endpoint = "s3.example.com"`, "s3.endpoint", "http:// or https://"},
		{"an endpoint with a query", `endpoint = "https://s3.example.com/?a=b"`, "s3.endpoint", "query"},
		{"a region with a space", `region = "us east"`, "s3.region", "region name"},
		{"a key without its secret", `access_key_id = "K"`, "s3.access_key_id", "together with secret_access_key"},
		{"a session token alone", `session_token = "T"`, "s3.session_token", "needs access_key_id and secret_access_key"},
		{"static credentials without keys", `credentials = "static"`, "s3.credentials", "needs access_key_id"},
		{"an unknown credential source", `credentials = "env"`, "s3.credentials", `"iam_lookup"`},
		{"an IMDS endpoint that is not a URL", `imds_endpoint = "169.254.169.254"`, "s3.imds_endpoint", "http://"},
		{"IMDSv1 with static keys", "access_key_id = \"K\"\nsecret_access_key = \"S\"\nimds_v1_fallback = true", "s3.imds_endpoint", "imds_endpoint and imds_v1_fallback apply only"},
		{"a role that is not an ARN", `role_arn = "admin"`, "s3.role_arn", "ARN"},
		{"an STS endpoint without a role", `sts_endpoint = "https://sts.example.com"`, "s3.role_arn", "external_id and sts_endpoint"},
		{"a one-letter session name", "role_arn = \"arn:aws:iam::1:role/r\"\nrole_session_name = \"x\"", "s3.role_session_name", "2 to 64"},
		{"a 13-hour role session", "role_arn = \"arn:aws:iam::1:role/r\"\nrole_duration = \"13h\"", "s3.role_duration", "between 15m and 12h"},
		{"an STS endpoint without a scheme", "role_arn = \"arn:aws:iam::1:role/r\"\nsts_endpoint = \"sts.example.com\"", "s3.sts_endpoint", "http://"},
		{"an unknown provider", `provider = "azure"`, "s3.provider", `"minio"`},
		{"a provider without its endpoint", `provider = "ceph"`, "s3.endpoint", `provider "ceph"`},
		{"an FTP proxy", `proxy = "ftp://proxy:21"`, "s3.proxy", "socks5://"},
		{"an unknown checksum mode", `checksums = "always"`, "s3.checksums", `"when_supported"`},
		{"a 1 MiB part", `part_size = "1MiB"`, "s3.part_size", "between 5MiB and 5GiB"},
		{"a part size that is no size", `part_size = "big"`, "s3.part_size", "not a size"},
		{"65 parts at once", `upload_concurrency = 65`, "s3.upload_concurrency", "between 1 and 64"},
		{"no parts at once", `upload_concurrency = 0`, "s3.upload_concurrency", "between 1 and 64"},
		{"upload memory below one part", "part_size = \"64MiB\"\nupload_memory = \"32MiB\"", "s3.upload_memory", "at least part_size"},
		{"an iam_lookup key with a real secret", "access_key_id = \"iam_lookup\"\nsecret_access_key = \"x\"", "s3.secret_access_key", `"lookup"`},
		{"a bad s3.url", `url = "http://host/bkt/"`, "s3.url", "s3://"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc := "[s3]\n" + tt.doc + "\n"
			if !strings.Contains(tt.doc, "bucket =") && !strings.Contains(tt.doc, "url =") {
				doc += "bucket = \"bkt\"\n"
			}
			_, err := Parse([]byte(doc), env(nil))
			ps := problems(err)
			if len(ps) != 1 || len(unjoin(err)) != 1 {
				t.Fatalf("want one problem, got %v", err)
			}
			p := ps[0]
			if p.Key != tt.key || !strings.HasPrefix(p.Error(), tt.key+": ") || !strings.Contains(p.Msg, tt.says) {
				t.Fatalf("got %q, want %s: ...%s...", p.Error(), tt.key, tt.says)
			}
			if m := goName.FindString(p.Msg); m != "" {
				t.Fatalf("%q names the Go field %s, not its key", p.Error(), m)
			}
		})
	}
}

// TestEveryS3vfsFieldHasAKey: the fields s3vfs can report are keys of [s3]
// under the same names, so that no problem is reported without its key.
func TestEveryS3vfsFieldHasAKey(t *testing.T) {
	ty := reflect.TypeFor[s3vfs.Config]()
	for i := range ty.NumField() {
		f := ty.Field(i).Name
		switch f {
		case "PathStyleSet", "HTTPClient", "Logger": // not settings of the file
			continue
		}
		if k := s3Key("s3", f); k == "s3" || k == "s3." {
			t.Errorf("s3vfs.Config.%s has no [s3] key", f)
		}
	}
}

// TestDefaultsComeFromTheirPackages: Default writes the defaults that
// gateway, s3vfs and auth apply, and Parse reads them back as the same
// values.
func TestDefaultsComeFromTheirPackages(t *testing.T) {
	d := Default()
	if d.S3.PartSize != "16MiB" || d.S3.RoleDuration != "1h" || d.S3.AbandonedUploadAge != "24h" || d.Auth.OIDC.AppPasswordMaxAge != "2160h" || d.Server.BodyIdleTimeout != "1m" {
		t.Fatalf("defaults as text: %q %q %q %q %q", d.S3.PartSize, d.S3.RoleDuration, d.S3.AbandonedUploadAge, d.Auth.OIDC.AppPasswordMaxAge, d.Server.BodyIdleTimeout)
	}
	c, err := Parse([]byte(minimal), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	s := c.S3Config()
	if s.PartSize != s3vfs.DefaultPartSize || s.UploadConcurrency != s3vfs.DefaultUploadConcurrency || c.RoleDuration() != s3vfs.DefaultRoleDuration ||
		c.AbandonedUploadAge() != s3vfs.DefaultAbandonedUploadAge || c.BodyIdleTimeout().String() != "1m0s" || c.QuotaBytes() != 0 {
		t.Fatalf("parsed defaults: %+v, role %v, janitor %v, idle %v, quota %d", s, c.RoleDuration(), c.AbandonedUploadAge(), c.BodyIdleTimeout(), c.QuotaBytes())
	}
	for n, want := range map[int64]ByteSize{1 << 30: "1GiB", 5 << 20: "5MiB", 1536: "1536", 3 << 10: "3KiB", 0: "0"} {
		if got := sizeText(n); got != want {
			t.Errorf("sizeText(%d) = %q, want %q", n, got, want)
		}
	}
}

// TestQuotaBytesIsParsedOnce: a bad quota is a problem of its key, a good
// one the value the gateway gets.
func TestQuotaBytesIsParsedOnce(t *testing.T) {
	c, err := Parse([]byte(minimal+"\n[webdav]\nquota_bytes = \"2GiB\"\n"), env(nil))
	if err != nil || c.QuotaBytes() != 2<<30 {
		t.Fatalf("err = %v, quota = %d", err, c.QuotaBytes())
	}
	_, err = Parse([]byte(minimal+"\n[webdav]\nquota_bytes = \"2GB\"\n"), env(nil))
	if ps := problems(err); len(ps) != 1 || ps[0].Key != "webdav.quota_bytes" {
		t.Fatalf("err = %v", err)
	}
}
