// Command davgw is a WebDAV gateway over S3.
//
//	davgw serve [-config FILE] [-listen ADDR] [-log-format text|json]
//	davgw check [-config FILE]
//	davgw hash-password < password
//	davgw app-passwords list|revoke -user NAME [-name N | -all] [-config FILE]
//	davgw version
//
// Exit codes: 0 ok, 1 runtime failure, 2 bad config or usage.
//
// The config file is -config, else $DAVGW_CONFIG, else ./config.toml; with
// none of them, serve starts the embedded default (an in-process S3 store
// under ./davgw-data/ and one user "dev"). Secrets from the config are never
// printed.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/davgw/davgw/config"
)

// Exit codes.
const (
	exitOK      = 0
	exitRuntime = 1
	exitUsage   = 2
)

// envConfig names the environment variable that points at the config file.
const envConfig = "DAVGW_CONFIG"

// defaultConfigFile is looked for in the working directory.
const defaultConfigFile = "config.toml"

const usage = `davgw: a WebDAV gateway over S3

Usage:
  davgw serve [-config FILE] [-listen ADDR] [-log-format text|json]
  davgw check [-config FILE]
  davgw hash-password          (reads one password line on stdin)
  davgw app-passwords list|revoke -user NAME [-name N | -all] [-config FILE]
  davgw version

The config file is -config, else $DAVGW_CONFIG, else ./config.toml. Without
any, "serve" starts the embedded default: an S3 store in ./davgw-data/ and
WebDAV on http://127.0.0.1:8080/dav/ for the user "dev".

Exit codes: 0 ok, 1 runtime failure, 2 bad config or usage.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run dispatches a subcommand and returns the exit code.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "serve":
		return runServe(ctx, rest, stdout, stderr)
	case "check":
		return runCheck(ctx, rest, stdout, stderr)
	case "hash-password":
		return runHashPassword(rest, stdin, stdout, stderr)
	case "app-passwords":
		return runAppPasswords(ctx, rest, stdout, stderr)
	case "version", "-version", "--version":
		return runVersion(rest, stdout, stderr)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return exitOK
	default:
		fmt.Fprintf(stderr, "davgw: unknown command %q\n\n%s", cmd, usage)
		return exitUsage
	}
}

// parseFlags parses a subcommand's flags. It returns ok == false with the
// exit code when the command should stop (help, or a usage error).
func parseFlags(fs *flag.FlagSet, args []string, stderr io.Writer) (code int, ok bool) {
	fs.SetOutput(stderr)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK, false
		}
		return exitUsage, false
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "davgw %s: unexpected argument %q\n", fs.Name(), fs.Arg(0))
		fs.Usage()
		return exitUsage, false
	}
	return exitOK, true
}

// findConfig returns the config file to use and how it was found, or ""
// when there is none (the embedded default). An explicit -config or
// $DAVGW_CONFIG that does not exist is an error: the user asked for it.
func findConfig(flagPath string, getenv func(string) string, exists func(string) bool) (path, source string, err error) {
	switch {
	case flagPath != "":
		path, source = flagPath, "-config"
	case getenv(envConfig) != "":
		path, source = getenv(envConfig), "$"+envConfig
	case exists(defaultConfigFile):
		path, source = defaultConfigFile, "./"+defaultConfigFile
	default:
		return "", "", nil
	}
	if !exists(path) {
		return "", "", fmt.Errorf("config file %s (from %s) does not exist", path, source)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", "", err
	}
	return abs, source, nil
}

func fileExists(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && !fi.IsDir()
}

// loadConfig reads the config file and prints every problem on stderr.
// ok is false when the caller should exit with exitUsage.
func loadConfig(path string, stderr io.Writer) (*config.Config, bool) {
	cfg, err := config.LoadFile(path)
	if err != nil {
		printConfigError(stderr, path, err)
		return nil, false
	}
	return cfg, true
}

// printConfigError prints one problem per line.
func printConfigError(w io.Writer, path string, err error) {
	fmt.Fprintf(w, "davgw: config %s:\n", path)
	var errs []error
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	} else {
		errs = []error{err}
	}
	for _, e := range errs {
		for _, line := range strings.Split(e.Error(), "\n") {
			fmt.Fprintf(w, "  - %s\n", line)
		}
	}
}
