package auth

import (
	"context"
	"time"
)

// Several replicas (issue #9) each keep a FailureLimiter; without sharing,
// an attacker who spreads attempts over N replicas gets N budgets. With
// Shared set, each replica still counts and refuses locally, and Run also
// adds its failures to a count the replicas share (a PostgreSQL table).
// When a subject's shared count reaches the budget, the replica that saw
// it throttles the subject here until the shared window ends and tells
// the others (Shared.Spent), which Throttle it too. Throttled never waits
// for any of this: it reads memory only.

// SharedCount is one subject's failure count across processes.
type SharedCount struct {
	// Failures in the subject's current shared window, the batch just
	// added included.
	Failures int64
	// Left is how long that window still runs.
	Left time.Duration
}

// SharedFailures is a failure count several processes share.
type SharedFailures interface {
	// AddFailures adds add[s] failures to each subject s and returns each
	// subject's count in its current window. A subject's window starts at
	// its first failure after the previous window (of length window)
	// ended, as in FailureLimiter.
	AddFailures(ctx context.Context, window time.Duration, add map[string]int) (map[string]SharedCount, error)
	// Spent tells the other processes that subject has spent its budget
	// for the next left; they call Throttle.
	Spent(ctx context.Context, subject string, left time.Duration) error
}

const (
	// sharedTimeout bounds one exchange with Shared (a batch and its
	// Spent calls).
	sharedTimeout = 2 * time.Second
	// sharedBatch is how many subjects one AddFailures carries at most.
	sharedBatch = 1000
	// sharedErrorLogEvery spaces the warnings of a failing Shared, which
	// an attack during a database outage would otherwise turn into a
	// flood.
	sharedErrorLogEvery = 10 * time.Second
)

// queueShared notes one failure of each subject for Run; l.mu is held.
func (l *FailureLimiter) queueShared(subjects []string) {
	if l.Shared == nil {
		return
	}
	if l.pending == nil {
		l.pending = make(map[string]int)
	}
	for _, s := range subjects {
		if s == "" {
			continue
		}
		// Past the bound a new subject counts here only; its next
		// failure after Run drained the queue is shared again.
		if _, ok := l.pending[s]; ok || len(l.pending) < maxSubjects {
			l.pending[s]++
		}
	}
	select {
	case l.wakeCh() <- struct{}{}:
	default: // Run is already woken
	}
}

// wakeCh returns the channel Run waits on; l.mu is held.
func (l *FailureLimiter) wakeCh() chan struct{} {
	if l.wake == nil {
		l.wake = make(chan struct{}, 1)
	}
	return l.wake
}

// Run sends the failures Fail records to Shared until ctx ends, and
// throttles here every subject whose shared count reaches the budget,
// telling the other processes through Shared.Spent. Without Shared it
// returns at once.
//
// One batch is in flight at a time, bounded by sharedTimeout; failures
// recorded meanwhile are merged per subject into the next batch, so a
// flood of failures costs one statement at a time and never delays a
// request. A batch Shared does not take is dropped: those failures count
// in this process only (its own budget still applies).
func (l *FailureLimiter) Run(ctx context.Context) {
	if l == nil || l.Shared == nil {
		return
	}
	l.mu.Lock()
	wake := l.wakeCh()
	l.mu.Unlock()
	var lastLog time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-wake:
		}
		for batch := l.takePending(); len(batch) > 0 && ctx.Err() == nil; batch = l.takePending() {
			err := l.flush(ctx, batch)
			if err != nil && ctx.Err() == nil && l.Log != nil && time.Since(lastLog) >= sharedErrorLogEvery {
				lastLog = time.Now()
				l.Log.Warn("cannot share authentication failures with the other replicas; counting them here only", "err", err)
			}
		}
	}
}

// takePending removes and returns up to sharedBatch pending subjects.
func (l *FailureLimiter) takePending() map[string]int {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.pending) <= sharedBatch {
		batch := l.pending
		l.pending = nil
		return batch
	}
	batch := make(map[string]int, sharedBatch)
	for s, n := range l.pending {
		if len(batch) == sharedBatch {
			break
		}
		batch[s] = n
		delete(l.pending, s)
	}
	return batch
}

// flush adds batch to the shared count and throttles the subjects that
// spent the budget; the batch that crossed it announces it.
func (l *FailureLimiter) flush(ctx context.Context, batch map[string]int) error {
	max, win, _ := l.params()
	ctx, cancel := context.WithTimeout(ctx, sharedTimeout)
	defer cancel()
	counts, err := l.Shared.AddFailures(ctx, win, batch)
	if err != nil {
		return err
	}
	var firstErr error
	for s, c := range counts {
		if c.Failures < int64(max) {
			continue
		}
		l.Throttle(s, c.Left)
		// Only the batch that crossed the budget announces it; a
		// replica that missed the announcement throttles at its own
		// next failure of the subject, which returns the spent count.
		if c.Failures-int64(batch[s]) < int64(max) {
			if err := l.Shared.Spent(ctx, s, c.Left); err != nil && firstErr == nil {
				firstErr = err
			}
		}
	}
	return firstErr
}

// Throttle marks subject as having spent its budget for the next left (at
// most one Window): another process counted its failures past the budget.
func (l *FailureLimiter) Throttle(subject string, left time.Duration) {
	if l == nil || subject == "" || left <= 0 {
		return
	}
	max, win, now := l.params()
	left = min(left, win)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.makeRoom(now, win)
	if f := l.subj[subject]; f != nil && now.Sub(f.start) < win && f.n >= max && f.start.Add(win).After(now.Add(left)) {
		return // already throttled for longer
	}
	l.subj[subject] = &failures{start: now.Add(left - win), n: max}
}
