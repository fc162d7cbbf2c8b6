package postgres

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/cofferhq/coffer/internal/metadata"
)

// These races target the row locks that replace SQLite's single writer
// (doc.go): each outcome must match one of the two serial orders.

func raceRepo(t *testing.T, s *Store) metadata.Repository {
	t.Helper()
	r := metadata.Repository{ID: "race-repo", Name: "race", Domain: "aes256",
		EncryptionType: metadata.EncryptionAES256, TagMutability: metadata.TagMutable}
	if err := s.CreateRepository(t.Context(), r); err != nil {
		t.Fatal(err)
	}
	return r
}

func raceManifest(r metadata.Repository, i int, kind string) metadata.Manifest {
	d := fmt.Sprintf("sha256:%s%059d", kind, i)
	return metadata.Manifest{RepoID: r.ID, Digest: d, MediaType: "m", ObjectKey: "manifests/" + r.ID + "/" + d}
}

// TestRaceDeleteImageTagPush: DeleteImage of a manifest's only tag races a
// push of the same manifest under another tag. Either the delete ran first
// (manifest deleted, the push re-creates it) or the push did (the new tag
// keeps the manifest): ManifestDeleted == Created, and the new tag always
// resolves.
func TestRaceDeleteImageTagPush(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	ctx := t.Context()
	r := raceRepo(t, s)
	orders := map[bool]int{}
	for i := range 40 {
		m := raceManifest(r, i, "a")
		if _, err := s.PutManifest(ctx, metadata.PutManifest{Manifest: m, Tag: fmt.Sprintf("old%d", i)}); err != nil {
			t.Fatal(err)
		}
		var (
			wg  sync.WaitGroup
			del metadata.ImageDeletion
			res metadata.PutManifestResult
			e1  error
			e2  error
		)
		wg.Go(func() { del, e1 = s.DeleteImage(ctx, r.ID, "", fmt.Sprintf("old%d", i)) })
		wg.Go(func() {
			res, e2 = s.PutManifest(ctx, metadata.PutManifest{Manifest: m, Tag: fmt.Sprintf("new%d", i)})
		})
		wg.Wait()
		if e1 != nil || e2 != nil {
			t.Fatalf("round %d: delete %v, push %v", i, e1, e2)
		}
		if del.ManifestDeleted != res.Created {
			t.Fatalf("round %d: manifest deleted %v but push created %v: not a serial order", i, del.ManifestDeleted, res.Created)
		}
		got, err := s.ResolveTag(ctx, r.ID, fmt.Sprintf("new%d", i))
		if err != nil || got.Digest != m.Digest {
			t.Fatalf("round %d: new tag resolves to %v, %v", i, got.Digest, err)
		}
		orders[del.ManifestDeleted]++
	}
	t.Logf("delete first %d times, push first %d times", orders[true], orders[false])
}

// TestRaceDeleteImageIndexPush: deleting a manifest races the push of an
// index listing it. Exactly one wins: the index push fails with
// ErrManifestUnknown, or the delete with ErrImageReferenced.
func TestRaceDeleteImageIndexPush(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	ctx := t.Context()
	r := raceRepo(t, s)
	wins := map[string]int{}
	for i := range 40 {
		child := raceManifest(r, i, "c")
		if _, err := s.PutManifest(ctx, metadata.PutManifest{Manifest: child}); err != nil {
			t.Fatal(err)
		}
		idx := raceManifest(r, i, "i")
		var (
			wg     sync.WaitGroup
			e1, e2 error
		)
		wg.Go(func() { _, e1 = s.DeleteImage(ctx, r.ID, child.Digest, "") })
		wg.Go(func() {
			_, e2 = s.PutManifest(ctx, metadata.PutManifest{Manifest: idx,
				Refs: []metadata.Ref{{Digest: child.Digest, Kind: metadata.RefManifest}}, Tag: fmt.Sprintf("i%d", i)})
		})
		wg.Wait()
		switch {
		case e1 == nil && errors.Is(e2, metadata.ErrManifestUnknown):
			wins["delete"]++
		case e2 == nil && errors.Is(e1, metadata.ErrImageReferenced):
			wins["index"]++
			if _, err := s.GetManifest(ctx, r.ID, child.Digest); err != nil {
				t.Fatalf("round %d: child of a pushed index is gone: %v", i, err)
			}
		default:
			t.Fatalf("round %d: delete %v, index push %v: want exactly one to win", i, e1, e2)
		}
	}
	t.Logf("wins: %v", wins)
}

// TestRaceUnlinkPush: unlinking a blob races a push that references it:
// the push fails with ErrBlobUnknown, or it succeeds and the unlink comes
// after it; never a manifest over a link that was already gone.
func TestRaceUnlinkPush(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	ctx := t.Context()
	r := raceRepo(t, s)
	for i := range 40 {
		b := metadata.Blob{Domain: r.Domain, Digest: fmt.Sprintf("sha256:b%063d", i), Size: 1, ObjectKey: fmt.Sprintf("layers/aes256/%d", i)}
		if _, _, err := s.CommitBlob(ctx, r.ID, b); err != nil {
			t.Fatal(err)
		}
		m := raceManifest(r, i, "m")
		var (
			wg     sync.WaitGroup
			e1, e2 error
		)
		wg.Go(func() { e1 = s.UnlinkBlob(ctx, r.ID, b.Digest) })
		wg.Go(func() {
			_, e2 = s.PutManifest(ctx, metadata.PutManifest{Manifest: m,
				Refs: []metadata.Ref{{Digest: b.Digest, Kind: metadata.RefBlob}}})
		})
		wg.Wait()
		if e1 != nil {
			t.Fatalf("round %d: unlink: %v", i, e1)
		}
		if e2 != nil && !errors.Is(e2, metadata.ErrBlobUnknown) {
			t.Fatalf("round %d: push: %v", i, e2)
		}
	}
}

// TestRaceDeleteImageRepush: DeleteImage by tag races a re-push of the
// same manifest under the same tag. Delete first: the push re-creates
// manifest and tag. Push first (a no-op): the delete removes both. The two
// take the manifest row and the tag row in the same order, so they queue
// rather than deadlock. The server detects a deadlock only after
// deadlock_timeout (1s by default), so a round that takes that long
// almost certainly was one; a few could be a loaded machine.
func TestRaceDeleteImageRepush(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	ctx := t.Context()
	r := raceRepo(t, s)
	var timeout string
	if err := s.pool.QueryRow(ctx, `SELECT setting || COALESCE(unit, '') FROM pg_settings WHERE name = 'deadlock_timeout'`).
		Scan(&timeout); err != nil {
		t.Fatal(err)
	}
	deadlockTimeout, err := time.ParseDuration(timeout)
	if err != nil {
		t.Fatalf("deadlock_timeout %q: %v", timeout, err)
	}
	orders := map[bool]int{}
	slow := 0
	for i := range 40 {
		m := raceManifest(r, i, "r")
		tag := fmt.Sprintf("t%d", i)
		if _, err := s.PutManifest(ctx, metadata.PutManifest{Manifest: m, Tag: tag}); err != nil {
			t.Fatal(err)
		}
		var (
			wg     sync.WaitGroup
			del    metadata.ImageDeletion
			res    metadata.PutManifestResult
			e1, e2 error
		)
		start := time.Now()
		wg.Go(func() { del, e1 = s.DeleteImage(ctx, r.ID, "", tag) })
		wg.Go(func() { res, e2 = s.PutManifest(ctx, metadata.PutManifest{Manifest: m, Tag: tag}) })
		wg.Wait()
		if time.Since(start) >= deadlockTimeout {
			slow++
		}
		if e1 != nil || e2 != nil {
			t.Fatalf("round %d: delete %v, push %v", i, e1, e2)
		}
		if !del.ManifestDeleted || del.Digest != m.Digest {
			t.Fatalf("round %d: deletion %+v", i, del)
		}
		_, err := s.ResolveTag(ctx, r.ID, tag)
		if res.Created != (err == nil) {
			t.Fatalf("round %d: push created %v, tag resolves: %v", i, res.Created, err)
		}
		orders[res.Created]++
	}
	t.Logf("delete first %d times, push first %d times", orders[true], orders[false])
	if slow > 3 {
		t.Errorf("%d of 40 rounds took deadlock_timeout (%v) or longer: the two deadlock", slow, deadlockTimeout)
	}
}
