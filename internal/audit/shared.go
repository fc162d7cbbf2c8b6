package audit

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/cofferhq/coffer/internal/loop"
	"github.com/cofferhq/coffer/internal/storage"
)

// The shared trail (issue #9). Several replicas each keep the trail of
// the requests they serve, durably, in their own directory (the
// write-ahead segments, the sealed log files, a digest chain of their
// own), as a single server does. With a shared configuration they also
// make one trail of the whole registry, the way CloudTrail delivers one
// trail to one bucket:
//
//   - every sealed log file is published to the shared object store
//     under SharedPrefix, in the CloudTrail layout, and registered in the
//     metadata database (SharedRegistry), in that order, so a registered
//     file is always in the store. A replica remembers what it has
//     published (state/published) and publishes the rest at its next
//     start, so a crash between sealing and publishing loses nothing;
//   - one digest chain covers the files of every replica: the leader of
//     the background work (RunSharedDigests) writes, every
//     DigestInterval, a digest listing the files registered since the
//     previous one, chained to it, signed with the registry's shared
//     signing key, and moves the chain's head in the database in the same
//     transaction that marks the files digested;
//   - VerifyShared checks the shared store as Verify checks a directory:
//     every file and digest, the chain, and the head the database
//     recorded (so deleting the newest digests shows).
//
// Each replica's own chain stays verifiable on its own; the shared chain
// is the one record of everything.

// SharedPrefix is where the shared trail lives in the object store.
const SharedPrefix = "audit/"

// SharedFile is a log file published to the shared trail.
type SharedFile struct {
	// Object is the file's name in the trail (CloudTrail layout), without
	// SharedPrefix.
	Object         string
	SHA256         string
	Oldest, Newest string
	Events         int
	Replica        string
}

// SharedHead is the newest digest of the shared chain.
type SharedHead struct {
	Object, SHA256, Signature string
	End                       time.Time
}

// SharedRegistry keeps the shared trail's books in the metadata database.
type SharedRegistry interface {
	// RegisterAuditFile records a published log file; registering the
	// same object again is not an error.
	RegisterAuditFile(ctx context.Context, f SharedFile) error
	// DigestAuditFiles calls fn with the chain's head and the registered
	// files no digest lists yet (in registration order, at most limit),
	// holding a lock no other replica can hold at the same time; if fn
	// returns no error, the files are marked digested and the head
	// replaced by fn's, in one transaction.
	DigestAuditFiles(ctx context.Context, limit int, fn func(head SharedHead, files []SharedFile) (SharedHead, error)) error
	// AuditHead returns the shared chain's head (zero before the first
	// digest).
	AuditHead(ctx context.Context) (SharedHead, error)
	// PendingAuditFiles returns the registered files no digest lists yet.
	PendingAuditFiles(ctx context.Context) ([]SharedFile, error)
}

// SharedConfig turns the shared trail on.
type SharedConfig struct {
	// Objects is the shared object store (the blob store); the trail is
	// under SharedPrefix.
	Objects  storage.Driver
	Registry SharedRegistry
	// Replica names this replica in the registry.
	Replica string
	// SigningKey signs the shared digests: the same on every replica,
	// since any replica may lead.
	SigningKey ed25519.PrivateKey
}

// sharedDigestFiles bounds the files one shared digest lists.
const sharedDigestFiles = 10_000

// publisher publishes the replica's sealed log files to the shared trail.
type publisher struct {
	s    *Store
	cfg  *SharedConfig
	path string // state/published: one object name per line

	mu     sync.Mutex
	queue  []journalLine
	wake   chan struct{}
	done   chan struct{}
	quit   chan struct{}
	file   *os.File
	failed time.Time // last failure, for the backoff
}

func newPublisher(s *Store, cfg *SharedConfig) (*publisher, error) {
	p := &publisher{s: s, cfg: cfg, path: filepath.Join(s.cfg.Dir, stateDir, "published"),
		wake: make(chan struct{}, 1), done: make(chan struct{}), quit: make(chan struct{})}
	published := map[string]bool{}
	if f, err := os.Open(p.path); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			published[sc.Text()] = true
		}
		f.Close()
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	f, err := os.OpenFile(p.path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	p.file = f
	// What a crash (or an unreachable store) left unpublished.
	objs, err := listObjects(s.cfg.Dir, s.tr, logKind, time.Time{}, time.Time{})
	if err != nil {
		f.Close()
		return nil, err
	}
	for _, o := range objs {
		if !published[o.name] {
			p.queue = append(p.queue, journalLine{Object: o.name})
		}
	}
	go p.run()
	return p, nil
}

// enqueue publishes a sealed log file, in the background.
func (p *publisher) enqueue(l journalLine) {
	p.mu.Lock()
	p.queue = append(p.queue, l)
	p.mu.Unlock()
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

func (p *publisher) backlog() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.queue)
}

func (p *publisher) run() {
	defer close(p.done)
	retry := time.Second
	for {
		p.mu.Lock()
		var next *journalLine
		if len(p.queue) > 0 {
			next = &p.queue[0]
		}
		p.mu.Unlock()
		if next == nil {
			select {
			case <-p.wake:
				continue
			case <-p.quit:
				return
			}
		}
		err := p.publish(*next)
		if err == nil {
			retry = time.Second
			p.mu.Lock()
			p.queue = p.queue[1:]
			p.mu.Unlock()
			continue
		}
		if time.Since(p.failed) > time.Minute {
			p.s.log.Error("audit: publishing a log file to the shared trail failed; will retry (the file stays in this replica's trail)",
				"object", next.Object, "error", err)
		}
		p.failed = time.Now()
		t := time.NewTimer(retry)
		select {
		case <-t.C:
		case <-p.quit:
			t.Stop()
			return
		}
		retry = min(2*retry, 30*time.Second)
	}
}

// publish puts one log file in the shared store, registers it, and
// records it as published.
func (p *publisher) publish(l journalLine) error {
	data, err := os.ReadFile(filepath.Join(p.s.cfg.Dir, filepath.FromSlash(l.Object)))
	if errors.Is(err, fs.ErrNotExist) {
		// Retention removed it before it could be published.
		p.s.log.Warn("audit: a log file was removed before it reached the shared trail", "object", l.Object)
		return nil
	}
	if err != nil {
		return err
	}
	sum := sha256.Sum256(data)
	hash := hex.EncodeToString(sum[:])
	if l.SHA256 == "" {
		// Found at start: its facts come from the file itself.
		recs, err := parseLogFile(data)
		if err != nil {
			return fmt.Errorf("%s: %w", l.Object, err)
		}
		raw := make([][]byte, len(recs))
		for i, r := range recs {
			raw[i] = r
		}
		l.SHA256, l.Events = hash, len(recs)
		l.Oldest, l.Newest = eventSpan(raw)
	} else if l.SHA256 != hash {
		// Never launder a file changed since it was sealed: the
		// replica's own chain reports it.
		return fmt.Errorf("%s changed since it was sealed (SHA-256 %s, sealed as %s); not published", l.Object, hash, l.SHA256)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := putObject(ctx, p.cfg.Objects, SharedPrefix+l.Object, data); err != nil {
		return err
	}
	if err := p.cfg.Registry.RegisterAuditFile(ctx, SharedFile{Object: l.Object, SHA256: l.SHA256,
		Oldest: l.Oldest, Newest: l.Newest, Events: l.Events, Replica: p.cfg.Replica}); err != nil {
		return fmt.Errorf("register %s: %w", l.Object, err)
	}
	if _, err := p.file.WriteString(l.Object + "\n"); err != nil {
		return err
	}
	return p.file.Sync()
}

// close stops publishing after at most wait; what is left is published
// at the next start.
func (p *publisher) close(wait time.Duration) {
	deadline := time.Now().Add(wait)
	for p.backlog() > 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	close(p.quit)
	<-p.done
	p.file.Close()
}

func putObject(ctx context.Context, d storage.Driver, key string, data []byte) error {
	w, err := d.Writer(ctx, key)
	if err != nil {
		return err
	}
	if _, err := w.Write(data); err != nil {
		w.Cancel(ctx)
		return err
	}
	return w.Commit(ctx)
}

// RunSharedDigests writes the shared trail's digests every DigestInterval
// until ctx ends; the server runs it on the leader of the background work
// only. Without a shared configuration it returns at once.
func (s *Store) RunSharedDigests(ctx context.Context) {
	if s.cfg.Shared == nil {
		return
	}
	loop.Every(ctx, s.cfg.DigestInterval, func(ctx context.Context) {
		if err := s.SharedDigest(ctx, false); err != nil && ctx.Err() == nil {
			s.log.Error("audit: writing the shared trail's digest failed; the next one will cover its files", "error", err)
		}
	})
}

// Shared reports whether the trail is part of a shared trail.
func (s *Store) Shared() bool { return s.cfg.Shared != nil }

// SharedDigest writes one digest of the shared trail now: the files
// registered since the previous digest, chained to it. closing marks the
// digest a replica writes as it stops (cofferTrailStopped): if no digest
// follows it, the whole registry stopped in order, and Verify does not
// report the chain as cut short.
func (s *Store) SharedDigest(ctx context.Context, closing bool) error {
	sh := s.cfg.Shared
	if sh == nil {
		return errors.New("audit: no shared trail configured")
	}
	return sh.Registry.DigestAuditFiles(ctx, sharedDigestFiles, func(head SharedHead, files []SharedFile) (SharedHead, error) {
		end := s.now().UTC().Truncate(time.Second)
		if !head.End.IsZero() && !end.After(head.End) {
			end = head.End.Add(time.Second)
		}
		start := head.End
		if start.IsZero() {
			start = end
			for _, f := range files {
				if t, err := parseTime(f.Oldest); err == nil && t.Before(start) {
					start = t
				}
			}
		}
		lines := make([]journalLine, len(files))
		for i, f := range files {
			lines[i] = journalLine{Object: f.Object, SHA256: f.SHA256, Oldest: f.Oldest, Newest: f.Newest, Events: f.Events}
		}
		obj, file, h, err := buildDigest(digestInput{account: s.cfg.AccountID, region: s.cfg.Region, key: sh.SigningKey,
			head:  headState{Object: head.Object, SHA256: head.SHA256, Signature: head.Signature, End: head.End},
			start: start, end: end, interval: s.cfg.DigestInterval, final: closing, files: lines})
		if err != nil {
			return SharedHead{}, err
		}
		if err := putObject(ctx, sh.Objects, SharedPrefix+obj, file); err != nil {
			return SharedHead{}, fmt.Errorf("put digest %s: %w", obj, err)
		}
		return SharedHead{Object: h.Object, SHA256: h.SHA256, Signature: h.Signature, End: h.End}, nil
	})
}

// VerifyShared verifies the shared trail in the object store as Verify
// verifies a directory, and checks that the newest digest the registry
// recorded is there: it copies the trail to a temporary directory first
// (like `aws cloudtrail validate-logs`, which reads the bucket).
func VerifyShared(ctx context.Context, objects storage.Driver, reg SharedRegistry, pub ed25519.PublicKey, from, to time.Time) (*Report, error) {
	dir, err := os.MkdirTemp("", "coffer-audit-verify-*")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	err = objects.Walk(ctx, SharedPrefix, func(info storage.Info) error {
		name := strings.TrimPrefix(info.Key, SharedPrefix)
		if !fs.ValidPath(name) || strings.HasPrefix(name, stateDir+"/") {
			return fmt.Errorf("unexpected object %q in the shared trail", info.Key)
		}
		r, err := objects.Reader(ctx, info.Key, 0, -1)
		if err != nil {
			return err
		}
		defer r.Close()
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			return err
		}
		f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return err
		}
		_, err = io.Copy(f, r)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("read %s: %w", info.Key, err)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read the shared trail: %w", err)
	}
	// The registry stands in for a writer's state: its head catches the
	// deletion of the newest digests, and the files it holds that no
	// digest lists yet (registered after the last digest, whatever the
	// time in their names) are pending, not inserted.
	head, err := reg.AuditHead(ctx)
	if err != nil {
		return nil, fmt.Errorf("read the shared trail's head: %w", err)
	}
	pending, err := reg.PendingAuditFiles(ctx)
	if err != nil {
		return nil, fmt.Errorf("read the shared trail's pending files: %w", err)
	}
	if err := os.MkdirAll(filepath.Join(dir, stateDir), 0o700); err != nil {
		return nil, err
	}
	if head.Object != "" {
		hb, _ := json.Marshal(headState{Object: head.Object, SHA256: head.SHA256, Signature: head.Signature, End: head.End})
		if err := os.WriteFile(headPath(dir), hb, 0o600); err != nil {
			return nil, err
		}
	}
	var journal []byte
	for _, f := range pending {
		b, _ := json.Marshal(journalLine{Op: "sealed", Object: f.Object, SHA256: f.SHA256})
		journal = append(append(journal, b...), '\n')
	}
	if err := os.WriteFile(filepath.Join(dir, stateDir, "journal"), journal, 0o600); err != nil {
		return nil, err
	}
	return Verify(dir, pub, from, to)
}
