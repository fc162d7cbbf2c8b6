package metadatatest

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/cofferhq/coffer/internal/metadata"
)

func manifestTests() []testCase {
	return []testCase{
		{"Manifests/PutGet", testManifestPutGet},
		{"Manifests/PutUnknownRepository", func(t *testing.T, s metadata.Store) {
			r := metadata.Repository{ID: uuid.NewString()}
			_, err := s.PutManifest(t.Context(), metadata.PutManifest{Manifest: newManifest(r, "m"), Tag: "v1"})
			wantErr(t, "put into unknown repository", err, metadata.ErrRepositoryUnknown)
		}},
		{"Manifests/PutBlobUnknown", testManifestBlobUnknown},
		{"Manifests/PutManifestUnknown", testManifestManifestUnknown},
		{"Manifests/PutExistingKeepsRow", testManifestKeepsRow},
		{"Manifests/Delete", testManifestDelete},
		{"Manifests/Referrers", testReferrers},
		{"Manifests/RecordPull", testRecordPull},
		{"Manifests/ListManifests", testListManifests},
	}
}

func testManifestPutGet(t *testing.T, s metadata.Store) {
	ctx := t.Context()
	r := aesRepo(t, s, "r")
	cfg := addBlob(t, s, r, "config")
	layer := addBlob(t, s, r, "layer")
	m := newManifest(r, "manifest")
	m.ArtifactType = "application/vnd.example+json"
	m.Subject = digestOf("subject, not required to exist")
	m.Annotations = map[string]string{"org.opencontainers.image.created": "2025-01-01", "ü": "✓"}
	res, err := s.PutManifest(ctx, metadata.PutManifest{
		Manifest: m,
		Refs: []metadata.Ref{
			{Digest: cfg.Digest, Kind: metadata.RefBlob},
			{Digest: layer.Digest, Kind: metadata.RefBlob},
			{Digest: layer.Digest, Kind: metadata.RefBlob}, // repeated layer
		},
	})
	must(t, "put", err)
	if !res.Created || res.PreviousTag != "" {
		t.Errorf("result = %+v, want Created and no previous tag", res)
	}
	got, err := s.GetManifest(ctx, r.ID, m.Digest)
	must(t, "get", err)
	checkManifest(t, got, m)
	if got.Tags != nil {
		t.Errorf("GetManifest filled Tags: %v", got.Tags)
	}
	_, err = s.GetManifest(ctx, r.ID, digestOf("other"))
	wantErr(t, "get unknown manifest", err, metadata.ErrNotFound)
	other := aesRepo(t, s, "other")
	_, err = s.GetManifest(ctx, other.ID, m.Digest)
	wantErr(t, "get manifest of another repository", err, metadata.ErrNotFound)
	// A manifest without references (e.g. an empty artifact) is fine too.
	_, err = s.PutManifest(ctx, metadata.PutManifest{Manifest: newManifest(r, "bare")})
	must(t, "put bare manifest", err)
}

func testManifestBlobUnknown(t *testing.T, s metadata.Store) {
	ctx := t.Context()
	r := aesRepo(t, s, "r")
	other := aesRepo(t, s, "other")
	linked := addBlob(t, s, r, "linked")
	elsewhere := addBlob(t, s, other, "elsewhere") // in the domain, not linked to r
	for _, missing := range []string{digestOf("never uploaded"), elsewhere.Digest} {
		m := newManifest(r, "m for "+missing)
		_, err := s.PutManifest(ctx, metadata.PutManifest{
			Manifest: m,
			Refs: []metadata.Ref{
				{Digest: linked.Digest, Kind: metadata.RefBlob},
				{Digest: missing, Kind: metadata.RefBlob},
			},
			Tag: "v1",
		})
		wantErr(t, "put with missing blob", err, metadata.ErrBlobUnknown)
		if !strings.Contains(err.Error(), missing) {
			t.Errorf("error %q does not name the missing digest %s", err, missing)
		}
		_, err = s.GetManifest(ctx, r.ID, m.Digest)
		wantErr(t, "manifest of failed put", err, metadata.ErrNotFound)
		_, err = s.ResolveTag(ctx, r.ID, "v1")
		wantErr(t, "tag of failed put", err, metadata.ErrNotFound)
	}
}

func testManifestManifestUnknown(t *testing.T, s metadata.Store) {
	ctx := t.Context()
	r := aesRepo(t, s, "r")
	other := aesRepo(t, s, "other")
	amd := image(t, s, r, "amd64", "")
	arm := newManifest(r, "arm64")
	image(t, s, other, "arm64", "") // exists, but in another repository
	idx := newManifest(r, "index")
	idx.MediaType = "application/vnd.oci.image.index.v1+json"
	p := metadata.PutManifest{
		Manifest: idx,
		Refs: []metadata.Ref{
			{Digest: amd.Digest, Kind: metadata.RefManifest},
			{Digest: arm.Digest, Kind: metadata.RefManifest},
		},
		Tag: "multi",
	}
	_, err := s.PutManifest(ctx, p)
	wantErr(t, "index with missing child", err, metadata.ErrManifestUnknown)
	if !strings.Contains(err.Error(), arm.Digest) {
		t.Errorf("error %q does not name the missing digest %s", err, arm.Digest)
	}
	_, err = s.GetManifest(ctx, r.ID, idx.Digest)
	wantErr(t, "index of failed put", err, metadata.ErrNotFound)
	_, err = s.ResolveTag(ctx, r.ID, "multi")
	wantErr(t, "tag of failed put", err, metadata.ErrNotFound)

	image(t, s, r, "arm64", "")
	res, err := s.PutManifest(ctx, p)
	must(t, "index once children exist", err)
	if !res.Created {
		t.Error("index not created")
	}
	got, err := s.ResolveTag(ctx, r.ID, "multi")
	must(t, "resolve index", err)
	checkManifest(t, got, idx)

	// The index's children, for lifecycle: this repository's only.
	children, err := s.ManifestChildren(ctx, r.ID)
	must(t, "ManifestChildren", err)
	kids := children[idx.Digest]
	slices.Sort(kids)
	want := []string{amd.Digest, arm.Digest}
	slices.Sort(want)
	if len(children) != 1 || !slices.Equal(kids, want) {
		t.Errorf("ManifestChildren = %v, want %s -> %v", children, idx.Digest, want)
	}
	if children, err := s.ManifestChildren(ctx, other.ID); err != nil || len(children) != 0 {
		t.Errorf("ManifestChildren of a repository without indexes = %v, %v", children, err)
	}
}

func testManifestKeepsRow(t *testing.T, s metadata.Store) {
	ctx := t.Context()
	r := aesRepo(t, s, "r")
	first := image(t, s, r, "m", "")
	second := first
	second.PushedAt = t0.Add(time.Hour)
	second.ObjectKey = "manifests/elsewhere"
	res, err := s.PutManifest(ctx, metadata.PutManifest{
		Manifest: second,
		Refs:     []metadata.Ref{{Digest: digestOf("layer of m"), Kind: metadata.RefBlob}},
		Tag:      "v1",
	})
	must(t, "put again", err)
	if res.Created || res.PreviousTag != "" {
		t.Errorf("result = %+v, want not Created, no previous tag", res)
	}
	got, err := s.GetManifest(ctx, r.ID, first.Digest)
	must(t, "get", err)
	checkManifest(t, got, first)
	got, err = s.ResolveTag(ctx, r.ID, "v1")
	must(t, "resolve", err)
	checkManifest(t, got, first)

	// References are checked on every put, existing manifest or not.
	must(t, "unlink", s.UnlinkBlob(ctx, r.ID, digestOf("layer of m")))
	_, err = s.PutManifest(ctx, metadata.PutManifest{
		Manifest: second,
		Refs:     []metadata.Ref{{Digest: digestOf("layer of m"), Kind: metadata.RefBlob}},
		Tag:      "v2",
	})
	wantErr(t, "re-put over unlinked blob", err, metadata.ErrBlobUnknown)
	_, err = s.ResolveTag(ctx, r.ID, "v2")
	wantErr(t, "tag of failed re-put", err, metadata.ErrNotFound)
}

func testManifestDelete(t *testing.T, s metadata.Store) {
	ctx := t.Context()
	r := aesRepo(t, s, "r")
	m := image(t, s, r, "m", "v1")
	for _, tag := range []string{"v2", "latest"} {
		_, err := s.PutManifest(ctx, metadata.PutManifest{Manifest: m, Tag: tag})
		must(t, "tag "+tag, err)
	}
	keep := image(t, s, r, "keep", "keep")

	key, err := s.DeleteManifest(ctx, r.ID, m.Digest)
	must(t, "delete", err)
	if key != m.ObjectKey {
		t.Errorf("orphan = %q, want %q", key, m.ObjectKey)
	}
	_, err = s.GetManifest(ctx, r.ID, m.Digest)
	wantErr(t, "get deleted", err, metadata.ErrNotFound)
	for _, tag := range []string{"v1", "v2", "latest"} {
		_, err = s.ResolveTag(ctx, r.ID, tag)
		wantErr(t, "tag of deleted manifest", err, metadata.ErrNotFound)
	}
	tags, err := s.ListTags(ctx, r.ID, "", 0)
	must(t, "list", err)
	if !slices.Equal(tags, []string{"keep"}) {
		t.Errorf("tags = %v, want [keep]", tags)
	}
	got, err := s.ResolveTag(ctx, r.ID, "keep")
	must(t, "resolve kept", err)
	checkManifest(t, got, keep)

	_, err = s.DeleteManifest(ctx, r.ID, m.Digest)
	wantErr(t, "delete twice", err, metadata.ErrNotFound)
	_, err = s.DeleteManifest(ctx, uuid.NewString(), keep.Digest)
	wantErr(t, "delete in unknown repository", err, metadata.ErrNotFound)

	// It can be pushed again, as new.
	res, err := s.PutManifest(ctx, metadata.PutManifest{
		Manifest: m, Refs: []metadata.Ref{{Digest: digestOf("layer of m"), Kind: metadata.RefBlob}}, Tag: "v1",
	})
	must(t, "push again", err)
	if !res.Created || res.PreviousTag != "" {
		t.Errorf("re-push result = %+v", res)
	}
}

func testReferrers(t *testing.T, s metadata.Store) {
	ctx := t.Context()
	r := aesRepo(t, s, "r")
	other := aesRepo(t, s, "other")
	subject := image(t, s, r, "subject", "v1")
	const sig, sbom = "application/vnd.dev.sigstore.bundle.v0.3+json", "application/spdx+json"
	var all, sigs []string
	for i, at := range []string{sig, sbom, sig, sbom, sig} {
		m := newManifest(r, "referrer "+string(rune('a'+i)))
		m.ArtifactType = at
		m.Subject = subject.Digest
		m.Annotations = map[string]string{"i": string(rune('a' + i))}
		_, err := s.PutManifest(ctx, metadata.PutManifest{Manifest: m})
		must(t, "put referrer", err)
		all = append(all, m.Digest)
		if at == sig {
			sigs = append(sigs, m.Digest)
		}
	}
	slices.Sort(all)
	slices.Sort(sigs)
	// Same subject in another repository: not a referrer here.
	om := newManifest(other, "foreign referrer")
	om.Subject = subject.Digest
	om.ArtifactType = sig
	_, err := s.PutManifest(ctx, metadata.PutManifest{Manifest: om})
	must(t, "put foreign referrer", err)
	// A referrer whose subject is not pushed yet (allowed by OCI).
	early := newManifest(r, "early")
	early.Subject = digestOf("future")
	_, err = s.PutManifest(ctx, metadata.PutManifest{Manifest: early})
	must(t, "put referrer of missing subject", err)

	digests := func(ms []metadata.Manifest) []string {
		var out []string
		for _, m := range ms {
			out = append(out, m.Digest)
		}
		return out
	}
	got, err := s.Referrers(ctx, r.ID, subject.Digest, "")
	must(t, "referrers", err)
	if !slices.Equal(digests(got), all) {
		t.Errorf("referrers = %v, want %v in digest order", digests(got), all)
	}
	for _, m := range got {
		if m.Subject != subject.Digest || m.ArtifactType == "" || m.Annotations["i"] == "" {
			t.Errorf("referrer lacks fields: %+v", m)
		}
	}
	got, err = s.Referrers(ctx, r.ID, subject.Digest, sig)
	must(t, "referrers by type", err)
	if !slices.Equal(digests(got), sigs) {
		t.Errorf("signature referrers = %v, want %v", digests(got), sigs)
	}
	got, err = s.Referrers(ctx, r.ID, subject.Digest, "application/none")
	must(t, "referrers of unused type", err)
	if len(got) != 0 {
		t.Errorf("referrers of unused type = %v", digests(got))
	}
	got, err = s.Referrers(ctx, r.ID, digestOf("future"), "")
	must(t, "referrers of missing subject", err)
	if !slices.Equal(digests(got), []string{early.Digest}) {
		t.Errorf("referrers of missing subject = %v", digests(got))
	}
	got, err = s.Referrers(ctx, r.ID, digestOf("nothing"), "")
	must(t, "referrers of unreferenced digest", err)
	if len(got) != 0 {
		t.Errorf("referrers of unreferenced digest = %v", digests(got))
	}
	// Deleting a referrer removes it from the list.
	_, err = s.DeleteManifest(ctx, r.ID, sigs[0])
	must(t, "delete referrer", err)
	got, err = s.Referrers(ctx, r.ID, subject.Digest, sig)
	must(t, "referrers after delete", err)
	if !slices.Equal(digests(got), sigs[1:]) {
		t.Errorf("referrers after delete = %v, want %v", digests(got), sigs[1:])
	}
}

func testRecordPull(t *testing.T, s metadata.Store) {
	ctx := t.Context()
	r := aesRepo(t, s, "r")
	m := image(t, s, r, "m", "v1")
	at := time.Date(2026, 1, 2, 3, 4, 5, 678912345, time.FixedZone("PST", -8*3600))
	must(t, "record pull", s.RecordPull(ctx, r.ID, m.Digest, at))
	got, err := s.GetManifest(ctx, r.ID, m.Digest)
	must(t, "get", err)
	want := m
	want.LastPulledAt = at
	checkManifest(t, got, want)
	later := at.Add(time.Hour)
	must(t, "record later pull", s.RecordPull(ctx, r.ID, m.Digest, later))
	got, err = s.ResolveTag(ctx, r.ID, "v1")
	must(t, "resolve", err)
	want.LastPulledAt = later
	checkManifest(t, got, want)
	// A pull of a manifest deleted meanwhile must not break anything (the
	// error, if any, is best effort).
	_ = s.RecordPull(ctx, r.ID, digestOf("gone"), later)
	if _, err := s.GetManifest(ctx, r.ID, digestOf("gone")); err == nil {
		t.Error("RecordPull created a manifest")
	}
}

func testListManifests(t *testing.T, s metadata.Store) {
	l := s
	ctx := t.Context()
	r := aesRepo(t, s, "r")
	other := aesRepo(t, s, "other")
	image(t, s, other, "foreign", "v1")
	want := map[string][]string{}
	for i, tags := range [][]string{{"b", "a", "c"}, nil, {"z"}, {"m", "n"}} {
		m := image(t, s, r, "m"+string(rune('0'+i)), "")
		for _, tag := range tags {
			_, err := s.PutManifest(ctx, metadata.PutManifest{Manifest: m, Tag: tag})
			must(t, "tag", err)
		}
		want[m.Digest] = slices.Sorted(slices.Values(tags))
	}
	var got []metadata.Manifest
	after := ""
	for {
		page, err := l.ListManifests(ctx, r.ID, after, 3)
		must(t, "list manifests", err)
		got = append(got, page...)
		if len(page) < 3 {
			break
		}
		after = page[len(page)-1].Digest
	}
	if len(got) != len(want) {
		t.Fatalf("listed %d manifests, want %d", len(got), len(want))
	}
	for i, m := range got {
		if i > 0 && got[i-1].Digest >= m.Digest {
			t.Errorf("not in digest order at %d", i)
		}
		if m.RepoID != r.ID || !slices.Equal(m.Tags, want[m.Digest]) {
			t.Errorf("manifest %s: repo %s tags %v, want tags %v", m.Digest, m.RepoID, m.Tags, want[m.Digest])
		}
	}
}
