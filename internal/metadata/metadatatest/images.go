package metadatatest

import (
	"slices"
	"testing"

	"github.com/cofferhq/coffer/internal/metadata"
)

// imageTests cover the ECR image methods: ListImages, ImageTags,
// DeleteImage and BlobReferenced.
func imageTests() []testCase {
	return []testCase{
		{"Images/ImageSize", testImageSize},
		{"Images/ListFilters", testListImagesFilters},
		{"Images/ImageTags", testImageTags},
		{"Images/DeleteByTag", testDeleteImageByTag},
		{"Images/DeleteByDigest", testDeleteImageByDigest},
		{"Images/DeleteIndexChild", testDeleteImageIndexChild},
		{"Images/BlobReferenced", testBlobReferenced},
	}
}

func testImageSize(t *testing.T, s metadata.Store) {
	ctx := t.Context()
	r := aesRepo(t, s, "r")
	m := newManifest(r, "sized")
	m.ImageSize = 123456789012
	_, err := s.PutManifest(ctx, metadata.PutManifest{Manifest: m, Tag: "v1"})
	must(t, "put", err)
	for _, get := range []func() (metadata.Manifest, error){
		func() (metadata.Manifest, error) { return s.GetManifest(ctx, r.ID, m.Digest) },
		func() (metadata.Manifest, error) { return s.ResolveTag(ctx, r.ID, "v1") },
		func() (metadata.Manifest, error) {
			p, err := s.ListImages(ctx, r.ID, metadata.ImageQuery{})
			if err != nil || len(p.Images) != 1 {
				t.Fatalf("ListImages = %v, %v", p, err)
			}
			return p.Images[0], nil
		},
	} {
		got, err := get()
		must(t, "get", err)
		if got.ImageSize != m.ImageSize {
			t.Errorf("ImageSize = %d, want %d", got.ImageSize, m.ImageSize)
		}
	}
}

func testListImagesFilters(t *testing.T, s metadata.Store) {
	ctx := t.Context()
	r := aesRepo(t, s, "r")
	other := aesRepo(t, s, "other")
	image(t, s, other, "foreign", "v1")
	image(t, s, other, "foreign untagged", "")
	tagsOf := map[string][]string{}
	var all []string
	for i, tags := range [][]string{{"b", "a", "c"}, nil, {"z"}, nil, {"m", "n"}, nil} {
		m := image(t, s, r, "img"+string(rune('0'+i)), "")
		for _, tag := range tags {
			_, err := s.PutManifest(ctx, metadata.PutManifest{Manifest: m, Tag: tag})
			must(t, "tag", err)
		}
		tagsOf[m.Digest] = slices.Sorted(slices.Values(tags))
		all = append(all, m.Digest)
	}
	slices.Sort(all)
	for _, tc := range []struct {
		status string
		keep   func(tags []string) bool
	}{
		{"", func([]string) bool { return true }},
		{metadata.TagStatusAny, func([]string) bool { return true }},
		{metadata.TagStatusTagged, func(tags []string) bool { return len(tags) > 0 }},
		{metadata.TagStatusUntagged, func(tags []string) bool { return len(tags) == 0 }},
	} {
		var want []string
		for _, d := range all {
			if tc.keep(tagsOf[d]) {
				want = append(want, d)
			}
		}
		// Page by 2 with an inclusive From: the next page starts at the
		// successor of the last digest (or of ScannedTo, when a window of
		// `window` manifests ran out first).
		for _, window := range []int{0, 1, 2, 3, 100} {
			var got []string
			from := ""
			for calls := 0; ; calls++ {
				if calls > 20 {
					t.Fatalf("%q window %d: listing does not end", tc.status, window)
				}
				page, err := s.ListImages(ctx, r.ID, metadata.ImageQuery{From: from, TagStatus: tc.status, Limit: 2, Window: window})
				must(t, "list images", err)
				for _, m := range page.Images {
					if m.RepoID != r.ID || !slices.Equal(m.Tags, tagsOf[m.Digest]) {
						t.Errorf("%q: %s has repo %s tags %v, want %v", tc.status, m.Digest, m.RepoID, m.Tags, tagsOf[m.Digest])
					}
					got = append(got, m.Digest)
				}
				if page.ScannedTo != "" {
					if len(page.Images) >= 2 || window == 0 || (len(page.Images) > 0 && page.Images[len(page.Images)-1].Digest > page.ScannedTo) {
						t.Fatalf("%q window %d: ScannedTo %s with page %v", tc.status, window, page.ScannedTo, page.Images)
					}
					from = page.ScannedTo + "\x00"
					continue
				}
				if len(page.Images) < 2 {
					break
				}
				from = page.Images[len(page.Images)-1].Digest + "\x00"
			}
			if !slices.Equal(got, want) {
				t.Errorf("%q window %d: listed %v, want %v", tc.status, window, got, want)
			}
		}
		// From is inclusive.
		if len(want) > 1 {
			page, err := s.ListImages(ctx, r.ID, metadata.ImageQuery{From: want[1], TagStatus: tc.status, Limit: 1})
			must(t, "list from", err)
			if len(page.Images) != 1 || page.Images[0].Digest != want[1] {
				t.Errorf("%q: From %s returned %v", tc.status, want[1], page)
			}
		}
	}
	if _, err := s.ListImages(ctx, r.ID, metadata.ImageQuery{TagStatus: "SOMETIMES"}); err == nil {
		t.Error("unknown tag status accepted")
	}
}

func testImageTags(t *testing.T, s metadata.Store) {
	ctx := t.Context()
	r := aesRepo(t, s, "r")
	m := image(t, s, r, "m", "z")
	_, err := s.PutManifest(ctx, metadata.PutManifest{Manifest: m, Tag: "a"})
	must(t, "tag", err)
	tags, err := s.ImageTags(ctx, r.ID, m.Digest)
	must(t, "tags", err)
	if !slices.Equal(tags, []string{"a", "z"}) {
		t.Errorf("tags = %v", tags)
	}
	u := image(t, s, r, "untagged", "")
	tags, err = s.ImageTags(ctx, r.ID, u.Digest)
	if err != nil || tags != nil {
		t.Errorf("untagged: %v, %v", tags, err)
	}
}

func testDeleteImageByTag(t *testing.T, s metadata.Store) {
	ctx := t.Context()
	r := aesRepo(t, s, "r")
	m := image(t, s, r, "m", "v1")
	_, err := s.PutManifest(ctx, metadata.PutManifest{Manifest: m, Tag: "v2"})
	must(t, "tag v2", err)
	other := image(t, s, r, "other", "o")

	_, err = s.DeleteImage(ctx, r.ID, "", "nope")
	wantErr(t, "delete unknown tag", err, metadata.ErrNotFound)
	_, err = s.DeleteImage(ctx, r.ID, other.Digest, "v1")
	wantErr(t, "delete tag with the wrong digest", err, metadata.ErrImageTagMismatch)

	del, err := s.DeleteImage(ctx, r.ID, m.Digest, "v1")
	must(t, "delete v1", err)
	if del.Digest != m.Digest || !slices.Equal(del.Tags, []string{"v1"}) || del.ManifestDeleted || del.ObjectKey != "" {
		t.Errorf("delete v1 = %+v: want only the tag gone", del)
	}
	if _, err := s.GetManifest(ctx, r.ID, m.Digest); err != nil {
		t.Errorf("manifest gone while still tagged: %v", err)
	}
	del, err = s.DeleteImage(ctx, r.ID, "", "v2")
	must(t, "delete v2", err)
	if !del.ManifestDeleted || del.ObjectKey != m.ObjectKey || !slices.Equal(del.Tags, []string{"v2"}) {
		t.Errorf("delete last tag = %+v: want the manifest gone", del)
	}
	_, err = s.GetManifest(ctx, r.ID, m.Digest)
	wantErr(t, "get deleted manifest", err, metadata.ErrNotFound)
	if _, err := s.GetManifest(ctx, r.ID, other.Digest); err != nil {
		t.Errorf("another image went too: %v", err)
	}
}

func testDeleteImageByDigest(t *testing.T, s metadata.Store) {
	ctx := t.Context()
	r := aesRepo(t, s, "r")
	m := image(t, s, r, "m", "b")
	_, err := s.PutManifest(ctx, metadata.PutManifest{Manifest: m, Tag: "a"})
	must(t, "tag", err)
	_, err = s.DeleteImage(ctx, r.ID, digestOf("absent"), "")
	wantErr(t, "delete unknown digest", err, metadata.ErrNotFound)
	del, err := s.DeleteImage(ctx, r.ID, m.Digest, "")
	must(t, "delete", err)
	if !del.ManifestDeleted || del.ObjectKey != m.ObjectKey || !slices.Equal(del.Tags, []string{"a", "b"}) || del.Digest != m.Digest {
		t.Errorf("delete by digest = %+v", del)
	}
	for _, tag := range []string{"a", "b"} {
		_, err := s.ResolveTag(ctx, r.ID, tag)
		wantErr(t, "resolve deleted tag "+tag, err, metadata.ErrNotFound)
	}
	u := image(t, s, r, "untagged", "")
	del, err = s.DeleteImage(ctx, r.ID, u.Digest, "")
	must(t, "delete untagged", err)
	if !del.ManifestDeleted || del.Tags != nil {
		t.Errorf("delete untagged = %+v", del)
	}
}

func testDeleteImageIndexChild(t *testing.T, s metadata.Store) {
	ctx := t.Context()
	r := aesRepo(t, s, "r")
	child := image(t, s, r, "child", "c")
	idx := newManifest(r, "index")
	idx.MediaType = "application/vnd.oci.image.index.v1+json"
	_, err := s.PutManifest(ctx, metadata.PutManifest{Manifest: idx, Tag: "latest",
		Refs: []metadata.Ref{{Digest: child.Digest, Kind: metadata.RefManifest}}})
	must(t, "put index", err)

	_, err = s.DeleteImage(ctx, r.ID, child.Digest, "")
	wantErr(t, "delete a referenced child", err, metadata.ErrImageReferenced)
	del, err := s.DeleteImage(ctx, r.ID, "", "c")
	must(t, "untag the child", err)
	if del.ManifestDeleted {
		t.Error("untagging an index's child deleted it")
	}
	if _, err := s.GetManifest(ctx, r.ID, child.Digest); err != nil {
		t.Errorf("child: %v", err)
	}
	_, err = s.DeleteImage(ctx, r.ID, idx.Digest, "")
	must(t, "delete index", err)
	_, err = s.DeleteImage(ctx, r.ID, child.Digest, "")
	must(t, "delete the child once the index is gone", err)
}

func testBlobReferenced(t *testing.T, s metadata.Store) {
	ctx := t.Context()
	r := aesRepo(t, s, "r")
	other := aesRepo(t, s, "other")
	used := addBlob(t, s, r, "used")
	unused := addBlob(t, s, r, "unused")
	m := newManifest(r, "m")
	_, err := s.PutManifest(ctx, metadata.PutManifest{Manifest: m,
		Refs: []metadata.Ref{{Digest: used.Digest, Kind: metadata.RefBlob}}})
	must(t, "put", err)
	for _, tc := range []struct {
		repo   metadata.Repository
		digest string
		want   bool
	}{
		{r, used.Digest, true},
		{r, unused.Digest, false},
		{r, m.Digest, false},
		{other, used.Digest, false},
	} {
		got, err := s.BlobReferenced(ctx, tc.repo.ID, tc.digest)
		if err != nil || got != tc.want {
			t.Errorf("BlobReferenced(%s, %s) = %v, %v; want %v", tc.repo.Name, tc.digest, got, err, tc.want)
		}
	}
}
