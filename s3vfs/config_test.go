package s3vfs

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestConfigValidate(t *testing.T) {
	t.Run("a minimal config is valid", func(t *testing.T) {
		if err := (Config{Bucket: "bucket"}).Validate(); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("every problem is reported at once and no secret is printed", func(t *testing.T) {
		cfg := Config{
			Endpoint:          "ftp://user:hunter2@example.com",
			SecretAccessKey:   "sekrit-value",
			SessionToken:      "tok-value",
			Checksums:         "always",
			PartSize:          1 << 20,
			UploadConcurrency: -1,
		}
		err := cfg.Validate()
		if err == nil {
			t.Fatal("want an error")
		}
		msg := err.Error()
		fields := map[string]bool{}
		for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
			ce, ok := e.(*ConfigError)
			if !ok {
				t.Fatalf("%T %v is not a *ConfigError", e, e)
			}
			fields[ce.Field] = true
		}
		for _, want := range []string{"Bucket", "Endpoint", "AccessKeyID", "Checksums", "PartSize", "UploadConcurrency"} {
			if !fields[want] {
				t.Errorf("no problem for %s:\n%s", want, msg)
			}
		}
		for _, secret := range []string{"hunter2", "sekrit-value", "tok-value"} {
			if strings.Contains(msg, secret) {
				t.Errorf("message reveals %q:\n%s", secret, msg)
			}
		}
	})
	t.Run("a message names related fields as the caller asks", func(t *testing.T) {
		err := Config{Bucket: "bucket", AccessKeyID: "k"}.Validate()
		var ce *ConfigError
		if !errors.As(err, &ce) || ce.Field != "AccessKeyID" {
			t.Fatalf("got %v, want one *ConfigError for AccessKeyID", err)
		}
		if got := ce.Message(func(f string) string { return "<" + f + ">" }); got != "must be given together with <SecretAccessKey>" {
			t.Fatalf("Message = %q", got)
		}
		if got := ce.Error(); got != "s3vfs: config: AccessKeyID must be given together with SecretAccessKey" {
			t.Fatalf("Error = %q", got)
		}
	})
	t.Run("each setting is checked by one rule", func(t *testing.T) {
		for _, tt := range []struct {
			name  string
			cfg   Config
			field string
		}{
			{"a two-letter bucket", Config{Bucket: "ab"}, "Bucket"},
			{"a bucket with a backslash", Config{Bucket: `a\b`}, "Bucket"},
			{"an endpoint with a query", Config{Bucket: "bkt", Endpoint: "https://s3.example.com/?x=1"}, "Endpoint"},
			{"a provider without its endpoint", Config{Bucket: "bkt", Provider: ProviderB2}, "Endpoint"},
			{"an unknown provider", Config{Bucket: "bkt", Provider: "azure"}, "Provider"},
			{"a region with a backslash", Config{Bucket: "bkt", Region: `us\east`}, "Region"},
			{"a session token alone", Config{Bucket: "bkt", SessionToken: "t"}, "SessionToken"},
			{"static credentials without keys", Config{Bucket: "bkt", Credentials: CredentialsStatic}, "Credentials"},
			{"an unknown credential source", Config{Bucket: "bkt", Credentials: "env"}, "Credentials"},
			{"an IMDS endpoint with credentials", Config{Bucket: "bkt", IMDSEndpoint: "http://u:p@169.254.169.254"}, "IMDSEndpoint"},
			{"IMDSv1 with static keys", Config{Bucket: "bkt", AccessKeyID: "k", SecretAccessKey: "s", IMDSv1Fallback: true}, "IMDSEndpoint"},
			{"a role that is not an ARN", Config{Bucket: "bkt", RoleARN: "role"}, "RoleARN"},
			{"an external id without a role", Config{Bucket: "bkt", ExternalID: "x"}, "RoleARN"},
			{"a one-letter session name", Config{Bucket: "bkt", RoleSessionName: "x"}, "RoleSessionName"},
			{"a 13-hour session", Config{Bucket: "bkt", RoleDuration: 13 * time.Hour}, "RoleDuration"},
			{"an STS endpoint without a scheme", Config{Bucket: "bkt", RoleARN: "arn:aws:iam::1:role/r", STSEndpoint: "sts.example.com"}, "STSEndpoint"},
			{"a proxy of another scheme", Config{Bucket: "bkt", Proxy: "ftp://proxy:21"}, "Proxy"},
			{"65 parts at once", Config{Bucket: "bkt", UploadConcurrency: MaxUploadConcurrency + 1}, "UploadConcurrency"},
			{"an upload memory below one part", Config{Bucket: "bkt", PartSize: 8 * MiB, UploadMemory: 6 * MiB}, "UploadMemory"},
		} {
			t.Run(tt.name, func(t *testing.T) {
				err := tt.cfg.Validate()
				var ce *ConfigError
				if !errors.As(err, &ce) || ce.Field != tt.field || len(err.(interface{ Unwrap() []error }).Unwrap()) != 1 {
					t.Fatalf("got %v, want one problem of %s", err, tt.field)
				}
			})
		}
		ok := Config{Bucket: "bkt", UploadConcurrency: MaxUploadConcurrency, UploadMemory: DefaultPartSize, RoleSessionName: "ab",
			RoleDuration: MaxRoleDuration, Provider: ProviderGCS, Proxy: "socks5://127.0.0.1:1080"}
		if err := ok.Validate(); err != nil {
			t.Fatalf("the bounds themselves are refused: %v", err)
		}
	})
	t.Run("an endpoint with a bad scheme is refused", func(t *testing.T) {
		if err := (Config{Bucket: "bucket", Endpoint: "127.0.0.1:7070"}).Validate(); err == nil {
			t.Fatal("want an error")
		}
	})
}

func TestNewAppliesDefaults(t *testing.T) {
	s, err := New(context.Background(), Config{Bucket: "bucket", Endpoint: "http://127.0.0.1:1", PathStyle: true,
		AccessKeyID: "k", SecretAccessKey: "s"})
	if err != nil {
		t.Fatal(err)
	}
	if s.Bucket() != "bucket" || s.PartSize() != DefaultPartSize || s.UploadConcurrency() != DefaultUploadConcurrency {
		t.Fatalf("got bucket %q, part size %d, concurrency %d", s.Bucket(), s.PartSize(), s.UploadConcurrency())
	}
	if _, err := New(context.Background(), Config{}); err == nil {
		t.Fatal("New accepted an invalid config")
	}
	t.Run("a refused connection is unavailable and counted", func(t *testing.T) {
		outer, total := WithCallCounter(context.Background())
		ctx, n := WithCallCounter(outer)
		_, err := s.Head(ctx, "x")
		if !errors.Is(err, ErrUnavailable) {
			t.Fatalf("got %v", err)
		}
		if n.Load() < 1 || total.Load() != n.Load() {
			t.Fatalf("counted %d requests, %d in the enclosing counter", n.Load(), total.Load())
		}
	})
}

func TestPartSizeFor(t *testing.T) {
	tests := []struct {
		name      string
		size, min int64
		want      int64
	}{
		{"a small upload keeps the configured part size", 23 * MiB, 5 * MiB, 5 * MiB},
		{"100 GiB in 5 MiB parts needs 11 MiB parts", 100 * GiB, 5 * MiB, 11 * MiB},
		{"5 TiB fits in 10,000 parts", MaxObjectSize, 5 * MiB, 525 * MiB},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := partSizeFor(tt.size, tt.min)
			if got != tt.want {
				t.Fatalf("partSizeFor(%d, %d) = %d, want %d", tt.size, tt.min, got, tt.want)
			}
			if (tt.size+got-1)/got > MaxParts {
				t.Fatalf("%d parts", (tt.size+got-1)/got)
			}
		})
	}
}
