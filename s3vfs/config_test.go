package s3vfs

import (
	"context"
	"errors"
	"strings"
	"testing"
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
		for _, want := range []string{"bucket is required", "user information", "given together", "checksums", "part size", "upload concurrency"} {
			if !strings.Contains(msg, want) {
				t.Errorf("message lacks %q:\n%s", want, msg)
			}
		}
		for _, secret := range []string{"hunter2", "sekrit-value", "tok-value"} {
			if strings.Contains(msg, secret) {
				t.Errorf("message reveals %q:\n%s", secret, msg)
			}
		}
		if n := len(err.(interface{ Unwrap() []error }).Unwrap()); n < 6 {
			t.Errorf("got %d joined errors, want at least 6", n)
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
