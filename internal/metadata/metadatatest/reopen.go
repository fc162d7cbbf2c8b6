package metadatatest

import (
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/cofferhq/coffer/internal/metadata"
)

// RunReopen checks durability across Close: data committed before Close is
// there after reopening, and the reopened store keeps working. newBacking
// returns an opener for one fresh backing database; each call of the opener
// opens a new Store over that same database.
func RunReopen(t *testing.T, newBacking func(t *testing.T) func() (metadata.Store, error)) {
	t.Helper()
	ctx := t.Context()
	open := newBacking(t)
	s, err := open()
	must(t, "open", err)
	kms := kmsRepo(t, s, "kms")
	aes := aesRepo(t, s, "aes")
	_, err = s.PutSettingIfAbsent(ctx, "registry-id", "123456789012")
	must(t, "setting", err)
	m := image(t, s, kms, "m", "v1")
	pulled := t0.Add(time.Minute)
	must(t, "record pull", s.RecordPull(ctx, kms.ID, m.Digest, pulled))
	am := image(t, s, aes, "am", "latest")
	u := uploadWithParts(t, s, aes, 2)
	layer, err := s.BlobLinked(ctx, kms.ID, digestOf("layer of m"))
	must(t, "layer", err)
	must(t, "close", s.Close())

	s, err = open()
	must(t, "reopen", err)
	got, err := s.GetRepository(ctx, "kms")
	must(t, "repository after reopen", err)
	checkRepository(t, got, kms)
	if v, err := s.GetSetting(ctx, "registry-id"); err != nil || v != "123456789012" {
		t.Errorf("setting after reopen = %q, %v", v, err)
	}
	gm, err := s.ResolveTag(ctx, kms.ID, "v1")
	must(t, "tag after reopen", err)
	want := m
	want.LastPulledAt = pulled
	checkManifest(t, gm, want)
	gb, err := s.BlobLinked(ctx, kms.ID, layer.Digest)
	must(t, "blob after reopen", err)
	checkBlob(t, gb, layer)
	gu, err := s.GetUpload(ctx, u.ID)
	must(t, "upload after reopen", err)
	checkUpload(t, gu, u)

	// Writes after reopen persist too.
	orphans, err := s.DeleteRepository(ctx, "kms")
	must(t, "delete after reopen", err)
	if !slices.Contains(orphans, layer.ObjectKey) || !slices.Contains(orphans, m.ObjectKey) {
		t.Errorf("orphans after reopen = %v", orphans)
	}
	_, err = s.PutManifest(ctx, metadata.PutManifest{Manifest: am, Tag: "stable"})
	must(t, "tag after reopen", err)
	must(t, "close again", s.Close())

	s, err = open()
	must(t, "reopen again", err)
	t.Cleanup(func() { s.Close() })
	_, err = s.GetRepository(ctx, "kms")
	wantErr(t, "deleted repository after reopen", err, metadata.ErrNotFound)
	tags, err := s.ListTags(ctx, aes.ID, "", 0)
	must(t, "tags after reopen", err)
	if !slices.Equal(tags, []string{"latest", "stable"}) {
		t.Errorf("tags after reopen = %v", tags)
	}
	_, err = s.GetUpload(ctx, uuid.NewString())
	wantErr(t, "unknown upload after reopen", err, metadata.ErrNotFound)
}
