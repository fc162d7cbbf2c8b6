package metadatatest

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/cofferhq/coffer/internal/metadata"
)

// repositoryUpdateTests cover the control-plane methods of the contract:
// CreateRepositoryWith, UpdateRepository, UpdateRepositoryDocs and
// DeleteRepositoryWith.
func repositoryUpdateTests() []testCase {
	return []testCase{
		{"RepositoryUpdates/CreateWithDocs", testCreateWithDocs},
		{"RepositoryUpdates/UpdateSettings", testUpdateSettings},
		{"RepositoryUpdates/UpdateRefused", testUpdateRefused},
		{"RepositoryUpdates/UpdateImmutableFields", testUpdateImmutableFields},
		{"RepositoryUpdates/UpdateSerialized", testUpdateSerialized},
		{"RepositoryUpdates/RepositoryDocs", testRepositoryDocs},
		{"RepositoryUpdates/DeleteWith", testDeleteWith},
		{"RepositoryUpdates/DeleteWithRefused", testDeleteWithRefused},
	}
}

var errRefused = errors.New("refused by the caller")

func docData(t *testing.T, s metadata.Store, kind, key string) (string, bool) {
	t.Helper()
	var data string
	found := false
	err := s.ViewDocs(t.Context(), func(tx metadata.DocTx) error {
		d, err := tx.Get(kind, key)
		if errors.Is(err, metadata.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		data, found = string(d.Data), true
		return nil
	})
	must(t, "read document", err)
	return data, found
}

func testCreateWithDocs(t *testing.T, s metadata.Store) {
	ctx := t.Context()
	r := metadata.Repository{ID: uuid.NewString(), Name: "tagged", Domain: "aes256",
		EncryptionType: metadata.EncryptionAES256, TagMutability: metadata.TagMutable, CreatedAt: t0}
	must(t, "create with docs", s.CreateRepositoryWith(ctx, r, func(tx metadata.DocTx) error {
		_, err := tx.Put(metadata.Document{Kind: "tags", Key: "tagged", Data: []byte("a=b")})
		return err
	}))
	got, err := s.GetRepository(ctx, "tagged")
	must(t, "get", err)
	checkRepository(t, got, r)
	if d, ok := docData(t, s, "tags", "tagged"); !ok || d != "a=b" {
		t.Errorf("document written with the repository = %q, %v", d, ok)
	}

	// A failing fn creates nothing: neither the row nor its documents.
	r2 := r
	r2.ID, r2.Name = uuid.NewString(), "never"
	err = s.CreateRepositoryWith(ctx, r2, func(tx metadata.DocTx) error {
		if _, err := tx.Put(metadata.Document{Kind: "tags", Key: "never", Data: []byte("x")}); err != nil {
			return err
		}
		return errRefused
	})
	wantErr(t, "create refused by fn", err, errRefused)
	_, err = s.GetRepository(ctx, "never")
	wantErr(t, "repository of a refused create", err, metadata.ErrNotFound)
	if _, ok := docData(t, s, "tags", "never"); ok {
		t.Error("document of a refused create was kept")
	}

	// A taken name is ErrExists and fn does not run.
	r3 := r
	r3.ID = uuid.NewString()
	called := false
	err = s.CreateRepositoryWith(ctx, r3, func(metadata.DocTx) error { called = true; return nil })
	wantErr(t, "create duplicate", err, metadata.ErrExists)
	if called {
		t.Error("fn ran for a duplicate name")
	}
	// nil fn is plain CreateRepository.
	r4 := r
	r4.ID, r4.Name = uuid.NewString(), "plain"
	must(t, "create with nil fn", s.CreateRepositoryWith(ctx, r4, nil))
}

func testUpdateSettings(t *testing.T, s metadata.Store) {
	ctx := t.Context()
	orig := kmsRepo(t, s, "team/app")
	got, err := s.UpdateRepository(ctx, "team/app", func(r *metadata.Repository) error {
		checkRepository(t, *r, orig)
		r.TagMutability = metadata.TagImmutableWithExclusion
		r.TagMutabilityExclusions = []string{"latest", "dev-*"}
		r.ScanOnPush = true
		return nil
	})
	must(t, "update", err)
	want := orig
	want.TagMutability = metadata.TagImmutableWithExclusion
	want.TagMutabilityExclusions = []string{"latest", "dev-*"}
	want.ScanOnPush = true
	checkRepository(t, got, want)
	stored, err := s.GetRepository(ctx, "team/app")
	must(t, "get", err)
	checkRepository(t, stored, want)

	// Back to no exclusions: an empty list reads back as nil, from both.
	got, err = s.UpdateRepository(ctx, "team/app", func(r *metadata.Repository) error {
		r.TagMutability = orig.TagMutability
		r.TagMutabilityExclusions = []string{}
		r.ScanOnPush = false
		return nil
	})
	must(t, "update back", err)
	stored, err = s.GetRepository(ctx, "team/app")
	must(t, "get", err)
	checkRepository(t, got, orig)
	checkRepository(t, stored, orig)
	if got.TagMutabilityExclusions != nil || stored.TagMutabilityExclusions != nil {
		t.Errorf("empty exclusions = %#v / %#v, want nil", got.TagMutabilityExclusions, stored.TagMutabilityExclusions)
	}

	called := false
	_, err = s.UpdateRepository(ctx, "nope", func(*metadata.Repository) error { called = true; return nil })
	wantErr(t, "update unknown repository", err, metadata.ErrNotFound)
	if called {
		t.Error("fn ran for an unknown repository")
	}
}

func testUpdateRefused(t *testing.T, s metadata.Store) {
	ctx := t.Context()
	orig := aesRepo(t, s, "app")
	_, err := s.UpdateRepository(ctx, "app", func(r *metadata.Repository) error {
		r.TagMutability = metadata.TagImmutable
		r.ScanOnPush = true
		return errRefused
	})
	wantErr(t, "refused update", err, errRefused)
	stored, err := s.GetRepository(ctx, "app")
	must(t, "get", err)
	checkRepository(t, stored, orig)
}

func testUpdateImmutableFields(t *testing.T, s metadata.Store) {
	ctx := t.Context()
	orig := kmsRepo(t, s, "fixed")
	for _, tc := range []struct {
		name string
		edit func(*metadata.Repository)
	}{
		{"ID", func(r *metadata.Repository) { r.ID = uuid.NewString() }},
		{"Name", func(r *metadata.Repository) { r.Name = "renamed" }},
		{"Domain", func(r *metadata.Repository) { r.Domain = "aes256" }},
		{"EncryptionType", func(r *metadata.Repository) { r.EncryptionType = metadata.EncryptionAES256 }},
		{"KMSKey", func(r *metadata.Repository) { r.KMSKey = "arn:aws:kms:us-east-1:123456789012:key/other" }},
		{"CreatedAt", func(r *metadata.Repository) { r.CreatedAt = r.CreatedAt.Add(time.Second) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.UpdateRepository(ctx, "fixed", func(r *metadata.Repository) error {
				r.ScanOnPush = true // a legal change alongside must not commit either
				tc.edit(r)
				return nil
			})
			wantErr(t, "change "+tc.name, err, metadata.ErrImmutableField)
			stored, err := s.GetRepository(ctx, "fixed")
			must(t, "get", err)
			checkRepository(t, stored, orig)
		})
	}
	// The same instant in another zone is no change.
	_, err := s.UpdateRepository(ctx, "fixed", func(r *metadata.Repository) error {
		r.CreatedAt = r.CreatedAt.In(time.FixedZone("X", 3600))
		return nil
	})
	must(t, "same CreatedAt in another zone", err)
}

// testUpdateSerialized: concurrent read-modify-write updates must not lose
// each other's changes.
func testUpdateSerialized(t *testing.T, s metadata.Store) {
	ctx := t.Context()
	aesRepo(t, s, "busy")
	const n = 16
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			_, err := s.UpdateRepository(ctx, "busy", func(r *metadata.Repository) error {
				r.TagMutability = metadata.TagMutableWithExclusion
				r.TagMutabilityExclusions = append(r.TagMutabilityExclusions, fmt.Sprintf("f%02d", i))
				return nil
			})
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		must(t, "concurrent update", err)
	}
	got, err := s.GetRepository(ctx, "busy")
	must(t, "get", err)
	slices.Sort(got.TagMutabilityExclusions)
	if len(got.TagMutabilityExclusions) != n {
		t.Fatalf("exclusions after %d concurrent appends = %v", n, got.TagMutabilityExclusions)
	}
}

func testRepositoryDocs(t *testing.T, s metadata.Store) {
	ctx := t.Context()
	r := aesRepo(t, s, "docs")
	must(t, "write policy", s.UpdateRepositoryDocs(ctx, "docs", func(got metadata.Repository, tx metadata.DocTx) error {
		checkRepository(t, got, r)
		_, err := tx.Put(metadata.Document{Kind: "policy", Key: got.Name, Data: []byte("p1")})
		return err
	}))
	if d, ok := docData(t, s, "policy", "docs"); !ok || d != "p1" {
		t.Errorf("policy = %q, %v", d, ok)
	}
	// fn's error rolls its writes back.
	err := s.UpdateRepositoryDocs(ctx, "docs", func(_ metadata.Repository, tx metadata.DocTx) error {
		if err := tx.Delete("policy", "docs"); err != nil {
			return err
		}
		return errRefused
	})
	wantErr(t, "refused docs update", err, errRefused)
	if d, ok := docData(t, s, "policy", "docs"); !ok || d != "p1" {
		t.Errorf("policy after a rolled-back delete = %q, %v", d, ok)
	}
	// No repository, no documents: fn does not run.
	called := false
	err = s.UpdateRepositoryDocs(ctx, "ghost", func(_ metadata.Repository, tx metadata.DocTx) error {
		called = true
		_, err := tx.Put(metadata.Document{Kind: "policy", Key: "ghost", Data: []byte("p")})
		return err
	})
	wantErr(t, "docs of an unknown repository", err, metadata.ErrNotFound)
	if _, ok := docData(t, s, "policy", "ghost"); called || ok {
		t.Errorf("fn ran (%v) or wrote a document for an unknown repository", called)
	}
}

func testDeleteWith(t *testing.T, s metadata.Store) {
	ctx := t.Context()
	empty := aesRepo(t, s, "empty")
	full := aesRepo(t, s, "full")
	m := image(t, s, full, "m", "v1")
	must(t, "policy", s.UpdateRepositoryDocs(ctx, "full", func(_ metadata.Repository, tx metadata.DocTx) error {
		_, err := tx.Put(metadata.Document{Kind: "policy", Key: "full", Data: []byte("p")})
		return err
	}))

	var sawEmpty, sawFull *bool
	got, orphans, err := s.DeleteRepositoryWith(ctx, "empty", func(r metadata.Repository, has bool, _ metadata.DocTx) error {
		checkRepository(t, r, empty)
		sawEmpty = &has
		return nil
	})
	must(t, "delete empty", err)
	checkRepository(t, got, empty)
	if sawEmpty == nil || *sawEmpty || len(orphans) != 0 {
		t.Errorf("empty repository: hasManifests = %v, orphans = %v", sawEmpty, orphans)
	}

	got, orphans, err = s.DeleteRepositoryWith(ctx, "full", func(r metadata.Repository, has bool, tx metadata.DocTx) error {
		sawFull = &has
		return tx.Delete("policy", r.Name)
	})
	must(t, "delete full", err)
	checkRepository(t, got, full)
	if sawFull == nil || !*sawFull {
		t.Errorf("repository with an image: hasManifests = %v", sawFull)
	}
	if !slices.Contains(orphans, m.ObjectKey) {
		t.Errorf("orphans = %v, want the manifest object %s", orphans, m.ObjectKey)
	}
	if _, ok := docData(t, s, "policy", "full"); ok {
		t.Error("policy document survived its repository")
	}
	_, err = s.GetRepository(ctx, "full")
	wantErr(t, "get deleted", err, metadata.ErrNotFound)

	called := false
	_, _, err = s.DeleteRepositoryWith(ctx, "full", func(metadata.Repository, bool, metadata.DocTx) error { called = true; return nil })
	wantErr(t, "delete twice", err, metadata.ErrNotFound)
	if called {
		t.Error("fn ran for an unknown repository")
	}
}

func testDeleteWithRefused(t *testing.T, s metadata.Store) {
	ctx := t.Context()
	r := aesRepo(t, s, "kept")
	m := image(t, s, r, "m", "v1")
	must(t, "policy", s.UpdateRepositoryDocs(ctx, "kept", func(_ metadata.Repository, tx metadata.DocTx) error {
		_, err := tx.Put(metadata.Document{Kind: "policy", Key: "kept", Data: []byte("p")})
		return err
	}))
	_, orphans, err := s.DeleteRepositoryWith(ctx, "kept", func(r metadata.Repository, has bool, tx metadata.DocTx) error {
		if err := tx.Delete("policy", r.Name); err != nil {
			return err
		}
		if has {
			return errRefused
		}
		return nil
	})
	wantErr(t, "refused delete", err, errRefused)
	if orphans != nil {
		t.Errorf("refused delete returned orphans %v", orphans)
	}
	got, err := s.GetRepository(ctx, "kept")
	must(t, "repository after a refused delete", err)
	checkRepository(t, got, r)
	tm, err := s.ResolveTag(ctx, r.ID, "v1")
	must(t, "tag after a refused delete", err)
	checkManifest(t, tm, m)
	if d, ok := docData(t, s, "policy", "kept"); !ok || d != "p" {
		t.Errorf("policy after a refused delete = %q, %v", d, ok)
	}
}
