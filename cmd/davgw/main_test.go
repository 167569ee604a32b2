package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

func TestRunExitCodes(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.toml")
	if err := os.WriteFile(bad, []byte("[s3]\nregoin = \"x\"\nchecksums = \"no\"\nsecret_access_key = \"TopSecret1\"\naccess_key_id = \"AK\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		args     []string
		stdin    string
		wantCode int
		wantOut  string
		wantErr  []string
		notInOut string
	}{
		{name: "no command is a usage error", args: nil, wantCode: exitUsage, wantErr: []string{"Usage:"}},
		{name: "an unknown command is a usage error", args: []string{"frobnicate"}, wantCode: exitUsage, wantErr: []string{`unknown command "frobnicate"`}},
		{name: "help prints the usage and succeeds", args: []string{"help"}, wantCode: exitOK, wantOut: "davgw serve"},
		{name: "version prints version, commit and Go version", args: []string{"version"}, wantCode: exitOK, wantOut: "commit "},
		{name: "version refuses extra arguments", args: []string{"version", "x"}, wantCode: exitUsage},
		{name: "an unknown flag is a usage error", args: []string{"serve", "-nope"}, wantCode: exitUsage},
		{name: "a bad -listen is a usage error", args: []string{"serve", "-listen", "8080"}, wantCode: exitUsage, wantErr: []string{"-listen"}},
		{name: "a bad -log-format is a usage error", args: []string{"serve", "-log-format", "xml"}, wantCode: exitUsage},
		{name: "a missing -config file is a usage error", args: []string{"check", "-config", filepath.Join(dir, "nope.toml")}, wantCode: exitUsage, wantErr: []string{"does not exist"}},
		{
			name: "check lists every config problem, names each key and hides secrets", args: []string{"check", "-config", bad},
			wantCode: exitUsage, wantErr: []string{`unknown key "s3.regoin" (line 2)`, "s3.checksums", "s3.bucket"}, notInOut: "TopSecret1",
		},
		{
			name: "serve refuses a bad config with every problem", args: []string{"serve", "-config", bad},
			wantCode: exitUsage, wantErr: []string{`unknown key "s3.regoin"`, "s3.checksums"}, notInOut: "TopSecret1",
		},
		{name: "hash-password hashes one line of stdin", args: []string{"hash-password"}, stdin: "pw\nignored\n", wantCode: exitOK, wantOut: "$2a$"},
		{name: "hash-password refuses empty stdin", args: []string{"hash-password"}, stdin: "", wantCode: exitUsage},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := run(t.Context(), tt.args, strings.NewReader(tt.stdin), &out, &errb)
			if code != tt.wantCode {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tt.wantCode, out.String(), errb.String())
			}
			if !strings.Contains(out.String(), tt.wantOut) {
				t.Errorf("stdout lacks %q: %s", tt.wantOut, out.String())
			}
			for _, w := range tt.wantErr {
				if !strings.Contains(errb.String(), w) {
					t.Errorf("stderr lacks %q: %s", w, errb.String())
				}
			}
			if tt.notInOut != "" && strings.Contains(out.String()+errb.String(), tt.notInOut) {
				t.Errorf("output leaks %q", tt.notInOut)
			}
		})
	}
}

func TestHashPasswordOutputVerifies(t *testing.T) {
	var out bytes.Buffer
	if code := run(t.Context(), []string{"hash-password"}, strings.NewReader("s3cret\r\n"), &out, &bytes.Buffer{}); code != exitOK {
		t.Fatalf("exit %d", code)
	}
	if err := bcrypt.CompareHashAndPassword([]byte(strings.TrimSpace(out.String())), []byte("s3cret")); err != nil {
		t.Fatalf("hash does not verify the password without its CRLF: %v", err)
	}
}

func TestFindConfig(t *testing.T) {
	files := map[string]bool{"config.toml": true, "/etc/davgw/config.toml": true, "flag.toml": true}
	exists := func(p string) bool { return files[p] }
	tests := []struct {
		name, flag, env string
		noLocal         bool
		want, source    string
		wantErr         bool
	}{
		{name: "the -config flag wins over everything", flag: "flag.toml", env: "/etc/davgw/config.toml", want: "flag.toml", source: "-config"},
		{name: "DAVGW_CONFIG comes next", env: "/etc/davgw/config.toml", want: "/etc/davgw/config.toml", source: "$DAVGW_CONFIG"},
		{name: "./config.toml comes last", want: "config.toml", source: "./config.toml"},
		{name: "no file at all means the embedded default", noLocal: true, want: "", source: ""},
		{name: "a -config file that does not exist is an error", flag: "missing.toml", wantErr: true},
		{name: "a DAVGW_CONFIG file that does not exist is an error", env: "/missing.toml", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ex := exists
			if tt.noLocal {
				ex = func(string) bool { return false }
			}
			getenv := func(k string) string {
				if k == envConfig {
					return tt.env
				}
				return ""
			}
			path, source, err := findConfig(tt.flag, getenv, ex)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v", err)
			}
			if tt.wantErr {
				return
			}
			if tt.want != "" {
				abs, _ := filepath.Abs(tt.want)
				if path != abs || source != tt.source {
					t.Fatalf("got %q from %q, want %q from %q", path, source, abs, tt.source)
				}
			} else if path != "" {
				t.Fatalf("got %q, want the embedded default", path)
			}
		})
	}
}

func TestDisplayHost(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{name: "a loopback address is kept", in: "127.0.0.1:8080", want: "127.0.0.1:8080"},
		{name: "an empty host becomes loopback", in: ":8080", want: "127.0.0.1:8080"},
		{name: "the unspecified address becomes loopback", in: "0.0.0.0:8080", want: "127.0.0.1:8080"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := displayHost(tt.in); got != tt.want {
				t.Fatalf("displayHost(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}
