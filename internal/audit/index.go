package audit

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	_ "modernc.org/sqlite" // the "sqlite" database/sql driver
)

// The index answers LookupEvents. It is derived state, in its own SQLite
// file (state/index.db): a lost or damaged index is rebuilt from the log
// files, and the write-ahead segments are not removed before the index
// holds their records (recovery re-indexes them, idempotently by eventID).
//
//	events(id, t, event_id UNIQUE, record)       t = eventTime, Unix seconds
//	attrs(k, h, t, id) PRIMARY KEY (k, h, t, id) one row per lookup attribute value
//
// h is the attribute value's hash (attrHash): rows of a few integers keep
// the B-tree small and cheap to insert into, where ARNs as keys were not.
// A filtered page is one descending range scan of attrs' primary key
// (attribute, hash, time), joined to events by id, keeping the records that
// do hold the value (a hash collision only costs a skipped row); an
// unfiltered page scans events by time.
//
// Cost. Indexing is the largest share of what the trail costs a request,
// so it is done in bulk, off the request path: records are queued when
// their segment write is durable and inserted in batches of up to
// indexBatchMax, at most indexDelay after the first one waits, with
// multi-row INSERTs; a lookup (or the sealer) waiting for a record cuts
// the delay short. The index commits with synchronous=NORMAL: a crash of
// the process loses nothing, a power loss may lose the last commits but
// never corrupts the file. That is safe because the index is derived: the
// records it may lose are still in write-ahead segments, which recovery
// re-indexes, and a segment is removed only after a barrier commit with
// synchronous=FULL has made its records durable in the index.

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
	AttrEventName: 1, AttrReadOnly: 2, AttrUsername: 3, AttrResourceType: 4,
	AttrResourceName: 5, AttrEventSource: 6, AttrAccessKeyID: 7,
}

// eventMeta is what the index keeps of a record besides its JSON.
type eventMeta struct {
	t         int64
	eventTime string // as recorded, "" when it does not parse
	eventID   string
	attrs     [][2]string // (key, value), without duplicates
	name      string
	source    string
	errorCode string
}

func metaOf(ev *Event) eventMeta {
	t, err := parseTime(ev.EventTime)
	m := eventMeta{t: t.Unix(), eventID: ev.EventID, name: ev.EventName, source: ev.EventSource, errorCode: ev.ErrorCode}
	if err == nil {
		m.eventTime = ev.EventTime
	}
	add := func(k, v string) {
		if v == "" {
			return
		}
		for _, a := range m.attrs {
			if a[0] == k && a[1] == v {
				return
			}
		}
		m.attrs = append(m.attrs, [2]string{k, v})
	}
	add(AttrEventName, ev.EventName)
	if ev.ReadOnly {
		add(AttrReadOnly, "true")
	} else {
		add(AttrReadOnly, "false")
	}
	add(AttrUsername, lookupUsername(&ev.UserIdentity))
	add(AttrEventSource, ev.EventSource)
	add(AttrAccessKeyID, ev.UserIdentity.AccessKeyID)
	for _, r := range ev.Resources {
		typ, name := ResourceTypeAndName(r.ARN)
		if r.Type != "" {
			typ = r.Type
		}
		add(AttrResourceType, typ)
		add(AttrResourceName, name)
		add(AttrResourceName, r.ARN)
	}
	return m
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

type queued struct {
	e   entry
	seq uint64
}

// Batching of the asynchronous index writes (see the package comment).
const (
	indexBatchMax = 8192
	indexDelay    = 200 * time.Millisecond
	// Rows per multi-row INSERT: 4 parameters each, far below SQLite's
	// limit on parameters (32766).
	eventsPerInsert = 128
	attrsPerInsert  = 512
)

type index struct {
	w, r  *sql.DB
	log   *slog.Logger
	fresh bool
	delay time.Duration // indexDelay; tests may shorten it

	mu      sync.Mutex
	queue   []queued
	since   time.Time // when the oldest queued record was queued
	waiters int       // callers of waitFor: they cut the batching delay short
	indexed uint64
	changed chan struct{} // closed and replaced when indexed moves or the queue grows
	closing bool
	done    chan struct{}

	// Writer-goroutine state of the bulk insert path.
	nextID                int64 // the next events.id; 0 until read from the table
	eventsStmt, attrsStmt *sql.Stmt
}

func openIndex(path string, log *slog.Logger) (*index, error) {
	_, statErr := os.Stat(path)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("index: %w", err)
	}
	f.Close()
	uri := func(q url.Values) string {
		return (&url.URL{Scheme: "file", Path: filepath.ToSlash(path), RawQuery: q.Encode()}).String()
	}
	w, err := sql.Open("sqlite", uri(url.Values{
		"_busy_timeout": {"10000"}, "_journal_mode": {"WAL"}, "_synchronous": {"NORMAL"}, "_txlock": {"immediate"},
		// A larger page cache than SQLite's 2 MiB default: the attrs
		// B-tree's insertion points are spread over many pages.
		"_pragma": {"cache_size(-8192)"},
	}))
	if err != nil {
		return nil, fmt.Errorf("index: %w", err)
	}
	w.SetMaxOpenConns(1)
	w.SetConnMaxLifetime(0)
	x := &index{w: w, log: log, delay: indexDelay, changed: make(chan struct{}), done: make(chan struct{})}
	ctx := context.Background()
	// An index of the first layout (attribute values as text) is dropped
	// and rebuilt from the log files.
	var oldLayout int
	if err := w.QueryRowContext(ctx, `SELECT COUNT(*) FROM pragma_table_info('attrs') WHERE name = 'v'`).Scan(&oldLayout); err != nil {
		w.Close()
		return nil, fmt.Errorf("index: %w", err)
	}
	var stmts []string
	if oldLayout > 0 {
		log.Info("audit: the LookupEvents index has an older layout; rebuilding it")
		stmts = append(stmts, `DROP TABLE attrs`, `DROP TABLE events`, `DROP TABLE IF EXISTS meta`)
	}
	stmts = append(stmts,
		`CREATE TABLE IF NOT EXISTS events(id INTEGER PRIMARY KEY, t INTEGER NOT NULL, event_id TEXT NOT NULL UNIQUE, record BLOB NOT NULL)`,
		`CREATE INDEX IF NOT EXISTS events_t ON events(t)`,
		`CREATE TABLE IF NOT EXISTS attrs(k INTEGER NOT NULL, h INTEGER NOT NULL, t INTEGER NOT NULL, id INTEGER NOT NULL, PRIMARY KEY(k, h, t, id)) WITHOUT ROWID`,
		`CREATE TABLE IF NOT EXISTS meta(k TEXT PRIMARY KEY, v TEXT NOT NULL)`,
	)
	for _, q := range stmts {
		if _, err := w.ExecContext(ctx, q); err != nil {
			w.Close()
			return nil, fmt.Errorf("index: %w", err)
		}
	}
	var built string
	err = w.QueryRowContext(ctx, `SELECT v FROM meta WHERE k = 'built'`).Scan(&built)
	x.fresh = errors.Is(statErr, fs.ErrNotExist) || errors.Is(err, sql.ErrNoRows)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		w.Close()
		return nil, fmt.Errorf("index: %w", err)
	}
	x.r, err = sql.Open("sqlite", uri(url.Values{"mode": {"ro"}, "_busy_timeout": {"10000"}}))
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("index: %w", err)
	}
	x.r.SetMaxOpenConns(4)
	x.r.SetMaxIdleConns(4)
	return x, nil
}

// rebuild indexes every log file of the trail (after the index was lost)
// and marks the index built.
func (x *index) rebuild(dir string, tr trail) error {
	files, err := listObjects(dir, tr, logKind, time.Time{}, time.Time{})
	if err != nil {
		return err
	}
	n := 0
	for _, o := range files {
		if o.t.IsZero() {
			continue
		}
		recs, err := readLogFile(filepath.Join(dir, filepath.FromSlash(o.name)))
		if err != nil {
			x.log.Error("audit: index rebuild skips an unreadable log file", "file", o.name, "error", err)
			continue
		}
		if err := x.insertRecords(recs); err != nil {
			return err
		}
		n += len(recs)
	}
	if _, err := x.w.Exec(`INSERT OR REPLACE INTO meta(k, v) VALUES('built', ?)`, time.Now().UTC().Format(time.RFC3339)); err != nil {
		return err
	}
	if n > 0 {
		x.log.Info("audit: rebuilt the LookupEvents index from the log files", "files", len(files), "events", n)
	}
	x.fresh = false
	return nil
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

// insertNow indexes records synchronously (recovery, rebuild).
func (x *index) insertNow(recs [][]byte) error {
	var es []entry
	for _, r := range recs {
		m, err := metaOfJSON(r)
		if err != nil {
			continue
		}
		es = append(es, entry{data: r, meta: m})
	}
	return x.insert(es)
}

func (x *index) insert(es []entry) error {
	if len(es) == 0 {
		return nil
	}
	ctx := context.Background()
	tx, err := x.w.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	ev, err := tx.PrepareContext(ctx, `INSERT OR IGNORE INTO events(t, event_id, record) VALUES(?, ?, ?)`)
	if err != nil {
		return err
	}
	defer ev.Close()
	at, err := tx.PrepareContext(ctx, `INSERT OR IGNORE INTO attrs(k, h, t, id) VALUES(?, ?, ?, ?)`)
	if err != nil {
		return err
	}
	defer at.Close()
	for _, e := range es {
		res, err := ev.ExecContext(ctx, e.meta.t, e.meta.eventID, e.data)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			continue // indexed before (recovery)
		}
		id, err := res.LastInsertId()
		if err != nil {
			return err
		}
		for _, a := range e.meta.attrs {
			if _, err := at.ExecContext(ctx, attrCodes[a[0]], attrHash(a[1]), e.meta.t, id); err != nil {
				return err
			}
		}
	}
	return tx.Commit()
}

// insertRecords is insertNow for already-parsed records.
func (x *index) insertRecords(recs []json.RawMessage) error {
	b := make([][]byte, len(recs))
	for i, r := range recs {
		b[i] = r
	}
	return x.insertNow(b)
}

func (x *index) start() { go x.run() }

func (x *index) enqueue(es []entry, first uint64) {
	x.mu.Lock()
	if len(x.queue) == 0 {
		x.since = time.Now()
	}
	for i, e := range es {
		x.queue = append(x.queue, queued{e: e, seq: first + uint64(i)})
	}
	x.signal()
	x.mu.Unlock()
}

// signal wakes waiters; x.mu is held.
func (x *index) signal() {
	close(x.changed)
	x.changed = make(chan struct{})
}

func (x *index) run() {
	defer close(x.done)
	backoff := 100 * time.Millisecond
	for {
		x.mu.Lock()
		for !x.closing {
			if len(x.queue) >= indexBatchMax || (len(x.queue) > 0 && (x.waiters > 0 || time.Since(x.since) >= x.delay)) {
				break
			}
			ch := x.changed
			var timer *time.Timer
			var timeout <-chan time.Time
			if len(x.queue) > 0 {
				timer = time.NewTimer(x.delay - time.Since(x.since))
				timeout = timer.C
			}
			x.mu.Unlock()
			select {
			case <-ch:
			case <-timeout:
			}
			if timer != nil {
				timer.Stop()
			}
			x.mu.Lock()
		}
		if len(x.queue) == 0 && x.closing {
			x.mu.Unlock()
			return
		}
		n := min(len(x.queue), indexBatchMax)
		batch := make([]entry, n)
		for i := range n {
			batch[i] = x.queue[i].e
		}
		last := x.queue[n-1].seq
		closing := x.closing
		x.mu.Unlock()
		if err := x.insertFresh(batch); err != nil {
			x.log.Error("audit: indexing records failed; retrying", "records", n, "error", err)
			if closing {
				return // the segments keep them; the next start re-indexes
			}
			time.Sleep(backoff)
			backoff = min(backoff*2, 10*time.Second)
			continue
		}
		backoff = 100 * time.Millisecond
		x.mu.Lock()
		x.queue = x.queue[n:]
		if len(x.queue) == 0 {
			x.queue = nil
		} else {
			x.since = time.Now()
		}
		x.indexed = last
		x.signal()
		x.mu.Unlock()
	}
}

// insertFresh indexes records that were never indexed before (the queue
// holds only records committed by this process) in one transaction with
// multi-row INSERTs: per record one events row, whose id the writer
// assigns, and its attrs rows. A record that is somehow there already is
// skipped (OR IGNORE); its attrs rows then point at no event and are never
// returned, since lookups join on events.
func (x *index) insertFresh(es []entry) error {
	ctx := context.Background()
	if x.eventsStmt == nil {
		var err error
		if x.eventsStmt, err = x.w.PrepareContext(ctx, multiInsert(`INSERT OR IGNORE INTO events(id, t, event_id, record) VALUES`, 4, eventsPerInsert)); err != nil {
			return err
		}
		if x.attrsStmt, err = x.w.PrepareContext(ctx, multiInsert(`INSERT OR IGNORE INTO attrs(k, h, t, id) VALUES`, 4, attrsPerInsert)); err != nil {
			return err
		}
	}
	tx, err := x.w.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if x.nextID == 0 {
		var maxID int64
		if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(id), 0) FROM events`).Scan(&maxID); err != nil {
			return err
		}
		x.nextID = maxID + 1
	}
	id := x.nextID
	evArgs := make([]any, 0, 4*eventsPerInsert)
	atArgs := make([]any, 0, 4*attrsPerInsert)
	flush := func(stmt *sql.Stmt, args []any, one string, full int) error {
		if len(args) == 4*full {
			_, err := tx.StmtContext(ctx, stmt).ExecContext(ctx, args...)
			return err
		}
		for i := 0; i < len(args); i += 4 {
			if _, err := tx.ExecContext(ctx, one, args[i:i+4]...); err != nil {
				return err
			}
		}
		return nil
	}
	flushEvents := func() error {
		err := flush(x.eventsStmt, evArgs, `INSERT OR IGNORE INTO events(id, t, event_id, record) VALUES(?, ?, ?, ?)`, eventsPerInsert)
		evArgs = evArgs[:0]
		return err
	}
	flushAttrs := func() error {
		err := flush(x.attrsStmt, atArgs, `INSERT OR IGNORE INTO attrs(k, h, t, id) VALUES(?, ?, ?, ?)`, attrsPerInsert)
		atArgs = atArgs[:0]
		return err
	}
	for _, e := range es {
		evArgs = append(evArgs, id, e.meta.t, e.meta.eventID, e.data)
		if len(evArgs) == cap(evArgs) {
			if err := flushEvents(); err != nil {
				return err
			}
		}
		for _, a := range e.meta.attrs {
			atArgs = append(atArgs, attrCodes[a[0]], attrHash(a[1]), e.meta.t, id)
			if len(atArgs) == cap(atArgs) {
				if err := flushAttrs(); err != nil {
					return err
				}
			}
		}
		id++
	}
	if err := flushEvents(); err != nil {
		return err
	}
	if err := flushAttrs(); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	x.nextID = id
	return nil
}

// multiInsert returns prefix followed by rows groups of cols placeholders.
func multiInsert(prefix string, cols, rows int) string {
	group := "(" + strings.Repeat("?, ", cols-1) + "?)"
	return prefix + " " + strings.Repeat(group+", ", rows-1) + group
}

// barrier makes every record indexed so far durable (see the package
// comment): one commit with synchronous=FULL syncs the whole WAL. The
// writer connection is held throughout, so the pragma applies to that
// commit alone.
func (x *index) barrier(ctx context.Context) error {
	c, err := x.w.Conn(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	if _, err := c.ExecContext(ctx, `PRAGMA synchronous = FULL`); err != nil {
		return err
	}
	_, err = c.ExecContext(ctx, `INSERT OR REPLACE INTO meta(k, v) VALUES('synced', ?)`, time.Now().UTC().Format(time.RFC3339Nano))
	if _, err2 := c.ExecContext(ctx, `PRAGMA synchronous = NORMAL`); err == nil {
		err = err2
	}
	return err
}

// waitFor waits until the record with sequence number seq is indexed, or
// timeout passes; it reports whether it is.
func (x *index) waitFor(seq uint64, timeout time.Duration) bool {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	x.mu.Lock()
	x.waiters++
	x.signal()
	x.mu.Unlock()
	defer func() {
		x.mu.Lock()
		x.waiters--
		x.mu.Unlock()
	}()
	for {
		x.mu.Lock()
		ok, ch := x.indexed >= seq, x.changed
		x.mu.Unlock()
		if ok {
			return true
		}
		select {
		case <-ch:
		case <-timer.C:
			return false
		}
	}
}

func (x *index) close() error {
	x.mu.Lock()
	x.closing = true
	x.signal()
	x.mu.Unlock()
	select {
	case <-x.done:
	case <-time.After(30 * time.Second):
	}
	return errors.Join(x.r.Close(), x.w.Close())
}

// deleteBefore drops records older than t (retention).
func (x *index) deleteBefore(t time.Time) error {
	ctx := context.Background()
	tx, err := x.w.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `DELETE FROM attrs WHERE t < ?`, t.Unix()); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM events WHERE t < ?`, t.Unix()); err != nil {
		return err
	}
	return tx.Commit()
}

// indexQuery is one page of a lookup.
type indexQuery struct {
	key, value string // "" key: no filter
	start, end int64  // inclusive, Unix seconds
	// before is the cursor: only events ordered before (t, id).
	beforeT, beforeID int64
	limit             int
}

type indexRow struct {
	id, t  int64
	record []byte
}

func (x *index) query(ctx context.Context, q indexQuery) ([]indexRow, error) {
	upT, upID := q.end, int64(math.MaxInt64)
	if q.beforeT != 0 || q.beforeID != 0 {
		if q.beforeT < upT || (q.beforeT == upT && q.beforeID < upID) {
			upT, upID = q.beforeT, q.beforeID
		}
	}
	switch {
	case q.key == "":
		return x.rows(ctx, `SELECT id, t, record FROM events
			WHERE t >= ? AND (t, id) < (?, ?) ORDER BY t DESC, id DESC LIMIT ?`, q.start, upT, upID, q.limit)
	case q.key == AttrEventID:
		return x.rows(ctx, `SELECT id, t, record FROM events
			WHERE event_id = ? AND t >= ? AND (t, id) < (?, ?) LIMIT ?`, q.value, q.start, upT, upID, q.limit)
	}
	// By the value's hash, keeping the records that hold the value; a
	// collision skips a row, so read on until the page is full.
	var out []indexRow
	for {
		rows, err := x.rows(ctx, `SELECT e.id, e.t, e.record FROM attrs a JOIN events e ON e.id = a.id
			WHERE a.k = ? AND a.h = ? AND a.t >= ? AND (a.t, a.id) < (?, ?)
			ORDER BY a.t DESC, a.id DESC LIMIT ?`, attrCodes[q.key], attrHash(q.value), q.start, upT, upID, q.limit)
		if err != nil {
			return nil, err
		}
		for _, r := range rows {
			if holds(r.record, q.key, q.value) {
				out = append(out, r)
			}
		}
		if len(rows) < q.limit || len(out) >= q.limit {
			return out[:min(len(out), q.limit)], nil
		}
		last := rows[len(rows)-1]
		upT, upID = last.t, last.id
	}
}

func (x *index) rows(ctx context.Context, query string, args ...any) ([]indexRow, error) {
	rows, err := x.r.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []indexRow
	for rows.Next() {
		var r indexRow
		if err := rows.Scan(&r.id, &r.t, &r.record); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// attrHash is the key of an attribute value in attrs: the first 8 bytes
// of its SHA-256, so that nobody can choose a value colliding with
// another's (a collision would only cost lookups a skipped row).
func attrHash(v string) int64 {
	sum := sha256.Sum256([]byte(v))
	return int64(binary.BigEndian.Uint64(sum[:8]))
}

// holds reports whether the record has the lookup attribute key = value.
func holds(record []byte, key, value string) bool {
	m, err := metaOfJSON(record)
	if err != nil {
		return false
	}
	for _, a := range m.attrs {
		if a[0] == key && a[1] == value {
			return true
		}
	}
	return false
}
