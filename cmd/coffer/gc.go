package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"text/tabwriter"

	"github.com/cofferhq/coffer/internal/config"
	"github.com/cofferhq/coffer/internal/gc"
)

func init() {
	commands = append(commands, command{
		name:     "gc",
		synopsis: "[--dry-run] [--grace D] [--upload-ttl D] [flags]",
		summary:  "reclaim unreferenced blobs, abandoned uploads and orphaned objects",
		about: "Gc collects garbage online: blob links no manifest of their repository\n" +
			"references (layers of deleted images; this lowers the repository's quota usage),\n" +
			"blobs no repository links or references, upload sessions not updated for\n" +
			"--upload-ttl, and stored objects no metadata row names.\n" +
			"Nothing younger than --grace is touched, so it runs beside a live server while\n" +
			"pushes and pulls go on. --dry-run prints what would be reclaimed and how many\n" +
			"bytes, and deletes nothing.",
		config: true,
		run:    runGC,
	})
}

func runGC(e *env, fset *flag.FlagSet, args []string) int {
	dry := fset.Bool("dry-run", false, "print what would be reclaimed; delete nothing")
	grace := fset.Duration("grace", gc.DefaultGrace, "never collect blobs or objects younger than `D`")
	ttl := fset.Duration("upload-ttl", gc.DefaultUploadTTL, "upload sessions idle for `D` are abandoned")
	verbose := fset.Bool("v", false, "list every item, not just the totals")
	cfg, err := config.Load(fset, args, e.getenv)
	if err != nil {
		return e.configFailed(err)
	}
	if fset.NArg() > 0 {
		fmt.Fprintf(e.stderr, "coffer gc: unexpected argument %q\n", fset.Arg(0))
		return 2
	}
	if *grace <= 0 || *ttl <= 0 {
		fmt.Fprintln(e.stderr, "coffer gc: --grace and --upload-ttl must be positive")
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ds, err := openDataStores(ctx, cfg)
	if err != nil {
		fmt.Fprintf(e.stderr, "coffer gc: %v\n", err)
		return 1
	}
	defer ds.store.Close()
	col, err := gc.New(gc.Config{Store: ds.store, Driver: ds.driver, Grace: *grace, UploadTTL: *ttl})
	if err != nil {
		fmt.Fprintf(e.stderr, "coffer gc: %v\n", err)
		return 1
	}
	rep, err := col.Run(ctx, *dry)
	if err != nil {
		fmt.Fprintf(e.stderr, "coffer gc: %v\n", err)
		return 1
	}
	if *verbose || *dry {
		tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "KIND\tNAME\tOBJECTS\tBYTES")
		for _, it := range rep.Items {
			fmt.Fprintf(tw, "%s\t%s\t%d\t%d\n", it.Kind, it.Name, len(it.Keys), it.Bytes)
		}
		tw.Flush()
	}
	verb := "reclaimed"
	if *dry {
		verb = "would reclaim"
	}
	fmt.Fprintf(e.stdout, "%s %d bytes: %d blobs, %d upload sessions, %d orphaned objects\n",
		verb, rep.Bytes, rep.Blobs, rep.Uploads, rep.Orphans)
	unlink := "unlinked"
	if *dry {
		unlink = "would unlink"
	}
	fmt.Fprintf(e.stdout, "%s %d blobs no manifest of their repository references (%d bytes of repository usage)\n",
		unlink, rep.Links, rep.LinkBytes)
	for _, err := range rep.Errors {
		fmt.Fprintf(e.stderr, "coffer gc: %v\n", err)
	}
	if len(rep.Errors) > 0 {
		return 1
	}
	return 0
}
