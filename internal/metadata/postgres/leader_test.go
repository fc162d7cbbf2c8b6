package postgres

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

// fastCfg makes leadership and reconnects quick enough to test.
func fastCfg(dsn string) Config {
	return Config{DSN: dsn, MaxConns: 4, LeaderPoll: 20 * time.Millisecond, LeaderCheck: 200 * time.Millisecond}
}

// election records the terms of several candidates and checks that no two
// overlap: a term may start only after every earlier term's context ended.
type election struct {
	t      *testing.T
	strict bool // fail when a term starts before an earlier one ended
	mu     sync.Mutex
	terms  []term
	next   chan string // who started a term
}

type term struct {
	who string
	ctx context.Context
}

func newElection(t *testing.T) *election {
	return &election{t: t, strict: true, next: make(chan string, 16)}
}

// fn returns a leader func for candidate who that holds leadership until
// its context ends.
func (e *election) fn(who string) func(context.Context) {
	return func(ctx context.Context) {
		e.mu.Lock()
		for _, old := range e.terms {
			if e.strict && old.ctx.Err() == nil {
				e.t.Errorf("%s became leader while %s still was", who, old.who)
			}
		}
		e.terms = append(e.terms, term{who, ctx})
		e.mu.Unlock()
		e.next <- who
		<-ctx.Done()
	}
}

func (e *election) count() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.terms)
}

// waitLeader returns the next candidate to start a term.
func (e *election) waitLeader(t *testing.T) string {
	t.Helper()
	select {
	case who := <-e.next:
		return who
	case <-time.After(10 * time.Second):
		t.Fatal("no leader elected within 10s")
		return ""
	}
}

// TestLeaderOneAtATime runs two stores for the same leadership: one leads,
// the other waits; closing the leader's store moves leadership at once.
func TestLeaderOneAtATime(t *testing.T) {
	t.Parallel()
	dsn := newDSN(t)
	stores := map[string]*Store{"a": openStore(t, fastCfg(dsn)), "b": openStore(t, fastCfg(dsn))}
	e := newElection(t)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	results := map[string]chan error{"a": make(chan error, 1), "b": make(chan error, 1)}
	for who, s := range stores {
		go func() { results[who] <- s.Leader(ctx, "gc", e.fn(who)) }()
	}
	first := e.waitLeader(t)
	time.Sleep(300 * time.Millisecond) // 15 polls of the other candidate
	if n := e.count(); n != 1 {
		t.Fatalf("%d terms while the first leader holds on, want 1", n)
	}
	other := map[string]string{"a": "b", "b": "a"}[first]

	start := time.Now()
	if err := stores[first].Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-results[first]; !errors.Is(err, ErrClosed) {
		t.Errorf("Leader of the closed store = %v, want ErrClosed", err)
	}
	if who := e.waitLeader(t); who != other {
		t.Fatalf("after closing %s, %s leads", first, who)
	}
	t.Logf("leadership moved %v after Close", time.Since(start))
	e.mu.Lock()
	if c := context.Cause(e.terms[0].ctx); !errors.Is(c, ErrClosed) {
		t.Errorf("first term ended with cause %v, want ErrClosed", c)
	}
	e.mu.Unlock()

	cancel()
	if err := <-results[other]; !errors.Is(err, context.Canceled) {
		t.Errorf("Leader after its ctx ended = %v, want context.Canceled", err)
	}
	if err := stores[first].Leader(t.Context(), "gc", e.fn("late")); !errors.Is(err, ErrClosed) {
		t.Errorf("Leader on a closed store = %v, want ErrClosed", err)
	}
}

// TestLeaderConnectionLost kills the leader's lock session from outside:
// its term ends with ErrLeadershipLost, a new term starts (in either
// store: the old leader campaigns again at once), and closing that leader
// hands over to the other.
func TestLeaderConnectionLost(t *testing.T) {
	t.Parallel()
	dsn := newDSN(t)
	stores := map[string]*Store{"a": openStore(t, fastCfg(dsn)), "b": openStore(t, fastCfg(dsn))}
	e := newElection(t)
	// When the server kills a session, the lock goes as the backend exits,
	// and the leader learns of it from the same exit: the other candidate,
	// polling, could in theory take the lock in between. The term's cause
	// is checked instead.
	e.strict = false
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	results := map[string]chan error{"a": make(chan error, 1), "b": make(chan error, 1)}
	go func() { results["a"] <- stores["a"].Leader(ctx, "gc", e.fn("a")) }()
	if who := e.waitLeader(t); who != "a" {
		t.Fatalf("%s leads", who)
	}
	go func() { results["b"] <- stores["b"].Leader(ctx, "gc", e.fn("b")) }()

	killLockHolder(t, stores["a"], "leader:gc")
	next := e.waitLeader(t)
	e.mu.Lock()
	if c := context.Cause(e.terms[0].ctx); !errors.Is(c, ErrLeadershipLost) {
		t.Errorf("a's term ended with cause %v, want ErrLeadershipLost", c)
	}
	e.mu.Unlock()
	t.Logf("after the kill, %s leads", next)

	other := map[string]string{"a": "b", "b": "a"}[next]
	if err := stores[next].Close(); err != nil {
		t.Fatal(err)
	}
	if who := e.waitLeader(t); who != other {
		t.Fatalf("after closing %s, %s leads", next, who)
	}
	if err := <-results[next]; !errors.Is(err, ErrClosed) {
		t.Errorf("%s's Leader = %v, want ErrClosed", next, err)
	}
	cancel()
	if err := <-results[other]; !errors.Is(err, context.Canceled) {
		t.Errorf("%s's Leader = %v, want context.Canceled", other, err)
	}
}

// TestLeaderReturn: when fn returns, Leader returns nil and the lock is
// free for the next candidate at once.
func TestLeaderReturn(t *testing.T) {
	t.Parallel()
	dsn := newDSN(t)
	a, b := openStore(t, fastCfg(dsn)), openStore(t, fastCfg(dsn))
	ran := false
	if err := a.Leader(t.Context(), "job", func(ctx context.Context) { ran = ctx.Err() == nil }); err != nil || !ran {
		t.Fatalf("Leader = %v, fn ran with a live context: %v", err, ran)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	got := make(chan struct{})
	if err := b.Leader(ctx, "job", func(context.Context) { close(got) }); err != nil {
		t.Fatalf("second candidate: %v", err)
	}
	<-got
	// Different names are different leaderships.
	inner := make(chan error, 1)
	err := a.Leader(ctx, "one", func(context.Context) {
		inner <- b.Leader(ctx, "two", func(context.Context) {})
	})
	if ierr := <-inner; err != nil || ierr != nil {
		t.Errorf("two names: %v, %v", err, ierr)
	}
}

// killLockHolder terminates the session holding the advisory lock of name.
func killLockHolder(t *testing.T, s *Store, name string) {
	t.Helper()
	ctx := t.Context()
	key, err := s.lockKey(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	var n int
	// A bigint advisory key shows in pg_locks as classid (high half),
	// objid (low half), objsubid 1.
	err = s.pool.QueryRow(ctx, `SELECT COUNT(pg_terminate_backend(pid)) FROM pg_locks
		WHERE locktype = 'advisory' AND granted AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
		AND classid::bigint = $1 AND objid::bigint = $2 AND objsubid = 1`,
		int64(uint64(key)>>32), int64(uint64(key)&0xffffffff)).Scan(&n)
	if err != nil || n != 1 {
		t.Fatalf("terminated %d lock holders, err %v; want 1", n, err)
	}
}
