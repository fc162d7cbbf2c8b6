package postgres

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// channel returns a channel name unique to the test: notifications are
// database-wide, and the tests share one database.
func channel() string { return "coffer_test_" + randomHex(6) }

func receive(t *testing.T, got <-chan string) string {
	t.Helper()
	select {
	case p := <-got:
		return p
	case <-time.After(10 * time.Second):
		t.Fatal("no notification within 10s")
		return ""
	}
}

// TestNotify: a notification from one store reaches the listener of
// another, in order, and stops once the listener's context ends.
func TestNotify(t *testing.T) {
	t.Parallel()
	dsn := newDSN(t)
	a, b := openStore(t, fastCfg(dsn)), openStore(t, fastCfg(dsn))
	ch := channel()
	got := make(chan string, 100)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	if err := a.Listen(ctx, ch, func(p string) { got <- p }); err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		if err := b.Notify(t.Context(), ch, fmt.Sprintf("repo/%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 20 {
		if p, want := receive(t, got), fmt.Sprintf("repo/%d", i); p != want {
			t.Fatalf("notification %d = %q, want %q", i, p, want)
		}
	}
	// Its own notifications too; other channels not.
	if err := b.Notify(t.Context(), channel(), "elsewhere"); err != nil {
		t.Fatal(err)
	}
	if err := a.Notify(t.Context(), ch, "self"); err != nil {
		t.Fatal(err)
	}
	if p := receive(t, got); p != "self" {
		t.Fatalf("got %q, want self", p)
	}
	if err := a.Notify(t.Context(), ch, Resync); err == nil {
		t.Error("Notify accepted the reserved empty payload")
	}
	if err := a.Listen(ctx, "", func(string) {}); err == nil {
		t.Error("Listen accepted an empty channel")
	}

	// After the listener's context ends, nothing more is delivered.
	cancel()
	time.Sleep(100 * time.Millisecond)
	if err := b.Notify(t.Context(), ch, "late"); err != nil {
		t.Fatal(err)
	}
	select {
	case p := <-got:
		t.Errorf("delivered %q after the listener's context ended", p)
	case <-time.After(300 * time.Millisecond):
	}
}

// TestListenReconnects terminates the listener's session: Listen
// reconnects, reports Resync, and delivers what is sent afterwards.
func TestListenReconnects(t *testing.T) {
	t.Parallel()
	dsn := newDSN(t)
	a := openStore(t, fastCfg(dsn))
	ch := channel()
	got := make(chan string, 100)
	if err := a.Listen(t.Context(), ch, func(p string) { got <- p }); err != nil {
		t.Fatal(err)
	}
	if err := a.Notify(t.Context(), ch, "before"); err != nil {
		t.Fatal(err)
	}
	if p := receive(t, got); p != "before" {
		t.Fatalf("got %q", p)
	}
	var n int
	err := a.pool.QueryRow(t.Context(), `SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity
		WHERE datname = current_database() AND query = $1`, "LISTEN "+pgx.Identifier{ch}.Sanitize()).Scan(&n)
	if err != nil || n != 1 {
		t.Fatalf("terminated %d listeners, err %v", n, err)
	}
	if p := receive(t, got); p != Resync {
		t.Fatalf("first delivery after the session died = %q, want Resync", p)
	}
	if err := a.Notify(t.Context(), ch, "after"); err != nil {
		t.Fatal(err)
	}
	if p := receive(t, got); p != "after" {
		t.Fatalf("got %q, want after", p)
	}
}

// TestListenClose: Close stops the listener (and does not wait for its
// context); Listen on a closed store fails.
func TestListenClose(t *testing.T) {
	t.Parallel()
	dsn := newDSN(t)
	a, err := Open(t.Context(), fastCfg(dsn))
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Listen(context.Background(), channel(), func(string) {}); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- a.Close() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close hangs on a listener")
	}
	if err := a.Listen(t.Context(), channel(), func(string) {}); err == nil {
		t.Error("Listen on a closed store succeeded")
	}
}
