package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	fsdriver "github.com/cofferhq/coffer/internal/storage/fs"
)

func TestGCCommand(t *testing.T) {
	t.Parallel()
	data := lifecycleData(t)
	ctx := context.Background()
	drv, err := fsdriver.New(fsdriver.Config{Root: filepath.Join(data, "blobs")})
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"layers/aes256/orphan", "layers/aes256/young"} {
		w, err := drv.Writer(ctx, k)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(make([]byte, 1234))
		if err := w.Commit(ctx); err != nil {
			t.Fatal(err)
		}
	}
	old := time.Now().Add(-3 * time.Hour)
	if err := os.Chtimes(filepath.Join(data, "blobs", "layers/aes256/orphan"), old, old); err != nil {
		t.Fatal(err)
	}
	r := runCoffer(nil, "gc", "--dry-run", "--data", data)
	if r.code != 0 || !strings.Contains(r.stdout, "would reclaim 1234 bytes: 0 blobs, 0 upload sessions, 1 orphaned objects") ||
		!strings.Contains(r.stdout, "layers/aes256/orphan") ||
		!strings.Contains(r.stdout, "would unlink 0 blobs no manifest of their repository references (0 bytes of repository usage)") {
		t.Fatalf("gc --dry-run = %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if _, err := drv.Stat(ctx, "layers/aes256/orphan"); err != nil {
		t.Fatal("dry run deleted the orphan")
	}
	r = runCoffer(nil, "gc", "--data", data)
	if r.code != 0 || !strings.Contains(r.stdout, "reclaimed 1234 bytes") {
		t.Fatalf("gc = %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if _, err := drv.Stat(ctx, "layers/aes256/orphan"); err == nil {
		t.Fatal("orphan not reclaimed")
	}
	if _, err := drv.Stat(ctx, "layers/aes256/young"); err != nil {
		t.Fatal("an object inside the grace period was reclaimed")
	}
	if r := runCoffer(nil, "gc", "--grace", "0", "--data", data); r.code != 2 {
		t.Fatalf("gc --grace 0 = %d", r.code)
	}
}
