package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cofferhq/coffer/internal/audit"
	"github.com/cofferhq/coffer/internal/lifecycle"
	"github.com/cofferhq/coffer/internal/metadata"
	"github.com/cofferhq/coffer/internal/metadata/sqlite"
)

// lifecycleData makes a data directory whose repository "app" holds
// images v1..v3 (v3 newest) and a policy keeping one image.
func lifecycleData(t *testing.T) string {
	t.Helper()
	ctx := context.Background()
	data := t.TempDir()
	s, err := sqlite.Open(ctx, sqlite.Config{Path: filepath.Join(data, "coffer.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.PutSettingIfAbsent(ctx, "account_id", "111122223333"); err != nil { // as the server's first start
		t.Fatal(err)
	}
	repo := metadata.Repository{ID: "11111111-2222-3333-4444-555555555555", Name: "app", Domain: "aes256",
		EncryptionType: metadata.EncryptionAES256, TagMutability: metadata.TagMutable, CreatedAt: time.Now()}
	if err := s.CreateRepository(ctx, repo); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 3; i++ {
		d := fmt.Sprintf("sha256:%064x", i)
		_, err := s.PutManifest(ctx, metadata.PutManifest{Tag: fmt.Sprintf("v%d", i), Manifest: metadata.Manifest{
			RepoID: repo.ID, Digest: d, MediaType: "application/vnd.oci.image.manifest.v1+json", Size: 10,
			ObjectKey: "manifests/" + repo.ID + "/" + d + "/x", PushedAt: time.Now().Add(time.Duration(i-10) * time.Hour), ImageSize: 1}})
		if err != nil {
			t.Fatal(err)
		}
	}
	text := `{"rules":[{"rulePriority":1,"selection":{"tagStatus":"any","countType":"imageCountMoreThan","countNumber":1},"action":{"type":"expire"}}]}`
	doc, _ := json.Marshal(lifecycle.Stored{PolicyText: text})
	err = s.UpdateDocs(ctx, func(tx metadata.DocTx) error {
		_, err := tx.Put(metadata.Document{Kind: lifecycle.DocKind, Key: "app", Data: doc})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestLifecycleRunCommand(t *testing.T) {
	t.Parallel()
	data := lifecycleData(t)
	r := runCoffer(nil, "lifecycle", "run", "--dry-run", "--data", data)
	if r.code != 0 || !strings.Contains(r.stdout, "2 images would expire in 1 repositories") ||
		!strings.Contains(r.stdout, "v1") || !strings.Contains(r.stdout, "v2") || strings.Contains(r.stdout, "v3") {
		t.Fatalf("dry run = %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = runCoffer(nil, "lifecycle", "run", "--data", data)
	if r.code != 0 || !strings.Contains(r.stdout, "2 images expired") {
		t.Fatalf("run = %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	// Each expiry waits in the trail's spool for the server to append it.
	spooled, _ := filepath.Glob(filepath.Join(audit.SpoolDir(audit.Dir(data)), "*.event.json"))
	if len(spooled) != 2 {
		t.Fatalf("%d expiry events spooled, want 2", len(spooled))
	}
	for _, p := range spooled {
		b, _ := os.ReadFile(p)
		if !strings.Contains(string(b), `"eventName":"PolicyExecutionEvent"`) || !strings.Contains(string(b), "repository/app") {
			t.Fatalf("spooled event %s", b)
		}
	}
	r = runCoffer(nil, "lifecycle", "run", "--data", data, "--repository", "app")
	if r.code != 0 || !strings.Contains(r.stdout, "0 images expired") {
		t.Fatalf("second run = %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r := runCoffer(nil, "lifecycle", "run", "--data", t.TempDir()); r.code != 1 || !strings.Contains(r.stderr, "does not exist") {
		t.Fatalf("empty data dir = %d %q", r.code, r.stderr)
	}
	if r := runCoffer(nil, "lifecycle"); r.code != 2 {
		t.Fatalf("no subcommand = %d", r.code)
	}
}
