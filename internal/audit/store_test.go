package audit

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestConcurrentRecordThenVerify: 64 goroutines record at once through
// the group commit; every acknowledged record is in the log files exactly
// once, and the trail verifies.
func TestConcurrentRecordThenVerify(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := newTestStore(t, dir, func(c *Config) { c.FileMaxEvents = 250 })
	const goroutines, each = 64, 40
	var wg sync.WaitGroup
	errs := make(chan error, goroutines)
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				if err := s.Record(context.Background(), testInfo(g*each+i), Outcome{Status: 200}); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	recs := trailRecords(t, dir)
	if len(recs) != goroutines*each {
		t.Fatalf("trail holds %d records, want %d", len(recs), goroutines*each)
	}
	seen := map[string]bool{}
	for _, r := range recs {
		if seen[r.RequestID] {
			t.Fatalf("request %s recorded twice", r.RequestID)
		}
		seen[r.RequestID] = true
	}
	rep := mustVerify(t, dir)
	if rep.LogFilesChecked < goroutines*each/250 || rep.DigestsChecked != 1 || len(rep.Pending) != 0 {
		t.Errorf("report = %+v", rep)
	}
	if err := s.Record(context.Background(), testInfo(0), Outcome{Status: 200}); !errors.Is(err, ErrClosed) {
		t.Errorf("Record after Close = %v, want ErrClosed", err)
	}
}

// TestReopenContinuesChain: each run's digests chain to the previous
// run's, and records survive restarts.
func TestReopenContinuesChain(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	n := 0
	for run := range 3 {
		s := newTestStore(t, dir, func(c *Config) { c.FileMaxEvents = 7 })
		for range 20 {
			if err := s.Record(context.Background(), testInfo(n), Outcome{Status: 200}); err != nil {
				t.Fatal(err)
			}
			n++
		}
		if run == 1 {
			if err := s.Flush(context.Background()); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if got := len(trailRecords(t, dir)); got != n {
		t.Fatalf("trail holds %d records, want %d", got, n)
	}
	rep := mustVerify(t, dir)
	if rep.DigestsChecked != 4 {
		t.Errorf("digests = %d, want 4 (3 closes and a flush)", rep.DigestsChecked)
	}
}

func TestSecondWriterRefused(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := newTestStore(t, dir, nil)
	defer s.Close()
	_, err := NewStore(Config{Dir: dir, Region: testRegion, AccountID: testAccount, SigningKey: testKey()})
	if err == nil || !strings.Contains(err.Error(), "another process") {
		t.Fatalf("second NewStore = %v, want a lock error", err)
	}
}

func TestConfigProblemsAllReported(t *testing.T) {
	t.Parallel()
	_, err := NewStore(Config{AccountID: "12", DigestInterval: time.Millisecond})
	if err == nil {
		t.Fatal("NewStore accepted an empty config")
	}
	for _, want := range []string{"Dir", "Region", "AccountID", "SigningKey", "DigestInterval"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %s", err, want)
		}
	}
}

// TestCrashLosesNoAcknowledgedRecord runs a writer in a subprocess, kills
// it with SIGKILL in the middle of a stream of records, and checks that
// after recovery every record the writer saw acknowledged is in the log
// files, and the trail verifies.
func TestCrashLosesNoAcknowledgedRecord(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns a subprocess")
	}
	t.Parallel()
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashWriter$", "-test.v")
	cmd.Env = append(os.Environ(), "AUDIT_CRASH_DIR="+dir)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	acked := map[string]bool{}
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		if id, ok := strings.CutPrefix(sc.Text(), "ack "); ok {
			acked[id] = true
			if len(acked) == 3000 {
				break
			}
		}
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	// Acknowledgements printed before the kill landed count too.
	for sc.Scan() {
		if id, ok := strings.CutPrefix(sc.Text(), "ack "); ok {
			acked[id] = true
		}
	}
	cmd.Wait()
	if len(acked) < 3000 {
		t.Fatalf("the writer acknowledged only %d records", len(acked))
	}
	segs, _ := os.ReadDir(filepath.Join(dir, stateDir, "segments"))
	t.Logf("killed after %d acknowledgements; %d segments left to recover", len(acked), len(segs))

	s := newTestStore(t, dir, nil)
	indexed := indexCount(t, s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	have := map[string]int{}
	records := trailRecords(t, dir)
	for _, r := range records {
		have[r.RequestID]++
	}
	// The index, committed without fsync, lost nothing the kill
	// interrupted: recovery re-indexed the segments.
	if indexed != len(records) {
		t.Errorf("the index holds %d records after recovery, the trail %d", indexed, len(records))
	}
	for id := range acked {
		if have[id] != 1 {
			t.Fatalf("acknowledged record %s is in the trail %d times", id, have[id])
		}
	}
	if segs, _ := os.ReadDir(filepath.Join(dir, stateDir, "segments")); len(segs) != 0 {
		t.Errorf("%d segments left after recovery", len(segs))
	}
	// No half file is visible: every .json.gz parses.
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && strings.HasSuffix(p, objectSuffix) && strings.Contains(p, "/"+logKind+"/") {
			if _, err := readLogFile(p); err != nil {
				t.Errorf("%s: %v", p, err)
			}
		}
		return nil
	})
	mustVerify(t, dir)
}

// TestCrashWriter is the subprocess of TestCrashLosesNoAcknowledgedRecord.
func TestCrashWriter(t *testing.T) {
	dir := os.Getenv("AUDIT_CRASH_DIR")
	if dir == "" {
		return // only meaningful as TestCrashLosesNoAcknowledgedRecord's subprocess
	}
	s := newTestStore(t, dir, func(c *Config) { c.FileMaxEvents = 500 })
	var mu sync.Mutex
	out := bufio.NewWriter(os.Stdout)
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				info := testInfo(i)
				info.RequestID = "crash-" + strconv.Itoa(g) + "-" + strconv.Itoa(i)
				if err := s.Record(context.Background(), info, Outcome{Status: 200}); err != nil {
					fmt.Fprintln(os.Stderr, "record:", err)
					return
				}
				mu.Lock()
				fmt.Fprintln(out, "ack "+info.RequestID)
				out.Flush()
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
}

// TestRecordFailsWhenSegmentsCannotBeCreated: with FileMaxEvents 1 every
// record needs a new segment file; when the directory cannot take one,
// Record fails (the pipeline answers 503) and nothing is acknowledged.
func TestRecordFailsWhenSegmentsCannotBeCreated(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := newTestStore(t, dir, func(c *Config) { c.FileMaxEvents = 1 })
	defer s.Close()
	ctx := context.Background()
	if err := s.Record(ctx, testInfo(0), Outcome{Status: 200}); err != nil {
		t.Fatal(err)
	}
	segDir := filepath.Join(dir, stateDir, "segments")
	// Root ignores permissions, so the directory is replaced by a file.
	moved := segDir + ".away"
	if err := os.Rename(segDir, moved); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(segDir, nil, 0o400); err != nil {
		t.Fatal(err)
	}
	err := s.Record(ctx, testInfo(1), Outcome{Status: 200})
	if err == nil {
		t.Fatal("Record succeeded although no segment could be created")
	}
	t.Logf("Record: %v", err)
	os.Remove(segDir)
	if err := os.Rename(moved, segDir); err != nil {
		t.Fatal(err)
	}
	if err := s.Record(ctx, testInfo(2), Outcome{Status: 200}); err != nil {
		t.Fatalf("Record after the directory came back: %v", err)
	}
}

// TestNoSecretInAnyFile records requests whose parameters carry secrets
// (as a careless door might) and greps every file the store wrote.
func TestNoSecretInAnyFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	sinkPath := filepath.Join(t.TempDir(), "copy.jsonl")
	sink, err := NewFileSink(sinkPath)
	if err != nil {
		t.Fatal(err)
	}
	s := newTestStore(t, dir, func(c *Config) { c.FileMaxEvents = 3; c.Sinks = []Sink{sink} })
	secrets := []string{
		"wJalrXUtnFEMI-K7MDENG-bPxRfiCYEXAMPLEKEY", "FwoGZXIvYXdzEBYaDSESSIONTOKENEXAMPLE",
		"hunter2-password-example", "QVdTOnNlY3JldC1yZWdpc3RyeS10b2tlbg==", "plaintext-data-key-bytes",
		"layer-part-bytes-example", "mfa-123456",
	}
	for i := range 10 {
		info := testInfo(i)
		info.Params = map[string]any{
			"userName":          "alice",
			"secretAccessKey":   secrets[0],
			"credentials":       map[string]any{"accessKeyId": "ASIAEXAMPLE", "sessionToken": secrets[1], "SecretAccessKey": secrets[0]},
			"password":          secrets[2],
			"authorizationData": []any{map[string]any{"authorizationToken": secrets[3], "proxyEndpoint": "https://x"}},
			"Plaintext":         secrets[4],
			"layerPartBlob":     []byte(secrets[5]),
			"tokenCode":         secrets[6],
		}
		info.ResponseElements = map[string]any{"credentials": map[string]string{"sessionToken": secrets[1], "expiration": "later"}}
		if err := s.Record(context.Background(), info, Outcome{Status: 200}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Lookup(context.Background(), LookupInput{}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	files := 0
	for _, root := range []string{dir, filepath.Dir(sinkPath)} {
		filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			raw, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			contents := [][]byte{raw}
			if strings.HasSuffix(p, ".gz") {
				contents = append(contents, gunzip(t, raw))
			}
			for _, c := range contents {
				for _, sec := range secrets {
					if strings.Contains(string(c), sec) {
						t.Errorf("%s contains the secret %q", p, sec)
					}
				}
			}
			files++
			return nil
		})
	}
	if files < 5 {
		t.Fatalf("only %d files checked", files)
	}
	recs := trailRecords(t, dir)
	if len(recs) != 10 || recs[0].RequestParameters.(map[string]any)["userName"] != "alice" {
		t.Fatalf("records lost their harmless parameters: %+v", recs[0].RequestParameters)
	}
}

// TestIndexRebuiltWhenLost: the index is derived state; without it the
// store rebuilds it from the log files.
func TestIndexRebuiltWhenLost(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := newTestStore(t, dir, func(c *Config) { c.FileMaxEvents = 5 })
	for i := range 40 {
		if err := s.Record(context.Background(), testInfo(i), Outcome{Status: 200}); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	if err := os.RemoveAll(filepath.Join(dir, stateDir, "index")); err != nil {
		t.Fatal(err)
	}
	s = newTestStore(t, dir, nil)
	defer s.Close()
	out, err := s.Lookup(context.Background(), LookupInput{AttributeKey: AttrEventName, AttributeValue: "PutImage"})
	if err != nil || len(out.Events) != 10 {
		t.Fatalf("Lookup after rebuild = %d events, %v; want 10", len(out.Events), err)
	}
}

// indexCount is the number of records in s's index.
func indexCount(t testing.TB, s *Store) int {
	t.Helper()
	return s.idx.count()
}

// TestIndexBulkAcrossRestarts: records indexed by concurrent writers,
// across a restart, are each found once, with their attributes.
func TestIndexBulkAcrossRestarts(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	record := func(s *Store, from, n int) {
		var wg sync.WaitGroup
		for g := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := from + g; i < from+n; i += 8 {
					if err := s.Record(context.Background(), testInfo(i), Outcome{Status: 200}); err != nil {
						t.Error(err)
						return
					}
				}
			}()
		}
		wg.Wait()
	}
	s := newTestStore(t, dir, func(c *Config) { c.FileMaxEvents = 300 })
	record(s, 0, 700)
	if n := indexCount(t, s); n != 700 {
		t.Fatalf("%d records indexed, want 700", n)
	}
	s.Close()
	s = newTestStore(t, dir, func(c *Config) { c.FileMaxEvents = 300 })
	defer s.Close()
	record(s, 700, 500)
	if n := indexCount(t, s); n != 1200 {
		t.Fatalf("%d records indexed after the restart, want 1200", n)
	}
	seen := map[string]bool{}
	in := LookupInput{AttributeKey: AttrEventName, AttributeValue: "PutImage", MaxResults: 50}
	for {
		out, err := s.Lookup(context.Background(), in)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range out.Events {
			if seen[e.EventId] {
				t.Fatalf("event %s returned twice", e.EventId)
			}
			seen[e.EventId] = true
		}
		if out.NextToken == "" {
			break
		}
		in.NextToken = out.NextToken
	}
	if len(seen) != 300 {
		t.Fatalf("%d PutImage events found, want 300 (a quarter of 1200)", len(seen))
	}
}
