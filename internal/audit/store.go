package audit

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cofferhq/coffer/internal/auth"
)

// Defaults.
const (
	DefaultFileMaxEvents  = 10000
	DefaultFileMaxAge     = 5 * time.Minute
	DefaultDigestInterval = time.Hour
	DefaultSinkBacklog    = 10000
)

// ErrClosed is returned by Record after Close.
var ErrClosed = errors.New("audit: the trail is closed")

// Config configures a Store.
type Config struct {
	// Dir is the audit directory, <data>/audit. Required.
	Dir string
	// Region and AccountID are the registry's: every record's awsRegion
	// and recipientAccountId, and the trail's place under Dir. Required.
	Region    string
	AccountID string
	// SigningKey signs the digest files. Required; the caller keeps it
	// sealed at rest (LoadOrCreateSigningKey).
	SigningKey ed25519.PrivateKey
	// FileMaxEvents and FileMaxAge bound a log file: the write-ahead
	// segment is sealed into a .json.gz file when either is reached.
	// Zero means DefaultFileMaxEvents and DefaultFileMaxAge.
	FileMaxEvents int
	FileMaxAge    time.Duration
	// DigestInterval is how often a signed digest file is written (also
	// on Close and before a retention deletion). Zero means
	// DefaultDigestInterval; the minimum is one second.
	DigestInterval time.Duration
	// RetentionDays deletes log and digest files older than that many
	// days, recording the deletion as an event; 0 keeps everything.
	RetentionDays int
	// Sinks receive a copy of every durable record (forwarding), each
	// through a queue of at most SinkBacklog records (zero means
	// DefaultSinkBacklog). A failing sink never blocks or fails Record.
	Sinks       []Sink
	SinkBacklog int
	// Shared, if set, also publishes every sealed log file to the
	// registry's shared trail (shared.go): several replicas, one record.
	Shared *SharedConfig
	// Now is the clock for record times and file names; nil means
	// time.Now.
	Now func() time.Time
	// Log receives the trail's own operational messages; nil discards.
	Log *slog.Logger
}

func (c *Config) check() error {
	var errs []error
	if c.Dir == "" {
		errs = append(errs, errors.New("audit: Dir is required"))
	}
	if c.Region == "" {
		errs = append(errs, errors.New("audit: Region is required"))
	}
	if len(c.AccountID) != 12 || !isDigits(c.AccountID) {
		errs = append(errs, fmt.Errorf("audit: AccountID %q is not a 12-digit account ID", c.AccountID))
	}
	if len(c.SigningKey) != ed25519.PrivateKeySize {
		errs = append(errs, errors.New("audit: SigningKey must be an ed25519 private key"))
	}
	if c.FileMaxEvents < 0 || c.FileMaxAge < 0 || c.DigestInterval < 0 || c.RetentionDays < 0 || c.SinkBacklog < 0 {
		errs = append(errs, errors.New("audit: limits must not be negative"))
	}
	if c.DigestInterval != 0 && c.DigestInterval < time.Second {
		errs = append(errs, errors.New("audit: DigestInterval must be at least one second"))
	}
	if c.FileMaxEvents == 0 {
		c.FileMaxEvents = DefaultFileMaxEvents
	}
	if c.FileMaxAge == 0 {
		c.FileMaxAge = DefaultFileMaxAge
	}
	if c.DigestInterval == 0 {
		c.DigestInterval = DefaultDigestInterval
	}
	if c.SinkBacklog == 0 {
		c.SinkBacklog = DefaultSinkBacklog
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	return errors.Join(errs...)
}

// Store is the durable, tamper-evident trail. It implements Hook: Record
// returns only once the event is on disk (fsynced), sharing one write and
// one fsync among all concurrent callers (group commit), and fails when
// the event cannot be made durable. It is safe for concurrent use.
type Store struct {
	cfg     Config
	log     *slog.Logger
	now     func() time.Time
	tr      trail
	pub     ed25519.PublicKey
	lock    *os.File
	segDir  string
	tmpDir  string
	started time.Time

	// Record -> committer.
	mu        sync.Mutex
	pending   *batch
	closed    bool
	rotations []chan struct{} // Flush waiting for a rotation
	kick      chan struct{}

	// committer-owned.
	seg       *segment
	seq       uint64
	buf       []byte
	committed atomic.Uint64 // last durable sequence number
	commits   atomic.Uint64 // group commits (write + fsync)
	commitNS  atomic.Int64  // time the group commits took, write to fsync's return

	sealer *sealer
	shared *publisher // the shared trail's publisher, or nil
	spares *spares
	idx    *index
	fwd    []*forwarder

	stopRetention chan struct{}
	retention     sync.Mutex // one ApplyRetention at a time
	wg            sync.WaitGroup
	committerDone chan struct{}
	closeOnce     sync.Once
	closeErr      error
}

type batch struct {
	entries []entry
	done    chan struct{}
	err     error
}

// entry is one record on its way to disk: its JSON and what the index
// and the sinks need of it.
type entry struct {
	data []byte
	meta eventMeta
}

// NewStore opens (or creates) the trail under cfg.Dir and recovers it:
// write-ahead segments left by a crash are sealed into log files, the
// index catches up, and the digest chain continues from the last digest.
// One process at a time may open a directory.
func NewStore(cfg Config) (*Store, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	s := &Store{
		cfg: cfg, log: cfg.Log, now: cfg.Now,
		tr:            trail{cfg.AccountID, cfg.Region},
		pub:           cfg.SigningKey.Public().(ed25519.PublicKey),
		segDir:        filepath.Join(cfg.Dir, stateDir, "segments"),
		tmpDir:        filepath.Join(cfg.Dir, stateDir, "tmp"),
		pending:       &batch{done: make(chan struct{})},
		kick:          make(chan struct{}, 1),
		committerDone: make(chan struct{}),
		stopRetention: make(chan struct{}),
	}
	s.started = s.now().UTC().Truncate(time.Second)
	if recordsNothing {
		s.log.Error("audit: this build records no requests (built with -tags coffer_bench_noaudit): for benchmarks only")
	}
	if skipSync {
		s.log.Error("audit: this build never syncs the trail to disk (built with -tags coffer_bench_nosync): for benchmarks only")
	}
	for _, d := range []string{cfg.Dir, s.segDir, s.tmpDir} {
		if err := mkdirAllSync(d); err != nil {
			return nil, fmt.Errorf("audit: %w", err)
		}
	}
	lock, err := lockDir(filepath.Join(cfg.Dir, stateDir, "lock"))
	if err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	s.lock = lock
	ok := false
	defer func() {
		if !ok {
			if s.idx != nil {
				s.idx.close()
			}
			unlockDir(lock)
		}
	}()
	if err := cleanDir(s.tmpDir); err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	s.idx, err = openIndex(filepath.Join(cfg.Dir, stateDir, "index"), s.tmpDir, s.log)
	if err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	if err := s.idx.load(cfg.Dir, s.tr); err != nil {
		return nil, fmt.Errorf("audit: load index: %w", err)
	}
	s.sealer, err = newSealer(s)
	if err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	if err := s.sealer.recover(); err != nil {
		return nil, fmt.Errorf("audit: recover: %w", err)
	}
	if cfg.Shared != nil {
		if s.shared, err = newPublisher(s, cfg.Shared); err != nil {
			return nil, fmt.Errorf("audit: shared trail: %w", err)
		}
	}
	for _, sink := range cfg.Sinks {
		s.fwd = append(s.fwd, newForwarder(sink, cfg.SinkBacklog, s.log))
	}
	s.spares = newSpares(s.tmpDir, s.log)
	s.wg.Add(1)
	go func() { defer s.wg.Done(); s.sealer.run() }()
	go s.commitLoop()
	if cfg.RetentionDays > 0 {
		s.wg.Add(1)
		go func() { defer s.wg.Done(); s.retentionLoop() }()
	}
	s.wg.Add(1)
	go func() { defer s.wg.Done(); s.spoolLoop() }()
	ok = true
	return s, nil
}

// Stats are the store's counters, for metrics.
type Stats struct {
	// Records made durable and the group commits (one write and one
	// fsync each) that did it since the store opened, and the time those
	// commits took, from the write to the fsync's return.
	Records, Commits uint64
	CommitTime       time.Duration
	// SharedBacklog is the number of sealed log files waiting to be
	// published to the replicas' shared trail.
	SharedBacklog int
}

// Stats returns the store's counters.
func (s *Store) Stats() Stats {
	st := Stats{Records: s.committed.Load(), Commits: s.commits.Load(), CommitTime: time.Duration(s.commitNS.Load())}
	if s.shared != nil {
		st.SharedBacklog = s.shared.backlog()
	}
	return st
}

// PublicKey returns the key that verifies the trail's digests.
func (s *Store) PublicKey() ed25519.PublicKey { return s.pub }

// Record implements Hook: it builds the CloudTrail record of the request
// and returns once it is durable, or the reason it cannot be.
func (s *Store) Record(ctx context.Context, info *auth.Info, out Outcome) error {
	if recordsNothing {
		return nil
	}
	return s.Append(ctx, NewEvent(info, out, s.cfg.Region, s.cfg.AccountID, s.now()))
}

// Append makes ev durable, like Record, for events that are not requests
// (service events). A zero EventID, EventVersion or RecipientAccountID is
// filled in.
func (s *Store) Append(ctx context.Context, ev *Event) error {
	data, err := encodeRecord(ev, s.cfg.AccountID)
	if err != nil {
		return err
	}
	return s.submit(ctx, entry{data: data, meta: metaOf(ev)})
}

// encodeRecord fills in a zero EventVersion, EventID or RecipientAccountID
// (with account) and returns the record's JSON, refusing one too large
// for a frame.
func encodeRecord(ev *Event, account string) ([]byte, error) {
	if ev.EventVersion == "" {
		ev.EventVersion = EventVersion
	}
	if ev.RecipientAccountID == "" {
		ev.RecipientAccountID = account
	}
	if ev.EventID == "" {
		ev.EventID = newEventID()
	}
	data, err := appendEvent(make([]byte, 0, 1024), ev)
	if err != nil {
		return nil, fmt.Errorf("audit: encode record: %w", err)
	}
	if len(data) > maxFrame {
		return nil, errors.New("audit: record too large")
	}
	return data, nil
}

func (s *Store) submit(ctx context.Context, e entry) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	b := s.pending
	b.entries = append(b.entries, e)
	s.mu.Unlock()
	select {
	case s.kick <- struct{}{}:
	default:
	}
	select {
	case <-b.done:
		return b.err
	case <-ctx.Done():
		return fmt.Errorf("audit: record not confirmed durable: %w", ctx.Err())
	}
}

// commitLoop is the one writer of the segments: each pass takes every
// record waiting and commits them with one write and one fsync.
func (s *Store) commitLoop() {
	defer close(s.committerDone)
	check := max(min(s.cfg.FileMaxAge/4, time.Second), time.Millisecond)
	tick := time.NewTicker(check)
	defer tick.Stop()
	for {
		select {
		case <-s.kick:
		case <-tick.C:
			if s.seg != nil && time.Since(s.seg.opened) >= s.cfg.FileMaxAge {
				s.rotate()
			}
			continue
		}
		s.mu.Lock()
		b := s.pending
		s.pending = &batch{done: make(chan struct{})}
		closed := s.closed
		rotations := s.rotations
		s.rotations = nil
		s.mu.Unlock()
		if len(b.entries) > 0 {
			s.commit(b)
		}
		if len(rotations) > 0 {
			s.rotate()
			for _, r := range rotations {
				close(r)
			}
		}
		if closed {
			s.rotate()
			s.sealer.finish()
			return
		}
	}
}

func (s *Store) commit(b *batch) {
	if s.seg == nil {
		seg, err := createSegment(s.segDir, segHeader{Format: segmentFormat, Unique: newUnique(),
			Created: s.now().UTC(), Account: s.cfg.AccountID, Region: s.cfg.Region}, s.spares)
		if err != nil {
			s.fail(b, err)
			return
		}
		s.seg = seg
	}
	buf := s.buf[:0]
	for _, e := range b.entries {
		buf = appendFrame(buf, e.data)
	}
	s.buf = buf
	start := time.Now()
	if err := s.seg.write(buf); err != nil {
		// The segment's state on disk is uncertain: give up on it (its
		// durable prefix is sealed) and start a new one next time.
		s.seg.discardFailed()
		s.rotate()
		s.fail(b, fmt.Errorf("write audit segment: %w", err))
		return
	}
	if cap(s.buf) > 4<<20 {
		s.buf = nil
	}
	s.seq += uint64(len(b.entries))
	s.seg.count += len(b.entries)
	s.seg.lastSeq = s.seq
	for _, e := range b.entries {
		if et := e.meta.eventTime; et != "" {
			if s.seg.oldest == "" || et < s.seg.oldest {
				s.seg.oldest = et
			}
			if et > s.seg.newest {
				s.seg.newest = et
			}
		}
	}
	s.idx.enqueue(s.seg.hdr.Unique, b.entries)
	for _, f := range s.fwd {
		f.enqueue(b.entries)
	}
	s.committed.Store(s.seq)
	s.commitNS.Add(int64(time.Since(start)))
	s.commits.Add(1)
	close(b.done)
	if s.seg.count >= s.cfg.FileMaxEvents {
		s.rotate()
	}
}

func (s *Store) fail(b *batch, err error) {
	s.log.Error("audit: records could not be made durable; the requests fail", "records", len(b.entries), "error", err)
	b.err = fmt.Errorf("audit: %w", err)
	close(b.done)
}

// rotate closes the open segment and hands it to the sealer.
func (s *Store) rotate() {
	seg := s.seg
	if seg == nil {
		return
	}
	s.seg = nil
	seg.close()
	s.spares.observe(seg.size)
	s.sealer.submit(sealJob{path: seg.path, limit: seg.size, lastSeq: seg.lastSeq, oldest: seg.oldest, newest: seg.newest})
}

// Flush seals the records written so far into a log file and writes a
// digest covering it, as Close does but without closing: for an orderly
// hand-over (a backup, a verification of the files).
func (s *Store) Flush(ctx context.Context) error {
	if err := s.rotateRequest(ctx); err != nil {
		return err
	}
	return s.sealer.digestNow(ctx, time.Time{})
}

// rotateRequest asks the committer to rotate the open segment and waits
// until the segment is queued for sealing.
func (s *Store) rotateRequest(ctx context.Context) error {
	done := make(chan struct{})
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	s.rotations = append(s.rotations, done)
	s.mu.Unlock()
	select {
	case s.kick <- struct{}{}:
	default:
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close stops accepting records, seals the open segment, writes a final
// digest, drains the index and the sinks (for a few seconds at most), and
// releases the directory.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		s.mu.Unlock()
		close(s.stopRetention)
		select {
		case s.kick <- struct{}{}:
		default:
		}
		<-s.committerDone
		s.spares.close()
		s.wg.Wait()
		errs := []error{s.sealer.err}
		if s.shared != nil {
			s.shared.close(5 * time.Second)
		}
		for _, f := range s.fwd {
			f.close(5 * time.Second)
		}
		errs = append(errs, s.idx.close())
		unlockDir(s.lock)
		s.closeErr = errors.Join(errs...)
	})
	return s.closeErr
}

func cleanDir(dir string) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range ents {
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			return err
		}
	}
	return nil
}
