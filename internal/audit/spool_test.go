package audit

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestSpoolIngested: events spooled by another process (before the store
// opens, and while it runs) land in the trail once each, the spool
// empties, and a file that is not an event is moved aside.
func TestSpoolIngested(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	spool := func(n int) {
		t.Helper()
		info := testInfo(n)
		info.EventName, info.Action = "PolicyExecutionEvent", "ecr:PolicyExecutionEvent"
		ev := NewEvent(info, Outcome{Status: 200}, testRegion, testAccount, time.Now())
		if err := Spool(dir, ev); err != nil {
			t.Fatal(err)
		}
	}
	spool(1)
	spool(2)
	if err := os.WriteFile(filepath.Join(SpoolDir(dir), "0-junk"+spoolSuffix), []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	s := newTestStore(t, dir, nil)
	defer s.Close()
	spool(3)
	deadline := time.Now().Add(10 * time.Second)
	for {
		out, err := s.Lookup(context.Background(), LookupInput{AttributeKey: AttrEventName, AttributeValue: "PolicyExecutionEvent"})
		if err != nil {
			t.Fatal(err)
		}
		if len(out.Events) == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d spooled events in the trail, want 3", len(out.Events))
		}
		time.Sleep(50 * time.Millisecond)
	}
	ents, _ := os.ReadDir(SpoolDir(dir))
	var left []string
	for _, e := range ents {
		left = append(left, e.Name())
	}
	if len(left) != 1 || left[0] != "0-junk"+spoolSuffix+".bad" {
		t.Fatalf("spool holds %v, want only the junk file moved aside", left)
	}
	s.Close()
	mustVerify(t, dir)
}
