package postgres

import (
	"sync"
	"testing"
)

// TestCounter: a counter starts at 0, is created by whichever store uses
// it first (concurrently too), and a Tick through one store is seen by
// the next Count through another.
func TestCounter(t *testing.T) {
	t.Parallel()
	dsn := newDSN(t)
	a, b := openStore(t, fastCfg(dsn)), openStore(t, fastCfg(dsn))
	ctx := t.Context()
	if n, err := a.Count(ctx, "fence"); err != nil || n != 0 {
		t.Fatalf("Count before any Tick = %d, %v; want 0", n, err)
	}
	var wg sync.WaitGroup
	for _, s := range []*Store{a, b, a, b} {
		wg.Go(func() {
			if err := s.Tick(ctx, "race"); err != nil {
				t.Errorf("concurrent first Tick: %v", err)
			}
		})
	}
	wg.Wait()
	last := int64(0)
	for i := range 5 {
		if err := []*Store{a, b}[i%2].Tick(ctx, "fence"); err != nil {
			t.Fatal(err)
		}
		n, err := []*Store{b, a}[i%2].Count(ctx, "fence")
		if err != nil || n == last {
			t.Fatalf("Count after Tick %d = %d, %v; want a new value (was %d)", i, n, err, last)
		}
		last = n
	}
	if n, err := a.Count(ctx, "fence"); err != nil || n != last {
		t.Errorf("Count without a Tick = %d, %v; want %d", n, err, last)
	}
	if err := a.Tick(ctx, "Bad-Name"); err == nil {
		t.Error("Tick accepted a bad name")
	}
}
