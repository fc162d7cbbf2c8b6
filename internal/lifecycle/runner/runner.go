// Package runner applies lifecycle policies (internal/lifecycle) to the
// repositories of a metadata store: it lists each repository's images,
// evaluates its policy and deletes the expired images and their manifest
// objects. It talks to metadata.Store and storage.Driver directly, so the
// server (periodically, Loop) and `coffer lifecycle run` (beside a live
// server) share it.
package runner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/cofferhq/coffer/internal/lifecycle"
	"github.com/cofferhq/coffer/internal/loop"
	"github.com/cofferhq/coffer/internal/metadata"
	"github.com/cofferhq/coffer/internal/storage"
)

// Config configures a Runner.
type Config struct {
	Store  metadata.Store
	Driver storage.Driver // nil: manifest objects are left for GC
	Log    *slog.Logger
	Now    func() time.Time
	// LastPull, when set, returns a manifest's last pull time including
	// pulls not yet flushed to the store (registry.Registry.LastPull).
	LastPull func(metadata.Manifest) time.Time
	// OnExpire, when set, is told of every image a (non-dry) run expired,
	// after it is deleted: the server records it in the audit trail.
	OnExpire func(ctx context.Context, repo metadata.Repository, c Candidate)
}

// Runner evaluates and applies lifecycle policies.
type Runner struct{ cfg Config }

// New returns a Runner.
func New(cfg Config) *Runner {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Runner{cfg: cfg}
}

// Candidate is one image a policy expires.
type Candidate struct {
	lifecycle.Expiry
	Size int64 // imageSizeInBytes as recorded at push (-1 unknown)
}

// Report is what one repository's run did (or, dry, would do).
type Report struct {
	Repository string
	Expired    []Candidate // deleted (dry run: would be deleted)
	Skipped    []Candidate // changed since evaluation or referenced by an index
	Err        error
}

// ErrNoPolicy reports a repository without a lifecycle policy.
var ErrNoPolicy = errors.New("lifecycle: repository has no lifecycle policy")

// Policy returns the stored lifecycle policy document of a repository, or
// ErrNoPolicy.
func (r *Runner) Policy(ctx context.Context, repoName string) (lifecycle.Stored, error) {
	var st lifecycle.Stored
	err := r.cfg.Store.ViewDocs(ctx, func(tx metadata.DocTx) error {
		d, err := tx.Get(lifecycle.DocKind, repoName)
		if err != nil {
			return err
		}
		return json.Unmarshal(d.Data, &st)
	})
	if errors.Is(err, metadata.ErrNotFound) {
		return st, ErrNoPolicy
	}
	return st, err
}

// Plan lists the repository's images and returns those p expires now.
func (r *Runner) Plan(ctx context.Context, repo metadata.Repository, p *lifecycle.Policy) ([]Candidate, error) {
	ms, err := r.cfg.Store.ListManifests(ctx, repo.ID, "", 0)
	if err != nil {
		return nil, fmt.Errorf("lifecycle: list images of %s: %w", repo.Name, err)
	}
	imgs := make([]lifecycle.Image, 0, len(ms))
	sizes := make(map[string]int64, len(ms))
	for _, m := range ms {
		last := m.LastPulledAt
		if r.cfg.LastPull != nil {
			last = r.cfg.LastPull(m)
		}
		imgs = append(imgs, lifecycle.Image{Digest: m.Digest, Tags: m.Tags, PushedAt: m.PushedAt, LastPulledAt: last})
		sizes[m.Digest] = m.ImageSize
	}
	children, err := r.cfg.Store.ManifestChildren(ctx, repo.ID)
	if err != nil {
		return nil, fmt.Errorf("lifecycle: indexes of %s: %w", repo.Name, err)
	}
	var out []Candidate
	for _, e := range lifecycle.Plan(p, imgs, children, r.cfg.Now()) {
		out = append(out, Candidate{Expiry: e, Size: sizes[e.Image.Digest]})
	}
	return out, nil
}

// RunRepository applies the repository's stored policy (ErrNoPolicy if
// none). An image is deleted only if its tags are still those it was
// evaluated with: a tag pushed onto an image between evaluation and
// deletion keeps it (it is reconsidered at the next run). Images an index
// of the repository references are not candidates unless that index
// expires too (lifecycle.Plan), as BatchDeleteImage
// refuses them; candidates go oldest first, so an index's children
// (pushed before it) come up while it still exists, and are tried again
// once a pass has deleted it. So a preview (a dry run) and the run agree.
func (r *Runner) RunRepository(ctx context.Context, repo metadata.Repository, dryRun bool) (Report, error) {
	rep := Report{Repository: repo.Name}
	st, err := r.Policy(ctx, repo.Name)
	if err != nil {
		return rep, err
	}
	p, err := lifecycle.Parse([]byte(st.PolicyText))
	if err != nil {
		return rep, fmt.Errorf("lifecycle: stored policy of %s: %w", repo.Name, err)
	}
	cands, err := r.Plan(ctx, repo, p)
	if err != nil {
		return rep, err
	}
	if dryRun {
		rep.Expired = cands
		return rep, nil
	}
	// Each pass retries what an index still referenced, as long as the
	// previous pass expired something (an index that may have released
	// them; nested indexes take a pass per level).
	for progress := true; progress && len(cands) > 0; {
		n := len(rep.Expired)
		if cands, err = r.expire(ctx, repo, cands, &rep); err != nil {
			return rep, err
		}
		progress = len(rep.Expired) > n
	}
	rep.Skipped = append(rep.Skipped, cands...)
	r.markEvaluated(ctx, repo.Name, st.PolicyText)
	return rep, nil
}

// expire deletes the candidates that are unchanged since evaluation,
// recording them (and the changed ones, skipped) in rep, and returns those
// an index of the repository still references.
func (r *Runner) expire(ctx context.Context, repo metadata.Repository, cands []Candidate, rep *Report) (referenced []Candidate, err error) {
	for _, c := range cands {
		tags, err := r.cfg.Store.ImageTags(ctx, repo.ID, c.Image.Digest)
		if err != nil {
			return referenced, fmt.Errorf("lifecycle: tags of %s: %w", c.Image.Digest, err)
		}
		if !slices.Equal(tags, sorted(c.Image.Tags)) {
			rep.Skipped = append(rep.Skipped, c)
			continue
		}
		del, err := r.cfg.Store.DeleteImage(ctx, repo.ID, c.Image.Digest, "")
		switch {
		case errors.Is(err, metadata.ErrNotFound):
			continue // deleted meanwhile
		case errors.Is(err, metadata.ErrImageReferenced):
			referenced = append(referenced, c)
			continue
		case err != nil:
			return referenced, fmt.Errorf("lifecycle: expire %s in %s: %w", c.Image.Digest, repo.Name, err)
		}
		rep.Expired = append(rep.Expired, c)
		if r.cfg.OnExpire != nil {
			r.cfg.OnExpire(ctx, repo, c)
		}
		r.cfg.Log.InfoContext(ctx, "lifecycle: image expired", "repository", repo.Name,
			"digest", c.Image.Digest, "tags", c.Image.Tags, "rulePriority", c.RulePriority)
		if del.ObjectKey != "" && r.cfg.Driver != nil {
			if err := r.cfg.Driver.Delete(context.WithoutCancel(ctx), del.ObjectKey); err != nil {
				r.cfg.Log.WarnContext(ctx, "lifecycle: delete manifest object failed; left for garbage collection", "key", del.ObjectKey, "error", err)
			}
		}
	}
	return referenced, nil
}

// markEvaluated records lastEvaluatedAt (GetLifecyclePolicy) unless the
// policy changed meanwhile.
func (r *Runner) markEvaluated(ctx context.Context, name, text string) {
	now := r.cfg.Now().UTC()
	err := r.cfg.Store.UpdateRepositoryDocs(ctx, name, func(_ metadata.Repository, tx metadata.DocTx) error {
		d, err := tx.Get(lifecycle.DocKind, name)
		if err != nil {
			return err
		}
		var st lifecycle.Stored
		if err := json.Unmarshal(d.Data, &st); err != nil || st.PolicyText != text {
			return err
		}
		st.LastEvaluatedAt = now
		d.Data, _ = json.Marshal(st)
		_, err = tx.Put(d)
		return err
	})
	if err != nil && !errors.Is(err, metadata.ErrNotFound) {
		r.cfg.Log.WarnContext(ctx, "lifecycle: record evaluation time", "repository", name, "error", err)
	}
}

func sorted(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

// RunAll applies every repository's policy; repositories without one are
// left alone. One repository's failure is reported in its Report and does
// not stop the others.
func (r *Runner) RunAll(ctx context.Context, dryRun bool) ([]Report, error) {
	var names []string
	err := r.cfg.Store.ViewDocs(ctx, func(tx metadata.DocTx) error {
		docs, err := tx.List(lifecycle.DocKind, "")
		for _, d := range docs {
			names = append(names, d.Key)
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("lifecycle: list policies: %w", err)
	}
	var reps []Report
	for _, name := range names {
		if ctx.Err() != nil {
			return reps, ctx.Err()
		}
		repo, err := r.cfg.Store.GetRepository(ctx, name)
		if errors.Is(err, metadata.ErrNotFound) {
			continue
		}
		if err != nil {
			return reps, err
		}
		rep, err := r.RunRepository(ctx, repo, dryRun)
		if errors.Is(err, ErrNoPolicy) {
			continue
		}
		rep.Err = err
		reps = append(reps, rep)
	}
	return reps, nil
}

// Loop runs RunAll every interval until ctx ends. The server starts it in
// a goroutine.
func (r *Runner) Loop(ctx context.Context, interval time.Duration) {
	loop.Every(ctx, interval, func(ctx context.Context) {
		reps, err := r.RunAll(ctx, false)
		if err != nil && ctx.Err() == nil {
			r.cfg.Log.WarnContext(ctx, "lifecycle run", "error", err)
		}
		for _, rep := range reps {
			if rep.Err != nil {
				r.cfg.Log.WarnContext(ctx, "lifecycle run", "repository", rep.Repository, "error", rep.Err)
			}
		}
	})
}
