package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) requestIDs(t *testing.T) map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	ids := map[string]int{}
	for _, l := range strings.Split(strings.TrimSpace(s.b.String()), "\n") {
		if l == "" {
			continue
		}
		var ev Event
		if err := json.Unmarshal([]byte(l), &ev); err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
		ids[ev.RequestID]++
	}
	return ids
}

func TestTailFollowsALiveTrail(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := newTestStore(t, dir, func(c *Config) { c.FileMaxEvents = 3 })
	defer s.Close()
	for i := range 4 { // before the tail starts: not printed
		if err := s.Record(context.Background(), testInfo(100+i), Outcome{Status: 200}); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	var out syncBuffer
	done := make(chan error, 1)
	go func() { done <- Tail(ctx, dir, &out, TailOptions{Follow: true, Poll: 5 * time.Millisecond}) }()
	time.Sleep(50 * time.Millisecond)
	for i := range 20 {
		if err := s.Record(context.Background(), testInfo(i), Outcome{Status: 200}); err != nil {
			t.Fatal(err)
		}
		if i%5 == 0 {
			time.Sleep(10 * time.Millisecond)
		}
	}
	waitFor(t, "20 records tailed", func() bool { return len(out.requestIDs(t)) >= 20 })
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	ids := out.requestIDs(t)
	for id, n := range ids {
		if n != 1 || !strings.HasPrefix(id, "req-0000") {
			t.Errorf("tail printed %s %d times", id, n)
		}
	}
	if len(ids) != 20 {
		t.Errorf("tail printed %d records, want 20", len(ids))
	}

	// --since replays the sealed files and the open segment.
	s.Close()
	var all syncBuffer
	if err := Tail(context.Background(), dir, &all, TailOptions{Since: time.Unix(0, 0)}); err != nil {
		t.Fatal(err)
	}
	if got := all.requestIDs(t); len(got) != 24 {
		t.Errorf("tail --since printed %d records, want 24", len(got))
	}
}

// TestTailSinceWhileSealing: a segment sealed after --since listed the log
// files and before it read the segments is printed from its new log file,
// once; so is one it already knew and finds gone.
func TestTailSinceWhileSealing(t *testing.T) {
	t.Parallel()
	for _, when := range []string{"after listing", "known, then gone"} {
		dir := t.TempDir()
		s := newTestStore(t, dir, func(c *Config) { c.FileMaxEvents = 4 })
		for i := range 10 { // two sealed files and a segment of two
			if err := s.Record(context.Background(), testInfo(i), Outcome{Status: 200}); err != nil {
				t.Fatal(err)
			}
		}
		s.Flush(context.Background())
		for i := 10; i < 13; i++ { // an open segment
			if err := s.Record(context.Background(), testInfo(i), Outcome{Status: 200}); err != nil {
				t.Fatal(err)
			}
		}
		var out syncBuffer
		tl := &tailer{dir: dir, w: &out, since: time.Unix(0, 0), segs: map[string]*tailSeg{}, seen: map[string]bool{}}
		seal := func() {
			if err := s.Flush(context.Background()); err != nil {
				t.Fatal(err)
			}
		}
		if when == "after listing" {
			tl.afterList = seal
		} else {
			// The segment is known (as from an earlier read), then
			// sealed before it is read again.
			tl.afterList = func() {
				ents, _ := os.ReadDir(tl.segDir())
				for _, e := range ents {
					if _, u, ok := segmentUnique(e.Name()); ok {
						tl.segs[u] = &tailSeg{name: e.Name()}
					}
				}
				seal()
			}
		}
		if err := tl.start(); err != nil {
			t.Fatal(err)
		}
		s.Close()
		ids := out.requestIDs(t)
		for id, n := range ids {
			if n != 1 {
				t.Errorf("%s: %s printed %d times", when, id, n)
			}
		}
		if len(ids) != 13 {
			t.Errorf("%s: tail --since printed %d records, want 13", when, len(ids))
		}
	}
}
