package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/davgw/davgw/auth"
)

// version and commit are set at build time with
// -ldflags "-X main.version=v1.2.3 -X main.commit=abc123"; when empty they
// come from the module build information.
var (
	version = ""
	commit  = ""
)

// buildVersion returns the version and commit of this binary.
func buildVersion() (v, c string) {
	v, c = version, commit
	info, ok := debug.ReadBuildInfo()
	if ok {
		if v == "" && info.Main.Version != "" {
			v = info.Main.Version
		}
		for _, s := range info.Settings {
			if s.Key == "vcs.revision" && c == "" {
				c = s.Value
			}
			if s.Key == "vcs.modified" && s.Value == "true" && c != "" && !strings.HasSuffix(c, "-dirty") {
				c += "-dirty"
			}
		}
	}
	if v == "" {
		v = "(devel)"
	}
	if c == "" {
		c = "unknown"
	}
	return v, c
}

func runVersion(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("version", flag.ContinueOnError)
	if code, ok := parseFlags(fs, args, stderr); !ok {
		return code
	}
	v, c := buildVersion()
	fmt.Fprintf(stdout, "davgw %s\ncommit %s\n%s %s/%s\n", v, c, runtime.Version(), runtime.GOOS, runtime.GOARCH)
	return exitOK
}

// runHashPassword reads one password line on stdin and prints its bcrypt
// hash for password_hash in [[auth.users]].
func runHashPassword(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("hash-password", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: davgw hash-password < file-with-one-password-line\n\nPrints a bcrypt hash for password_hash in [[auth.users]].")
	}
	if code, ok := parseFlags(fs, args, stderr); !ok {
		return code
	}
	pw, err := readPasswordLine(stdin)
	if err != nil {
		fmt.Fprintf(stderr, "davgw hash-password: %v\n", err)
		return exitUsage
	}
	h, err := auth.HashPassword(pw)
	if err != nil {
		fmt.Fprintf(stderr, "davgw hash-password: %v\n", err)
		return exitUsage
	}
	fmt.Fprintln(stdout, h)
	return exitOK
}

// readPasswordLine reads the first line of r without its line ending.
func readPasswordLine(r io.Reader) (string, error) {
	line, err := bufio.NewReader(io.LimitReader(r, 4096)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", err
	}
	line = strings.TrimRight(line, "\r\n")
	if line == "" {
		return "", errors.New("no password on stdin (give one line, e.g. `printf '%s\\n' \"$PW\" | davgw hash-password`)")
	}
	return line, nil
}
