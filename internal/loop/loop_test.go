package loop

import (
	"context"
	"sync/atomic"
	"testing"
	"time"
)

func TestEvery(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var n atomic.Int32
	done := make(chan struct{})
	start := time.Now()
	var first time.Duration
	go func() {
		defer close(done)
		Every(ctx, 10*time.Millisecond, func(got context.Context) {
			if got != ctx {
				t.Error("fn was not given the loop's context")
			}
			if n.Add(1) == 1 {
				first = time.Since(start)
			}
		})
	}()
	for deadline := time.Now().Add(5 * time.Second); n.Load() < 3; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d passes in 5 s", n.Load())
		}
	}
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Every does not return when its context ends")
	}
	if first < 10*time.Millisecond {
		t.Errorf("first pass after %v, want one interval", first)
	}
	after := n.Load()
	time.Sleep(30 * time.Millisecond)
	if n.Load() != after {
		t.Error("a pass ran after Every returned")
	}
}
