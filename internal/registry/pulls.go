package registry

import (
	"context"
	"sync"
	"time"

	"github.com/cofferhq/coffer/internal/metadata"
)

// pullRecorder batches lastRecordedPullTime updates so a manifest GET never
// waits for a durable database write; Flush writes the batch.
type pullRecorder struct {
	mu      sync.Mutex
	pending map[[2]string]time.Time
}

func (p *pullRecorder) record(repoID, digest string, at time.Time) {
	p.mu.Lock()
	if p.pending == nil {
		p.pending = make(map[[2]string]time.Time)
	}
	p.pending[[2]string{repoID, digest}] = at.UTC()
	p.mu.Unlock()
}

// FlushPulls writes the recorded pull times to the store.
func (r *Registry) FlushPulls(ctx context.Context) error {
	r.pulls.mu.Lock()
	batch := r.pulls.pending
	r.pulls.pending = nil
	r.pulls.mu.Unlock()
	var first error
	for k, at := range batch {
		if err := r.cfg.Store.RecordPull(ctx, k[0], k[1], at); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// Run performs the registry's background work until ctx ends: for now,
// flushing pull times every interval.
func (r *Registry) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			_ = r.FlushPulls(context.WithoutCancel(ctx))
			return
		case <-t.C:
			if err := r.FlushPulls(ctx); err != nil {
				r.log.WarnContext(ctx, "record pull times", "error", err)
			}
		}
	}
}

// LastPull returns when m was last pulled: its stored LastPulledAt, or a
// later pull still waiting in the batch (ECR DescribeImages'
// lastRecordedPullTime). Zero if never pulled.
func (r *Registry) LastPull(m metadata.Manifest) time.Time {
	r.pulls.mu.Lock()
	t, ok := r.pulls.pending[[2]string{m.RepoID, m.Digest}]
	r.pulls.mu.Unlock()
	if ok && t.After(m.LastPulledAt) {
		return t
	}
	return m.LastPulledAt
}
