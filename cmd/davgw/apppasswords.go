package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"text/tabwriter"
	"time"

	"github.com/davgw/davgw/auth"
	"github.com/davgw/davgw/internal/redisstore"
	"github.com/davgw/davgw/s3vfs"
)

const appPasswordsUsage = `Usage:
  davgw app-passwords list   -user NAME [-config FILE]
  davgw app-passwords revoke -user NAME (-name NAME_OR_ID | -all) [-config FILE]

Lists or revokes a user's app passwords in the configured store
([auth.oidc].app_password_store): in the bucket, every gateway stops
accepting a revoked one at once when [locks].store is a Redis URL (the
shared store), else within 30 s.
`

// runAppPasswords is `davgw app-passwords list|revoke`.
func runAppPasswords(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || (args[0] != "list" && args[0] != "revoke") {
		fmt.Fprint(stderr, appPasswordsUsage)
		return exitUsage
	}
	sub := args[0]
	fs := flag.NewFlagSet("app-passwords "+sub, flag.ContinueOnError)
	flagConfig := fs.String("config", "", "config file (default $DAVGW_CONFIG, else ./config.toml)")
	user := fs.String("user", "", "user name (ignoring case)")
	name := fs.String("name", "", "revoke: the app passwords with this name or id")
	all := fs.Bool("all", false, "revoke: all of the user's app passwords")
	fs.Usage = func() { fmt.Fprint(stderr, appPasswordsUsage) }
	if code, ok := parseFlags(fs, args[1:], stderr); !ok {
		return code
	}
	switch {
	case *user == "":
		fmt.Fprintf(stderr, "davgw app-passwords %s: -user is required\n", sub)
		return exitUsage
	case sub == "list" && (*name != "" || *all):
		fmt.Fprintln(stderr, "davgw app-passwords list: -name and -all are for revoke")
		return exitUsage
	case sub == "revoke" && (*name == "") == !*all:
		fmt.Fprintln(stderr, "davgw app-passwords revoke: give exactly one of -name and -all")
		return exitUsage
	}
	path, _, err := findConfig(*flagConfig, os.Getenv, fileExists)
	if err != nil {
		fmt.Fprintf(stderr, "davgw app-passwords: %v\n", err)
		return exitUsage
	}
	if path == "" {
		fmt.Fprintf(stderr, "davgw app-passwords: no config file (-config, $%s or ./%s)\n", envConfig, defaultConfigFile)
		return exitUsage
	}
	cfg, ok := loadConfig(path, stderr)
	if !ok {
		return exitUsage
	}
	if cfg.Auth.OIDC.Issuer == "" {
		fmt.Fprintln(stderr, "davgw app-passwords: app passwords need [auth.oidc] (issuer is not set)")
		return exitUsage
	}
	var store *s3vfs.Store
	if cfg.Auth.OIDC.AppPasswordStore == "bucket" {
		if store, err = s3vfs.New(ctx, cfg.S3Config()); err != nil {
			fmt.Fprintf(stderr, "davgw app-passwords: S3: %v\n", err)
			return exitRuntime
		}
	}
	st, _, err := signInStores(cfg, store)
	if err != nil {
		fmt.Fprintf(stderr, "davgw app-passwords: %v\n", err)
		return exitRuntime
	}
	ap := auth.NewAppPasswords(st, 0)
	ap.SetMaxAge(cfg.AppPasswordMaxAge())
	if s := cfg.Locks.Store; s != "" && s != "memory" {
		shared, err := redisstore.Open(s, stateScope(cfg))
		if err != nil {
			fmt.Fprintf(stderr, "davgw app-passwords: %v\n", err)
			return exitUsage
		}
		defer shared.Close()
		ap.SharedIn(shared)
	}
	list, err := ap.List(ctx, *user)
	if err != nil {
		fmt.Fprintf(stderr, "davgw app-passwords: %v\n", err)
		return exitRuntime
	}
	if sub == "list" {
		printAppPasswords(stdout, list, time.Now())
		return exitOK
	}
	n := 0
	for _, p := range list {
		if !*all && p.Name != *name && p.ID != *name {
			continue
		}
		if err := ap.Revoke(ctx, *user, p.ID); err != nil {
			fmt.Fprintf(stderr, "davgw app-passwords: revoke %s: %v\n", p.ID, err)
			return exitRuntime
		}
		fmt.Fprintf(stdout, "revoked %s %q\n", p.ID, p.Name)
		n++
	}
	if n == 0 && !*all {
		fmt.Fprintf(stderr, "davgw app-passwords: %s has no app password named %q\n", *user, *name)
		return exitRuntime
	}
	fmt.Fprintf(stdout, "%d app password(s) of %s revoked\n", n, *user)
	return exitOK
}

func printAppPasswords(w io.Writer, list []auth.AppPassword, now time.Time) {
	if len(list) == 0 {
		fmt.Fprintln(w, "no app passwords")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tNAME\tCREATED\tLAST USED\tEXPIRES")
	day := func(t time.Time) string {
		if t.IsZero() {
			return "never"
		}
		return t.UTC().Format("2006-01-02 15:04Z")
	}
	for _, p := range list {
		exp := day(p.Expires)
		if !p.Expires.IsZero() && !now.Before(p.Expires) {
			exp += " (expired)"
		}
		fmt.Fprintf(tw, "%s\t%q\t%s\t%s\t%s\n", p.ID, p.Name, day(p.Created), day(p.LastUsed), exp)
	}
	tw.Flush()
}
