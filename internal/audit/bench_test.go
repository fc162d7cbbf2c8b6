package audit

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cofferhq/coffer/internal/auth"
)

// BenchmarkRecordParallel16 records from 16 goroutines at once: the group
// commit shares each write and fsync among the waiting records.
func BenchmarkRecordParallel16(b *testing.B) {
	s := newTestStore(b, b.TempDir(), nil)
	defer s.Close()
	procs := max(1, 16/testingProcs())
	b.SetParallelism(procs)
	info := testInfo(0)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := *info
			if err := s.Record(context.Background(), &i, Outcome{Status: 200}); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	st := s.Stats()
	b.ReportMetric(float64(st.Records)/b.Elapsed().Seconds(), "records/s")
	b.ReportMetric(float64(st.Records)/float64(max(st.Commits, 1)), "records/fsync")
}

// BenchmarkRecordSerial is one caller at a time: one fsync per record.
func BenchmarkRecordSerial(b *testing.B) {
	s := newTestStore(b, b.TempDir(), nil)
	defer s.Close()
	info := testInfo(0)
	for b.Loop() {
		i := *info
		if err := s.Record(context.Background(), &i, Outcome{Status: 200}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
}

func testingProcs() int { return max(1, testingGOMAXPROCS()) }

// The lookup fixture: 1,000,000 records over 90 days, 8 event names, 100
// users, 1000 repositories, sealed into 100 log files of 10,000 records
// with their index files, in one store.
const (
	lookupEvents  = 1_000_000
	lookupPerFile = 10_000
)

var (
	lookupOnce  sync.Once
	lookupStore *Store
	lookupDir   string
	lookupIDs   []string
)

var benchStart = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

var benchNames = []string{"PutImage", "BatchGetImage", "GetAuthorizationToken", "BatchCheckLayerAvailability",
	"InitiateLayerUpload", "CompleteLayerUpload", "DescribeRepositories", "DeleteRepository"}

// benchEntry is the fixture's record n.
func benchEntry(n int) entry {
	step := 90 * 24 * time.Hour / lookupEvents
	user := fmt.Sprintf("user-%d", n%100)
	repo := fmt.Sprintf("repo-%d", (n*7919)%1000)
	name := benchNames[n%len(benchNames)]
	info := &auth.Info{
		RequestID: fmt.Sprintf("%032x", n), Time: benchStart.Add(time.Duration(n) * step),
		SourceIP: netip.AddrFrom4([4]byte{10, 0, byte(n >> 8), byte(n)}), UserAgent: "docker/27.0 go/go1.26",
		Principal: auth.Principal{Type: "IAMUser", ARN: "arn:aws:iam::111122223333:user/" + user, AccountID: testAccount,
			PrincipalID: "AIDA" + strings.ToUpper(user), UserName: user, AccessKeyID: fmt.Sprintf("AKIA%016d", n%100)},
		Action: "ecr:" + name, EventName: name,
		Resources: []string{"arn:aws:ecr:us-east-1:111122223333:repository/" + repo},
		Params:    map[string]any{"repositoryName": repo, "registryId": testAccount},
	}
	ev := NewEvent(info, Outcome{Status: 200}, testRegion, testAccount, info.Time)
	data, _ := json.Marshal(ev)
	return entry{data: data, meta: metaOf(ev)}
}

// sealFixture writes the log file and the index file of batch, as the
// sealer does.
func sealFixture(b *testing.B, s *Store, batch []entry) {
	recs := make([][]byte, len(batch))
	metas := make([]memRecord, len(batch))
	for i, e := range batch {
		recs[i], metas[i] = e.data, e.meta.record(e.data)
	}
	data, layout, err := buildLogFileBlocks(recs)
	if err != nil {
		b.Fatal(err)
	}
	last, _ := parseTime(batch[len(batch)-1].meta.eventTime)
	unique := newUnique()
	obj := logObject(testAccount, testRegion, last, unique)
	if err := writeFileAtomic(s.tmpDir, filepath.Join(s.cfg.Dir, filepath.FromSlash(obj)), data, 0o600); err != nil {
		b.Fatal(err)
	}
	if err := s.idx.writeSealed(unique, obj, recs, metas, layout); err != nil {
		b.Fatal(err)
	}
}

func lookupFixture(b *testing.B) *Store {
	lookupOnce.Do(func() {
		dir, err := mkdirTemp()
		if err != nil {
			b.Fatal(err)
		}
		lookupDir = dir
		s := newTestStore(b, dir, nil)
		start := time.Now()
		batch := make([]entry, 0, lookupPerFile)
		for n := range lookupEvents {
			e := benchEntry(n)
			batch = append(batch, e)
			if n%1000 == 0 {
				lookupIDs = append(lookupIDs, e.meta.eventID)
			}
			if len(batch) == cap(batch) {
				sealFixture(b, s, batch)
				batch = batch[:0]
			}
		}
		if len(batch) > 0 {
			sealFixture(b, s, batch)
		}
		b.Logf("indexed %d records in %s", lookupEvents, time.Since(start).Round(time.Second))
		lookupStore = s
	})
	if lookupStore == nil {
		b.Fatal("no fixture")
	}
	return lookupStore
}

// BenchmarkIndexRecord is what indexing costs the committer per record:
// the in-memory index of the open segment, in group commits of 16.
func BenchmarkIndexRecord(b *testing.B) {
	x := &index{byUniq: map[string]bool{}}
	es := make([]entry, lookupPerFile)
	for i := range es {
		es[i] = benchEntry(i)
	}
	const group = 16
	unique, off := newUnique(), 0
	b.ReportAllocs()
	b.ResetTimer()
	for n := 0; n < b.N; {
		if off == len(es) { // the segment is full: the next one
			b.StopTimer()
			x.mem, unique, off = nil, newUnique(), 0
			b.StartTimer()
		}
		k := min(group, b.N-n, len(es)-off)
		x.enqueue(unique, es[off:off+k])
		off += k
		n += k
	}
}

// BenchmarkIndexSealFile is what indexing costs the sealer per record:
// building the index file of a sealed segment of 10,000 records (the log
// file, built anyway, not counted).
func BenchmarkIndexSealFile(b *testing.B) {
	recs := make([][]byte, lookupPerFile)
	metas := make([]memRecord, lookupPerFile)
	for i := range recs {
		e := benchEntry(i)
		recs[i], metas[i] = e.data, e.meta.record(e.data)
	}
	_, layout, err := buildLogFileBlocks(recs)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for n := 0; n < b.N; n += len(recs) {
		if _, err := buildIndexFile("x", recs, metas, layout); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLookupEvents1M answers LookupEvents pages over 1,000,000
// indexed records. The target is 100 ms a page.
func BenchmarkLookupEvents1M(b *testing.B) {
	if testing.Short() {
		b.Skip("builds a 1,000,000-record index")
	}
	s := lookupFixture(b)
	mid := benchStart.Add(45 * 24 * time.Hour)
	cases := []struct {
		name string
		in   LookupInput
		want int
	}{
		{"no filter", LookupInput{}, 50},
		{"EventName", LookupInput{AttributeKey: AttrEventName, AttributeValue: "PutImage"}, 50},
		{"EventName one day", LookupInput{AttributeKey: AttrEventName, AttributeValue: "DeleteRepository", StartTime: mid, EndTime: mid.Add(24 * time.Hour)}, 50},
		{"Username", LookupInput{AttributeKey: AttrUsername, AttributeValue: "user-42"}, 50},
		{"ResourceName", LookupInput{AttributeKey: AttrResourceName, AttributeValue: "repo-7"}, 50},
		{"ResourceType", LookupInput{AttributeKey: AttrResourceType, AttributeValue: "AWS::ECR::Repository"}, 50},
		{"ReadOnly", LookupInput{AttributeKey: AttrReadOnly, AttributeValue: "false"}, 50},
		{"AccessKeyId", LookupInput{AttributeKey: AttrAccessKeyID, AttributeValue: "AKIA0000000000000042"}, 50},
		{"EventId", LookupInput{AttributeKey: AttrEventID, AttributeValue: lookupIDs[len(lookupIDs)/2]}, 1},
		{"no match", LookupInput{AttributeKey: AttrUsername, AttributeValue: "nobody"}, 0},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				out, err := s.Lookup(context.Background(), c.in)
				if err != nil || len(out.Events) != c.want {
					b.Fatalf("%d events, %v", len(out.Events), err)
				}
			}
		})
	}
	b.Run("EventName page 20", func(b *testing.B) {
		in := LookupInput{AttributeKey: AttrEventName, AttributeValue: "PutImage"}
		for range 19 {
			out, _ := s.Lookup(context.Background(), in)
			in.NextToken = out.NextToken
		}
		for b.Loop() {
			out, err := s.Lookup(context.Background(), in)
			if err != nil || len(out.Events) != 50 {
				b.Fatalf("%d events, %v", len(out.Events), err)
			}
		}
	})
	b.Run("HTTP EventName", func(b *testing.B) {
		h, _ := NewLookupHandler(LookupConfig{Store: s, Authz: auth.AllowAll{}})
		body := `{"LookupAttributes":[{"AttributeKey":"EventName","AttributeValue":"PutImage"}]}`
		for b.Loop() {
			r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(body))
			r.Header.Set("X-Amz-Target", CloudTrailTargetPrefix+"LookupEvents")
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if w.Code != 200 {
				b.Fatalf("%d %s", w.Code, w.Body)
			}
		}
	})
}

// BenchmarkBuildLogFile is sealing's compression, per record: the log
// file of a segment of 10,000 records, gzip members at BestSpeed, by the
// sealer's logFileBuilder.
func BenchmarkBuildLogFile(b *testing.B) {
	recs := make([][]byte, lookupPerFile)
	var n int
	for i := range recs {
		recs[i] = benchEntry(i).data
		n += len(recs[i])
	}
	b.SetBytes(int64(n / len(recs)))
	b.ReportAllocs()
	b.ResetTimer()
	var size int
	var lb logFileBuilder
	for i := 0; i < b.N; i += len(recs) {
		data, _, err := lb.build(recs)
		if err != nil {
			b.Fatal(err)
		}
		size = len(data)
	}
	b.ReportMetric(float64(n)/float64(size), "ratio")
}

// BenchmarkReadSegment is sealing's read of a segment of 10,000 records,
// per record: into a new buffer each time (readSegment) and into the
// sealer's kept one (segmentReader).
func BenchmarkReadSegment(b *testing.B) {
	h, _ := json.Marshal(segHeader{Format: segmentFormat, Unique: newUnique(), Created: benchStart})
	data := appendFrame(nil, h)
	for i := range lookupPerFile {
		data = appendFrame(data, benchEntry(i).data)
	}
	p := filepath.Join(b.TempDir(), "seg.wal")
	if err := os.WriteFile(p, data, 0o600); err != nil {
		b.Fatal(err)
	}
	var r segmentReader
	for _, c := range []struct {
		name string
		read func(string, int64) (segHeader, [][]byte, int64, error)
	}{{"new", readSegment}, {"kept", r.read}} {
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(int64(len(data) / lookupPerFile))
			b.ReportAllocs()
			for n := 0; n < b.N; n += lookupPerFile {
				if _, recs, _, err := c.read(p, int64(len(data))); err != nil || len(recs) != lookupPerFile {
					b.Fatalf("%d records, %v", len(recs), err)
				}
			}
		})
	}
}
