package audit

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cofferhq/coffer/internal/storage"
	storagefs "github.com/cofferhq/coffer/internal/storage/fs"
)

// memRegistry is SharedRegistry in memory (the PostgreSQL one has its own
// tests in internal/metadata/postgres).
type memRegistry struct {
	mu       sync.Mutex
	files    []SharedFile
	digested map[string]bool
	head     SharedHead
	fail     error // RegisterAuditFile's answer while set
}

func (r *memRegistry) RegisterAuditFile(_ context.Context, f SharedFile) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail != nil {
		return r.fail
	}
	if !slices.ContainsFunc(r.files, func(g SharedFile) bool { return g.Object == f.Object }) {
		r.files = append(r.files, f)
	}
	return nil
}

func (r *memRegistry) DigestAuditFiles(_ context.Context, limit int, fn func(SharedHead, []SharedFile) (SharedHead, error)) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	var todo []SharedFile
	for _, f := range r.files {
		if !r.digested[f.Object] && len(todo) < limit {
			todo = append(todo, f)
		}
	}
	h, err := fn(r.head, todo)
	if err != nil {
		return err
	}
	if r.digested == nil {
		r.digested = map[string]bool{}
	}
	for _, f := range todo {
		r.digested[f.Object] = true
	}
	r.head = h
	return nil
}

func (r *memRegistry) AuditHead(context.Context) (SharedHead, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.head, nil
}

func (r *memRegistry) PendingAuditFiles(context.Context) ([]SharedFile, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []SharedFile
	for _, f := range r.files {
		if !r.digested[f.Object] {
			out = append(out, f)
		}
	}
	return out, nil
}

func (r *memRegistry) registered() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.files)
}

func sharedFixture(t *testing.T) (*SharedConfig, storage.Driver, *memRegistry) {
	t.Helper()
	objects, err := storagefs.New(storagefs.Config{Root: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	reg := &memRegistry{}
	return &SharedConfig{Objects: objects, Registry: reg, SigningKey: testKey()}, objects, reg
}

func waitRegistered(t *testing.T, reg *memRegistry, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for reg.registered() < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d log files registered after 10s; want %d", reg.registered(), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Two replicas' trails make one shared trail: each publishes its sealed
// log files, the leader's digest covers both, and VerifyShared checks the
// whole; a changed file, a deleted newest digest and a file nobody
// digested are reported (issue #9: "the audit trail stays one verifiable
// record across replicas").
func TestSharedTrailAcrossReplicas(t *testing.T) {
	ctx := t.Context()
	shared, objects, reg := sharedFixture(t)
	var stores []*Store
	for _, name := range []string{"a", "b"} {
		sh := *shared
		sh.Replica = name
		s := newTestStore(t, t.TempDir(), func(c *Config) { c.Shared = &sh })
		stores = append(stores, s)
		for i := range 5 {
			if err := s.Record(ctx, testInfo(i), Outcome{Status: 200}); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.Flush(ctx); err != nil {
			t.Fatal(err)
		}
	}
	waitRegistered(t, reg, 2)
	if err := stores[0].SharedDigest(ctx, false); err != nil {
		t.Fatal(err)
	}
	for _, s := range stores {
		s.Close()
	}
	rep, err := VerifyShared(ctx, objects, reg, testPub(), time.Time{}, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() || rep.LogFilesChecked != 2 || rep.DigestsChecked != 1 || len(rep.Pending) != 0 {
		t.Fatalf("clean shared trail: %+v", rep)
	}
	var records int
	for _, f := range reg.files {
		records += f.Events
	}
	if records != 10 {
		t.Fatalf("the registered files hold %d events; want 10", records)
	}

	// A log file changed in the shared store.
	victim := SharedPrefix + reg.files[1].Object
	if err := putObject(ctx, objects, victim, []byte("not a log file")); err != nil {
		t.Fatal(err)
	}
	rep, err = VerifyShared(ctx, objects, reg, testPub(), time.Time{}, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if p := rep.FirstBad(); p == nil || p.Kind != ProblemModified || p.Object != reg.files[1].Object {
		t.Fatalf("changed log file: first problem %v, want modified %s", p, reg.files[1].Object)
	}

	// The newest digest deleted: the registry's head names it.
	if err := objects.Delete(ctx, SharedPrefix+reg.head.Object); err != nil {
		t.Fatal(err)
	}
	rep, err = VerifyShared(ctx, objects, reg, testPub(), time.Time{}, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(rep.Problems, func(p Problem) bool { return p.Kind == ProblemDeleted && p.Object == reg.head.Object }) {
		t.Fatalf("deleted newest digest not reported: %v", rep.Problems)
	}
}

// A log file sealed while the shared store (or the database) is
// unreachable reaches the shared trail when it is back, and one sealed
// before a crash is published at the next start.
func TestSharedTrailPublishesLater(t *testing.T) {
	ctx := t.Context()
	shared, objects, reg := sharedFixture(t)
	reg.fail = errors.New("database unreachable")
	dir := t.TempDir()
	s := newTestStore(t, dir, func(c *Config) { c.Shared = shared })
	if err := s.Record(ctx, testInfo(1), Outcome{Status: 200}); err != nil {
		t.Fatal(err)
	}
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	s.Close() // gives up after 5 s: the file stays unpublished
	if reg.registered() != 0 {
		t.Fatal("registered while the registry fails")
	}
	reg.mu.Lock()
	reg.fail = nil
	reg.mu.Unlock()
	s = newTestStore(t, dir, func(c *Config) { c.Shared = shared })
	defer s.Close()
	waitRegistered(t, reg, 1)
	if err := s.SharedDigest(ctx, false); err != nil {
		t.Fatal(err)
	}
	rep, err := VerifyShared(ctx, objects, reg, testPub(), time.Time{}, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() || rep.LogFilesChecked != 1 {
		t.Fatalf("shared trail after a late publish: %+v", rep)
	}
	published, err := os.ReadFile(filepath.Join(dir, stateDir, "published"))
	if err != nil || strings.Count(string(published), "\n") != 1 {
		t.Fatalf("state/published = %q, %v; want one line", published, err)
	}
}

// A log file registered after a digest that ends later than the time in
// its name (a replica that published late) is pending until the next
// digest lists it, not inserted.
func TestSharedTrailLateFileIsPending(t *testing.T) {
	ctx := t.Context()
	shared, objects, reg := sharedFixture(t)
	var clock atomic.Int64
	clock.Store(time.Now().Add(-time.Hour).UnixNano())
	s := newTestStore(t, t.TempDir(), func(c *Config) {
		c.Shared = shared
		c.Now = func() time.Time { return time.Unix(0, clock.Load()) }
	})
	if err := s.Record(ctx, testInfo(1), Outcome{Status: 200}); err != nil {
		t.Fatal(err)
	}
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	waitRegistered(t, reg, 1)
	clock.Add(int64(10 * time.Minute)) // the digest ends well after the file's name
	if err := s.SharedDigest(ctx, false); err != nil {
		t.Fatal(err)
	}
	// A late file: its name's time is before the digest's end, it is in
	// the store and registered, and no digest lists it yet.
	late := reg.files[0]
	late.Object = strings.Replace(late.Object, late.Object[len(late.Object)-len("XXXXXXXXXXXXXXXX.json.gz"):], "LateLateLateLate.json.gz", 1)
	data, err := os.ReadFile(filepath.Join(s.cfg.Dir, filepath.FromSlash(reg.files[0].Object)))
	if err != nil {
		t.Fatal(err)
	}
	if err := putObject(ctx, objects, SharedPrefix+late.Object, data); err != nil {
		t.Fatal(err)
	}
	if err := reg.RegisterAuditFile(ctx, late); err != nil {
		t.Fatal(err)
	}
	s.Close()
	rep, err := VerifyShared(ctx, objects, reg, testPub(), time.Time{}, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() || !slices.Contains(rep.Pending, late.Object) {
		t.Fatalf("late file: %+v; want it pending, no problem", rep)
	}
}
