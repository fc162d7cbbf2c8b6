package audit

import (
	"context"
	"testing"
)

// With segments taken over from spares, a segment can be born, filled
// and sealed within a millisecond: every record still lands in exactly
// one log file.
func TestFastRotationKeepsEveryRecordOnce(t *testing.T) {
	t.Parallel()
	for round := range 10 {
		dir := t.TempDir()
		s := newTestStore(t, dir, func(c *Config) { c.FileMaxEvents = 3 })
		for i := range 24 {
			if err := s.Record(context.Background(), testInfo(i), Outcome{Status: 200}); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		seen := map[string]int{}
		for _, ev := range trailRecords(t, dir) {
			seen[ev.RequestID]++
		}
		for id, n := range seen {
			if n != 1 {
				t.Fatalf("round %d: %s is in the trail %d times", round, id, n)
			}
		}
		if len(seen) != 24 {
			t.Fatalf("round %d: %d records in the trail, want 24", round, len(seen))
		}
	}
}
