package audit

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

func seededStore(t *testing.T, n int) *Store {
	t.Helper()
	s := newTestStore(t, t.TempDir(), func(c *Config) { c.FileMaxEvents = 50 })
	t.Cleanup(func() { s.Close() })
	for i := range n {
		info := testInfo(i)
		info.Time = time.Date(2026, 3, 14, 0, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Minute)
		if err := s.Record(context.Background(), info, Outcome{Status: 200}); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

func TestLookupFilters(t *testing.T) {
	t.Parallel()
	s := seededStore(t, 200)
	repo := "arn:aws:ecr:us-east-1:111122223333:repository/team/app-3"
	cases := []struct {
		key, value string
		want       int
	}{
		{"", "", 50},
		{AttrEventName, "PutImage", 50},
		{AttrEventName, "Nothing", 0},
		{AttrReadOnly, "true", 50},
		{AttrReadOnly, "false", 50},
		{AttrUsername, "alice", 50},
		{AttrEventSource, "ecr.amazonaws.com", 50},
		{AttrAccessKeyID, "AKIAALICE00000000001", 50},
		{AttrResourceType, "AWS::ECR::Repository", 50},
		{AttrResourceName, "team/app-3", 29},
		{AttrResourceName, repo, 29},
	}
	for _, c := range cases {
		out, err := s.Lookup(context.Background(), LookupInput{AttributeKey: c.key, AttributeValue: c.value})
		if err != nil {
			t.Fatalf("%s=%s: %v", c.key, c.value, err)
		}
		if len(out.Events) != c.want {
			t.Errorf("%s=%s: %d events, want %d", c.key, c.value, len(out.Events), c.want)
		}
		for i, e := range out.Events {
			if i > 0 && time.Time(e.EventTime).After(time.Time(out.Events[i-1].EventTime)) {
				t.Fatalf("%s=%s: events not newest first", c.key, c.value)
			}
			var ev Event
			if err := json.Unmarshal([]byte(e.CloudTrailEvent), &ev); err != nil || ev.EventID != e.EventId {
				t.Fatalf("CloudTrailEvent %q: %v", e.CloudTrailEvent, err)
			}
		}
	}
	first, _ := s.Lookup(context.Background(), LookupInput{})
	id := first.Events[7].EventId
	out, err := s.Lookup(context.Background(), LookupInput{AttributeKey: AttrEventID, AttributeValue: id})
	if err != nil || len(out.Events) != 1 || out.Events[0].EventId != id {
		t.Fatalf("EventId lookup = %+v, %v", out, err)
	}
	e := first.Events[0] // event 199: DeleteRepository, failed
	if e.EventName != "DeleteRepository" || e.ReadOnly != "false" || e.Username != "alice" || e.EventSource != "ecr.amazonaws.com" ||
		len(e.Resources) != 1 || e.Resources[0].ResourceType != "AWS::ECR::Repository" || e.Resources[0].ResourceName != "team/app-3" {
		t.Errorf("event = %+v", e)
	}
}

func TestLookupPagesAndTimeRange(t *testing.T) {
	t.Parallel()
	s := seededStore(t, 200)
	in := LookupInput{AttributeKey: AttrEventName, AttributeValue: "BatchGetImage", MaxResults: 7,
		StartTime: time.Date(2026, 3, 14, 1, 0, 0, 0, time.UTC), EndTime: time.Date(2026, 3, 14, 2, 0, 0, 0, time.UTC)}
	seen := map[string]bool{}
	pages := 0
	for {
		out, err := s.Lookup(context.Background(), in)
		if err != nil {
			t.Fatal(err)
		}
		pages++
		for _, e := range out.Events {
			if seen[e.EventId] {
				t.Fatal("an event came twice")
			}
			seen[e.EventId] = true
			et := time.Time(e.EventTime)
			if et.Before(in.StartTime) || et.After(in.EndTime) || e.EventName != "BatchGetImage" {
				t.Fatalf("event %s at %s outside the query", e.EventName, et)
			}
		}
		if out.NextToken == "" {
			break
		}
		in.NextToken = out.NextToken
	}
	// Minutes 60..120 inclusive hold 61 events, 15 of them BatchGetImage
	// (n%4 == 1).
	if len(seen) != 15 || pages != 3 {
		t.Fatalf("%d events in %d pages, want 15 in 3", len(seen), pages)
	}
}

func TestLookupErrors(t *testing.T) {
	t.Parallel()
	s := seededStore(t, 3)
	ok, _ := s.Lookup(context.Background(), LookupInput{MaxResults: 1})
	cases := []struct {
		name string
		in   LookupInput
		code string
	}{
		{"bad key", LookupInput{AttributeKey: "Color", AttributeValue: "x"}, "InvalidLookupAttributesException"},
		{"empty value", LookupInput{AttributeKey: AttrEventName}, "InvalidLookupAttributesException"},
		{"max results", LookupInput{MaxResults: 51}, "InvalidMaxResultsException"},
		{"time range", LookupInput{StartTime: time.Unix(200, 0), EndTime: time.Unix(100, 0)}, "InvalidTimeRangeException"},
		{"garbage token", LookupInput{NextToken: "!!!"}, "InvalidNextTokenException"},
		{"token of another query", LookupInput{NextToken: ok.NextToken, AttributeKey: AttrEventName, AttributeValue: "PutImage"}, "InvalidNextTokenException"},
	}
	for _, c := range cases {
		_, err := s.Lookup(context.Background(), c.in)
		var le *LookupError
		if !errors.As(err, &le) || le.Code != c.code {
			t.Errorf("%s: %v, want %s", c.name, err, c.code)
		}
	}
}

// TestLookupSkipsHashCollisions: index files key postings by the value's
// hash; a posting whose record does not hold the value (as a collision
// would give) is skipped, and pages still fill up.
func TestLookupSkipsHashCollisions(t *testing.T) {
	t.Parallel()
	s := seededStore(t, 200)
	if err := s.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	// Every record also claims, by hash, to be a PutImage event.
	forgeIndexFiles(t, s, func(m *eventMeta) {
		m.attrs = append(m.attrs, memKey{codeEventName, "PutImage"})
	})
	var n int
	in := LookupInput{AttributeKey: AttrEventName, AttributeValue: "PutImage", MaxResults: 7}
	for {
		out, err := s.Lookup(context.Background(), in)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range out.Events {
			if e.EventName != "PutImage" {
				t.Fatalf("lookup of PutImage returned %s", e.EventName)
			}
		}
		n += len(out.Events)
		if out.NextToken == "" {
			break
		}
		if len(out.Events) != 7 {
			t.Fatalf("a page of %d events before the last, want 7", len(out.Events))
		}
		in.NextToken = out.NextToken
	}
	if n != 50 {
		t.Fatalf("%d PutImage events, want 50", n)
	}
}

// forgeIndexFiles rewrites every index file of s (with the records in the
// index file) from its log file, with metadata changed by forge.
func forgeIndexFiles(t *testing.T, s *Store, forge func(*eventMeta)) {
	t.Helper()
	s.idx.mu.RLock()
	files := slices.Clone(s.idx.files)
	mem := len(s.idx.mem)
	s.idx.mu.RUnlock()
	if len(files) == 0 || mem != 0 {
		t.Fatalf("%d index files, %d segments in memory; want only files", len(files), mem)
	}
	for _, f := range files {
		recs, err := readLogFile(filepath.Join(s.cfg.Dir, filepath.FromSlash(f.object)))
		if err != nil {
			t.Fatal(err)
		}
		raw := make([][]byte, len(recs))
		metas := make([]memRecord, len(recs))
		for i, r := range recs {
			raw[i] = r
			m, err := metaOfJSON(r)
			if err != nil {
				t.Fatal(err)
			}
			forge(&m)
			metas[i] = m.record(r)
		}
		if err := s.idx.writeSealed(f.unique, f.object, raw, metas, nil); err != nil {
			t.Fatal(err)
		}
	}
}

// TestOldSQLiteIndexDeleted: the SQLite index of earlier versions is
// deleted on start; the index files are built from the log files.
func TestOldSQLiteIndexDeleted(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := newTestStore(t, dir, func(c *Config) { c.FileMaxEvents = 5 })
	for i := range 40 {
		if err := s.Record(context.Background(), testInfo(i), Outcome{Status: 200}); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	// The state of an earlier version: an index.db, no index files.
	if err := os.RemoveAll(filepath.Join(dir, stateDir, "index")); err != nil {
		t.Fatal(err)
	}
	for _, suffix := range []string{"", "-wal", "-shm"} {
		if err := os.WriteFile(filepath.Join(dir, stateDir, "index.db"+suffix), []byte("SQLite format 3\x00"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	s = newTestStore(t, dir, nil)
	defer s.Close()
	for _, suffix := range []string{"", "-wal", "-shm"} {
		if fileExists(filepath.Join(dir, stateDir, "index.db"+suffix)) {
			t.Errorf("index.db%s is still there", suffix)
		}
	}
	out, err := s.Lookup(context.Background(), LookupInput{AttributeKey: AttrEventName, AttributeValue: "PutImage"})
	if err != nil || len(out.Events) != 10 {
		t.Fatalf("Lookup after the rebuild = %d events, %v; want 10", len(out.Events), err)
	}
}
