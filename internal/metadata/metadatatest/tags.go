package metadatatest

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/google/uuid"

	"github.com/cofferhq/coffer/internal/metadata"
)

func tagTests() []testCase {
	return []testCase{
		{"Tags/New", testTagNew},
		{"Tags/Move", testTagMove},
		{"Tags/Immutable", testTagImmutable},
		{"Tags/ResolveUnknown", func(t *testing.T, s metadata.Store) {
			r := aesRepo(t, s, "r")
			_, err := s.ResolveTag(t.Context(), r.ID, "nope")
			wantErr(t, "resolve unknown tag", err, metadata.ErrNotFound)
			_, err = s.ResolveTag(t.Context(), uuid.NewString(), "nope")
			wantErr(t, "resolve in unknown repository", err, metadata.ErrNotFound)
		}},
		{"Tags/Delete", testTagDelete},
		{"Tags/RepositoryIsolation", testTagIsolation},
		{"Tags/List1000", testTagList},
	}
}

// counter returns an Immutable func answering v that counts its calls.
func counter(v bool) (func(string) bool, *[]string) {
	var calls []string
	return func(tag string) bool {
		calls = append(calls, tag)
		return v
	}, &calls
}

func testTagNew(t *testing.T, s metadata.Store) {
	ctx := t.Context()
	r := aesRepo(t, s, "r")
	m := image(t, s, r, "m", "")
	imm, calls := counter(true)
	res, err := s.PutManifest(ctx, metadata.PutManifest{Manifest: m, Tag: "v1", Immutable: imm})
	must(t, "tag", err)
	if res.Created || res.PreviousTag != "" {
		t.Errorf("result = %+v, want existing manifest, new tag", res)
	}
	if len(*calls) != 0 {
		t.Errorf("Immutable consulted for a new tag: %v", *calls)
	}
	got, err := s.ResolveTag(ctx, r.ID, "v1")
	must(t, "resolve", err)
	checkManifest(t, got, m)
	if got.Tags != nil {
		t.Errorf("ResolveTag filled Tags: %v", got.Tags)
	}
	// Same tag, same digest: unchanged, and not a move.
	res, err = s.PutManifest(ctx, metadata.PutManifest{Manifest: m, Tag: "v1", Immutable: imm})
	must(t, "retag same digest", err)
	if res.Created || res.PreviousTag != "" {
		t.Errorf("retag result = %+v, want nothing changed", res)
	}
	if len(*calls) != 0 {
		t.Errorf("Immutable consulted for an unchanged tag: %v", *calls)
	}
}

func testTagMove(t *testing.T, s metadata.Store) {
	ctx := t.Context()
	r := aesRepo(t, s, "r")
	m1 := image(t, s, r, "m1", "latest")
	m2 := newManifest(r, "m2")
	layer := addBlob(t, s, r, "layer of m2")
	imm, calls := counter(false)
	res, err := s.PutManifest(ctx, metadata.PutManifest{
		Manifest: m2, Refs: []metadata.Ref{{Digest: layer.Digest, Kind: metadata.RefBlob}},
		Tag: "latest", Immutable: imm,
	})
	must(t, "move", err)
	if !res.Created || res.PreviousTag != m1.Digest {
		t.Errorf("result = %+v, want Created, PreviousTag %s", res, m1.Digest)
	}
	if !slices.Equal(*calls, []string{"latest"}) {
		t.Errorf("Immutable calls = %v, want [latest]", *calls)
	}
	got, err := s.ResolveTag(ctx, r.ID, "latest")
	must(t, "resolve", err)
	checkManifest(t, got, m2)
	// The old manifest stays, untagged.
	got, err = s.GetManifest(ctx, r.ID, m1.Digest)
	must(t, "old manifest", err)
	checkManifest(t, got, m1)

	// A nil Immutable means mutable; moving back reports m2.
	res, err = s.PutManifest(ctx, metadata.PutManifest{Manifest: m1, Tag: "latest"})
	must(t, "move back", err)
	if res.Created || res.PreviousTag != m2.Digest {
		t.Errorf("move back result = %+v, want PreviousTag %s", res, m2.Digest)
	}
}

func testTagImmutable(t *testing.T, s metadata.Store) {
	ctx := t.Context()
	r := aesRepo(t, s, "r")
	m1 := image(t, s, r, "m1", "v1")
	m2 := newManifest(r, "m2")
	layer := addBlob(t, s, r, "layer of m2")
	imm, calls := counter(true)
	_, err := s.PutManifest(ctx, metadata.PutManifest{
		Manifest: m2, Refs: []metadata.Ref{{Digest: layer.Digest, Kind: metadata.RefBlob}},
		Tag: "v1", Immutable: imm,
	})
	wantErr(t, "move immutable tag", err, metadata.ErrTagImmutable)
	if !slices.Equal(*calls, []string{"v1"}) {
		t.Errorf("Immutable calls = %v, want [v1]", *calls)
	}
	// Nothing was written: not the tag, not the manifest.
	got, err := s.ResolveTag(ctx, r.ID, "v1")
	must(t, "resolve", err)
	checkManifest(t, got, m1)
	_, err = s.GetManifest(ctx, r.ID, m2.Digest)
	wantErr(t, "manifest of rejected push", err, metadata.ErrNotFound)

	// The filter is per tag: another tag may point anywhere.
	res, err := s.PutManifest(ctx, metadata.PutManifest{
		Manifest: m2, Refs: []metadata.Ref{{Digest: layer.Digest, Kind: metadata.RefBlob}},
		Tag: "v2", Immutable: func(tag string) bool { return tag == "v1" },
	})
	must(t, "push other tag", err)
	if !res.Created {
		t.Error("manifest not created")
	}
	_, err = s.PutManifest(ctx, metadata.PutManifest{
		Manifest: m1, Tag: "v2", Immutable: func(tag string) bool { return tag == "v1" },
	})
	must(t, "move excluded tag", err)
	// Deleting an immutable tag is the caller's decision; then it is new.
	must(t, "delete tag", s.DeleteTag(ctx, r.ID, "v1"))
	res, err = s.PutManifest(ctx, metadata.PutManifest{Manifest: m2, Tag: "v1", Immutable: imm})
	must(t, "recreate tag", err)
	if res.PreviousTag != "" {
		t.Errorf("recreated tag reports PreviousTag %s", res.PreviousTag)
	}
}

func testTagDelete(t *testing.T, s metadata.Store) {
	ctx := t.Context()
	r := aesRepo(t, s, "r")
	m := image(t, s, r, "m", "v1")
	_, err := s.PutManifest(ctx, metadata.PutManifest{Manifest: m, Tag: "v2"})
	must(t, "tag v2", err)
	must(t, "delete", s.DeleteTag(ctx, r.ID, "v1"))
	_, err = s.ResolveTag(ctx, r.ID, "v1")
	wantErr(t, "deleted tag", err, metadata.ErrNotFound)
	got, err := s.ResolveTag(ctx, r.ID, "v2")
	must(t, "other tag", err)
	checkManifest(t, got, m)
	if _, err := s.GetManifest(ctx, r.ID, m.Digest); err != nil {
		t.Errorf("DeleteTag removed the manifest: %v", err)
	}
	wantErr(t, "delete twice", s.DeleteTag(ctx, r.ID, "v1"), metadata.ErrNotFound)
	wantErr(t, "delete in unknown repository", s.DeleteTag(ctx, uuid.NewString(), "v2"), metadata.ErrNotFound)
}

func testTagIsolation(t *testing.T, s metadata.Store) {
	ctx := t.Context()
	a := aesRepo(t, s, "a")
	b := aesRepo(t, s, "b")
	ma := image(t, s, a, "ma", "latest")
	mb := image(t, s, b, "mb", "latest")
	got, err := s.ResolveTag(ctx, a.ID, "latest")
	must(t, "resolve a", err)
	checkManifest(t, got, ma)
	got, err = s.ResolveTag(ctx, b.ID, "latest")
	must(t, "resolve b", err)
	checkManifest(t, got, mb)
	// A manifest of another repository cannot be tagged by digest alone.
	_, err = s.PutManifest(ctx, metadata.PutManifest{Manifest: metadata.Manifest{
		RepoID: a.ID, Digest: mb.Digest, MediaType: mb.MediaType, Size: mb.Size,
		ObjectKey: "manifests/" + a.ID + "/" + mb.Digest, PushedAt: t0,
	}, Refs: []metadata.Ref{{Digest: digestOf("layer of mb"), Kind: metadata.RefBlob}}, Tag: "stolen"})
	wantErr(t, "reference a blob linked to another repository", err, metadata.ErrBlobUnknown)
	must(t, "delete a's tag", s.DeleteTag(ctx, a.ID, "latest"))
	if _, err := s.ResolveTag(ctx, b.ID, "latest"); err != nil {
		t.Errorf("deleting a's tag affected b: %v", err)
	}
}

func testTagList(t *testing.T, s metadata.Store) {
	ctx := t.Context()
	r := aesRepo(t, s, "r")
	other := aesRepo(t, s, "other")
	image(t, s, other, "o", "a-foreign-tag")
	const n = 1000
	var ms []metadata.Manifest
	for i := range 10 {
		ms = append(ms, image(t, s, r, fmt.Sprintf("m%d", i), ""))
	}
	// OCI tag characters in random order: [A-Za-z0-9_][A-Za-z0-9._-]*.
	const first = "ABCXYZabcxyz019_"
	const rest = "ABZaz09._-"
	rng := rand.New(rand.NewPCG(3, 4))
	seen := map[string]bool{}
	var want []string
	for len(want) < n {
		b := []byte{first[rng.IntN(len(first))]}
		for range rng.IntN(12) {
			b = append(b, rest[rng.IntN(len(rest))])
		}
		tag := string(b)
		if seen[tag] {
			continue
		}
		seen[tag] = true
		want = append(want, tag)
		_, err := s.PutManifest(ctx, metadata.PutManifest{Manifest: ms[len(want)%len(ms)], Tag: tag})
		must(t, "tag "+tag, err)
	}
	slices.Sort(want)

	for _, limit := range []int{1, 10, 333, 999, 1000, 5000} {
		var got []string
		last := ""
		for {
			page, err := s.ListTags(ctx, r.ID, last, limit)
			must(t, "list tags", err)
			if len(page) > limit {
				t.Fatalf("limit %d: page of %d", limit, len(page))
			}
			got = append(got, page...)
			if len(page) < limit {
				break
			}
			last = page[len(page)-1]
		}
		if !slices.Equal(got, want) {
			t.Fatalf("limit %d: %d tags, want %d in byte order; first difference at %d",
				limit, len(got), len(want), firstDiff(got, want))
		}
	}
	for _, limit := range []int{0, -5} {
		all, err := s.ListTags(ctx, r.ID, "", limit)
		must(t, "list all", err)
		if !slices.Equal(all, want) {
			t.Errorf("limit %d: %d tags, want all %d", limit, len(all), n)
		}
	}
	// last need not be an existing tag.
	notTag := want[500] + "~"
	i, _ := slices.BinarySearch(want, notTag)
	page, err := s.ListTags(ctx, r.ID, notTag, 2)
	must(t, "list after non-tag", err)
	if !slices.Equal(page, want[i:i+2]) {
		t.Errorf("after %q: %v, want %v", notTag, page, want[i:i+2])
	}
	page, err = s.ListTags(ctx, r.ID, want[n-1], 10)
	must(t, "list past end", err)
	if len(page) != 0 {
		t.Errorf("past end: %v", page)
	}
	page, err = s.ListTags(ctx, uuid.NewString(), "", 10)
	must(t, "list unknown repository", err)
	if len(page) != 0 {
		t.Errorf("unknown repository has tags %v", page)
	}
}
