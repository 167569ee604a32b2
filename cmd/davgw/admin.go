package main

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"time"
)

// adminTimeout bounds reading a request on the admin listener, and
// adminWriteTimeout writing its answer: a scrape or a probe is small, so a
// slow client is cut off; a CPU profile or trace takes the seconds it asks
// for (up to a minute).
const (
	adminTimeout      = 30 * time.Second
	adminWriteTimeout = 75 * time.Second
)

// serveAdmin serves h (/metrics, /healthz, /readyz, /debug/pprof/) on ln, the
// [server].admin_listen listener, until stop is called. It is a server of
// its own: nothing of it is reachable on the WebDAV listener.
func serveAdmin(ctx context.Context, ln net.Listener, h http.Handler, log *slog.Logger) (stop func()) {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       adminTimeout,
		WriteTimeout:      adminWriteTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    1 << 16,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	log.Info("admin listening", "url", "http://"+ln.Addr().String()+"/metrics")
	if !isLoopback(ln.Addr()) {
		log.Warn("the admin listener (/metrics) is not on loopback and has no authentication: keep it on a private network")
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("admin serve", "err", err)
		}
	}()
	return func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(sctx); err != nil {
			srv.Close()
		}
		<-done
	}
}
