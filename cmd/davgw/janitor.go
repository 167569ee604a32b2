package main

import (
	"context"
	"log/slog"

	"github.com/davgw/davgw/config"
	"github.com/davgw/davgw/s3vfs"
)

// startJanitor runs the janitor of abandoned multipart uploads under the
// configured prefix ([s3].abandoned_upload_age; "0" = off) and returns
// the function that stops it.
func startJanitor(ctx context.Context, store *s3vfs.Store, cfg *config.Config, log *slog.Logger) (stop func()) {
	age := cfg.AbandonedUploadAge()
	if age <= 0 {
		log.Info("janitor of abandoned multipart uploads: off ([s3].abandoned_upload_age = \"0\")")
		return func() {}
	}
	jctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		store.RunJanitor(jctx, s3vfs.JanitorOptions{Prefix: cfg.Prefix(), MaxAge: age, Logger: log})
	}()
	return func() {
		cancel()
		<-done
	}
}
