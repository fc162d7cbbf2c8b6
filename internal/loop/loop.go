// Package loop runs periodic work: the leader's background jobs (garbage
// collection, lifecycle policies, KMS sweeps, the shared trail's digests)
// each call a pass of theirs every interval until their context ends.
package loop

import (
	"context"
	"time"
)

// Every calls fn every interval, the first time one interval from now,
// until ctx ends; fn is given ctx. A pass that outlasts the interval
// delays the next rather than overlapping it.
func Every(ctx context.Context, interval time.Duration, fn func(context.Context)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			fn(ctx)
		}
	}
}
