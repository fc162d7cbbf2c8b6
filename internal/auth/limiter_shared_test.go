package auth

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

// fakeShared is a SharedFailures for several limiters in one test: one
// count per subject, and Spent throttles every limiter, as the PostgreSQL
// NOTIFY does for every replica.
type fakeShared struct {
	mu     sync.Mutex
	counts map[string]int64
	spent  []string
	peers  []*FailureLimiter
	err    error         // AddFailures fails with it
	block  chan struct{} // AddFailures waits for it (or its ctx)
	calls  int
}

func (f *fakeShared) AddFailures(ctx context.Context, window time.Duration, add map[string]int) (map[string]SharedCount, error) {
	if f.block != nil {
		select {
		case <-f.block:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if f.err != nil {
		return nil, f.err
	}
	if f.counts == nil {
		f.counts = map[string]int64{}
	}
	out := map[string]SharedCount{}
	for s, n := range add {
		f.counts[s] += int64(n)
		out[s] = SharedCount{Failures: f.counts[s], Left: window / 2}
	}
	return out, nil
}

func (f *fakeShared) Spent(_ context.Context, subject string, left time.Duration) error {
	f.mu.Lock()
	f.spent = append(f.spent, subject)
	peers := f.peers
	f.mu.Unlock()
	for _, p := range peers {
		p.Throttle(subject, left)
	}
	return nil
}

func (f *fakeShared) snapshot() (int, []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls, append([]string(nil), f.spent...)
}

// eventually fails the test unless cond holds within 5s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
	}
}

// startReplicas returns n limiters sharing one fakeShared, each with Run
// going until the test ends.
func startReplicas(t *testing.T, n, max int, shared *fakeShared) []*FailureLimiter {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	var ls []*FailureLimiter
	for range n {
		l := &FailureLimiter{MaxFailures: max, Window: time.Minute, Shared: shared}
		ls = append(ls, l)
		wg.Go(func() { l.Run(ctx) })
	}
	shared.mu.Lock()
	shared.peers = ls
	shared.mu.Unlock()
	return ls
}

func TestFailureLimiterShared(t *testing.T) {
	t.Parallel()
	t.Run("SpreadFailuresThrottleEverywhere", func(t *testing.T) {
		t.Parallel()
		shared := &fakeShared{}
		ls := startReplicas(t, 3, 6, shared)
		subjects := []string{"ip:10.0.0.1", "key:AKIA1"}
		for i := range 5 { // 2+2+1: no replica alone near its budget of 6
			ls[i%3].Fail(subjects...)
		}
		eventually(t, "5 failures are shared", func() bool {
			shared.mu.Lock()
			defer shared.mu.Unlock()
			return shared.counts["ip:10.0.0.1"] == 5
		})
		for i, l := range ls {
			if l.Throttled(subjects...) {
				t.Fatalf("replica %d throttles after 5 of 6 failures", i)
			}
		}
		ls[2].Fail(subjects...) // the sixth
		for i, l := range ls {
			eventually(t, "every replica throttles", func() bool {
				return l.Throttled("ip:10.0.0.1") && l.Throttled("key:AKIA1")
			})
			if l.Throttled("ip:10.0.0.2", "key:AKIA2") {
				t.Errorf("replica %d throttles another address and key", i)
			}
		}
		// The batch that crossed the budget announced it, once per subject.
		ls[0].Fail(subjects...)
		eventually(t, "the seventh failure is shared", func() bool {
			shared.mu.Lock()
			defer shared.mu.Unlock()
			return shared.counts["ip:10.0.0.1"] == 7
		})
		if _, spent := shared.snapshot(); len(spent) != 2 {
			t.Errorf("Spent calls %v; want one per subject", spent)
		}
	})
	t.Run("SharedDownLocalBudgetHolds", func(t *testing.T) {
		t.Parallel()
		shared := &fakeShared{err: errors.New("database unreachable")}
		l := startReplicas(t, 1, 3, shared)[0]
		for range 3 {
			if l.Throttled("ip:10.0.0.1") {
				t.Fatal("throttled before the local budget was spent")
			}
			l.Fail("ip:10.0.0.1")
		}
		if !l.Throttled("ip:10.0.0.1") {
			t.Fatal("a failing shared count let the local budget be exceeded")
		}
		eventually(t, "the failures are offered to the shared count", func() bool {
			calls, _ := shared.snapshot()
			return calls > 0
		})
	})
	t.Run("SlowSharedNeverBlocksRequests", func(t *testing.T) {
		t.Parallel()
		shared := &fakeShared{block: make(chan struct{})}
		l := startReplicas(t, 1, 3, shared)[0]
		done := make(chan struct{})
		go func() {
			defer close(done)
			for range 1000 {
				l.Fail("ip:10.0.0.1", "key:AKIA1")
				l.Throttled("ip:10.0.0.1", "key:AKIA1")
			}
		}()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatal("Fail or Throttled waited for the shared count")
		}
		if !l.Throttled("ip:10.0.0.1") {
			t.Fatal("not throttled locally")
		}
		close(shared.block)
		eventually(t, "the queued failures are sent once unblocked", func() bool {
			shared.mu.Lock()
			defer shared.mu.Unlock()
			return shared.counts["ip:10.0.0.1"] == 1000
		})
		if calls, _ := shared.snapshot(); calls > 3 {
			t.Errorf("%d AddFailures calls for 1000 failures; want them merged", calls)
		}
	})
}

// Throttle marks a subject for at most one window and never shortens a
// longer mark; Fail keeps counting past it.
func TestFailureLimiterThrottle(t *testing.T) {
	t.Parallel()
	now := time.Unix(1000, 0)
	l := &FailureLimiter{MaxFailures: 3, Window: time.Minute, Now: func() time.Time { return now }}
	l.Throttle("ip:10.0.0.1", 10*time.Second)
	l.Throttle("key:AKIA1", time.Hour) // capped to the window
	l.Throttle("", time.Minute)
	l.Throttle("ip:10.0.0.3", 0)
	if !l.Throttled("ip:10.0.0.1") || !l.Throttled("key:AKIA1") || l.Throttled("ip:10.0.0.3") || l.Throttled("ip:10.0.0.2") {
		t.Fatal("Throttle did not mark exactly the subjects given")
	}
	l.Throttle("key:AKIA1", time.Second) // shorter: ignored
	now = now.Add(10 * time.Second)
	if l.Throttled("ip:10.0.0.1") {
		t.Error("still throttled after the time left")
	}
	if !l.Throttled("key:AKIA1") {
		t.Error("a shorter mark shortened a longer one")
	}
	now = now.Add(50 * time.Second)
	if l.Throttled("key:AKIA1") {
		t.Error("throttled for longer than one window")
	}
	var nilLimiter *FailureLimiter
	nilLimiter.Throttle("x", time.Minute)
	nilLimiter.Run(context.Background()) // returns at once
	(&FailureLimiter{}).Run(context.Background())
}
