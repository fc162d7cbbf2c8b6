package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/cofferhq/coffer/internal/config"
	"github.com/cofferhq/coffer/internal/lifecycle/runner"
	"github.com/cofferhq/coffer/internal/metadata"
	"github.com/cofferhq/coffer/internal/server"
	"github.com/cofferhq/coffer/internal/storage"
)

const lifecycleAbout = `Lifecycle applies the repositories' lifecycle policies (PutLifecyclePolicy)
now: every image a policy expires is deleted with its tags, as
BatchDeleteImage would. It opens the metadata database and the blob store
directly, so it runs beside a live server; each expiry's audit event
(PolicyExecutionEvent) goes to the trail's spool, which the server appends
to the trail within a second (or at its next start).

  coffer lifecycle run [--dry-run] [--repository NAME]
      --dry-run prints what would expire and deletes nothing.
      --repository limits the run to one repository.`

func init() {
	commands = append(commands, command{
		name:     "lifecycle",
		synopsis: "run [--dry-run] [--repository NAME] [flags]",
		summary:  "apply the lifecycle policies now",
		about:    lifecycleAbout,
		config:   true,
		run:      runLifecycle,
	})
}

// dataStores are the metadata store and blob driver the configuration
// selects (SQLite and the filesystem in the data directory, or PostgreSQL
// and S3), opened without the server (no root key, no audit trail): what
// admin commands that work beside a live server need.
type dataStores struct {
	store  metadata.Store
	driver storage.Driver
}

func openDataStores(ctx context.Context, cfg config.Config) (*dataStores, error) {
	store, driver, err := server.OpenExisting(ctx, cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		return nil, err
	}
	return &dataStores{store: store, driver: driver}, nil
}

func runLifecycle(e *env, fset *flag.FlagSet, args []string) int {
	if len(args) == 0 || args[0] != "run" {
		if len(args) > 0 && strings.Contains("-h -help --help help", args[0]) {
			config.RegisterFlags(fset)
			fset.SetOutput(e.stdout)
			fset.Usage()
			return 0
		}
		fmt.Fprintln(e.stderr, "coffer lifecycle: name a subcommand: run")
		return 2
	}
	dry := fset.Bool("dry-run", false, "print what would expire; delete nothing")
	only := fset.String("repository", "", "apply only the policy of repository `NAME`")
	cfg, err := config.Load(fset, args[1:], e.getenv)
	if err != nil {
		return e.configFailed(err)
	}
	if fset.NArg() > 0 {
		fmt.Fprintf(e.stderr, "coffer lifecycle run: unexpected argument %q\n", fset.Arg(0))
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ds, err := openDataStores(ctx, cfg)
	if err != nil {
		fmt.Fprintf(e.stderr, "coffer lifecycle run: %v\n", err)
		return 1
	}
	defer ds.store.Close()
	rcfg := runner.Config{Store: ds.store, Driver: ds.driver}
	var unaudited *atomic.Int64
	if !*dry {
		// Every expiry is an audit event (PolicyExecutionEvent): spooled
		// for the server, which owns the trail, to append.
		if rcfg.OnExpire, unaudited, err = server.SpoolExpiries(ctx, cfg, ds.store, slog.New(slog.NewTextHandler(e.stderr, nil))); err != nil {
			fmt.Fprintf(e.stderr, "coffer lifecycle run: %v\n", err)
			return 1
		}
	}
	run := runner.New(rcfg)
	var reps []runner.Report
	if *only != "" {
		repo, err := ds.store.GetRepository(ctx, *only)
		if err != nil {
			fmt.Fprintf(e.stderr, "coffer lifecycle run: repository %s: %v\n", *only, err)
			return 1
		}
		rep, err := run.RunRepository(ctx, repo, *dry)
		if errors.Is(err, runner.ErrNoPolicy) {
			fmt.Fprintf(e.stderr, "coffer lifecycle run: repository %s has no lifecycle policy\n", *only)
			return 1
		}
		rep.Err = err
		reps = []runner.Report{rep}
	} else if reps, err = run.RunAll(ctx, *dry); err != nil {
		fmt.Fprintf(e.stderr, "coffer lifecycle run: %v\n", err)
		return 1
	}
	verb := "expired"
	if *dry {
		verb = "would expire"
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "REPOSITORY\tDIGEST\tTAGS\tPUSHED\tRULE\tSTATUS")
	total, failed := 0, false
	for _, rep := range reps {
		for _, c := range rep.Expired {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\n", rep.Repository, c.Image.Digest, orDash(strings.Join(c.Image.Tags, ",")),
				c.Image.PushedAt.UTC().Format(time.RFC3339), c.RulePriority, verb)
			total++
		}
		for _, c := range rep.Skipped {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\n", rep.Repository, c.Image.Digest, orDash(strings.Join(c.Image.Tags, ",")),
				c.Image.PushedAt.UTC().Format(time.RFC3339), c.RulePriority, "skipped (changed or referenced by an index)")
		}
	}
	tw.Flush()
	for _, rep := range reps {
		if rep.Err != nil {
			failed = true
			fmt.Fprintf(e.stderr, "coffer lifecycle run: %s: %v\n", rep.Repository, rep.Err)
		}
	}
	fmt.Fprintf(e.stdout, "%d images %s in %d repositories with a lifecycle policy\n", total, verb, len(reps))
	if unaudited != nil && unaudited.Load() > 0 {
		failed = true
		fmt.Fprintf(e.stderr, "coffer lifecycle run: %d expiries could not be recorded for the audit trail\n", unaudited.Load())
	}
	if failed {
		return 1
	}
	return 0
}
