package server

import (
	"context"
	"log/slog"
	"net/http"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/cofferhq/coffer/internal/metadata/postgres"
	"github.com/cofferhq/coffer/internal/metadata/sqlite"
	"github.com/cofferhq/coffer/internal/testbackend"
)

// With SQLite there is one process: it always leads, sends nothing and
// subscribes to nothing. (Several replicas on PostgreSQL: test/e2e
// TestReplicas.)
func TestReplicasSingleProcess(t *testing.T) {
	t.Parallel()
	store, err := sqlite.Open(t.Context(), sqlite.Config{Path: filepath.Join(t.TempDir(), "coffer.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	r := newReplicas(store, slog.New(slog.DiscardHandler))
	if r.pg != nil {
		t.Fatal("SQLite store taken for PostgreSQL")
	}
	r.announce() // no-op, must not block or panic
	h := http.NotFoundHandler()
	if got := r.fence(h, func() { t.Error("the fence invalidated with SQLite") }); reflect.ValueOf(got).Pointer() != reflect.ValueOf(h).Pointer() {
		t.Error("the fence wraps the handler with SQLite")
	}
	called := 0
	if err := r.follow(t.Context(), func() { called++ }); err != nil || called != 0 {
		t.Fatalf("follow = %v, invalidations %d; want nil, 0", err, called)
	}
	ctx, cancel := context.WithCancel(t.Context())
	led := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.lead(ctx, func(ctx context.Context) {
			close(led)
			<-ctx.Done()
		})
	}()
	<-led
	cancel()
	<-done
}

// A write whose announce fails while PostgreSQL is down advances the
// fence counter once PostgreSQL is back, so the other replicas drop the
// caches it made stale (#9).
func TestAnnounceRetriedAfterOutage(t *testing.T) {
	t.Parallel()
	pg, err := testbackend.StartPostgres(testbackend.PostgresConfig{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pg.Stop)
	dsn, err := pg.CreateDatabase(t.Context(), "announce")
	if err != nil {
		t.Fatal(err)
	}
	store, err := postgres.Open(t.Context(), postgres.Config{DSN: dsn})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	r := newReplicas(store, slog.New(slog.DiscardHandler))
	ctx := context.Background()
	before, err := store.Count(ctx, fenceCounter)
	if err != nil {
		t.Fatal(err)
	}
	if err := pg.Halt(); err != nil {
		t.Fatal(err)
	}
	r.announce() // fails: PostgreSQL is down
	if !r.owed.Load() && !r.retrying.Load() {
		t.Fatal("a failed announce is not retried")
	}
	if err := pg.Resume(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		n, err := store.Count(ctx, fenceCounter)
		if err == nil && n > before {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the fence counter stayed at %d after PostgreSQL came back (%v)", n, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	for r.retrying.Load() {
		time.Sleep(10 * time.Millisecond)
	}
}
