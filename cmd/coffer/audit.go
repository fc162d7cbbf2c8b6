package main

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/cofferhq/coffer/internal/audit"
	"github.com/cofferhq/coffer/internal/config"
	"github.com/cofferhq/coffer/internal/server"
)

const auditAbout = `Audit reads the audit trail under <data>/audit: CloudTrail-format log files
and signed digest files. It only reads, so it runs beside a live server.

  coffer audit verify [--from T] [--to T] [--public-key FILE] [--json]
      Check every digest's signature and chain, and every log file against
      its digest. Reports each modified, deleted, inserted, reordered or
      truncated file, naming the first bad one. Exit status 1 if any.
      --from/--to restrict the log files checked (RFC 3339 time, a date
      2006-01-02, or a duration meaning that long ago, e.g. 24h).
      --public-key defaults to <data>/audit/signing.pub; pass a copy kept
      outside the data directory, which an intruder could not rewrite.
      --shared verifies the replicas' shared trail instead (PostgreSQL +
      the blob store: every replica's log files, one digest chain); its
      key defaults to the one in the database (coffer audit public-key
      --shared).

  coffer audit tail [--since T] [--follow=false]
      Print records as JSON lines as they become durable; --since first
      replays the records from T on.

  coffer audit public-key [--shared]
      Print the digest-signing public key (PEM) for safekeeping; --shared
      the key of the replicas' shared trail.`

func runAudit(e *env, fs *flag.FlagSet, args []string) int {
	if len(args) == 0 {
		fmt.Fprintln(e.stderr, "coffer audit: name a subcommand: verify, tail or public-key")
		return 2
	}
	sub, rest := args[0], args[1:]
	switch sub {
	case "-h", "-help", "--help", "help":
		config.RegisterFlags(fs)
		fs.SetOutput(e.stdout)
		fs.Usage()
		return 0
	case "verify":
		return auditVerify(e, rest)
	case "tail":
		return auditTail(e, rest)
	case "public-key":
		return auditPublicKey(e, rest)
	}
	fmt.Fprintf(e.stderr, "coffer audit: unknown subcommand %q (verify, tail or public-key)\n", sub)
	return 2
}

// auditFlags is a subcommand's flag set, with the shared flags' help.
func auditFlags(e *env, sub, synopsis string) *flag.FlagSet {
	fs := flag.NewFlagSet("coffer audit "+sub, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	c := command{name: "audit " + sub, synopsis: synopsis, about: auditAbout, config: true}
	fs.Usage = func() { c.printUsage(fs.Output(), fs) }
	return fs
}

// loadAudit loads the configuration, or returns an exit status (>= 0)
// when that failed.
func loadAudit(e *env, fs *flag.FlagSet, args []string) (config.Config, int) {
	cfg, err := config.Load(fs, args, e.getenv)
	if err != nil {
		return cfg, e.configFailed(err)
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(e.stderr, "%s: unexpected argument %q\n", fs.Name(), fs.Arg(0))
		return cfg, 2
	}
	return cfg, -1
}

func auditVerify(e *env, args []string) int {
	fs := auditFlags(e, "verify", "[--from T] [--to T] [--public-key FILE] [--shared] [--json] [flags]")
	from := fs.String("from", "", "check log files from `T` on (RFC 3339, 2006-01-02 or a duration ago)")
	to := fs.String("to", "", "check log files up to `T`")
	pubFile := fs.String("public-key", "", "verify with the public key in `FILE` (default <data>/audit/signing.pub)")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	shared := fs.Bool("shared", false, "verify the replicas' shared trail (PostgreSQL + the blob store)")
	cfg, code := loadAudit(e, fs, args)
	if code >= 0 {
		return code
	}
	data := cfg.DataDir
	dir := audit.Dir(data)
	now := time.Now()
	fromT, err := parseWhen(*from, now)
	if err != nil {
		fmt.Fprintf(e.stderr, "coffer audit verify: --from: %v\n", err)
		return 2
	}
	toT, err := parseWhen(*to, now)
	if err != nil {
		fmt.Fprintf(e.stderr, "coffer audit verify: --to: %v\n", err)
		return 2
	}
	keyPath := *pubFile
	var pub ed25519.PublicKey
	switch {
	case keyPath != "" || !*shared:
		if keyPath == "" {
			keyPath = audit.PublicKeyPath(audit.SigningKeyPath(data))
		}
		pub, err = audit.ReadPublicKey(keyPath)
	default:
		keyPath = "the database's"
		pub, err = sharedPublicKey(cfg, slog.New(slog.DiscardHandler))
	}
	if err != nil {
		fmt.Fprintf(e.stderr, "coffer audit verify: public key: %v\n", err)
		return 1
	}
	var rep *audit.Report
	if *shared {
		dir = "shared (" + audit.SharedPrefix + " in the blob store)"
		rep, err = server.VerifySharedTrail(context.Background(), cfg, pub, fromT, toT, slog.New(slog.DiscardHandler))
	} else {
		rep, err = audit.Verify(dir, pub, fromT, toT)
	}
	if err != nil {
		fmt.Fprintf(e.stderr, "coffer audit verify: %v\n", err)
		return 1
	}
	if *asJSON {
		out := struct {
			OK bool `json:"ok"`
			*audit.Report
			FirstBad *audit.Problem `json:"FirstBad,omitempty"`
		}{rep.OK(), rep, rep.FirstBad()}
		b, _ := json.MarshalIndent(out, "", "  ")
		fmt.Fprintln(e.stdout, string(b))
	} else {
		fmt.Fprintf(e.stdout, "audit trail %s (key %s, %.16s…)\n", dir, keyPath, audit.Fingerprint(pub))
		fmt.Fprintf(e.stdout, "checked %d digests and %d log files", rep.DigestsChecked, rep.LogFilesChecked)
		if !rep.NewestDigestEnd.IsZero() {
			fmt.Fprintf(e.stdout, "; newest digest ends %s", rep.NewestDigestEnd.Format(time.RFC3339))
		}
		fmt.Fprintln(e.stdout)
		if len(rep.Pending) > 0 {
			fmt.Fprintf(e.stdout, "%d log files are newer than the newest digest (verified by the next one)\n", len(rep.Pending))
		}
		if rep.Expired > 0 {
			fmt.Fprintf(e.stdout, "%d files were deleted by retention (before a signed retention horizon)\n", rep.Expired)
		}
		if len(rep.Unverified) > 0 {
			fmt.Fprintf(e.stdout, "%d log files cannot be verified because their digest is bad\n", len(rep.Unverified))
		}
		if rep.OK() {
			fmt.Fprintln(e.stdout, "OK: no file was modified, deleted, inserted, reordered or truncated")
		} else {
			fmt.Fprintf(e.stdout, "FAILED: %d problems\n", len(rep.Problems))
			for _, p := range rep.Problems {
				fmt.Fprintf(e.stdout, "  %-9s %s: %s\n", p.Kind, p.Object, p.Detail)
			}
			fmt.Fprintf(e.stdout, "first bad file: %s\n", rep.FirstBad().Object)
		}
	}
	if !rep.OK() {
		return 1
	}
	return 0
}

func auditTail(e *env, args []string) int {
	fs := auditFlags(e, "tail", "[--since T] [--follow=false] [flags]")
	since := fs.String("since", "", "first print the records from `T` on (RFC 3339, 2006-01-02 or a duration ago)")
	follow := fs.Bool("follow", true, "keep printing new records until interrupted")
	data, code := loadAudit(e, fs, args)
	if code >= 0 {
		return code
	}
	dir := audit.Dir(data.DataDir)
	sinceT, err := parseWhen(*since, time.Now())
	if err != nil {
		fmt.Fprintf(e.stderr, "coffer audit tail: --since: %v\n", err)
		return 2
	}
	if _, err := os.Stat(dir); err != nil {
		fmt.Fprintf(e.stderr, "coffer audit tail: %v\n", err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := audit.Tail(ctx, dir, e.stdout, audit.TailOptions{Since: sinceT, Follow: *follow}); err != nil {
		fmt.Fprintf(e.stderr, "coffer audit tail: %v\n", err)
		return 1
	}
	return 0
}

func auditPublicKey(e *env, args []string) int {
	flags := auditFlags(e, "public-key", "[--shared] [flags]")
	shared := flags.Bool("shared", false, "the key of the replicas' shared trail (from the PostgreSQL database)")
	cfg, code := loadAudit(e, flags, args)
	if code >= 0 {
		return code
	}
	if *shared {
		pub, err := sharedPublicKey(cfg, slog.New(slog.DiscardHandler))
		if err != nil {
			fmt.Fprintf(e.stderr, "coffer audit public-key: %v\n", err)
			return 1
		}
		e.stdout.Write(audit.MarshalPublicKey(pub))
		return 0
	}
	path := audit.PublicKeyPath(audit.SigningKeyPath(cfg.DataDir))
	pub, err := audit.ReadPublicKey(path)
	if errors.Is(err, fs.ErrNotExist) {
		fmt.Fprintf(e.stderr, "coffer audit public-key: %s does not exist; the server creates it on first start\n", path)
		return 1
	}
	if err != nil {
		fmt.Fprintf(e.stderr, "coffer audit public-key: %v\n", err)
		return 1
	}
	e.stdout.Write(audit.MarshalPublicKey(pub))
	return 0
}

// sharedPublicKey reads the shared trail's public key from the database.
func sharedPublicKey(cfg config.Config, log *slog.Logger) (ed25519.PublicKey, error) {
	if !cfg.UsesPostgres() {
		return nil, errors.New("the shared audit trail belongs to replicas on PostgreSQL: set metadata_dsn")
	}
	ctx := context.Background()
	store, err := server.OpenStore(ctx, cfg, log)
	if err != nil {
		return nil, err
	}
	defer store.Close()
	return server.SharedAuditPublicKey(ctx, store)
}

// parseWhen reads a time: RFC 3339, a date, or a duration before now.
func parseWhen(s string, now time.Time) (time.Time, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, fmt.Errorf("%q is not a time (RFC 3339, 2006-01-02) or a duration (24h)", s)
}
