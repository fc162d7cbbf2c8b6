package runner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/cofferhq/coffer/internal/lifecycle"
	"github.com/cofferhq/coffer/internal/metadata"
	"github.com/cofferhq/coffer/internal/metadata/sqlite"
)

func setup(t *testing.T, policy string) (metadata.Store, metadata.Repository, []string) {
	t.Helper()
	ctx := context.Background()
	s, err := sqlite.Open(ctx, sqlite.Config{Path: filepath.Join(t.TempDir(), "db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	r := metadata.Repository{ID: uuid.NewString(), Name: "r", Domain: "aes256", EncryptionType: metadata.EncryptionAES256,
		TagMutability: metadata.TagMutable, CreatedAt: time.Now()}
	if err := s.CreateRepository(ctx, r); err != nil {
		t.Fatal(err)
	}
	var ds []string
	for i := range 3 { // untagged images, oldest first
		d := fmt.Sprintf("sha256:%064x", i+1)
		ds = append(ds, d)
		_, err := s.PutManifest(ctx, metadata.PutManifest{Manifest: metadata.Manifest{RepoID: r.ID, Digest: d,
			MediaType: "application/vnd.oci.image.manifest.v1+json", Size: 1, ObjectKey: "manifests/" + r.ID + "/" + d,
			PushedAt: time.Now().Add(time.Duration(i-10) * time.Hour), ImageSize: 1}})
		if err != nil {
			t.Fatal(err)
		}
	}
	if policy != "" {
		data, _ := json.Marshal(lifecycle.Stored{PolicyText: policy})
		err := s.UpdateDocs(ctx, func(tx metadata.DocTx) error {
			_, err := tx.Put(metadata.Document{Kind: lifecycle.DocKind, Key: r.Name, Data: data})
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return s, r, ds
}

const keepOneUntagged = `{"rules":[{"rulePriority":1,"selection":{"tagStatus":"untagged","countType":"imageCountMoreThan","countNumber":1},"action":{"type":"expire"}}]}`

func TestRunRepository(t *testing.T) {
	ctx := context.Background()
	s, r, ds := setup(t, keepOneUntagged)
	run := New(Config{Store: s})
	rep, err := run.RunRepository(ctx, r, true)
	if err != nil || len(rep.Expired) != 2 || rep.Expired[0].Image.Digest != ds[0] || rep.Expired[1].Image.Digest != ds[1] {
		t.Fatalf("dry run: %+v, %v", rep, err)
	}
	rep, err = run.RunRepository(ctx, r, false)
	if err != nil || len(rep.Expired) != 2 {
		t.Fatalf("run: %+v, %v", rep, err)
	}
	ms, _ := s.ListManifests(ctx, r.ID, "", 0)
	if len(ms) != 1 || ms[0].Digest != ds[2] {
		t.Fatalf("left %v", ms)
	}
	st, err := run.Policy(ctx, r.Name)
	if err != nil || st.LastEvaluatedAt.IsZero() {
		t.Fatalf("policy after run: %+v, %v", st, err)
	}
}

// An image tagged between evaluation and deletion is kept.
func TestRunSkipsImagesTaggedMeanwhile(t *testing.T) {
	ctx := context.Background()
	s, r, ds := setup(t, keepOneUntagged)
	var once sync.Once
	run := New(Config{Store: s, Now: func() time.Time {
		once.Do(func() { // after listing, before deleting
			m, err := s.GetManifest(ctx, r.ID, ds[0])
			if err != nil {
				t.Error(err)
				return
			}
			if _, err := s.PutManifest(ctx, metadata.PutManifest{Manifest: m, Tag: "now-tagged"}); err != nil {
				t.Error(err)
			}
		})
		return time.Now()
	}})
	rep, err := run.RunRepository(ctx, r, false)
	if err != nil || len(rep.Expired) != 1 || rep.Expired[0].Image.Digest != ds[1] ||
		len(rep.Skipped) != 1 || rep.Skipped[0].Image.Digest != ds[0] {
		t.Fatalf("run: %+v, %v", rep, err)
	}
	if _, err := s.GetManifest(ctx, r.ID, ds[0]); err != nil {
		t.Fatalf("image tagged meanwhile was deleted: %v", err)
	}
}

func TestRunWithoutPolicy(t *testing.T) {
	ctx := context.Background()
	s, r, _ := setup(t, "")
	run := New(Config{Store: s})
	if _, err := run.RunRepository(ctx, r, false); !errors.Is(err, ErrNoPolicy) {
		t.Fatalf("err = %v, want ErrNoPolicy", err)
	}
	reps, err := run.RunAll(ctx, false)
	if err != nil || len(reps) != 0 {
		t.Fatalf("RunAll: %+v, %v", reps, err)
	}
}

func TestLoopStops(t *testing.T) {
	s, _, _ := setup(t, keepOneUntagged)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { New(Config{Store: s}).Loop(ctx, time.Millisecond); close(done) }()
	time.Sleep(20 * time.Millisecond)
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Loop did not stop")
	}
}

// An untagged index expired together with its untagged children: the
// children come first (older) while the index still references them, and
// go in a second pass, so the run expires exactly what the dry run (the
// preview) listed. A child of an index that stays is skipped.
func TestRunExpiresIndexWithItsChildren(t *testing.T) {
	ctx := context.Background()
	s, r, _ := setup(t, `{"rules":[{"rulePriority":1,"selection":{"tagStatus":"untagged","countType":"sinceImagePushed","countUnit":"days","countNumber":1},"action":{"type":"expire"}}]}`)
	put := func(d string, age time.Duration, tag string, children ...string) {
		t.Helper()
		var refs []metadata.Ref
		for _, c := range children {
			refs = append(refs, metadata.Ref{Digest: c, Kind: metadata.RefManifest})
		}
		if _, err := s.PutManifest(ctx, metadata.PutManifest{Manifest: metadata.Manifest{RepoID: r.ID, Digest: d,
			MediaType: "application/vnd.oci.image.index.v1+json", Size: 1, ObjectKey: "manifests/" + r.ID + "/" + d,
			PushedAt: time.Now().Add(-age), ImageSize: 1}, Refs: refs, Tag: tag}); err != nil {
			t.Fatal(err)
		}
	}
	// setup's three images are hours old: the rule leaves them. The
	// children are older than their indexes, as a push makes them.
	old := 72 * time.Hour
	child1, child2, kept := fmt.Sprintf("sha256:%064x", 101), fmt.Sprintf("sha256:%064x", 102), fmt.Sprintf("sha256:%064x", 103)
	for _, d := range []string{child1, child2, kept} {
		if _, err := s.PutManifest(ctx, metadata.PutManifest{Manifest: metadata.Manifest{RepoID: r.ID, Digest: d,
			MediaType: "application/vnd.oci.image.manifest.v1+json", Size: 1, ObjectKey: "manifests/" + r.ID + "/" + d,
			PushedAt: time.Now().Add(-old - time.Hour), ImageSize: 1}}); err != nil {
			t.Fatal(err)
		}
	}
	put(fmt.Sprintf("sha256:%064x", 201), old, "", child1, child2) // untagged, expires
	put(fmt.Sprintf("sha256:%064x", 202), old, "stays", kept)      // tagged: stays
	run := New(Config{Store: s})
	dry, err := run.RunRepository(ctx, r, true)
	if err != nil {
		t.Fatal(err)
	}
	// The child of the tagged index is not a candidate: the run would be
	// refused its deletion, so the preview (dry run) leaves it out too.
	want := map[string]bool{child1: true, child2: true, fmt.Sprintf("sha256:%064x", 201): true}
	for _, c := range dry.Expired {
		if !want[c.Image.Digest] {
			t.Errorf("dry run expires %s", c.Image.Digest)
		}
	}
	if len(dry.Expired) != len(want) {
		t.Fatalf("dry run expires %d images, want %d", len(dry.Expired), len(want))
	}
	rep, err := run.RunRepository(ctx, r, false)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, c := range rep.Expired {
		got[c.Image.Digest] = true
	}
	if len(got) != 3 || !got[child1] || !got[child2] || !got[fmt.Sprintf("sha256:%064x", 201)] {
		t.Fatalf("run expired %v", got)
	}
	if len(rep.Skipped) != 0 {
		t.Fatalf("run skipped %+v, want nothing: the preview and the run agree", rep.Skipped)
	}
	if _, err := s.GetManifest(ctx, r.ID, kept); err != nil {
		t.Fatalf("the child of the tagged index: %v", err)
	}
}
