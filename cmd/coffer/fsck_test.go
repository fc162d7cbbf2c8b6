package main

import (
	"context"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/cofferhq/coffer/internal/config"
	"github.com/cofferhq/coffer/internal/server"
)

// pushedData makes a data directory (SQLite and the filesystem) holding
// one pushed image of three layers, through a real server.
func pushedData(t *testing.T) string {
	t.Helper()
	cfg := config.Defaults()
	cfg.DataDir = t.TempDir()
	cfg.CreateOnPush, cfg.InsecureAllowAnonymous = true, true
	cfg.AdminAccessKeyID, cfg.AdminSecretAccessKey = "AKIAFSCKTESTADMIN001", "fsck-test-secret-0123456789"
	app, err := server.Open(context.Background(), cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(app.Handler())
	img, err := random.Image(64<<10, 3)
	if err == nil {
		var r name.Reference
		if r, err = name.ParseReference(strings.TrimPrefix(srv.URL, "http://")+"/team/app:v1", name.Insecure); err == nil {
			err = remote.Write(r, img)
		}
	}
	srv.Close()
	if cerr := app.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
	return cfg.DataDir
}

// TestFsckCommand: a clean store, then a corrupted object, a deleted one
// and an orphan, each reported; --quick reads nothing; --repair deletes
// only the orphan.
func TestFsckCommand(t *testing.T) {
	t.Parallel()
	data := pushedData(t)
	fsck := func(args ...string) result {
		return runCoffer(nil, append([]string{"fsck", "--data", data}, args...)...)
	}
	r := fsck()
	if r.code != 0 || !strings.Contains(r.stdout, "read 1 manifests and 4 blobs: 0 problems") {
		t.Fatalf("clean store: fsck = %d\n%s%s", r.code, r.stdout, r.stderr)
	}

	layers, err := filepath.Glob(filepath.Join(data, "blobs", "layers", "aes256", "*"))
	if err != nil || len(layers) != 4 {
		t.Fatalf("layer objects %v, %v; want 4 (config and 3 layers)", layers, err)
	}
	slices.Sort(layers)
	corrupt, deleted := layers[0], layers[1]
	b, err := os.ReadFile(corrupt)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0x40
	if err := os.WriteFile(corrupt, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(deleted); err != nil {
		t.Fatal(err)
	}
	orphan := filepath.Join(data, "blobs", "layers", "aes256", "0123456789abcdef0123456789abcdef")
	young := filepath.Join(data, "blobs", "layers", "aes256", "fedcba9876543210fedcba9876543210")
	for _, p := range []string{orphan, young} {
		if err := os.WriteFile(p, []byte("left behind"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	old := time.Now().Add(-2 * time.Hour)
	if err := os.Chtimes(orphan, old, old); err != nil {
		t.Fatal(err)
	}
	key := func(p string) string { return strings.TrimPrefix(p, filepath.Join(data, "blobs")+"/") }

	r = fsck()
	want := []string{
		"corrupt " + key(corrupt) + " (blob aes256/sha256:",
		"missing " + key(deleted) + " (layer object of domain aes256)",
		"orphan " + key(orphan) + " (layer object of domain aes256) 11 bytes",
		"3 problems (1 missing, 1 orphaned, 1 corrupt, 0 undecryptable, 0 dangling)",
	}
	for _, w := range want {
		if !strings.Contains(r.stdout, w) {
			t.Errorf("fsck output lacks %q", w)
		}
	}
	if r.code != 1 || strings.Contains(r.stdout, key(young)) || t.Failed() {
		t.Fatalf("damaged store: fsck = %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if _, err := os.Stat(orphan); err != nil {
		t.Fatal("fsck without --repair deleted the orphan")
	}

	r = fsck("--quick")
	if r.code != 1 || strings.Contains(r.stdout, "corrupt layers/") || !strings.Contains(r.stdout, "read 0 manifests and 0 blobs: 2 problems (1 missing, 1 orphaned") {
		t.Fatalf("fsck --quick = %d\n%s%s", r.code, r.stdout, r.stderr)
	}

	r = fsck("--repair")
	if r.code != 1 || !strings.Contains(r.stdout, "repaired: deleted 1 orphaned objects") {
		t.Fatalf("fsck --repair = %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if _, err := os.Stat(orphan); err == nil {
		t.Error("--repair left the orphan")
	}
	for _, p := range []string{young, corrupt} {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("--repair deleted %s: %v", key(p), err)
		}
	}
	r = fsck()
	if r.code != 1 || !strings.Contains(r.stdout, "2 problems (1 missing, 0 orphaned, 1 corrupt") {
		t.Fatalf("after repair: fsck = %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r := fsck("--grace", "0"); r.code != 2 {
		t.Errorf("fsck --grace 0 = %d, want 2", r.code)
	}
}
