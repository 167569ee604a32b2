package config

import (
	"errors"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

func env(vars map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := vars[k]; return v, ok }
}

func hash(t *testing.T) string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return string(h)
}

// problems returns the *Problem parts of err.
func problems(err error) []*Problem {
	var out []*Problem
	for _, e := range unjoin(err) {
		var p *Problem
		if errors.As(e, &p) {
			out = append(out, p)
		}
	}
	return out
}

const minimal = `
[s3]
endpoint = "http://127.0.0.1:7070"
bucket = "bkt"
`

func TestParseAcceptsEveryKeyOfTheSpec(t *testing.T) {
	doc := `
[server]
listen = "127.0.0.1:8080"
public_url = "http://127.0.0.1:8080"
dav_prefix = "/dav/"
tls_cert = ""
tls_key = ""
admin_listen = ""

[s3]
url = ""
endpoint = ""
region = "us-east-1"
bucket = "bucket"
prefix = ""
path_style = false
access_key_id = ""
secret_access_key = ""
session_token = ""
credentials = ""
imds_v1_fallback = false
imds_endpoint = ""
role_arn = ""
external_id = ""
role_session_name = "davgw"
role_duration = "1h"
sts_endpoint = ""
check_bucket = true
checksums = "when_required"
part_size = "16MiB"
upload_concurrency = 4
proxy = ""

[auth]
realm = "davgw"
root = "users/{username}/"

[auth.oidc]
issuer = ""
client_id = ""
client_secret = ""
audiences = []
username_claim = "preferred_username"
groups_claim = "groups"
password_grant = false
app_passwords = true

[[auth.users]]
name = "alice"
password_hash = "` + hash(t) + `"
root = ""

[webdav]
apple_files = "allow"
max_propfind_entries = 100000
quota_bytes = 0

[locks]
store = "memory"
`
	c, err := Parse([]byte(doc), env(nil))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if c.S3.Bucket != "bucket" || len(c.Auth.Users) != 1 || !c.CheckBucket() {
		t.Fatalf("config = %+v", c)
	}
}

func TestParseFillsDefaults(t *testing.T) {
	c, err := Parse([]byte(minimal), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	s := c.S3Config()
	tests := []struct {
		name      string
		got, want any
	}{
		{name: "listen defaults to loopback 8080", got: c.Server.Listen, want: DefaultListen},
		{name: "the dav prefix defaults to /dav/", got: c.Server.DAVPrefix, want: "/dav/"},
		{name: "the region defaults to us-east-1", got: s.Region, want: "us-east-1"},
		{name: "the part size defaults to 16 MiB", got: s.PartSize, want: int64(16 << 20)},
		{name: "upload concurrency defaults to 4", got: s.UploadConcurrency, want: 4},
		{name: "checksums default to when_required", got: s.Checksums, want: "when_required"},
		{name: "the root template defaults to users/{username}/", got: c.Auth.Root, want: DefaultRootTemplate},
		{name: "the bucket is checked by default", got: c.CheckBucket(), want: true},
		{name: "max propfind entries defaults to no cap", got: c.WebDAV.MaxPropfindEntries, want: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.got != tt.want {
				t.Fatalf("got %v, want %v", tt.got, tt.want)
			}
		})
	}
}

func TestParseReportsUnknownKeysWithTheirLine(t *testing.T) {
	doc := `[server]
listen = "127.0.0.1:8080"

[s3]
endpoint = "http://127.0.0.1:7070"
bucket = "bkt"
regoin = "eu-west-1"

[nonsense]
a = 1

[[auth.users]]
nmae = "bob"
`
	_, err := Parse([]byte(doc), env(nil))
	if err == nil {
		t.Fatal("Parse succeeded")
	}
	msg := err.Error()
	for _, want := range []string{
		`unknown key "s3.regoin" (line 7)`,
		`unknown key "nonsense" (line 9)`,
		`unknown key "auth.users.nmae" (line 13)`,
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("error lacks %q:\n%s", want, msg)
		}
	}
	if strings.Contains(msg, "nonsense.a") {
		t.Errorf("keys inside an unknown table are reported too:\n%s", msg)
	}
}

func TestValidateReportsEveryProblemAtOnce(t *testing.T) {
	doc := `
[server]
listen = "nonsense"
dav_prefix = "dav"
tls_cert = "cert.pem"

[s3]
region = "us east"
prefix = "/abs"
checksums = "always"
part_size = "1MiB"
upload_concurrency = 0
role_duration = "forever"

[auth]
realm = ""
root = "users/{name}/"

[[auth.users]]
name = "../root"
password_hash = "plain"

[webdav]
apple_files = "maybe"
max_propfind_entries = -1

[locks]
store = "etcd://x"
`
	_, err := Parse([]byte(doc), env(nil))
	if err == nil {
		t.Fatal("Parse succeeded")
	}
	got := map[string]bool{}
	for _, p := range problems(err) {
		got[p.Key] = true
	}
	for _, key := range []string{
		"server.listen", "server.dav_prefix", "server.tls_cert",
		"s3.region", "s3.bucket", "s3.prefix", "s3.checksums", "s3.part_size", "s3.upload_concurrency", "s3.role_duration",
		"auth.realm", "auth.root", "auth.users[0].name", "auth.users[0].password_hash",
		"webdav.apple_files", "webdav.max_propfind_entries", "locks.store",
	} {
		if !got[key] {
			t.Errorf("no problem reported for %s; got %v", key, err)
		}
	}
}

func TestValidateNamesPlannedFeatures(t *testing.T) {
	tests := []struct {
		name, doc, key string
	}{}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(minimal+"\n"+strings.Replace(tt.doc, "[s3]\n", "", 1)), env(nil))
			if tt.doc[:4] == "[s3]" {
				_, err = Parse([]byte(minimal+strings.TrimPrefix(tt.doc, "[s3]")), env(nil))
			}
			found := false
			for _, p := range problems(err) {
				if p.Key == tt.key && strings.Contains(p.Msg, "not supported yet") {
					found = true
				}
			}
			if !found {
				t.Fatalf("want %s: not supported yet; got %v", tt.key, err)
			}
		})
	}
	t.Run("a redis lock store is supported", func(t *testing.T) {
		for _, u := range []string{"redis://127.0.0.1:6379/0", "rediss://:s3cret@redis.example:6380/2", "redis://localhost:6379"} {
			c, err := Parse([]byte(minimal+"\n[locks]\nstore = \""+u+"\"\n"), env(nil))
			if err != nil || c.Locks.Store != u {
				t.Fatalf("%s: err = %v", u, err)
			}
		}
	})
	t.Run("a bad redis URL is refused without its password", func(t *testing.T) {
		_, err := Parse([]byte(minimal+"\n[locks]\nstore = \"redis://:s3cret@host:6379/x\"\n"), env(nil))
		if err == nil || strings.Contains(err.Error(), "s3cret") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("TLS files are supported", func(t *testing.T) {
		c, err := Parse([]byte("[server]\ntls_cert = \"c.pem\"\ntls_key = \"k.pem\"\n"+minimal), env(nil))
		if err != nil || !c.TLS() {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestEnvExpansion(t *testing.T) {
	doc := minimal + `access_key_id = "${AKID}"
secret_access_key = "${S3_SECRET}"
prefix = "gw-${STAGE}/"
`
	t.Run("set variables are expanded", func(t *testing.T) {
		c, err := Parse([]byte(doc), env(map[string]string{"AKID": "AK", "S3_SECRET": "s3cr3t", "STAGE": "prod"}))
		if err != nil {
			t.Fatal(err)
		}
		if c.S3.AccessKeyID != "AK" || c.S3.SecretAccessKey != "s3cr3t" || c.S3.Prefix != "gw-prod/" {
			t.Fatalf("s3 = %+v", c.S3)
		}
	})
	t.Run("an unset variable is an error naming the key and the variable", func(t *testing.T) {
		_, err := Parse([]byte(doc), env(map[string]string{"AKID": "AK", "STAGE": "x"}))
		if err == nil || !strings.Contains(err.Error(), "s3.secret_access_key: environment variable S3_SECRET is not set") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("a doubled dollar keeps a literal ${", func(t *testing.T) {
		got, err := expandString("a$${B}c", env(nil))
		if err != nil || got != "a${B}c" {
			t.Fatalf("got %q, %v", got, err)
		}
	})
	t.Run("variables inside user entries are expanded", func(t *testing.T) {
		c, err := Parse([]byte(minimal+"[[auth.users]]\nname = \"a\"\npassword_hash = \"${H}\"\n"), env(map[string]string{"H": hash(t)}))
		if err != nil || !strings.HasPrefix(c.Auth.Users[0].PasswordHash, "$2") {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestSecretsNeverAppearInErrors(t *testing.T) {
	const secret = "Sup3r/Secret+Value"
	tests := []struct {
		name string
		doc  string
		env  map[string]string
	}{
		{name: "a secret next to an invalid key is not quoted", doc: minimal + "secret_access_key = \"" + secret + "\"\nchecksums = \"bad\"\n"},
		{name: "a malformed URL is not quoted", doc: "[s3]\nurl = \"s3://AK:" + secret + "@\"\n"},
		{name: "a URL with an unencoded secret is not quoted", doc: "[s3]\nurl = \"s3://AK:" + secret + "@host/bucket/\"\n"},
		{name: "a TOML type error is not quoted", doc: "[s3]\nupload_concurrency = \"" + secret + "\"\n"},
		{name: "a TOML syntax error is not quoted", doc: "[s3]\nsecret_access_key = \"" + secret + "\n"},
		{name: "an expanded secret is not quoted", doc: minimal + "secret_access_key = \"${S}\"\nsession_token = \"x\"\n", env: map[string]string{"S": secret}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.doc), env(tt.env))
			if err == nil {
				t.Fatal("Parse succeeded")
			}
			if strings.Contains(err.Error(), secret) || strings.Contains(err.Error(), "Secret") {
				t.Fatalf("error leaks the secret: %v", err)
			}
		})
	}
}

func TestS3URLMergesUnderExplicitFields(t *testing.T) {
	doc := `[s3]
url = "s3+http://AK:se%2Fc%2Bre%40t%3A@minio.local:9000/bucket/some/prefix/"
`
	c, err := Parse([]byte(doc), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	s := c.S3Config()
	if s.Endpoint != "http://minio.local:9000" || s.Bucket != "bucket" || !s.PathStyle || s.AccessKeyID != "AK" || s.SecretAccessKey != "se/c+re@t:" {
		t.Fatalf("s3 = %+v", s)
	}
	if c.Prefix() != "some/prefix/" {
		t.Fatalf("prefix = %q", c.Prefix())
	}
	if strings.Contains(c.Describe(), "se/c") {
		t.Fatalf("Describe leaks the secret: %s", c.Describe())
	}

	c, err = Parse([]byte(doc+"bucket = \"other\"\npath_style = false\nendpoint = \"https://s3.example.com\"\n"), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	s = c.S3Config()
	if s.Bucket != "other" || s.PathStyle || s.Endpoint != "https://s3.example.com" || s.SecretAccessKey != "se/c+re@t:" {
		t.Fatalf("explicit fields did not win: %+v", s)
	}
}

func TestByteSize(t *testing.T) {
	tests := []struct {
		name    string
		in      ByteSize
		want    int64
		wantErr bool
	}{
		{name: "mebibytes parse", in: "16MiB", want: 16 << 20},
		{name: "kibibytes parse", in: "512KiB", want: 512 << 10},
		{name: "gibibytes parse", in: "1GiB", want: 1 << 30},
		{name: "a plain number is bytes", in: "1048576", want: 1 << 20},
		{name: "a space before the unit is allowed", in: "5 MiB", want: 5 << 20},
		{name: "decimal units are refused", in: "16MB", wantErr: true},
		{name: "negative sizes are refused", in: "-1", wantErr: true},
		{name: "fractions are refused", in: "1.5GiB", wantErr: true},
		{name: "an empty size is refused", in: "", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.in.Bytes()
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Fatalf("Bytes(%q) = %d, %v", tt.in, got, err)
			}
		})
	}
	t.Run("a TOML integer is accepted as bytes", func(t *testing.T) {
		c, err := Parse([]byte(minimal+"part_size = 8388608\n"), env(nil))
		if err != nil || c.S3Config().PartSize != 8<<20 {
			t.Fatalf("err = %v", err)
		}
	})
}
