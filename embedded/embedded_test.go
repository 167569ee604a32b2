package embedded

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// TestStartKeepsDataAcrossRestarts runs the store twice on one directory,
// one after the other in the same process (versitygw allows one gateway at
// a time, not one per process lifetime).
func TestStartKeepsDataAcrossRestarts(t *testing.T) {
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chdir(wd) }) // Start changes the working directory.
	dir := t.TempDir()
	ctx := t.Context()

	s, err := Start(ctx, dir)
	if err != nil {
		t.Fatalf("first Start: %v", err)
	}
	if !strings.HasPrefix(s.Endpoint, "http://127.0.0.1:") || s.Bucket != Bucket || s.AccessKeyID == "" || s.SecretAccessKey == "" {
		t.Fatalf("store = %+v", s)
	}
	firstKey := s.AccessKeyID
	_, err = s.Client().PutObject(ctx, &s3.PutObjectInput{
		Bucket: aws.String(s.Bucket), Key: aws.String("hello.txt"), Body: strings.NewReader("hello"),
	})
	if err != nil {
		t.Fatalf("PutObject: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}

	s2, err := Start(ctx, dir)
	if err != nil {
		t.Fatalf("second Start: %v", err)
	}
	defer s2.Close()
	if s2.AccessKeyID != firstKey {
		t.Fatal("the root keys changed between starts")
	}
	out, err := s2.Client().GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(s2.Bucket), Key: aws.String("hello.txt")})
	if err != nil {
		t.Fatalf("GetObject after restart: %v", err)
	}
	body, _ := io.ReadAll(out.Body)
	out.Body.Close()
	if string(body) != "hello" {
		t.Fatalf("body = %q", body)
	}
	fi, err := os.Stat(filepath.Join(dir, credentialsFile))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("credentials file: %v, mode %v", err, fi.Mode().Perm())
	}
}

func TestStartStopsWithTheContext(t *testing.T) {
	wd, _ := os.Getwd()
	t.Cleanup(func() { os.Chdir(wd) })
	ctx, cancel := context.WithCancel(t.Context())
	s, err := Start(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := s.Close(); err != nil {
		t.Fatalf("Close after cancel: %v", err)
	}
}

func TestDevUser(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name        string
		wantCreated bool
	}{
		{name: "the first call creates a password", wantCreated: true},
		{name: "a later call returns the same password without creating one", wantCreated: false},
	}
	var first string
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			name, pw, created, err := DevUser(dir)
			if err != nil {
				t.Fatal(err)
			}
			if name != DevUserName || len(pw) < 16 || created != tt.wantCreated {
				t.Fatalf("DevUser = %q, len %d, created %v", name, len(pw), created)
			}
			if first == "" {
				first = pw
			} else if pw != first {
				t.Fatal("password changed")
			}
			fi, err := os.Stat(DevUserFile(dir))
			if err != nil || fi.Mode().Perm() != 0o600 {
				t.Fatalf("dev user file: %v, mode %v", err, fi.Mode().Perm())
			}
		})
	}
	t.Run("a file readable by others is narrowed to 0600", func(t *testing.T) {
		if err := os.Chmod(DevUserFile(dir), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, _, _, err := DevUser(dir); err != nil {
			t.Fatal(err)
		}
		fi, _ := os.Stat(DevUserFile(dir))
		if fi.Mode().Perm() != 0o600 {
			t.Fatalf("mode = %v", fi.Mode().Perm())
		}
	})
}

func TestRandomStringUsesOnlyTheAlphabet(t *testing.T) {
	for _, alphabet := range []string{upperAlnum, alnum, passwordAlphabet, "ab"} {
		s := randomString(64, alphabet)
		if len(s) != 64 || strings.Trim(s, alphabet) != "" {
			t.Fatalf("randomString(64, %q) = %q", alphabet, s)
		}
	}
}
