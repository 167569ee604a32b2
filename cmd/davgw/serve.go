package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/davgw/davgw/auth"
	"github.com/davgw/davgw/config"
	"github.com/davgw/davgw/embedded"
	"github.com/davgw/davgw/gateway"
	"github.com/davgw/davgw/internal/redisstore"
	"github.com/davgw/davgw/locks"
	"github.com/davgw/davgw/s3vfs"
)

// Server timeouts. There is deliberately no ReadTimeout or WriteTimeout:
// they would cut long uploads and downloads.
const (
	readHeaderTimeout = 10 * time.Second
	idleTimeout       = 120 * time.Second
	shutdownTimeout   = 30 * time.Second
	checkBucketTime   = 30 * time.Second
)

// serveFlags are the flags of `davgw serve`.
type serveFlags struct {
	config    string
	listen    string
	logFormat string
}

func parseServeFlags(args []string, stderr io.Writer) (serveFlags, int, bool) {
	var f serveFlags
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.StringVar(&f.config, "config", "", "config file (default $DAVGW_CONFIG, else ./config.toml, else the embedded default)")
	fs.StringVar(&f.listen, "listen", "", "listen address host:port, overrides [server].listen (default 127.0.0.1:8080)")
	fs.StringVar(&f.logFormat, "log-format", "text", `log format on stderr: "text" or "json"`)
	code, ok := parseFlags(fs, args, stderr)
	if !ok {
		return f, code, false
	}
	if f.logFormat != "text" && f.logFormat != "json" {
		fmt.Fprintf(stderr, "davgw serve: -log-format must be \"text\" or \"json\"\n")
		return f, exitUsage, false
	}
	if f.listen != "" {
		if _, _, err := net.SplitHostPort(f.listen); err != nil {
			fmt.Fprintf(stderr, "davgw serve: -listen must be host:port, e.g. 127.0.0.1:8080 or :8080\n")
			return f, exitUsage, false
		}
	}
	return f, exitOK, true
}

func newLogger(format string, w io.Writer) *slog.Logger {
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, nil))
	}
	return slog.New(slog.NewTextHandler(w, nil))
}

// setup is what serve needs once the store and users are known.
type setup struct {
	store     *s3vfs.Store
	prefix    string
	stores    map[string]gateway.NamedStore // [s3.stores.NAME]
	davPrefix string
	auth      auth.Authenticator
	web       http.Handler // sign-in pages; nil without OIDC
	ready     func() error // readiness of the IdP; nil without OIDC
	realm     string
	publicURL string
	maxProp   int
	bodyIdle  time.Duration // 0 = the gateway's default
	uploads   gateway.UploadLimits
	requests  gateway.RequestLimits
	proxies   gateway.TrustedProxies // [server].trusted_proxies
	forwarded string                 // [server].forwarded_header
	apple     string
	quota     int64
	ln        net.Listener
	adminLn   net.Listener // [server].admin_listen; nil = none
	locks     *locks.Table // [locks].store with [limits]
	tlsCert   string
	tlsKey    string
	cleanup   func()
	// reload applies a changed config file (SIGHUP); nil for the
	// embedded default. Its gw is set once the gateway exists.
	reload *configReloader
}

func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	f, code, ok := parseServeFlags(args, stderr)
	if !ok {
		return code
	}
	// SIGHUP re-reads the TLS files and the config and never stops the
	// gateway: it is caught from the start, so that one sent while the
	// gateway starts (a bucket check or an IdP discovery can take seconds
	// with the port already bound) or shuts down does not kill it.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	log := newLogger(f.logFormat, stderr)
	path, source, err := findConfig(f.config, os.Getenv, fileExists)
	if err != nil {
		fmt.Fprintf(stderr, "davgw serve: %v\n", err)
		return exitUsage
	}

	var s *setup
	if path == "" {
		s, code = setupEmbedded(ctx, f.listen, log, stdout)
	} else {
		log.Info("config", "file", path, "from", source)
		s, code = setupFromConfig(ctx, path, f.listen, log, stderr)
	}
	if s == nil {
		return code
	}
	defer s.cleanup()

	var metrics *gateway.Metrics
	if s.adminLn != nil {
		metrics = gateway.NewMetrics()
	}
	gw, err := gateway.New(gateway.Options{
		Store:              s.store,
		Prefix:             s.prefix,
		Stores:             s.stores,
		DAVPrefix:          s.davPrefix,
		Auth:               s.auth,
		Realm:              s.realm,
		PublicURL:          s.publicURL,
		Logger:             log,
		MaxPropfindEntries: s.maxProp,
		BodyIdleTimeout:    s.bodyIdle,
		Uploads:            s.uploads,
		Requests:           s.requests,
		TrustedProxies:     s.proxies,
		ForwardedHeader:    s.forwarded,
		AppleFiles:         s.apple,
		QuotaBytes:         s.quota,
		Metrics:            metrics,
		Locks:              s.locks,
		Web:                s.web,
		Ready:              s.ready,
	})
	if err != nil {
		log.Error("gateway", "err", err)
		return exitRuntime
	}
	if s.adminLn != nil {
		defer serveAdmin(ctx, s.adminLn, gw.AdminHandler(), log)()
	}
	if s.reload != nil {
		s.reload.gw = gw
	}
	code = listenAndServe(ctx, s, gw, log, hup)
	// Requests are done: write the kept times still pending.
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
	defer cancel()
	if err := gw.Close(cctx); err != nil {
		log.Warn("shutdown", "err", err)
	}
	return code
}

// listenAndServe serves until ctx ends (SIGINT/SIGTERM), then shuts down
// gracefully.
func listenAndServe(ctx context.Context, s *setup, h http.Handler, log *slog.Logger, hup <-chan os.Signal) int {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: readHeaderTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    1 << 20,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	ln := s.ln
	scheme := "http"
	if s.tlsCert != "" {
		scheme = "https"
	}
	log.Info("listening", "url", scheme+"://"+ln.Addr().String()+s.davPrefix)
	if scheme == "http" && !isLoopback(ln.Addr()) {
		log.Warn("serving plain HTTP on a non-loopback address: Basic passwords cross the network in clear; set [server].tls_cert and tls_key or put a TLS proxy in front")
	}

	var certs *certReloader
	if s.tlsCert != "" {
		var err error
		if certs, err = newCertReloader(s.tlsCert, s.tlsKey, log); err != nil {
			log.Error("serve", "err", err)
			return exitRuntime
		}
		srv.TLSConfig = &tls.Config{GetCertificate: certs.GetCertificate, MinVersion: tls.VersionTLS12}
	}
	// SIGHUP (hup, caught since serve started) re-reads the TLS files at
	// once (they are also picked up by the first handshake a second after
	// they change) and the config file's reloadable parts.

	errc := make(chan error, 1)
	go func() {
		if certs != nil {
			errc <- srv.ServeTLS(ln, "", "")
		} else {
			errc <- srv.Serve(ln)
		}
	}()
wait:
	for {
		select {
		case err := <-errc:
			log.Error("serve", "err", err)
			return exitRuntime
		case <-hup:
			if certs != nil {
				certs.Reload()
			}
			if s.reload != nil {
				s.reload.reload()
			} else if certs == nil {
				log.Info("SIGHUP: the embedded default has no config file to re-read")
			}
		case <-ctx.Done():
			break wait
		}
	}
	log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		log.Warn("shutdown", "err", err)
		srv.Close()
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Error("serve", "err", err)
		return exitRuntime
	}
	return exitOK
}

func isLoopback(a net.Addr) bool {
	ta, ok := a.(*net.TCPAddr)
	return ok && ta.IP.IsLoopback()
}

// setupFromConfig loads and checks the config and builds the store and
// the users.
func setupFromConfig(ctx context.Context, path, listen string, log *slog.Logger, stderr io.Writer) (*setup, int) {
	cfg, ok := loadConfig(path, stderr)
	if !ok {
		return nil, exitUsage
	}
	if listen != "" {
		cfg.Server.Listen = listen
	}
	ln, err := net.Listen("tcp", cfg.Server.Listen)
	if err != nil {
		log.Error("listen", "addr", cfg.Server.Listen, "err", err)
		return nil, exitRuntime
	}
	ok = false
	defer func() {
		if !ok {
			ln.Close()
		}
	}()
	var adminLn net.Listener
	if cfg.Server.AdminListen != "" {
		if adminLn, err = net.Listen("tcp", cfg.Server.AdminListen); err != nil {
			log.Error("listen", "addr", cfg.Server.AdminListen, "err", err)
			return nil, exitRuntime
		}
		defer func() {
			if !ok {
				adminLn.Close()
			}
		}()
	}
	// Relative TLS paths are relative to the config file.
	tlsCert, tlsKey := cfg.Server.TLSCert, cfg.Server.TLSKey
	if tlsCert != "" && !filepath.IsAbs(tlsCert) {
		tlsCert = filepath.Join(filepath.Dir(path), tlsCert)
	}
	if tlsKey != "" && !filepath.IsAbs(tlsKey) {
		tlsKey = filepath.Join(filepath.Dir(path), tlsKey)
	}
	stores, err := openStores(ctx, cfg, log)
	if err != nil {
		log.Error("s3", "err", err)
		return nil, exitRuntime
	}
	store := stores[""].Store
	a, err := auth.NewStatic(staticUsers(cfg), cfg.Auth.Root)
	if err != nil {
		log.Error("auth", "err", err)
		return nil, exitUsage
	}
	a.LimitChecks(cfg.PasswordChecks())
	if len(cfg.Auth.Users) == 0 && cfg.Auth.OIDC.Issuer == "" {
		log.Warn("no [[auth.users]] in the config: nobody can sign in")
	}
	lockTable, shared, err := openShared(ctx, cfg.Locks.Store, stateScope(cfg), lockLimits(cfg), log)
	if err != nil {
		log.Error("locks", "err", err)
		return nil, exitUsage
	}
	closeShared := func() {
		_ = lockTable.Close()
		if shared != nil {
			_ = shared.Close()
		}
	}
	si, err := buildSignIn(ctx, cfg, store, a, shared, log)
	if err != nil {
		closeShared()
		log.Error("auth", "err", err)
		return nil, exitUsage
	}
	ok = true
	stopJanitor := startJanitors(ctx, cfg, stores, log)
	return &setup{
		locks:     lockTable,
		store:     store,
		prefix:    cfg.Prefix(),
		stores:    namedStores(stores),
		davPrefix: cfg.Server.DAVPrefix,
		auth:      si.auth,
		web:       si.web,
		ready:     si.ready,
		realm:     cfg.Auth.Realm,
		publicURL: cfg.Server.PublicURL,
		maxProp:   cfg.WebDAV.MaxPropfindEntries,
		bodyIdle:  cfg.BodyIdleTimeout(),
		uploads:   uploadLimits(cfg),
		requests:  requestLimits(cfg),
		proxies:   cfg.TrustedProxies(),
		forwarded: cfg.Server.ForwardedHeader,
		apple:     cfg.WebDAV.AppleFiles,
		quota:     cfg.QuotaBytes(),
		ln:        ln,
		adminLn:   adminLn,
		tlsCert:   tlsCert,
		tlsKey:    tlsKey,
		cleanup:   func() { stopJanitor(); closeShared() },
		reload: &configReloader{path: path, log: log, cfg: cfg, static: a, staticInChain: si.static,
			mapper: si.mapper, locks: lockTable},
	}, exitOK
}

// openStores builds the S3 client of every store ([s3] as "", each
// [s3.stores.NAME]) and checks each bucket (check_bucket). Stores whose
// settings differ only in the bucket share one client and one credential
// refresh (s3vfs.Store.ForBucket).
func openStores(ctx context.Context, cfg *config.Config, log *slog.Logger) (map[string]gateway.NamedStore, error) {
	out := map[string]gateway.NamedStore{}
	clients := map[s3vfs.Config]*s3vfs.Store{}
	for _, sc := range cfg.Stores() {
		c := sc.S3
		c.Logger = log
		shared := c
		shared.Bucket = ""
		store := clients[shared]
		if store == nil {
			var err error
			if store, err = s3vfs.New(ctx, c); err != nil {
				return nil, fmt.Errorf("store %s: %w", storeLabel(sc.Name), err)
			}
			clients[shared] = store
		}
		if store.Bucket() != c.Bucket {
			store = store.ForBucket(c.Bucket)
		}
		log.Info("s3", "store", storeLabel(sc.Name), "s3", sc.Describe, "credentials", store.CredentialSource(), "writes", store.ObjectOptions())
		if sc.CheckBucket {
			cctx, cancel := context.WithTimeout(ctx, checkBucketTime)
			err := store.CheckBucket(cctx)
			cancel()
			if err != nil {
				return nil, fmt.Errorf("store %s: the bucket is not reachable; run `davgw check` for details: %w", storeLabel(sc.Name), err)
			}
		}
		out[sc.Name] = gateway.NamedStore{Store: store, Prefix: sc.Prefix}
	}
	return out, nil
}

// namedStores are the stores other than the default one.
func namedStores(all map[string]gateway.NamedStore) map[string]gateway.NamedStore {
	out := make(map[string]gateway.NamedStore, len(all)-1)
	for name, s := range all {
		if name != "" {
			out[name] = s
		}
	}
	return out
}

// openShared opens [locks].store, the store gateways share: "memory"
// keeps locks and the sign-in state in this process (no client); a Redis
// URL gives one client for the lock table, the sign-in limits, browser
// sessions, pending sign-ins and app-password changes, its keys scoped by
// scope (stateScope). An unreachable Redis is only logged: what needs it
// answers 503 until it is back.
func openShared(ctx context.Context, store, scope string, limits locks.Limits, log *slog.Logger) (*locks.Table, *redisstore.Client, error) {
	if store == "" || store == "memory" {
		return locks.NewMemory(limits), nil, nil
	}
	c, err := redisstore.Open(store, scope)
	if err != nil {
		return nil, nil, err
	}
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := c.Ping(pctx); err != nil {
		log.Warn("the shared store is not reachable: LOCK, writes and new sign-ins answer 503 until it is", "store", redisstore.RedactURL(store), "err", err)
	} else {
		log.Info("shared store: locks and sign-in state in Redis", "store", redisstore.RedactURL(store), "scope", scope)
	}
	return locks.OnRedis(c.R, limits, log), c, nil
}

// stateScope is what the shared store's sign-in keys are scoped by: the
// bucket and [s3].prefix, so that deployments on other buckets can share
// one Redis without sharing sessions.
func stateScope(cfg *config.Config) string {
	return cfg.S3Config().Bucket + "/" + cfg.Prefix()
}

func staticUsers(cfg *config.Config) []auth.StaticUser {
	users := make([]auth.StaticUser, 0, len(cfg.Auth.Users))
	for _, u := range cfg.Auth.Users {
		users = append(users, auth.StaticUser{Name: u.Name, PasswordHash: u.PasswordHash, Root: u.Root})
	}
	return users
}

// setupEmbedded starts the embedded default: the in-process S3 store under
// ./davgw-data/ and the user "dev".
func setupEmbedded(ctx context.Context, listen string, log *slog.Logger, stdout io.Writer) (*setup, int) {
	if listen == "" {
		listen = config.DefaultListen
	}
	// Absolute before embedded.Start, which changes the working directory.
	dir, err := filepath.Abs(embedded.DefaultDir)
	if err != nil {
		log.Error("embedded", "err", err)
		return nil, exitRuntime
	}
	name, password, created, err := embedded.DevUser(dir)
	if err != nil {
		log.Error("embedded", "err", err)
		return nil, exitRuntime
	}
	hash, err := auth.HashPassword(password)
	if err != nil {
		log.Error("embedded", "err", err)
		return nil, exitRuntime
	}
	a, err := auth.NewStatic([]auth.StaticUser{{Name: name, PasswordHash: hash}}, config.DefaultRootTemplate)
	if err != nil {
		log.Error("embedded", "err", err)
		return nil, exitRuntime
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		log.Error("listen", "addr", listen, "err", err)
		return nil, exitRuntime
	}
	es, err := embedded.Start(ctx, dir)
	if err != nil {
		ln.Close()
		log.Error("embedded S3 store", "dir", dir, "err", err)
		return nil, exitRuntime
	}
	// Our own client, so that its idle connections can be closed before the
	// store stops: versitygw waits up to 10 s for open connections.
	hc := &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
	store, err := s3vfs.New(ctx, s3vfs.Config{
		HTTPClient:      hc,
		Endpoint:        es.Endpoint,
		Region:          es.Region,
		Bucket:          es.Bucket,
		PathStyle:       true,
		AccessKeyID:     es.AccessKeyID,
		SecretAccessKey: es.SecretAccessKey,
		Logger:          log,
	})
	if err != nil {
		ln.Close()
		es.Close()
		log.Error("embedded S3 store", "err", err)
		return nil, exitRuntime
	}
	log.Info("embedded default: no config file (-config, $DAVGW_CONFIG, ./config.toml), S3 store in process", "dir", dir, "s3", es.Endpoint)
	url := "http://" + displayHost(ln.Addr().String()) + config.DefaultDAVPrefix
	if created {
		fmt.Fprintf(stdout, "\ndavgw embedded default\n  WebDAV:   %s\n  user:     %s\n  password: %s\n  (shown only this once; kept in %s)\n\n",
			url, name, password, embedded.DevUserFile(dir))
	} else {
		fmt.Fprintf(stdout, "\ndavgw embedded default\n  WebDAV:   %s\n  user:     %s\n  password: in %s\n\n",
			url, name, embedded.DevUserFile(dir))
	}
	return &setup{
		store:     store,
		davPrefix: config.DefaultDAVPrefix,
		// The same chain as a config file's static users: rate limits on
		// failed sign-ins and audit lines (issue 10, F8).
		auth:    auth.NewChain(auth.ChainConfig{Static: a, Audit: log}),
		realm:   config.DefaultRealm,
		maxProp: config.DefaultMaxPropfindEntries,
		ln:      ln,
		cleanup: func() {
			hc.CloseIdleConnections()
			if err := es.Close(); err != nil {
				log.Warn("embedded S3 store: stop", "err", err)
			}
		},
	}, exitOK
}

// displayHost turns a listen address into one a user can open: an empty or
// unspecified host becomes 127.0.0.1.
func displayHost(listen string) string {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return listen
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

// uploadLimits is [limits]' upload keys (validated already; 0 = the
// default).
func uploadLimits(cfg *config.Config) gateway.UploadLimits {
	var l gateway.UploadLimits
	l.PerUser, l.PerAddress, l.MemoryPerUser, l.MemoryPerAddress = cfg.UploadLimits()
	return l
}

// requestLimits is [limits]' bounds of one request (validated already;
// 0 = the default).
func requestLimits(cfg *config.Config) gateway.RequestLimits {
	var l gateway.RequestLimits
	l.XMLDepth, l.XMLElements, l.Ranges = cfg.RequestLimits()
	return l
}

// lockLimits is [limits]' lock keys (validated already; 0 = the default).
func lockLimits(cfg *config.Config) locks.Limits {
	var l locks.Limits
	l.PerUser, l.OwnerBytes = cfg.LockLimits()
	return l
}
