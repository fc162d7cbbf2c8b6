package postgres

import (
	"strings"
	"sync"
	"testing"
	"time"
)

// TestAuthFailures: counts add up across stores within a window, a new
// window starts over, subjects are independent, odd subjects are stored
// hashed, concurrent batches do not deadlock, and old rows are deleted.
func TestAuthFailures(t *testing.T) {
	t.Parallel()
	dsn := newDSN(t)
	a, b := openStore(t, fastCfg(dsn)), openStore(t, fastCfg(dsn))
	ctx := t.Context()
	const win = time.Minute
	got, err := a.AddAuthFailures(ctx, win, map[string]int{"ip:10.0.0.1": 3, "key:AKIA1": 1})
	if err != nil {
		t.Fatal(err)
	}
	if c := got["ip:10.0.0.1"]; c.Failures != 3 || c.Left <= 0 || c.Left > win {
		t.Fatalf("first batch: %+v", got)
	}
	got, err = b.AddAuthFailures(ctx, win, map[string]int{"ip:10.0.0.1": 2, "ip:10.0.0.2": 1})
	if err != nil {
		t.Fatal(err)
	}
	if got["ip:10.0.0.1"].Failures != 5 || got["ip:10.0.0.2"].Failures != 1 || len(got) != 2 {
		t.Fatalf("second batch through another store: %+v", got)
	}

	// Attacker-chosen subjects: too long, NUL, invalid UTF-8.
	odd := map[string]int{"key:" + strings.Repeat("A", 300): 1, "key:\x00": 1, "key:\xff": 1}
	got, err = a.AddAuthFailures(ctx, win, odd)
	if err != nil || len(got) != 3 {
		t.Fatalf("odd subjects: %+v, %v", got, err)
	}
	for s := range odd {
		if got[s].Failures != 1 {
			t.Errorf("odd subject %q: %+v", s, got[s])
		}
	}

	// A window that ended starts over.
	const short = 50 * time.Millisecond
	if _, err := a.AddAuthFailures(ctx, short, map[string]int{"ip:10.0.0.9": 4}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * short)
	got, err = a.AddAuthFailures(ctx, short, map[string]int{"ip:10.0.0.9": 1})
	if err != nil || got["ip:10.0.0.9"].Failures != 1 {
		t.Fatalf("after the window: %+v, %v; want 1", got, err)
	}

	// Overlapping batches from two stores at once.
	var wg sync.WaitGroup
	for i := range 8 {
		s := []*Store{a, b}[i%2]
		wg.Go(func() {
			batch := map[string]int{}
			for j := range 50 {
				batch["ip:10.1.0."+string(rune('a'+(j+i)%50))] = 1
			}
			if _, err := s.AddAuthFailures(ctx, win, batch); err != nil {
				t.Errorf("concurrent batch: %v", err)
			}
		})
	}
	wg.Wait()
	got, err = a.AddAuthFailures(ctx, win, map[string]int{"ip:10.1.0.a": 0})
	if err != nil || got["ip:10.1.0.a"].Failures != 8 {
		t.Fatalf("after 8 concurrent batches: %+v, %v; want 8", got, err)
	}

	time.Sleep(10 * time.Millisecond)
	n, err := a.DeleteAuthFailures(ctx, 5*time.Millisecond)
	if err != nil || n == 0 {
		t.Fatalf("DeleteAuthFailures = %d, %v", n, err)
	}
	if n, err := a.DeleteAuthFailures(ctx, 0); err != nil || n != 0 {
		t.Fatalf("DeleteAuthFailures after a sweep = %d, %v; want 0", n, err)
	}
	if _, err := a.AddAuthFailures(ctx, 0, map[string]int{"x": 1}); err == nil {
		t.Error("a zero window was accepted")
	}
}
