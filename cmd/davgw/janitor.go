package main

import (
	"context"
	"log/slog"
	"time"

	"github.com/davgw/davgw/config"
	"github.com/davgw/davgw/gateway"
	"github.com/davgw/davgw/s3vfs"
)

// startJanitors runs the janitor of abandoned multipart uploads of every
// store (see startJanitor; a store with bucket = "*" sweeps each bucket it
// lists) and returns the function that stops them all.
func startJanitors(ctx context.Context, cfg *config.Config, stores map[string]gateway.NamedStore, log *slog.Logger) (stop func()) {
	var stops []func()
	for _, sc := range cfg.Stores() {
		stops = append(stops, startJanitor(ctx, stores[sc.Name].Store, sc.Prefix, sc.AbandonedUploadAge,
			log.With("store", storeLabel(sc.Name))))
	}
	return func() {
		for _, s := range stops {
			s()
		}
	}
}

// startJanitor runs the janitor of abandoned multipart uploads under
// prefix of store (abandoned_upload_age; "0" = off) and returns the
// function that stops it.
func startJanitor(ctx context.Context, store *s3vfs.Store, prefix string, age time.Duration, log *slog.Logger) (stop func()) {
	if age <= 0 {
		log.Info("janitor of abandoned multipart uploads: off (abandoned_upload_age = \"0\")")
		return func() {}
	}
	jctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		store.RunJanitor(jctx, s3vfs.JanitorOptions{Prefix: prefix, MaxAge: age, Logger: log})
	}()
	return func() {
		cancel()
		<-done
	}
}
