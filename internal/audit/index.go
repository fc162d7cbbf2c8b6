package audit

import (
	"bytes"
	"cmp"
	"compress/gzip"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// The index answers LookupEvents. It is derived state: everything in it
// can be rebuilt from the log files. Its order is that of LookupEvents'
// pages: by eventTime (Unix seconds), then by eventID, newest first; a
// NextToken is the (time, eventID) of the last event returned, so it
// stays valid while records move from a segment to a log file.
//
//   - The records of the write-ahead segments (the open one and those
//     waiting for the sealer) are kept in memory (memSegment), appended
//     when their group commit is durable: per record its time, eventID,
//     JSON and attributes (metaOf, computed anyway). That costs the
//     committer about 0.1 µs a record, nothing waits to be indexed (a
//     lookup sees every durable record), and a lookup scans them: at most
//     FileMaxEvents per segment.
//   - Each sealed log file has an index file, state/index/<unique>.idx
//     (idxfile.go), written by the sealer before it removes the segment:
//     the records sorted by (time, eventID) with their places in the log
//     file (which is written as a series of gzip members, so a record is
//     read by inflating one member of about 64 KiB), the eventIDs, a table
//     of eventID hashes, and the postings: per (attribute, attrHash of the
//     value) the sorted ordinals of its records. Headers stay in memory,
//     the posting keys in a bounded cache; the rest is read with pread.
//
// A filtered page looks the value up per source (segment or file), newest
// source first, and keeps the records that do hold the value (a hash
// collision only costs a skipped record); once a page is full, files
// older than its last event are not opened. A crash loses no coverage: a
// segment is removed only after its index file is durable, and recovery
// seals (and indexes) the segments it finds; an index file that is
// missing or damaged is rebuilt from its log file on start (with the
// records in the index file itself), one whose log file is gone is
// deleted. The SQLite index of earlier versions (state/index.db) is
// deleted on start.

// memKey is a lookup attribute of a record: its code (attrCodes) and
// its value.
type memKey struct {
	code uint8
	v    string
}

// memSegment indexes the records of one write-ahead segment: it only
// keeps them, in commit order; a lookup scans them (a segment holds at
// most FileMaxEvents records, and a scan of 10,000 takes well under a
// millisecond), so that indexing costs the committer an append.
type memSegment struct {
	unique     string
	recs       []memRecord
	minT, maxT int64
}

type memRecord struct {
	t     int64
	eid   string
	data  []byte
	attrs []memKey
}

// index is the LookupEvents index; see the comment above.
type index struct {
	dir      string // state/index
	tmpDir   string
	auditDir string // where the log files are
	log      *slog.Logger

	mu     sync.RWMutex
	mem    []*memSegment   // oldest first
	files  []*sealedFile   // newest (maxT) first
	byUniq map[string]bool // uniques of sealed, to replace a file in place
	// lastLen is the number of records of the segment enqueued last: the
	// next one's capacity (only the committer uses it).
	lastLen int

	cache keyCache
	blk   blockCache
}

// openIndex opens the index directory (state/index), deleting the SQLite
// index of earlier versions if it is there. load must follow.
func openIndex(dir, tmpDir string, log *slog.Logger) (*index, error) {
	state := filepath.Dir(dir)
	if _, err := os.Stat(filepath.Join(state, "index.db")); err == nil {
		for _, suffix := range []string{"", "-wal", "-shm", "-journal"} {
			if err := os.Remove(filepath.Join(state, "index.db"+suffix)); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return nil, fmt.Errorf("index: %w", err)
			}
		}
		log.Info("audit: deleted the SQLite LookupEvents index of an earlier version (state/index.db); the index files replace it")
	}
	if err := mkdirAllSync(dir); err != nil {
		return nil, fmt.Errorf("index: %w", err)
	}
	return &index{dir: dir, tmpDir: tmpDir, log: log, byUniq: map[string]bool{}, cache: keyCache{budget: keyCacheBudget}}, nil
}

// load opens the index file of every log file of the trail, rebuilding
// the ones that are missing or damaged from their log files, and deletes
// index files whose log file is gone.
func (x *index) load(dir string, tr trail) error {
	x.auditDir = dir
	files, err := listObjects(dir, tr, logKind, time.Time{}, time.Time{})
	if err != nil {
		return err
	}
	have := map[string]bool{}
	ents, err := os.ReadDir(x.dir)
	if err != nil {
		return err
	}
	for _, e := range ents {
		if u, ok := strings.CutSuffix(e.Name(), idxSuffix); ok {
			have[u] = true
		}
	}
	rebuilt, events := 0, 0
	for _, o := range files {
		u, ok := objectUnique(o.name)
		if o.t.IsZero() || !ok {
			continue
		}
		p := filepath.Join(x.dir, u+idxSuffix)
		delete(have, u)
		f, err := openSealedFile(p, o.name)
		if err == nil {
			x.mu.Lock()
			x.files = append(x.files, f)
			x.byUniq[f.unique] = true
			x.mu.Unlock()
			continue
		}
		if !errors.Is(err, fs.ErrNotExist) {
			x.log.Warn("audit: an index file is damaged; rebuilding it from its log file", "file", p, "error", err)
		}
		recs, err := readLogFile(filepath.Join(dir, filepath.FromSlash(o.name)))
		if err != nil {
			x.log.Error("audit: index rebuild skips an unreadable log file", "file", o.name, "error", err)
			continue
		}
		raw := make([][]byte, len(recs))
		for i, r := range recs {
			raw[i] = r
		}
		if err := x.writeSealed(u, o.name, raw, nil, nil); err != nil {
			return fmt.Errorf("rebuild the index of %s: %w", o.name, err)
		}
		rebuilt++
		events += len(recs)
	}
	x.mu.Lock()
	slices.SortStableFunc(x.files, func(a, b *sealedFile) int { return cmp.Compare(b.hdr.MaxT, a.hdr.MaxT) })
	x.mu.Unlock()
	for u := range have {
		// Its log file is gone (retention interrupted, or removed).
		os.Remove(filepath.Join(x.dir, u+idxSuffix))
	}
	if rebuilt > 0 {
		x.log.Info("audit: rebuilt LookupEvents index files from the log files", "files", rebuilt, "events", events)
	}
	return nil
}

// objectUnique returns the unique part of a log file's name.
func objectUnique(obj string) (string, bool) {
	base := strings.TrimSuffix(obj[strings.LastIndexByte(obj, '/')+1:], objectSuffix)
	i := strings.LastIndexByte(base, '_')
	if i < 0 || len(base)-i-1 != 16 {
		return "", false
	}
	return base[i+1:], true
}

// enqueue indexes records of segment unique whose group commit is
// durable. Only the committer calls it.
func (x *index) enqueue(unique string, es []entry) {
	x.mu.Lock()
	defer x.mu.Unlock()
	var m *memSegment
	if n := len(x.mem); n > 0 && x.mem[n-1].unique == unique {
		m = x.mem[n-1]
	} else {
		m = &memSegment{unique: unique, minT: 1<<63 - 1, maxT: -1 << 63}
		x.mem = append(x.mem, m)
	}
	if m.recs == nil {
		m.recs = make([]memRecord, 0, max(len(es), 1024, x.lastLen))
	}
	for _, e := range es {
		m.recs = append(m.recs, e.meta.record(e.data))
		m.minT, m.maxT = min(m.minT, e.meta.t), max(m.maxT, e.meta.t)
	}
	x.lastLen = len(m.recs)
}

// backlog is the number of durable records not yet indexed: none, since
// records are indexed in memory as they become durable.
// sealed indexes the records of segment unique, now in log file obj, in
// an index file, durably, and then forgets the segment's records in
// memory. layout is where the records lie in the log file, nil when it is
// not known (the log file was written before a crash): the index file
// then holds the records itself. If the index file cannot be written, the
// records stay indexed in memory (and the next start rebuilds the file).
func (x *index) sealed(unique, obj string, recs [][]byte, layout *logLayout) error {
	x.mu.RLock()
	var metas []memRecord
	for _, m := range x.mem {
		if m.unique == unique && len(m.recs) == len(recs) {
			// The committer only ever appends to them.
			metas = m.recs[:len(recs):len(recs)]
		}
	}
	x.mu.RUnlock()
	if err := x.writeSealed(unique, obj, recs, metas, layout); err != nil {
		return err
	}
	x.mu.Lock()
	x.mem = slices.DeleteFunc(x.mem, func(m *memSegment) bool { return m.unique == unique })
	x.mu.Unlock()
	return nil
}

// writeSealed writes the index file of log file obj (metas nil: parsed
// from recs) and installs it.
func (x *index) writeSealed(unique, obj string, recs [][]byte, metas []memRecord, layout *logLayout) error {
	data, err := buildIndexFile(obj, recs, metas, layout)
	if err != nil {
		return err
	}
	p := filepath.Join(x.dir, unique+idxSuffix)
	if err := writeFileAtomic(x.tmpDir, p, data, 0o600); err != nil {
		return err
	}
	f, err := parseSealedFile(p, obj, data)
	if err != nil {
		return err
	}
	x.install(f)
	return nil
}

// install adds (or replaces) a sealed file, keeping x.files ordered by
// maxT, newest first.
func (x *index) install(f *sealedFile) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.byUniq[f.unique] {
		x.files = slices.DeleteFunc(x.files, func(g *sealedFile) bool {
			if g.unique == f.unique {
				x.cache.drop(g)
				return true
			}
			return false
		})
	}
	x.byUniq[f.unique] = true
	i, _ := slices.BinarySearchFunc(x.files, f, func(a, b *sealedFile) int { return cmp.Compare(b.hdr.MaxT, a.hdr.MaxT) })
	x.files = slices.Insert(x.files, i, f)
}

// deleteBefore drops the index files of log files that retention deleted
// (before t).
func (x *index) deleteBefore(t time.Time) error {
	x.mu.Lock()
	var gone []*sealedFile
	x.files = slices.DeleteFunc(x.files, func(f *sealedFile) bool {
		if ot, _, ok := objectTime(f.object); ok && !ot.Before(t) {
			return false
		}
		if _, err := os.Stat(filepath.Join(x.auditDir, filepath.FromSlash(f.object))); !errors.Is(err, fs.ErrNotExist) {
			return false
		}
		gone = append(gone, f)
		delete(x.byUniq, f.unique)
		return true
	})
	x.mu.Unlock()
	var errs []error
	for _, f := range gone {
		x.cache.drop(f)
		if err := os.Remove(f.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	if len(gone) > 0 {
		errs = append(errs, syncDir(x.dir))
	}
	return errors.Join(errs...)
}

// count is the number of records indexed (tests).
func (x *index) count() int {
	x.mu.RLock()
	defer x.mu.RUnlock()
	n := 0
	for _, m := range x.mem {
		n += len(m.recs)
	}
	for _, f := range x.files {
		n += f.hdr.Count
	}
	return n
}

func (x *index) close() error { return nil }

// indexQuery is one page of a lookup.
type indexQuery struct {
	key, value string // "" key: no filter
	start, end int64  // inclusive, Unix seconds
	// The cursor: only events ordered before (beforeT, beforeE).
	beforeT   int64
	beforeE   string
	hasCursor bool
	limit     int
}

type indexRow struct {
	t      int64
	eid    string
	record []byte
}

// bound is the exclusive upper end of a page: events ordered before
// (t, e); with top, every event of time t and before.
type bound struct {
	t   int64
	e   string
	top bool
}

func (b bound) below(t int64, e string) bool {
	if b.top {
		return t <= b.t
	}
	return t < b.t || (t == b.t && e < b.e)
}

func rowAfter(a, b indexRow) bool { return a.t > b.t || (a.t == b.t && a.eid > b.eid) }

// mergeRows merges rows into page (newest first), dropping duplicates
// (the same record in two log files, after a crash between the sealing of
// a segment and its removal), and keeps limit. A page stays full: each
// source gives its own newest limit records, so every record of the
// merged newest limit is among them.
func mergeRows(page, rows []indexRow, limit int) []indexRow {
	page = append(page, rows...)
	slices.SortFunc(page, func(a, b indexRow) int {
		switch {
		case rowAfter(a, b):
			return -1
		case rowAfter(b, a):
			return 1
		}
		return 0
	})
	page = slices.CompactFunc(page, func(a, b indexRow) bool { return a.t == b.t && a.eid == b.eid })
	return page[:min(len(page), limit)]
}

// query returns the page q asks for: its newest q.limit records.
func (x *index) query(q indexQuery) ([]indexRow, error) {
	b := bound{t: q.end, top: true}
	if q.hasCursor && b.below(q.beforeT, q.beforeE) {
		b = bound{t: q.beforeT, e: q.beforeE}
	}
	code := uint8(attrCodes[q.key])
	// The segments' records so far: the committer only appends.
	x.mu.RLock()
	mem := make([]memSegment, 0, len(x.mem))
	for _, m := range x.mem {
		if m.maxT >= q.start && m.minT <= b.t {
			mem = append(mem, memSegment{recs: m.recs[:len(m.recs):len(m.recs)]})
		}
	}
	files := slices.Clone(x.files)
	x.mu.RUnlock()
	var page []indexRow
	for _, m := range mem {
		page = mergeRows(page, m.top(q, b), q.limit)
	}
	for _, f := range files {
		if len(page) == q.limit && page[len(page)-1].t > f.hdr.MaxT {
			break // this file and the ones after it hold only older events
		}
		if f.hdr.MaxT < q.start || f.hdr.MinT > b.t || f.hdr.Count == 0 {
			continue
		}
		rows, err := x.top(f, q, code, b)
		if err != nil {
			return nil, err
		}
		page = mergeRows(page, rows, q.limit)
	}
	return page, nil
}

// top returns the newest q.limit matching records of m below b.
func (m *memSegment) top(q indexQuery, b bound) []indexRow {
	code := uint8(attrCodes[q.key])
	var page []indexRow
	for i := len(m.recs) - 1; i >= 0; i-- {
		r := &m.recs[i]
		if r.t < q.start || !b.below(r.t, r.eid) {
			continue
		}
		if len(page) == q.limit && (r.t < page[q.limit-1].t || r.t == page[q.limit-1].t && r.eid < page[q.limit-1].eid) {
			continue
		}
		if !r.holds(q.key, code, q.value) {
			continue
		}
		row := indexRow{t: r.t, eid: r.eid, record: r.data}
		// Insert in order (pages are at most 51 rows).
		j, _ := slices.BinarySearchFunc(page, row, func(a, b indexRow) int {
			if rowAfter(a, b) {
				return -1
			}
			return 1
		})
		page = slices.Insert(page, j, row)
		if len(page) > q.limit {
			page = page[:q.limit]
		}
	}
	return page
}

// holds reports whether r has the lookup attribute key (of code) = value.
func (r *memRecord) holds(key string, code uint8, value string) bool {
	switch key {
	case "":
		return true
	case AttrEventID:
		return r.eid == value
	}
	return slices.Contains(r.attrs, memKey{code, value})
}

// Lookup attribute keys (LookupAttributeKey) and their codes in attrs.
const (
	AttrEventID      = "EventId"
	AttrEventName    = "EventName"
	AttrReadOnly     = "ReadOnly"
	AttrUsername     = "Username"
	AttrResourceType = "ResourceType"
	AttrResourceName = "ResourceName"
	AttrEventSource  = "EventSource"
	AttrAccessKeyID  = "AccessKeyId"
)

var attrCodes = map[string]int{
	AttrEventName: codeEventName, AttrReadOnly: codeReadOnly, AttrUsername: codeUsername, AttrResourceType: codeResourceType,
	AttrResourceName: codeResourceName, AttrEventSource: codeEventSource, AttrAccessKeyID: codeAccessKeyID,
}

// The attributes' codes, as index files store them.
const (
	codeEventName = 1 + iota
	codeReadOnly
	codeUsername
	codeResourceType
	codeResourceName
	codeEventSource
	codeAccessKeyID
)

// eventMeta is what the index keeps of a record besides its JSON.
type eventMeta struct {
	t         int64
	eventTime string // as recorded, "" when it does not parse
	eventID   string
	attrs     []memKey // without duplicates
	name      string
	source    string
	errorCode string
}

// metaOf returns what the index keeps of ev. Every request computes it:
// its lookup attributes are built on the stack, and shared with the
// previous record's when they are the same (records in a row mostly are).
func metaOf(ev *Event) eventMeta {
	m := eventMeta{eventID: ev.EventID, name: ev.EventName, source: ev.EventSource, errorCode: ev.ErrorCode}
	if c := lastEventTime.Load(); c != nil && c.s == ev.EventTime {
		// The current second, as eventTime formatted it: no parse.
		m.t, m.eventTime = c.sec, ev.EventTime
	} else if t, err := parseTime(ev.EventTime); err == nil {
		m.t, m.eventTime = t.Unix(), ev.EventTime
	} else {
		m.t = t.Unix()
	}
	var buf [16]memKey
	attrs := buf[:0]
	add := func(code uint8, v string) {
		if v != "" {
			attrs = append(attrs, memKey{code, v})
		}
	}
	// One value each: no duplicates.
	add(codeEventName, ev.EventName)
	if ev.ReadOnly {
		add(codeReadOnly, "true")
	} else {
		add(codeReadOnly, "false")
	}
	add(codeUsername, lookupUsername(&ev.UserIdentity))
	add(codeEventSource, ev.EventSource)
	add(codeAccessKeyID, ev.UserIdentity.AccessKeyID)
	single := len(attrs)
	addResource := func(code uint8, v string) {
		if !slices.Contains(attrs[single:], memKey{code, v}) {
			add(code, v)
		}
	}
	for _, r := range ev.Resources {
		typ, name := ResourceTypeAndName(r.ARN)
		if r.Type != "" {
			typ = r.Type
		}
		addResource(codeResourceType, typ)
		addResource(codeResourceName, name)
		addResource(codeResourceName, r.ARN)
	}
	if last := lastAttrs.Load(); last != nil && slices.Equal(*last, attrs) {
		m.attrs = *last
	} else {
		shared := slices.Clip(slices.Clone(attrs)) // never appended to in place
		lastAttrs.Store(&shared)
		m.attrs = shared
	}
	return m
}

// lastAttrs are the attributes metaOf returned last (read only).
var lastAttrs atomic.Pointer[[]memKey]

// record is the index's in-memory entry of the record data m describes.
func (m *eventMeta) record(data []byte) memRecord {
	return memRecord{t: m.t, eid: m.eventID, data: data, attrs: m.attrs}
}

func metaOfJSON(data []byte) (eventMeta, error) {
	var ev Event
	if err := json.Unmarshal(data, &ev); err != nil {
		return eventMeta{}, err
	}
	if ev.EventID == "" {
		return eventMeta{}, errors.New("record without eventID")
	}
	return metaOf(&ev), nil
}

// readLogFile returns the records of a CloudTrail log file.
func readLogFile(p string) ([]json.RawMessage, error) {
	raw, err := os.ReadFile(p)
	if err != nil {
		return nil, err
	}
	return parseLogFile(raw)
}

func parseLogFile(raw []byte) ([]json.RawMessage, error) {
	zr, err := gzip.NewReader(bytes.NewReader(raw))
	if err != nil {
		return nil, gzipError(err)
	}
	content, err := io.ReadAll(io.LimitReader(zr, 1<<30))
	if err != nil {
		return nil, gzipError(err)
	}
	var lf struct {
		Records []json.RawMessage `json:"Records"`
	}
	if err := json.Unmarshal(content, &lf); err != nil {
		return nil, fmt.Errorf("not a CloudTrail log file: %w", err)
	}
	return lf.Records, nil
}

// attrHash is the key of an attribute value in attrs: the first 8 bytes
// of its SHA-256, so that nobody can choose a value colliding with
// another's (a collision would only cost lookups a skipped row).
func attrHash(v string) int64 {
	sum := sha256.Sum256([]byte(v))
	return int64(binary.BigEndian.Uint64(sum[:8]))
}

// holds reports whether the record has the lookup attribute of code =
// value.
func holds(record []byte, code uint8, value string) bool {
	m, err := metaOfJSON(record)
	if err != nil {
		return false
	}
	return slices.Contains(m.attrs, memKey{code, value})
}
