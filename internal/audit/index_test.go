package audit

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// indexFixture is a store with records whose times are out of order
// across segments (and share seconds), and what they are.
type indexFixture struct {
	s    *Store
	dir  string
	evs  []eventMeta
	base time.Time
}

func newIndexFixture(t *testing.T, dir string, n int) *indexFixture {
	t.Helper()
	f := &indexFixture{dir: dir, base: time.Date(2026, 3, 14, 0, 0, 0, 0, time.UTC)}
	f.open(t)
	f.add(t, 0, n)
	return f
}

// open opens the fixture's trail (again), 50 records a log file.
func (f *indexFixture) open(t *testing.T) {
	t.Helper()
	f.s = newTestStore(t, f.dir, func(c *Config) { c.FileMaxEvents = 50 })
}

// closedIndexFixture is a fixture of 230 records (5 log files), closed,
// and its index files, which it checks are 5.
func closedIndexFixture(t *testing.T) (*indexFixture, []string) {
	t.Helper()
	f := newIndexFixture(t, t.TempDir(), 230)
	if err := f.s.Close(); err != nil {
		t.Fatal(err)
	}
	idx := indexFiles(t, f.dir)
	if len(idx) != 5 {
		t.Fatalf("%d index files, want 5", len(idx))
	}
	return f, idx
}

// add appends records from..to-1: record i at minute (i*37)%100, so
// files overlap in time and several records share a second.
func (f *indexFixture) add(t *testing.T, from, to int) {
	t.Helper()
	for i := from; i < to; i++ {
		info := testInfo(i)
		at := f.base.Add(time.Duration((i*37)%100) * time.Minute)
		ev := NewEvent(info, Outcome{Status: 200}, testRegion, testAccount, at)
		if err := f.s.Append(context.Background(), ev); err != nil {
			t.Fatal(err)
		}
		f.evs = append(f.evs, metaOf(ev))
	}
}

// want is the eventIDs a lookup must return, in order.
func (f *indexFixture) want(in LookupInput) []string {
	var ms []eventMeta
	for _, m := range f.evs {
		if !in.StartTime.IsZero() && m.t < in.StartTime.Unix() || !in.EndTime.IsZero() && m.t > in.EndTime.Unix() {
			continue
		}
		ok := in.AttributeKey == "" || in.AttributeKey == AttrEventID && m.eventID == in.AttributeValue
		for _, a := range m.attrs {
			ok = ok || int(a.code) == attrCodes[in.AttributeKey] && a.v == in.AttributeValue
		}
		if ok {
			ms = append(ms, m)
		}
	}
	slices.SortFunc(ms, func(a, b eventMeta) int {
		if a.t != b.t {
			return int(b.t - a.t)
		}
		return strings.Compare(b.eventID, a.eventID)
	})
	out := []string{}
	for _, m := range ms {
		out = append(out, m.eventID)
	}
	return out
}

// lookupAll pages through a lookup, pageSize events at a time.
func lookupAll(t *testing.T, s *Store, in LookupInput, pageSize int) []string {
	t.Helper()
	in.MaxResults = pageSize
	out := []string{}
	for range 1000 {
		page, err := s.Lookup(context.Background(), in)
		if err != nil {
			t.Fatalf("%+v: %v", in, err)
		}
		if len(page.Events) > pageSize || (page.NextToken != "" && len(page.Events) != pageSize) {
			t.Fatalf("%+v: a page of %d events (next token %v)", in, len(page.Events), page.NextToken != "")
		}
		for _, e := range page.Events {
			out = append(out, e.EventId)
		}
		if page.NextToken == "" {
			return out
		}
		in.NextToken = page.NextToken
	}
	t.Fatal("no end to the pages")
	return nil
}

func (f *indexFixture) check(t *testing.T, stage string) {
	t.Helper()
	b := f.base
	ranges := [][2]time.Time{
		{}, {b.Add(20 * time.Minute), b.Add(45 * time.Minute)}, {b.Add(90 * time.Minute), time.Time{}},
		{time.Time{}, b.Add(3 * time.Minute)}, {b.Add(30 * time.Minute), b.Add(30 * time.Minute)},
		{b.Add(200 * time.Minute), time.Time{}},
	}
	filters := [][2]string{
		{"", ""}, {AttrEventName, "PutImage"}, {AttrEventName, "DeleteRepository"}, {AttrEventName, "Nothing"},
		{AttrReadOnly, "true"}, {AttrReadOnly, "false"}, {AttrUsername, "alice"}, {AttrEventSource, "ecr.amazonaws.com"},
		{AttrAccessKeyID, "AKIAALICE00000000001"}, {AttrResourceType, "AWS::ECR::Repository"},
		{AttrResourceName, "team/app-3"}, {AttrResourceName, "arn:aws:ecr:us-east-1:111122223333:repository/team/app-5"},
		{AttrEventID, f.evs[len(f.evs)/3].eventID}, {AttrEventID, f.evs[len(f.evs)-1].eventID},
	}
	for _, r := range ranges {
		for _, fl := range filters {
			in := LookupInput{AttributeKey: fl[0], AttributeValue: fl[1], StartTime: r[0], EndTime: r[1]}
			want := f.want(in)
			for _, size := range []int{7, 50} {
				if got := lookupAll(t, f.s, in, size); !slices.Equal(got, want) {
					i := 0
					for i < min(len(got), len(want)) && got[i] == want[i] {
						i++
					}
					t.Fatalf("%s: %s=%s %v..%v by %d: %d events, want %d; they differ from the %dth on", stage, fl[0], fl[1],
						r[0].Format(time.TimeOnly), r[1].Format(time.TimeOnly), size, len(got), len(want), i)
				}
			}
		}
	}
}

func indexFiles(t *testing.T, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, stateDir, "index", "*"+idxSuffix))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestLookupAcrossSegmentsAndFiles: lookups over records in memory (the
// open segment and segments waiting to be sealed) and in several index
// files, with each filter, time ranges and pages, return what a scan of
// the records would, across a restart too.
func TestLookupAcrossSegmentsAndFiles(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	f := newIndexFixture(t, dir, 230)
	f.check(t, "as written")
	if err := f.s.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	f.add(t, 230, 262)
	f.s.idx.mu.RLock()
	files, mem := len(f.s.idx.files), len(f.s.idx.mem)
	f.s.idx.mu.RUnlock()
	if files < 4 || mem != 1 {
		t.Fatalf("%d index files and %d segments in memory; want 5 and 1", files, mem)
	}
	f.check(t, "sealed and open")
	if err := f.s.Close(); err != nil {
		t.Fatal(err)
	}
	f.open(t)
	defer f.s.Close()
	if n := f.s.idx.count(); n != 262 {
		t.Fatalf("%d records indexed after the restart, want 262", n)
	}
	f.add(t, 262, 300)
	f.check(t, "after a restart")
}

// TestIndexFileLostBetweenSealAndIndex: a log file without its index file
// (a crash after the log file was written, before its index file was) has
// its index file rebuilt from the log file on start.
func TestIndexFileLostBetweenSealAndIndex(t *testing.T) {
	t.Parallel()
	f, idx := closedIndexFixture(t)
	for _, p := range idx[:2] {
		if err := os.Remove(p); err != nil {
			t.Fatal(err)
		}
	}
	f.open(t)
	defer f.s.Close()
	for _, p := range idx[:2] {
		g, err := openSealedFile(p, objectOfIndexFile(t, f.s, p))
		if err != nil {
			t.Fatalf("index file %s not rebuilt: %v", filepath.Base(p), err)
		}
		if g.hdr.Records != "self" || g.hdr.Count == 0 {
			t.Errorf("rebuilt index file %+v", g.hdr)
		}
	}
	f.check(t, "rebuilt")
}

// objectOfIndexFile is the log file an index file of s indexes.
func objectOfIndexFile(t *testing.T, s *Store, p string) string {
	t.Helper()
	s.idx.mu.RLock()
	defer s.idx.mu.RUnlock()
	for _, f := range s.idx.files {
		if f.path == p {
			return f.object
		}
	}
	t.Fatalf("no index file %s", p)
	return ""
}

// TestIndexFileDamagedRebuilt: an index file that fails its checks
// (a flipped byte, a truncation, garbage) is rebuilt from its log file.
func TestIndexFileDamagedRebuilt(t *testing.T) {
	t.Parallel()
	f, idx := closedIndexFixture(t)
	data, err := os.ReadFile(idx[0])
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)/2] ^= 0x40
	os.WriteFile(idx[0], data, 0o600)
	os.Truncate(idx[1], 100)
	os.WriteFile(idx[2], []byte("garbage"), 0o600)
	// And an index file of no log file is deleted.
	stray := filepath.Join(f.dir, stateDir, "index", "AAAAAAAAAAAAAAAA"+idxSuffix)
	os.WriteFile(stray, data, 0o600)
	f.open(t)
	defer f.s.Close()
	for _, p := range idx[:3] {
		if _, err := openSealedFile(p, objectOfIndexFile(t, f.s, p)); err != nil {
			t.Fatalf("index file %s not rebuilt: %v", filepath.Base(p), err)
		}
	}
	if fileExists(stray) {
		t.Error("an index file without a log file was kept")
	}
	f.check(t, "rebuilt")
}

// TestIndexFilesFollowRetention: retention deletes the index files of the
// log files it deletes.
func TestIndexFilesFollowRetention(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	day0 := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	now := day0
	clock := func() time.Time { return now }
	s := newTestStore(t, dir, func(c *Config) { c.Now = clock; c.FileMaxEvents = 2 })
	for i := range 6 {
		if err := s.Record(context.Background(), testInfo(i), Outcome{Status: 200}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if n := len(indexFiles(t, dir)); n != 3 {
		t.Fatalf("%d index files, want 3", n)
	}
	now = day0.AddDate(0, 0, 5)
	s = newTestStore(t, dir, func(c *Config) { c.Now = clock; c.FileMaxEvents = 2; c.RetentionDays = 2 })
	defer s.Close()
	if err := s.ApplyRetention(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := len(indexFiles(t, dir)); n != 0 {
		t.Errorf("%d index files after retention, want 0", n)
	}
	out, err := s.Lookup(context.Background(), LookupInput{})
	if err != nil || len(out.Events) != 1 || out.Events[0].EventName != RetentionEventName {
		t.Fatalf("lookup after retention = %+v, %v; want the retention event", out.Events, err)
	}
}

// TestLogFileMembers: a log file is gzip members of records, read as one
// stream; the layout finds each record.
func TestLogFileMembers(t *testing.T) {
	t.Parallel()
	var recs [][]byte
	for i := range 300 {
		recs = append(recs, benchEntry(i).data)
	}
	data, lay, err := buildLogFileBlocks(recs)
	if err != nil {
		t.Fatal(err)
	}
	if len(lay.blocks) < 3 {
		t.Fatalf("%d members, want several", len(lay.blocks))
	}
	got, err := parseLogFile(data)
	if err != nil || len(got) != len(recs) {
		t.Fatalf("%d records, %v", len(got), err)
	}
	for i := range recs {
		if string(got[i]) != string(recs[i]) {
			t.Fatalf("record %d differs", i)
		}
		b := lay.blocks[lay.locs[i].block]
		member := gunzip(t, data[b.off:b.off+uint64(b.n)])
		if string(member[lay.locs[i].off:lay.locs[i].off+lay.locs[i].n]) != string(recs[i]) {
			t.Fatalf("record %d is not where the layout says", i)
		}
	}
}

// TestLogFileBuilderReused: a builder kept from one log file to the next
// (the sealer's) writes each as a new one would, byte for byte.
func TestLogFileBuilderReused(t *testing.T) {
	t.Parallel()
	var recs [][]byte
	for i := range 300 {
		recs = append(recs, benchEntry(i).data)
	}
	var lb logFileBuilder
	for _, n := range []int{300, 1, 0, 120, 300} {
		want, wantLay, err := buildLogFileBlocks(recs[:n])
		if err != nil {
			t.Fatal(err)
		}
		got, lay, err := lb.build(recs[:n])
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) || !reflect.DeepEqual(lay, wantLay) {
			t.Fatalf("log file of %d records differs from a new builder's", n)
		}
	}
}

// TestLookupDropsDuplicates: a record in two log files (a crash between
// the sealing of a segment and its removal seals it twice) is returned
// once, and pages stay full.
func TestLookupDropsDuplicates(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	f := newIndexFixture(t, dir, 230)
	if err := f.s.Close(); err != nil {
		t.Fatal(err)
	}
	logs, err := filepath.Glob(filepath.Join(dir, testAccount, logKind, testRegion, "*", "*", "*", "*"+objectSuffix))
	if err != nil || len(logs) != 5 {
		t.Fatalf("%d log files, %v", len(logs), err)
	}
	twice := 0
	for i, p := range logs[:3] {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		recs, err := parseLogFile(data)
		if err != nil {
			t.Fatal(err)
		}
		twice += len(recs)
		cp := p[:len(p)-len(objectSuffix)-16] + fmt.Sprintf("DUPLICATE%07d", i) + objectSuffix
		if err := os.WriteFile(cp, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	f.open(t)
	defer f.s.Close()
	if n := f.s.idx.count(); n != 230+twice {
		t.Fatalf("%d records indexed, want %d (%d twice)", n, 230+twice, twice)
	}
	f.check(t, "duplicated")
}

// TestIndexFileWriteFails: when an index file cannot be written, the
// segment's records stay indexed in memory, and the next start builds the
// index file from the log file.
func TestIndexFileWriteFails(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	f := newIndexFixture(t, dir, 20)
	// state/index becomes a file: no index file can be renamed into it.
	idxDir := filepath.Join(dir, stateDir, "index")
	if err := os.RemoveAll(idxDir); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(idxDir, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	f.add(t, 20, 120)
	if err := f.s.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	f.s.idx.mu.RLock()
	mem := len(f.s.idx.mem)
	f.s.idx.mu.RUnlock()
	if mem < 2 {
		t.Fatalf("%d segments in memory, want the sealed ones kept", mem)
	}
	f.check(t, "index files failing")
	if err := f.s.Close(); err != nil {
		t.Fatal(err)
	}
	if segs, _ := os.ReadDir(filepath.Join(dir, stateDir, "segments")); len(segs) != 0 {
		t.Fatalf("%d segments left", len(segs))
	}
	if err := os.Remove(idxDir); err != nil {
		t.Fatal(err)
	}
	f.open(t)
	defer f.s.Close()
	if n := len(indexFiles(t, dir)); n != 3 {
		t.Errorf("%d index files after the restart, want 3", n)
	}
	f.check(t, "rebuilt")
}
