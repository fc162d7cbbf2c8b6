// Package fsck checks that Coffer's metadata and blob storage agree
// (coffer fsck, issue #9). It finds:
//
//   - missing objects: a storage key that a row references (blob,
//     manifest, upload part) with no object behind it;
//   - orphans: objects under layers/ and manifests/ that no row references
//     and that are older than the grace period (younger ones may belong to
//     a push in flight); found by the garbage collector's own sweep
//     (gc.Collector.Orphans);
//   - corrupt objects: every manifest, and every blob a manifest
//     references, is read whole through the envelope reader, which
//     authenticates each segment and the content digest; one that fails is
//     corrupt (or undecryptable, when its KMS key refuses to unwrap the
//     data key). Blobs no manifest references are checked for existence
//     only. Quick skips this pass.
//
// It changes nothing, except that Repair deletes the orphans it reports
// (through the garbage collector, with the same grace period). It runs
// beside a live server: a key found missing is reported only if it is
// still referenced after the check, so a concurrent deletion is not a
// problem.
package fsck

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/cofferhq/coffer/internal/gc"
	"github.com/cofferhq/coffer/internal/metadata"
	"github.com/cofferhq/coffer/internal/registry"
	"github.com/cofferhq/coffer/internal/storage"
)

// Kinds of Problem.
const (
	KindMissing       = "missing"
	KindOrphan        = "orphan"
	KindCorrupt       = "corrupt"
	KindUndecryptable = "undecryptable"
	// KindDangling is a manifest whose blob the repository does not link.
	KindDangling = "dangling"
)

// Verifier reads stored objects through the envelope; *registry.Registry
// implements it.
type Verifier interface {
	// VerifyManifest authenticates a manifest object and returns the
	// digests of the blobs it references.
	VerifyManifest(ctx context.Context, repo metadata.Repository, m metadata.Manifest) ([]string, error)
	// VerifyBlob authenticates a whole blob object.
	VerifyBlob(ctx context.Context, repo metadata.Repository, b metadata.Blob) error
}

// Config configures Check.
type Config struct {
	Store  metadata.Store
	Driver storage.Driver
	// Verifier opens objects; required unless Quick.
	Verifier Verifier
	// Quick checks existence only, without reading objects.
	Quick bool
	// Repair deletes the orphans found.
	Repair bool
	// Grace: unreferenced objects younger than this are not orphans (0:
	// gc.DefaultGrace).
	Grace time.Duration
	// Workers bounds concurrent Stat and verify calls (0: 8).
	Workers int
	Log     *slog.Logger
}

// Problem is one disagreement between metadata and storage.
type Problem struct {
	Kind   string
	Key    string // storage key
	What   string // what the key belongs to, when known
	Detail string // why (corrupt, undecryptable)
	Bytes  int64  // stored size (orphans)
}

func (p Problem) String() string {
	s := p.Kind + " " + p.Key
	if p.What != "" {
		s += " (" + p.What + ")"
	}
	if p.Bytes > 0 {
		s += fmt.Sprintf(" %d bytes", p.Bytes)
	}
	if p.Detail != "" {
		s += ": " + p.Detail
	}
	return s
}

// Report is the outcome of one check.
type Report struct {
	Objects   int // referenced keys checked for existence
	Manifests int // manifests read through the envelope
	Blobs     int // blobs read through the envelope
	Problems  []Problem
	// Repaired counts orphans deleted (Repair); RepairErrors are those
	// that could not be.
	Repaired     int
	RepairErrors []error
}

// Count returns the number of problems of a kind.
func (r Report) Count(kind string) int {
	n := 0
	for _, p := range r.Problems {
		if p.Kind == kind {
			n++
		}
	}
	return n
}

// Check compares metadata and storage. An error means the check could not
// finish (a backend failed); problems found are in the Report.
func Check(ctx context.Context, cfg Config) (Report, error) {
	if cfg.Store == nil || cfg.Driver == nil || (cfg.Verifier == nil && !cfg.Quick) {
		return Report{}, errors.New("fsck: Store, Driver and (unless Quick) Verifier are required")
	}
	if cfg.Grace == 0 {
		cfg.Grace = gc.DefaultGrace
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 8
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	var rep Report
	missing, err := missingObjects(ctx, cfg, &rep)
	if err != nil {
		return rep, err
	}
	if !cfg.Quick {
		if err := verifyObjects(ctx, cfg, missing, &rep); err != nil {
			return rep, err
		}
	}
	col, err := gc.New(gc.Config{Store: cfg.Store, Driver: cfg.Driver, Grace: cfg.Grace, Log: cfg.Log})
	if err != nil {
		return rep, err
	}
	orphans, err := col.Orphans(ctx, !cfg.Repair)
	if err != nil {
		return rep, fmt.Errorf("fsck: orphans: %w", err)
	}
	for _, it := range orphans.Items {
		rep.Problems = append(rep.Problems, Problem{Kind: KindOrphan, Key: it.Name, What: describe(it.Name), Bytes: it.Bytes})
	}
	if cfg.Repair {
		rep.Repaired = len(orphans.Items) - len(orphans.Errors)
		rep.RepairErrors = orphans.Errors
	}
	slices.SortStableFunc(rep.Problems, func(a, b Problem) int {
		return cmp.Or(cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.Key, b.Key))
	})
	return rep, nil
}

// referenced takes a snapshot of every key a row references.
func referenced(ctx context.Context, store metadata.Store) (map[string]struct{}, error) {
	refs := make(map[string]struct{})
	err := store.ObjectKeys(ctx, func(k string) error { refs[k] = struct{}{}; return nil })
	if err != nil {
		return nil, fmt.Errorf("fsck: object keys: %w", err)
	}
	return refs, nil
}

// missingObjects stats every referenced key and reports those without an
// object that are still referenced afterwards.
func missingObjects(ctx context.Context, cfg Config, rep *Report) (map[string]bool, error) {
	refs, err := referenced(ctx, cfg.Store)
	if err != nil {
		return nil, err
	}
	keys := make(chan string)
	var (
		mu      sync.Mutex
		absent  []string
		firstEr error
		wg      sync.WaitGroup
	)
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for range cfg.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range keys {
				_, err := cfg.Driver.Stat(wctx, k)
				mu.Lock()
				switch {
				case errors.Is(err, storage.ErrNotFound):
					absent = append(absent, k)
				case err != nil && firstEr == nil:
					firstEr = fmt.Errorf("fsck: stat %s: %w", k, err)
					cancel()
				}
				mu.Unlock()
			}
		}()
	}
	for k := range refs {
		if wctx.Err() != nil {
			break
		}
		keys <- k
	}
	close(keys)
	wg.Wait()
	rep.Objects = len(refs)
	if firstEr != nil {
		return nil, firstEr
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	missing := make(map[string]bool)
	if len(absent) == 0 {
		return missing, nil
	}
	// A row deleted (and its object after it) since the snapshot is not a
	// problem: keep only keys still referenced.
	again, err := referenced(ctx, cfg.Store)
	if err != nil {
		return nil, err
	}
	for _, k := range absent {
		if _, ok := again[k]; ok {
			missing[k] = true
			rep.Problems = append(rep.Problems, Problem{Kind: KindMissing, Key: k, What: describe(k)})
		}
	}
	return missing, nil
}

// verifyObjects reads every manifest and every blob a manifest references.
func verifyObjects(ctx context.Context, cfg Config, missing map[string]bool, rep *Report) error {
	seen := make(map[string]bool) // domain/digest of blobs verified
	after := ""
	for {
		repos, err := cfg.Store.ListRepositories(ctx, after, 100)
		if err != nil {
			return fmt.Errorf("fsck: list repositories: %w", err)
		}
		for _, repo := range repos {
			if err := verifyRepository(ctx, cfg, repo, missing, seen, rep); err != nil {
				return err
			}
			after = repo.Name
		}
		if len(repos) < 100 {
			return nil
		}
	}
}

func verifyRepository(ctx context.Context, cfg Config, repo metadata.Repository, missing, seen map[string]bool, rep *Report) error {
	after := ""
	for {
		ms, err := cfg.Store.ListManifests(ctx, repo.ID, after, 500)
		if err != nil {
			return fmt.Errorf("fsck: list manifests of %s: %w", repo.Name, err)
		}
		for _, m := range ms {
			after = m.Digest
			what := "manifest " + repo.Name + "@" + m.Digest
			if missing[m.ObjectKey] {
				continue
			}
			rep.Manifests++
			blobs, err := cfg.Verifier.VerifyManifest(ctx, repo, m)
			if p, bad := classify(err, m.ObjectKey, what); bad {
				rep.Problems = append(rep.Problems, p)
				continue
			} else if err != nil {
				return fmt.Errorf("fsck: %s: %w", what, err)
			}
			for _, d := range blobs {
				if err := verifyBlob(ctx, cfg, repo, m, d, missing, seen, rep); err != nil {
					return err
				}
			}
		}
		if len(ms) < 500 {
			return nil
		}
	}
}

func verifyBlob(ctx context.Context, cfg Config, repo metadata.Repository, m metadata.Manifest, d string, missing, seen map[string]bool, rep *Report) error {
	b, err := cfg.Store.BlobLinked(ctx, repo.ID, d)
	if errors.Is(err, metadata.ErrNotFound) {
		rep.Problems = append(rep.Problems, Problem{Kind: KindDangling, Key: "-",
			What: "blob " + d + " of manifest " + repo.Name + "@" + m.Digest, Detail: "the repository does not link it"})
		return nil
	}
	if err != nil {
		return fmt.Errorf("fsck: blob %s of %s: %w", d, repo.Name, err)
	}
	id := b.Domain + "/" + b.Digest
	if seen[id] || missing[b.ObjectKey] {
		return nil
	}
	seen[id] = true
	rep.Blobs++
	what := "blob " + id
	err = cfg.Verifier.VerifyBlob(ctx, repo, b)
	if p, bad := classify(err, b.ObjectKey, what); bad {
		rep.Problems = append(rep.Problems, p)
	} else if err != nil {
		return fmt.Errorf("fsck: %s: %w", what, err)
	}
	return nil
}

// classify turns a verification failure into a problem; other errors
// (a backend failing) stop the check.
func classify(err error, key, what string) (Problem, bool) {
	switch {
	case err == nil:
		return Problem{}, false
	case errors.Is(err, registry.ErrCorrupt):
		return Problem{Kind: KindCorrupt, Key: key, What: what, Detail: err.Error()}, true
	case errors.Is(err, registry.ErrKMS):
		return Problem{Kind: KindUndecryptable, Key: key, What: what, Detail: err.Error()}, true
	}
	return Problem{}, false
}

// describe names what a storage key holds, from the registry's naming.
func describe(key string) string {
	parts := strings.Split(key, "/")
	switch {
	case len(parts) == 3 && parts[0] == "layers":
		return "layer object of domain " + parts[1]
	case len(parts) == 4 && parts[0] == "manifests":
		return "manifest " + parts[2] + " of repository " + parts[1]
	}
	return ""
}
