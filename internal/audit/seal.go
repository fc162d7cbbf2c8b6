package audit

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"
)

// The sealer turns closed segments into log files and writes the digests.
// It is one goroutine, so log files appear, and are listed in digests, in
// the order their segments were written.
//
// Its journal (state/journal, JSON lines, fsynced) makes sealing
// idempotent across crashes: an "intent" line names the log file a segment
// is about to become before it is written, a "sealed" line records the
// file's SHA-256 once it is in place, and the segment is removed only
// after that. The sealed lines since the last digest are the files the
// next digest lists; a digest empties the journal.
type sealer struct {
	s    *Store
	wake chan struct{}
	reqs chan digestReq
	exit chan struct{}
	err  error // the final digest's, set before exit closes

	mu        sync.Mutex
	queue     []sealJob
	finishing bool

	// Owned by the run goroutine (and by recover, before it starts).
	journal  *os.File
	intents  map[string]string // segment unique -> log object
	pending  []journalLine     // sealed, not yet in a digest
	head     headState
	crashed  bool // the head digest is not a final one
	lastWarn time.Time
	segs     segmentReader
	logs     logFileBuilder
}

type sealJob struct {
	path    string
	limit   int64  // bytes of the segment to read; 0 means all valid frames
	lastSeq uint64 // the segment's last record
	// The span of the records' eventTimes, known to the committer; ""
	// (recovery) means the sealer reads it from the records.
	oldest, newest string
}

type digestReq struct {
	horizon time.Time
	done    chan error
}

type journalLine struct {
	Op      string `json:"op"` // "intent" or "sealed"
	Segment string `json:"segment"`
	Object  string `json:"object"`
	SHA256  string `json:"sha256,omitempty"`
	Oldest  string `json:"oldest,omitempty"`
	Newest  string `json:"newest,omitempty"`
	Events  int    `json:"events,omitempty"`
}

func newSealer(s *Store) (*sealer, error) {
	sl := &sealer{s: s, wake: make(chan struct{}, 1), reqs: make(chan digestReq), exit: make(chan struct{}),
		intents: map[string]string{}}
	p := filepath.Join(s.cfg.Dir, stateDir, "journal")
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	sl.journal = f
	lines, err := readJournal(p)
	if err != nil {
		f.Close()
		return nil, err
	}
	for _, l := range lines {
		switch l.Op {
		case "intent":
			sl.intents[l.Segment] = l.Object
		case "sealed":
			delete(sl.intents, l.Segment)
			if !slices.ContainsFunc(sl.pending, func(p journalLine) bool { return p.Object == l.Object }) {
				sl.pending = append(sl.pending, l)
			}
		}
	}
	return sl, nil
}

// readJournal reads the journal's complete lines; a torn last line (a
// crash mid-append) is ignored.
func readJournal(p string) ([]journalLine, error) {
	data, err := os.ReadFile(p)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		return nil, err
	}
	var out []journalLine
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var l journalLine
		if json.Unmarshal(sc.Bytes(), &l) != nil {
			break
		}
		out = append(out, l)
	}
	return out, nil
}

func (sl *sealer) appendJournal(l journalLine) error {
	b, _ := json.Marshal(l)
	if _, err := sl.journal.Write(append(b, '\n')); err != nil {
		return err
	}
	return sl.journal.Sync()
}

// recover runs before the store accepts records: it reconciles the digest
// head with the disk and seals every segment a previous run left.
func (sl *sealer) recover() error {
	if err := sl.loadHead(); err != nil {
		return err
	}
	ents, err := os.ReadDir(sl.s.segDir)
	if err != nil {
		return err
	}
	var names []string
	for _, e := range ents {
		if _, _, ok := segmentUnique(e.Name()); ok {
			names = append(names, e.Name())
		}
	}
	slices.Sort(names)
	for _, n := range names {
		if err := sl.seal(sealJob{path: filepath.Join(sl.s.segDir, n)}, true); err != nil {
			return fmt.Errorf("seal %s: %w", n, err)
		}
	}
	if len(names) > 0 {
		sl.s.log.Info("audit: recovered write-ahead segments into log files", "segments", len(names))
	}
	if sl.crashed || len(names) > 0 {
		// The last run did not stop in order: a digest now covers what it
		// left, and keeps the chain's time line without a gap.
		return sl.writeDigest(time.Time{}, false)
	}
	return nil
}

func (sl *sealer) submit(j sealJob) {
	sl.mu.Lock()
	sl.queue = append(sl.queue, j)
	sl.mu.Unlock()
	sl.poke()
}

func (sl *sealer) poke() {
	select {
	case sl.wake <- struct{}{}:
	default:
	}
}

// finish tells the sealer that no more segments will come: it seals what
// is queued, writes the final digest and exits.
func (sl *sealer) finish() {
	sl.mu.Lock()
	sl.finishing = true
	sl.mu.Unlock()
	sl.poke()
}

// digestNow seals what is queued and writes a digest; a non-zero horizon
// is declared as the new retention horizon.
func (sl *sealer) digestNow(ctx context.Context, horizon time.Time) error {
	r := digestReq{horizon: horizon, done: make(chan error, 1)}
	select {
	case sl.reqs <- r:
	case <-sl.exit:
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-r.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (sl *sealer) run() {
	defer close(sl.exit)
	defer sl.journal.Close()
	digests := time.NewTicker(sl.s.cfg.DigestInterval)
	defer digests.Stop()
	retry := time.NewTicker(5 * time.Second)
	defer retry.Stop()
	for {
		select {
		case <-sl.wake:
		case <-retry.C:
		case <-digests.C:
			sl.sealQueued()
			if err := sl.writeDigest(time.Time{}, false); err != nil {
				sl.s.log.Error("audit: digest failed", "error", err)
			}
		case r := <-sl.reqs:
			sl.sealQueued()
			r.done <- sl.writeDigest(r.horizon, false)
			continue
		}
		sl.sealQueued()
		sl.mu.Lock()
		finishing := sl.finishing
		left := len(sl.queue)
		sl.mu.Unlock()
		if finishing {
			if left > 0 {
				sl.s.log.Error("audit: segments left unsealed at shutdown; the next start seals them", "segments", left)
			}
			sl.err = sl.writeDigest(time.Time{}, true)
			return
		}
	}
}

// sealQueued seals queued segments in order, stopping at the first
// failure (it is retried later; the segment stays on disk meanwhile).
func (sl *sealer) sealQueued() {
	for {
		sl.mu.Lock()
		if len(sl.queue) == 0 {
			sl.mu.Unlock()
			return
		}
		j := sl.queue[0]
		sl.mu.Unlock()
		if err := sl.seal(j, false); err != nil {
			if time.Since(sl.lastWarn) > time.Minute {
				sl.lastWarn = time.Now()
				sl.s.log.Error("audit: sealing a log file failed; will retry (records stay durable in the segment)",
					"segment", filepath.Base(j.path), "error", err)
			}
			return
		}
		sl.mu.Lock()
		sl.queue = sl.queue[1:]
		sl.mu.Unlock()
	}
}

// seal turns one segment into a log file, idempotently.
func (sl *sealer) seal(j sealJob, recovering bool) error {
	s := sl.s
	hdr, recs, _, err := sl.segs.read(j.path, j.limit)
	if errors.Is(err, errBadSegment) || (err == nil && len(recs) == 0) {
		// A segment that never got a record (or a header): nothing was
		// acknowledged from it.
		return removeSync(j.path)
	}
	if err != nil {
		return err
	}
	obj, intended := sl.intents[hdr.Unique]
	var data []byte
	var layout *logLayout // where the records lie in the log file, if written now
	if intended {
		data, err = os.ReadFile(filepath.Join(s.cfg.Dir, filepath.FromSlash(obj)))
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	if data == nil {
		obj = logObject(s.cfg.AccountID, s.cfg.Region, s.now(), hdr.Unique)
		if err := sl.appendJournal(journalLine{Op: "intent", Segment: hdr.Unique, Object: obj}); err != nil {
			return err
		}
		sl.intents[hdr.Unique] = obj
		data, layout, err = sl.logs.build(recs)
		if err != nil {
			return err
		}
		if err := writeFileAtomic(s.tmpDir, filepath.Join(s.cfg.Dir, filepath.FromSlash(obj)), data, 0o600); err != nil {
			return err
		}
	}
	// The segment goes once its records are in the log file; their index
	// file must be durable by then (see index). If it cannot be written,
	// the records stay indexed in memory and the next start rebuilds it.
	if err := s.idx.sealed(hdr.Unique, obj, recs, layout); err != nil {
		s.log.Error("audit: writing a LookupEvents index file failed", "file", obj, "recovering", recovering, "error", err)
	}
	sum := sha256.Sum256(data)
	oldest, newest := j.oldest, j.newest
	if oldest == "" {
		oldest, newest = eventSpan(recs)
	}
	l := journalLine{Op: "sealed", Segment: hdr.Unique, Object: obj, SHA256: hex.EncodeToString(sum[:]),
		Oldest: oldest, Newest: newest, Events: len(recs)}
	if !slices.ContainsFunc(sl.pending, func(p journalLine) bool { return p.Object == obj }) {
		if err := sl.appendJournal(l); err != nil {
			return err
		}
		sl.pending = append(sl.pending, l)
		if s.shared != nil {
			s.shared.enqueue(l)
		}
	}
	delete(sl.intents, hdr.Unique)
	return removeSync(j.path)
}

// segmentReader reads the segments the sealer seals into one buffer, kept
// from one segment to the next: a segment of FileMaxEvents records is
// megabytes, and reading each into a new buffer (readSegment's
// io.ReadAll, growing it) cost the sealer more than compressing it.
type segmentReader struct {
	buf []byte
}

// maxKeptBuffer is the largest buffer the sealer keeps from one segment
// to the next (segmentReader's, logFileBuilder's).
const maxKeptBuffer = 64 << 20

// read returns the header of segment p and the records of its
// valid prefix (at most limit bytes when limit > 0), and the prefix's
// length. The records are valid until the next read.
func (r *segmentReader) read(p string, limit int64) (segHeader, [][]byte, int64, error) {
	var hdr segHeader
	f, err := os.Open(p)
	if err != nil {
		return hdr, nil, 0, err
	}
	defer f.Close()
	n := limit
	if n <= 0 {
		fi, err := f.Stat()
		if err != nil {
			return hdr, nil, 0, err
		}
		n = fi.Size()
	}
	buf := r.buf
	if int64(cap(buf)) < n {
		buf = make([]byte, n)
	}
	if n <= maxKeptBuffer {
		r.buf = buf
	}
	got, err := io.ReadFull(f, buf[:n])
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return hdr, nil, 0, err
	}
	frames, valid := parseFrames(buf[:got])
	if len(frames) == 0 {
		return hdr, nil, int64(valid), errBadSegment
	}
	if err := json.Unmarshal(frames[0], &hdr); err != nil || hdr.Format != segmentFormat {
		return hdr, nil, int64(valid), errBadSegment
	}
	return hdr, frames[1:], int64(valid), nil
}

// eventSpan returns the oldest and newest eventTime of records.
func eventSpan(recs [][]byte) (oldest, newest string) {
	for _, r := range recs {
		var t struct {
			EventTime string `json:"eventTime"`
		}
		if json.Unmarshal(r, &t) != nil || t.EventTime == "" {
			continue
		}
		if oldest == "" || t.EventTime < oldest {
			oldest = t.EventTime
		}
		if t.EventTime > newest {
			newest = t.EventTime
		}
	}
	return oldest, newest
}

func removeSync(p string) error {
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return syncDir(filepath.Dir(p))
}
