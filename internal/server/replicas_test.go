package server

import (
	"context"
	"log/slog"
	"net/http"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/cofferhq/coffer/internal/metadata/sqlite"
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
