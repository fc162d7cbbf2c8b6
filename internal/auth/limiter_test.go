package auth

import (
	"testing"
	"time"
)

func TestFailureLimiter(t *testing.T) {
	t.Parallel()
	now := time.Unix(1000, 0)
	l := &FailureLimiter{MaxFailures: 3, Window: time.Minute, Now: func() time.Time { return now }}
	for i := 0; i < 3; i++ {
		if l.Throttled("ip:10.0.0.1", "key:AKIA1") {
			t.Fatalf("throttled after %d failures", i)
		}
		l.Fail("ip:10.0.0.1", "key:AKIA1")
	}
	if !l.Throttled("ip:10.0.0.1") || !l.Throttled("key:AKIA1") {
		t.Fatal("not throttled after the budget was spent")
	}
	// Other clients are not locked out.
	if l.Throttled("ip:10.0.0.2", "key:AKIA2") {
		t.Fatal("another address and key were throttled")
	}
	now = now.Add(time.Minute)
	if l.Throttled("ip:10.0.0.1", "key:AKIA1") {
		t.Fatal("still throttled after the window")
	}
	var nilLimiter *FailureLimiter
	nilLimiter.Fail("x")
	if nilLimiter.Throttled("x") {
		t.Fatal("nil limiter throttles")
	}
}
