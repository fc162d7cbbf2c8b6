package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/cofferhq/coffer/internal/config"
	"github.com/cofferhq/coffer/internal/server"
)

func runServe(e *env, fs *flag.FlagSet, args []string) int {
	cfg, err := config.Load(fs, args, e.getenv)
	if err != nil {
		return e.configFailed(err)
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(e.stderr, "coffer serve: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	log := newLogger(e.stderr, cfg)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// Once shutdown starts, restore the default signal handling so that a
	// second Ctrl-C ends a shutdown that hangs.
	context.AfterFunc(ctx, stop)

	log.Info("starting coffer", "version", version, "config", cfg)
	if err := server.Run(ctx, cfg, log); err != nil {
		log.Error("coffer stopped", "error", err)
		return 1
	}
	log.Info("coffer stopped")
	return 0
}

// newLogger returns the process logger: cfg's format and level, to w.
// cfg has been validated, so the level parses.
func newLogger(w io.Writer, cfg config.Config) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.LogLevel))
	opts := &slog.HandlerOptions{Level: level}
	if cfg.LogFormat == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}
