package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"

	"github.com/cofferhq/coffer/internal/audit"
	"github.com/cofferhq/coffer/internal/config"
	"github.com/cofferhq/coffer/internal/metadata/postgres"
	"github.com/cofferhq/coffer/internal/metadata/sqlite"
	"github.com/cofferhq/coffer/internal/migrate"
	"github.com/cofferhq/coffer/internal/server"
)

const migrateAbout = `Migrate copies a single-node deployment (the SQLite database and the objects
under --data) into PostgreSQL and an S3 bucket: every object byte for byte
under its own key, then every metadata row in one transaction, then checks
the row counts of every table and every object's size (--verify also reads
every object back and compares SHA-256). Nothing is re-encrypted: start the
target with the same root key. Stop the server first (migrate refuses while
it holds the data directory). An interrupted run leaves the target database
empty; run it again to finish (objects already copied are skipped).

The source is the shared flags (--data, --config, COFFER_*), which must name
SQLite and the filesystem. The target takes the same backend settings with
"to-" before the flag and COFFER_TO_ before the variable: --to-config FILE
(COFFER_TO_CONFIG; the target's own config file, of which only the backend
settings count), --to-metadata-dsn, --to-storage, --to-s3-bucket, ...
Secrets only from the environment: COFFER_TO_METADATA_DSN for a DSN with a
password (or PGPASSWORD), COFFER_TO_S3_ACCESS_KEY_ID,
COFFER_TO_S3_SECRET_ACCESS_KEY, COFFER_TO_S3_SESSION_TOKEN (or the standard
AWS chain). Exit status: 0 migrated and verified, 1 failed, 2 bad usage.`

// targetFlags are the serve settings migrate takes for the target, as
// --to-<flag> and COFFER_TO_<name>.
var targetFlags = []string{
	"metadata-dsn", "metadata-max-conns", "metadata-min-conns", "storage",
	"s3-bucket", "s3-region", "s3-endpoint", "s3-path-style", "s3-prefix", "s3-server-side-encryption",
}

// targetNames finds the flag and variable names in the target's
// configuration problems, which config.Load spells as serve's.
var targetNames = strings.NewReplacer("--", "--to-", "COFFER_", "COFFER_TO_")

func init() {
	commands = append(commands, command{
		name:     "migrate",
		synopsis: "--to-metadata-dsn URL --to-storage s3 --to-s3-bucket NAME [--to-...] [--verify] [flags]",
		summary:  "copy a single-node deployment into PostgreSQL and S3",
		about:    migrateAbout,
		config:   true,
		run:      runMigrate,
	})
}

// toFlag keeps a --to-* flag's raw text for the target's config.Load.
type toFlag struct {
	isBool bool
	raw    string
}

func (v *toFlag) String() string {
	if v == nil {
		return ""
	}
	return v.raw
}
func (v *toFlag) Set(s string) error { v.raw = s; return nil }
func (v *toFlag) IsBoolFlag() bool   { return v.isBool }

func runMigrate(e *env, fset *flag.FlagSet, args []string) int {
	verify := fset.Bool("verify", false, "read every object back from the target and compare SHA-256; also re-check objects already there")
	workers := fset.Int("workers", 4, "objects copied in parallel")
	toConfig := fset.String("to-config", "", "the target's YAML config file (env COFFER_TO_CONFIG); only its backend settings count")
	usage := make(map[string]string)
	for _, s := range config.Settings() {
		usage[s.Flag] = s.Usage
	}
	to := make(map[string]*toFlag)
	for _, name := range targetFlags {
		to[name] = &toFlag{isBool: name == "s3-path-style"}
		fset.Var(to[name], "to-"+name, "target: "+usage[name])
	}
	src, err := config.Load(fset, args, e.getenv)
	if err != nil {
		return e.configFailed(err)
	}
	if fset.NArg() > 0 {
		fmt.Fprintf(e.stderr, "coffer migrate: unexpected argument %q\n", fset.Arg(0))
		return 2
	}
	if *workers <= 0 {
		fmt.Fprintln(e.stderr, "coffer migrate: --workers must be positive")
		return 2
	}
	dst, err := targetConfig(e, fset, src, *toConfig, to)
	if err != nil {
		fmt.Fprintln(e.stderr, "coffer migrate: invalid target configuration:")
		for _, p := range problems(err) {
			fmt.Fprintf(e.stderr, "  target %s\n", targetNames.Replace(p))
		}
		return 2
	}
	switch {
	case src.UsesPostgres() || src.Storage != config.StorageFS:
		fmt.Fprintln(e.stderr, "coffer migrate: the source must be a single-node deployment (SQLite and storage fs in --data); unset metadata_dsn and storage for it")
		return 2
	case !dst.UsesPostgres():
		fmt.Fprintln(e.stderr, "coffer migrate: the target needs a PostgreSQL database: --to-metadata-dsn or COFFER_TO_METADATA_DSN")
		return 2
	case dst.Region != src.Region:
		// Repository and key ARNs name the region, and ciphertext is bound
		// to them: the target must keep it.
		fmt.Fprintf(e.stderr, "coffer migrate: the target's region %s differs from the source's %s; a deployment keeps its region\n", dst.Region, src.Region)
		return 2
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rep, err := migrateDeployment(ctx, e, src, dst, *verify, *workers)
	if err != nil {
		fmt.Fprintf(e.stderr, "coffer migrate: %v\n", err)
		switch {
		case errors.Is(err, migrate.ErrOtherDeployment), errors.Is(err, audit.ErrInUse):
		case errors.Is(err, migrate.ErrMismatch):
			fmt.Fprintln(e.stderr, "coffer migrate: do not serve the target: it differs from the source (was the source served meanwhile?)")
		default:
			fmt.Fprintln(e.stderr, "coffer migrate: run the same command again to finish; objects already copied are skipped")
		}
		return 1
	}
	rows := int64(0)
	for _, n := range rep.Rows {
		rows += n
	}
	fmt.Fprintf(e.stdout, "migrated account %s: %d rows in %d tables, %d objects (%d bytes): %d copied, %d already there",
		rep.AccountID, rows, len(rep.Rows), rep.Objects, rep.Bytes, rep.Copied, rep.Skipped)
	if *verify {
		fmt.Fprintf(e.stdout, ", %d read back and verified", rep.Verified)
	}
	fmt.Fprintln(e.stdout)
	if rep.Extra > 0 {
		fmt.Fprintf(e.stdout, "warning: the target storage holds %d objects the source does not have (another deployment under the same bucket and prefix?); coffer gc on the target deletes them\n", rep.Extra)
	}
	key := "the root key file " + src.RootKeyPath()
	if src.RootKey != "" {
		key = "COFFER_ROOT_KEY"
	}
	fmt.Fprintf(e.stdout, "start the target with the same root key (%s): nothing was re-encrypted.\n", key)
	fmt.Fprintf(e.stdout, "the target no longer uses %s or %s; remove them once it serves.\n",
		server.SQLitePath(src), src.DataDir+string(os.PathSeparator)+"blobs")
	return 0
}

// targetConfig loads the target's settings: --to-config and the --to-*
// flags as the shared flags, COFFER_TO_* as COFFER_*. The region defaults
// to the source's (S3's region follows it).
func targetConfig(e *env, fset *flag.FlagSet, src config.Config, file string, to map[string]*toFlag) (config.Config, error) {
	args := []string{"--data=" + src.DataDir}
	if file != "" {
		args = append(args, "--config="+file)
	}
	fset.Visit(func(f *flag.Flag) {
		name, ok := strings.CutPrefix(f.Name, "to-")
		if ok && slices.Contains(targetFlags, name) {
			args = append(args, "--"+name+"="+to[name].raw)
		}
	})
	getenv := func(k string) string {
		rest, ok := strings.CutPrefix(k, "COFFER_")
		if !ok {
			return e.getenv(k)
		}
		v := e.getenv("COFFER_TO_" + rest)
		if v == "" && k == "COFFER_REGION" {
			v = src.Region
		}
		return v
	}
	tfs := flag.NewFlagSet("coffer migrate (target)", flag.ContinueOnError)
	tfs.SetOutput(e.stderr)
	return config.Load(tfs, args, getenv)
}

// migrateDeployment opens both sides and runs the migration, with the
// source's audit lock held so no server starts on it meanwhile.
func migrateDeployment(ctx context.Context, e *env, src, dst config.Config, verify bool, workers int) (migrate.Report, error) {
	var rep migrate.Report
	unlock, err := audit.LockWriter(audit.Dir(src.DataDir))
	if err != nil {
		return rep, fmt.Errorf("%w; stop the server on %s first", err, src.DataDir)
	}
	defer unlock()
	db := server.SQLitePath(src)
	if _, err := os.Stat(db); err != nil {
		return rep, fmt.Errorf("source: %w", err)
	}
	source, err := sqlite.Open(ctx, sqlite.Config{Path: db})
	if err != nil {
		return rep, fmt.Errorf("source: %w", err)
	}
	defer source.Close()
	sourceDriver, err := server.OpenDriver(ctx, src)
	if err != nil {
		return rep, fmt.Errorf("source: %w", err)
	}
	log := slog.New(slog.DiscardHandler)
	store, err := server.OpenStore(ctx, dst, log)
	if err != nil {
		return rep, fmt.Errorf("target: %w", err)
	}
	defer store.Close()
	target, ok := store.(*postgres.Store)
	if !ok {
		return rep, errors.New("target: not a PostgreSQL store")
	}
	targetDriver, err := server.OpenDriver(ctx, dst)
	if err != nil {
		return rep, fmt.Errorf("target: %w", err)
	}
	fmt.Fprintf(e.stderr, "migrating %s into the target database and %s storage\n", src.DataDir, dst.Storage)
	return migrate.Run(ctx, migrate.Config{
		Source: source, SourceDriver: sourceDriver, Target: target, TargetDriver: targetDriver,
		Verify: verify, Workers: workers, Progress: e.stderr,
	})
}
