package migrate

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/cofferhq/coffer/internal/metadata"
	"github.com/cofferhq/coffer/internal/storage"
)

// Tables are the metadata tables in load order: every table after the
// tables its foreign keys name. TestTablesCoverSchema fails when a
// migration adds a table that is not here.
var Tables = []string{
	"settings", "documents", "repositories", "blobs", "repo_blobs", "uploads", "manifests", "manifest_refs", "tags",
	"auth_failures",             // empty on a single node (replicas' shared throttling)
	"audit_files", "audit_head", // empty on a single node (replicas' shared audit trail)
}

// Settings that identify a deployment (internal/server).
const (
	settingRootKeyCheck = "root_key_check"
	settingAccountID    = "account_id"
)

// Sentinel errors.
var (
	// ErrOtherDeployment reports a target that holds data the source did
	// not write: another deployment, or this one served since.
	ErrOtherDeployment = errors.New("migrate: the target holds other data")
	// ErrMismatch reports a verification failure: rows or objects differ
	// between source and target after the copy.
	ErrMismatch = errors.New("migrate: target differs from source")
)

// Source is the single-node store (*sqlite.Store).
type Source interface {
	Tables(ctx context.Context) ([]string, error)
	Export(ctx context.Context, tables []string, fn func(table string, cols []string, vals []any) error) error
	CountRows(ctx context.Context, table string) (int64, error)
	GetSetting(ctx context.Context, key string) (string, error)
}

// Target is the PostgreSQL store (*postgres.Store).
type Target interface {
	Tables(ctx context.Context) ([]string, error)
	Load(ctx context.Context, fn func(put func(table string, cols []string, vals []any) error) error) error
	CountRows(ctx context.Context, table string) (int64, error)
	GetSetting(ctx context.Context, key string) (string, error)
}

// Config configures Run.
type Config struct {
	Source       Source
	SourceDriver storage.Driver
	Target       Target
	TargetDriver storage.Driver
	// Verify reads every object back from the target and compares its
	// SHA-256 with the source's; an object already present is skipped
	// only when the hashes match.
	Verify bool
	// Workers copy objects in parallel; 0 means 4.
	Workers int
	// Progress receives one line per phase and a line every
	// ProgressEvery objects; nil discards them.
	Progress io.Writer
}

// Report is what Run did.
type Report struct {
	AccountID string
	Objects   int   // objects in the source
	Bytes     int64 // their total size
	Copied    int   // objects written to the target by this run
	Skipped   int   // objects already in the target
	Verified  int   // objects read back and compared (Verify)
	Extra     int   // objects in the target the source does not have
	// Rows counts each table's rows (equal on both sides once Run succeeds).
	Rows map[string]int64
	// AlreadyLoaded says the target's metadata came from an earlier run.
	AlreadyLoaded bool
}

// ProgressEvery is how many objects pass between progress lines.
const ProgressEvery = 1000

// Run copies the source deployment into the target: objects, then the
// metadata in one transaction, then verifies both (see the package
// documentation). It is safe to run again after an interruption or a
// failure.
func Run(ctx context.Context, cfg Config) (Report, error) {
	var rep Report
	if cfg.Workers <= 0 {
		cfg.Workers = 4
	}
	if cfg.Progress == nil {
		cfg.Progress = io.Discard
	}
	if err := checkTables(ctx, cfg.Source, cfg.Target); err != nil {
		return rep, err
	}
	check, err := cfg.Source.GetSetting(ctx, settingRootKeyCheck)
	if err != nil {
		return rep, fmt.Errorf("migrate: source root key check: %w (has a server ever started on it?)", err)
	}
	if rep.AccountID, err = cfg.Source.GetSetting(ctx, settingAccountID); err != nil {
		return rep, fmt.Errorf("migrate: source account ID: %w", err)
	}
	if rep.AlreadyLoaded, err = targetState(ctx, cfg.Source, cfg.Target, check, rep.AccountID); err != nil {
		return rep, err
	}

	fmt.Fprintln(cfg.Progress, "copying objects")
	keys, err := copyObjects(ctx, cfg, &rep)
	if err != nil {
		return rep, err
	}
	fmt.Fprintf(cfg.Progress, "objects: %d in the source (%d bytes): %d copied, %d already present\n", rep.Objects, rep.Bytes, rep.Copied, rep.Skipped)

	if rep.AlreadyLoaded {
		fmt.Fprintln(cfg.Progress, "metadata: already in the target (an earlier run)")
	} else {
		fmt.Fprintln(cfg.Progress, "copying metadata")
		err := cfg.Target.Load(ctx, func(put func(string, []string, []any) error) error {
			return cfg.Source.Export(ctx, Tables, put)
		})
		if err != nil {
			return rep, fmt.Errorf("migrate: metadata: %w", err)
		}
	}

	if rep.Rows, err = compareRows(ctx, cfg.Source, cfg.Target); err != nil {
		return rep, err
	}
	if err := compareObjects(ctx, cfg, keys, &rep); err != nil {
		return rep, err
	}
	return rep, nil
}

// checkTables refuses schemas with tables Tables does not list.
func checkTables(ctx context.Context, src Source, dst Target) error {
	want := slices.Sorted(slices.Values(Tables))
	for _, side := range []struct {
		name   string
		tables func(context.Context) ([]string, error)
	}{{"source", src.Tables}, {"target", dst.Tables}} {
		got, err := side.tables(ctx)
		if err != nil {
			return fmt.Errorf("migrate: %s: %w", side.name, err)
		}
		if !slices.Equal(got, want) {
			return fmt.Errorf("migrate: the %s schema has tables %v; this binary migrates %v", side.name, got, want)
		}
	}
	return nil
}

// targetState reports whether the target already holds the source's
// metadata (loaded by an earlier run) and refuses any other data.
func targetState(ctx context.Context, src Source, dst Target, check, account string) (bool, error) {
	got, err := dst.GetSetting(ctx, settingRootKeyCheck)
	if errors.Is(err, metadata.ErrNotFound) {
		for _, t := range Tables {
			n, err := dst.CountRows(ctx, t)
			if err != nil {
				return false, fmt.Errorf("migrate: target: %w", err)
			}
			if n > 0 {
				return false, fmt.Errorf("%w: table %s has %d rows but no root key check", ErrOtherDeployment, t, n)
			}
		}
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("migrate: target root key check: %w", err)
	}
	gotAccount, err := dst.GetSetting(ctx, settingAccountID)
	if err != nil && !errors.Is(err, metadata.ErrNotFound) {
		return false, fmt.Errorf("migrate: target account ID: %w", err)
	}
	if got != check || gotAccount != account {
		return false, fmt.Errorf("%w: another deployment (account %q, a different root key or account ID); migrate into an empty database", ErrOtherDeployment, gotAccount)
	}
	if _, err := compareRows(ctx, src, dst); err != nil {
		return false, fmt.Errorf("%w: it holds this deployment but %v: it has been served since, or the source changed; to migrate again, empty the target database first",
			ErrOtherDeployment, err)
	}
	return true, nil
}

// compareRows counts every table on both sides.
func compareRows(ctx context.Context, src Source, dst Target) (map[string]int64, error) {
	rows := make(map[string]int64, len(Tables))
	var errs []error
	for _, t := range Tables {
		a, err := src.CountRows(ctx, t)
		if err != nil {
			return nil, fmt.Errorf("migrate: source: %w", err)
		}
		b, err := dst.CountRows(ctx, t)
		if err != nil {
			return nil, fmt.Errorf("migrate: target: %w", err)
		}
		if a != b {
			errs = append(errs, fmt.Errorf("table %s: %d rows in the source, %d in the target", t, a, b))
		}
		rows[t] = a
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("%w: %w", ErrMismatch, errors.Join(errs...))
	}
	return rows, nil
}
