package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/cofferhq/coffer/internal/config"
	"github.com/cofferhq/coffer/internal/fsck"
	"github.com/cofferhq/coffer/internal/gc"
	"github.com/cofferhq/coffer/internal/server"
)

const fsckAbout = `Fsck checks that the metadata and the blob storage agree: objects a row
names that are missing, orphaned objects no row names (older than --grace),
and objects that fail to decrypt: every manifest and every blob a manifest
references is read whole through the envelope, which authenticates it and
its digest (--quick checks existence only). It reads the same configuration
as serve (--data, --config, the store settings, --region) and runs beside a
live server. It changes nothing unless --repair, which deletes the orphans
it reports. Exit status: 0 clean, 1 problems found (or the check failed),
2 bad usage.`

func init() {
	commands = append(commands, command{
		name:     "fsck",
		synopsis: "[--quick] [--repair] [--grace D] [flags]",
		summary:  "check that metadata and blob storage agree",
		about:    fsckAbout,
		config:   true,
		run:      runFsck,
	})
}

func runFsck(e *env, fset *flag.FlagSet, args []string) int {
	quick := fset.Bool("quick", false, "check that objects exist; do not read them")
	repair := fset.Bool("repair", false, "delete the orphaned objects found")
	grace := fset.Duration("grace", gc.DefaultGrace, "unreferenced objects younger than `D` may be a push in flight: not orphans")
	cfg, err := config.Load(fset, args, e.getenv)
	if err != nil {
		return e.configFailed(err)
	}
	if fset.NArg() > 0 {
		fmt.Fprintf(e.stderr, "coffer fsck: unexpected argument %q\n", fset.Arg(0))
		return 2
	}
	if *grace <= 0 {
		fmt.Fprintln(e.stderr, "coffer fsck: --grace must be positive")
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log := slog.New(slog.DiscardHandler)
	store, driver, err := server.OpenExisting(ctx, cfg, log)
	if err != nil {
		fmt.Fprintf(e.stderr, "coffer fsck: %v\n", err)
		return 1
	}
	defer store.Close()
	fc := fsck.Config{Store: store, Driver: driver, Quick: *quick, Repair: *repair, Grace: *grace}
	if !*quick {
		reg, err := server.OpenVerifier(ctx, cfg, store, driver, log)
		if err != nil {
			fmt.Fprintf(e.stderr, "coffer fsck: %v\n", err)
			return 1
		}
		fc.Verifier = reg
	}
	rep, err := fsck.Check(ctx, fc)
	for _, p := range rep.Problems {
		fmt.Fprintln(e.stdout, p)
	}
	if err != nil {
		fmt.Fprintf(e.stderr, "coffer fsck: %v\n", err)
		return 1
	}
	fmt.Fprintf(e.stdout, "checked %d objects, read %d manifests and %d blobs: %d problems (%d missing, %d orphaned, %d corrupt, %d undecryptable, %d dangling)\n",
		rep.Objects, rep.Manifests, rep.Blobs, len(rep.Problems), rep.Count(fsck.KindMissing), rep.Count(fsck.KindOrphan),
		rep.Count(fsck.KindCorrupt), rep.Count(fsck.KindUndecryptable), rep.Count(fsck.KindDangling))
	if *repair {
		fmt.Fprintf(e.stdout, "repaired: deleted %d orphaned objects\n", rep.Repaired)
		for _, err := range rep.RepairErrors {
			fmt.Fprintf(e.stderr, "coffer fsck: %v\n", err)
		}
	}
	if len(rep.Problems) > 0 || len(rep.RepairErrors) > 0 {
		return 1
	}
	return 0
}
