package auth

import (
	"log/slog"
	"sync"
	"time"
)

// FailureLimiter throttles repeated authentication failures (issue #3,
// "Abuse"): each source address and each access key ID gets a budget of
// failures per window; once a subject spends it, its requests are refused
// with a throttling error until the window ends. Subjects are independent,
// so one client's failures never lock out another address or key.
//
// Throttled answers from memory only: it runs before every request. With
// Shared set (several replicas, issue #9) the budget is shared too: see
// Run (limiter_shared.go).
type FailureLimiter struct {
	// MaxFailures per Window for one subject; 0 means 20.
	MaxFailures int
	// Window is the accounting period; 0 means one minute.
	Window time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Shared, if set, counts failures across processes; Run sends it the
	// failures Fail records. Nil: the budget is this process's alone.
	Shared SharedFailures
	// Log receives Shared's errors; nil discards them.
	Log *slog.Logger

	mu   sync.Mutex
	subj map[string]*failures
	// pending are failures recorded but not yet sent to Shared, per
	// subject; wake tells Run there are some.
	pending map[string]int
	wake    chan struct{}
}

type failures struct {
	start time.Time
	n     int
}

// maxSubjects bounds the limiter's memory: past it, expired entries are
// swept, and if none expired the table is reset (attackers with that many
// addresses cannot be held off by a per-address limit anyway).
const maxSubjects = 100_000

func (l *FailureLimiter) params() (int, time.Duration, time.Time) {
	max, win := l.MaxFailures, l.Window
	if max <= 0 {
		max = 20
	}
	if win <= 0 {
		win = time.Minute
	}
	now := time.Now()
	if l.Now != nil {
		now = l.Now()
	}
	return max, win, now
}

// Throttled reports whether any of the subjects (e.g. "ip:1.2.3.4",
// "key:AKIA...") has spent its failure budget.
func (l *FailureLimiter) Throttled(subjects ...string) bool {
	if l == nil {
		return false
	}
	max, win, now := l.params()
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, s := range subjects {
		if s == "" {
			continue
		}
		if f := l.subj[s]; f != nil && now.Sub(f.start) < win && f.n >= max {
			return true
		}
	}
	return false
}

// Fail records one authentication failure for each subject.
func (l *FailureLimiter) Fail(subjects ...string) {
	if l == nil {
		return
	}
	_, win, now := l.params()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.makeRoom(now, win)
	for _, s := range subjects {
		if s == "" {
			continue
		}
		f := l.subj[s]
		if f == nil || now.Sub(f.start) >= win {
			f = &failures{start: now}
			l.subj[s] = f
		}
		f.n++
	}
	l.queueShared(subjects)
}

// makeRoom makes the subject table ready for new entries within
// maxSubjects; l.mu is held.
func (l *FailureLimiter) makeRoom(now time.Time, win time.Duration) {
	if l.subj == nil {
		l.subj = make(map[string]*failures)
	}
	if len(l.subj) < maxSubjects {
		return
	}
	for k, f := range l.subj {
		if now.Sub(f.start) >= win {
			delete(l.subj, k)
		}
	}
	if len(l.subj) >= maxSubjects {
		clear(l.subj)
	}
}
