package audit

import (
	"context"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"
)

func TestRetention(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	day0 := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	var now atomic.Int64
	clock := func() time.Time { return time.Unix(0, now.Load()).UTC() }
	run := func(day int, retention int, events int) *Store {
		now.Store(day0.AddDate(0, 0, day).UnixNano())
		s := newTestStore(t, dir, func(c *Config) { c.Now = clock; c.RetentionDays = retention; c.FileMaxEvents = 2 })
		for i := range events {
			info := testInfo(i)
			info.Time = clock()
			if err := s.Record(context.Background(), info, Outcome{Status: 200}); err != nil {
				t.Fatal(err)
			}
		}
		return s
	}
	for _, day := range []int{0, 2, 5} {
		if err := run(day, 0, 5).Close(); err != nil {
			t.Fatal(err)
		}
	}
	logDay := func(day int) string {
		return filepath.Join(dir, testAccount, logKind, testRegion, dayPath(day0.AddDate(0, 0, day)))
	}
	digestDay := func(day int) string {
		return filepath.Join(dir, testAccount, digestKind, testRegion, dayPath(day0.AddDate(0, 0, day)))
	}
	for _, d := range []int{0, 2, 5} {
		if !fileExists(logDay(d)) || !fileExists(digestDay(d)) {
			t.Fatalf("day %d has no files", d)
		}
	}

	// Day 6, keep 3 days: days 0 and 2 go (everything before day 3).
	s := run(6, 3, 1)
	if err := s.ApplyRetention(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, d := range []int{0, 2} {
		if fileExists(logDay(d)) || fileExists(digestDay(d)) {
			t.Errorf("day %d survived retention", d)
		}
	}
	if !fileExists(logDay(5)) || !fileExists(digestDay(5)) {
		t.Error("day 5 was deleted")
	}
	out, err := s.Lookup(context.Background(), LookupInput{AttributeKey: AttrEventName, AttributeValue: RetentionEventName})
	if err != nil || len(out.Events) != 1 {
		t.Fatalf("retention events = %d, %v; want 1", len(out.Events), err)
	}
	all, _ := s.Lookup(context.Background(), LookupInput{})
	if len(all.Events) != 5+1+1 {
		t.Errorf("lookup holds %d events; want day 5's, day 6's and the retention event", len(all.Events))
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	var ev *Event
	for _, r := range trailRecords(t, dir) {
		if r.EventName == RetentionEventName {
			ev = &r
		}
	}
	if ev == nil {
		t.Fatal("the retention event is not in the log files")
	}
	d := ev.ServiceEventDetails.(map[string]any)
	if ev.EventType != EventTypeServiceEvent || ev.EventSource != "cloudtrail.amazonaws.com" ||
		d["deletedBefore"] != "2026-03-04T00:00:00Z" || d["logFilesDeleted"].(float64) != 6 || d["digestFilesDeleted"].(float64) != 2 {
		t.Errorf("retention event = %+v", ev)
	}
	rep := mustVerify(t, dir)
	if rep.Expired == 0 {
		t.Errorf("report = %+v; want expired files counted", rep)
	}
	// Deleting a file after the horizon is still caught.
	files, _ := os.ReadDir(logDay(5))
	os.Remove(filepath.Join(logDay(5), files[0].Name()))
	if rep, _ := Verify(dir, testPub(), time.Time{}, time.Time{}); rep.OK() {
		t.Error("a deleted file after the retention horizon went unnoticed")
	}
}
