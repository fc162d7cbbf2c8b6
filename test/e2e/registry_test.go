//go:build e2e

package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// TestRegistryAPI drives the registry with go-containerregistry (the
// library behind crane): images, indexes, tag listing with pagination,
// catalog, delete by digest and referrers. The subtests share one server
// and use distinct repositories.
func TestRegistryAPI(t *testing.T) {
	ctx := testContext(t, 5*time.Minute)
	c := startCoffer(t)

	t.Run("ImageRoundTrip", func(t *testing.T) {
		ref := c.ref(t, "e2e/crane/img:v1")
		img, err := random.Image(512<<10, 3)
		if err != nil {
			t.Fatal(err)
		}
		if err := remote.Write(ref, img, c.opts(ctx)...); err != nil {
			t.Fatalf("remote.Write: %v", err)
		}
		want, _ := img.Digest()
		got, err := remote.Image(ref, c.opts(ctx)...)
		if err != nil {
			t.Fatalf("remote.Image: %v", err)
		}
		if d, _ := got.Digest(); d != want {
			t.Errorf("pulled digest %s, pushed %s", d, want)
		}
		if err := verifyImage(got); err != nil {
			t.Errorf("validate pulled image: %v", err)
		}
		// HEAD by tag and by digest agree.
		for _, r := range []string{"e2e/crane/img:v1", "e2e/crane/img@" + want.String()} {
			desc, err := remote.Head(c.ref(t, r), c.opts(ctx)...)
			if err != nil {
				t.Errorf("HEAD %s: %v", r, err)
			} else if desc.Digest != want {
				t.Errorf("HEAD %s: digest %s, want %s", r, desc.Digest, want)
			}
		}
	})

	t.Run("IndexWithPlatforms", func(t *testing.T) {
		platforms := []v1.Platform{{OS: "linux", Architecture: "amd64"}, {OS: "linux", Architecture: "arm64", Variant: "v8"}, {OS: "linux", Architecture: "s390x"}}
		var adds []mutate.IndexAddendum
		want := map[string]v1.Hash{}
		for _, p := range platforms {
			img, err := random.Image(64<<10, 2)
			if err != nil {
				t.Fatal(err)
			}
			cf, _ := img.ConfigFile()
			cf = cf.DeepCopy()
			cf.OS, cf.Architecture, cf.Variant = p.OS, p.Architecture, p.Variant
			img, err = mutate.ConfigFile(img, cf)
			if err != nil {
				t.Fatal(err)
			}
			d, _ := img.Digest()
			want[p.String()] = d
			adds = append(adds, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &p}})
		}
		idx := mutate.IndexMediaType(mutate.AppendManifests(empty.Index, adds...), types.OCIImageIndex)
		ref := c.ref(t, "e2e/crane/index:v1")
		if err := remote.WriteIndex(ref, idx, c.opts(ctx)...); err != nil {
			t.Fatalf("remote.WriteIndex: %v", err)
		}
		got, err := remote.Index(ref, c.opts(ctx)...)
		if err != nil {
			t.Fatalf("remote.Index: %v", err)
		}
		wd, _ := idx.Digest()
		if gd, _ := got.Digest(); gd != wd {
			t.Errorf("index digest %s, pushed %s", gd, wd)
		}
		if err := verifyIndex(got); err != nil {
			t.Errorf("validate index: %v", err)
		}
		for _, p := range platforms {
			img, err := remote.Image(ref, c.opts(ctx, remote.WithPlatform(p))...)
			if err != nil {
				t.Errorf("resolve %s: %v", p, err)
				continue
			}
			if d, _ := img.Digest(); d != want[p.String()] {
				t.Errorf("platform %s resolves to %s, want %s", p, d, want[p.String()])
			}
		}
	})

	t.Run("TagsPagination", func(t *testing.T) {
		repo := "e2e/crane/tags"
		img, err := random.Image(1024, 1)
		if err != nil {
			t.Fatal(err)
		}
		var tags []string
		for i := range 7 {
			tags = append(tags, fmt.Sprintf("t%02d", i))
		}
		// Pushed out of order: the listing must still be lexically sorted.
		for _, i := range []int{3, 0, 6, 1, 5, 2, 4} {
			if err := remote.Write(c.ref(t, repo+":"+tags[i]), img, c.opts(ctx)...); err != nil {
				t.Fatalf("push %s: %v", tags[i], err)
			}
		}
		// By hand: n=3 pages linked with Link: <...>; rel="next".
		var got []string
		next := "/v2/" + repo + "/tags/list?n=3"
		linkRE := regexp.MustCompile(`^<([^>]+)>;\s*rel="next"$`)
		for pages := 0; next != ""; pages++ {
			if pages > 5 {
				t.Fatalf("more than 5 pages of 3 for 7 tags; at %s", next)
			}
			res := c.do(ctx, http.MethodGet, next, nil, nil)
			if res.Status != http.StatusOK {
				t.Fatalf("%v", res)
			}
			var page struct {
				Name string   `json:"name"`
				Tags []string `json:"tags"`
			}
			if err := json.Unmarshal(res.Body, &page); err != nil {
				t.Fatalf("%v: %v", res, err)
			}
			if page.Name != repo {
				t.Errorf("%v: name %q, want %q", res, page.Name, repo)
			}
			if len(page.Tags) > 3 {
				t.Errorf("%v: %d tags, want at most 3", res, len(page.Tags))
			}
			got = append(got, page.Tags...)
			next = ""
			if l := res.Header.Get("Link"); l != "" {
				m := linkRE.FindStringSubmatch(l)
				if m == nil {
					t.Fatalf("%v: malformed Link header %q", res, l)
				}
				next = m[1]
			}
		}
		if !slices.Equal(got, tags) {
			t.Errorf("paged tags %v, want %v", got, tags)
		}
		// And as go-containerregistry pages through them.
		listed, err := remote.List(c.ref(t, repo+":t00").Context(), c.opts(ctx, remote.WithPageSize(2))...)
		if err != nil {
			t.Fatalf("remote.List: %v", err)
		}
		if !slices.Equal(listed, tags) {
			t.Errorf("remote.List with page size 2: %v, want %v", listed, tags)
		}
		// last= starts after the given tag.
		res := c.do(ctx, http.MethodGet, "/v2/"+repo+"/tags/list?last=t04", nil, nil)
		if res.Status != http.StatusOK || !strings.Contains(string(res.Body), `"t05"`) || strings.Contains(string(res.Body), `"t04"`) {
			t.Errorf("want tags after t04 only: %v", res)
		}
	})

	t.Run("Catalog", func(t *testing.T) {
		img, err := random.Image(1024, 1)
		if err != nil {
			t.Fatal(err)
		}
		repos := []string{"e2e/cat/a", "e2e/cat/b", "e2e/cat/c-d", "e2e/cat/e.f/g"}
		for _, r := range repos {
			if err := remote.Write(c.ref(t, r+":x"), img, c.opts(ctx)...); err != nil {
				t.Fatalf("push %s: %v", r, err)
			}
		}
		all, err := remote.Catalog(ctx, c.registry(t), c.opts(ctx, remote.WithPageSize(2))...)
		if err != nil {
			t.Fatalf("remote.Catalog: %v", err)
		}
		for _, r := range repos {
			if !slices.Contains(all, r) {
				t.Errorf("catalog %v lacks %s", all, r)
			}
		}
		if !slices.IsSorted(all) {
			t.Errorf("catalog not sorted: %v", all)
		}
		page, err := remote.CatalogPage(c.registry(t), "e2e/cat/a", 2, c.opts(ctx)...)
		if err != nil {
			t.Fatalf("remote.CatalogPage: %v", err)
		}
		if !slices.Equal(page, []string{"e2e/cat/b", "e2e/cat/c-d"}) {
			t.Errorf("catalog page after e2e/cat/a, n=2: %v, want [e2e/cat/b e2e/cat/c-d]", page)
		}
	})

	t.Run("DeleteByDigest", func(t *testing.T) {
		repo := "e2e/crane/del"
		keep, _ := random.Image(1024, 1)
		gone, _ := random.Image(1024, 1)
		for tag, img := range map[string]v1.Image{"keep": keep, "gone": gone} {
			if err := remote.Write(c.ref(t, repo+":"+tag), img, c.opts(ctx)...); err != nil {
				t.Fatalf("push %s: %v", tag, err)
			}
		}
		gd, _ := gone.Digest()
		if err := remote.Delete(c.digestRef(t, repo, gd), c.opts(ctx)...); err != nil {
			t.Fatalf("DELETE manifest %s: %v", gd, err)
		}
		for _, r := range []struct{ ref, reference string }{
			{repo + "@" + gd.String(), gd.String()},
			{repo + ":gone", "gone"},
		} {
			_, err := remote.Head(c.ref(t, r.ref), c.opts(ctx)...)
			if status, _ := registryErr(err); status != http.StatusNotFound {
				t.Errorf("HEAD %s after delete: %v, want 404", r.ref, err)
			}
			res := c.do(ctx, http.MethodGet, "/v2/"+repo+"/manifests/"+r.reference, nil,
				map[string]string{"Accept": string(types.DockerManifestSchema2)})
			if res.Status != http.StatusNotFound || !slices.Contains(ociErrorCodes(res.Body), "MANIFEST_UNKNOWN") {
				t.Errorf("want 404 MANIFEST_UNKNOWN: %v", res)
			}
		}
		tags, err := remote.List(c.ref(t, repo+":keep").Context(), c.opts(ctx)...)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(tags, []string{"keep"}) {
			t.Errorf("tags after deleting the manifest of gone: %v, want [keep]", tags)
		}
		if _, err := remote.Image(c.ref(t, repo+":keep"), c.opts(ctx)...); err != nil {
			t.Errorf("other image damaged by delete: %v", err)
		}
	})

	t.Run("Referrers", func(t *testing.T) {
		repo := "e2e/crane/ref"
		noFallback := remote.WithReferrersTagFallback(false)
		subject, _ := random.Image(1024, 1)
		if err := remote.Write(c.ref(t, repo+":subject"), subject, c.opts(ctx)...); err != nil {
			t.Fatal(err)
		}
		sd, _ := subject.Digest()
		sm, _ := subject.RawManifest()
		smt, _ := subject.MediaType()
		subjectDesc := v1.Descriptor{MediaType: smt, Digest: sd, Size: int64(len(sm))}

		const sbomType = "application/vnd.example.sbom.v1+json"
		const sigType = "application/vnd.example.signature.v1"
		var want []v1.Hash
		for _, at := range []string{sbomType, sigType} {
			art := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
			art = mutate.ConfigMediaType(art, types.MediaType(at))
			art, err := mutate.AppendLayers(art, static.NewLayer([]byte(`{"for":"`+sd.String()+`","type":"`+at+`"}`), "application/json"))
			if err != nil {
				t.Fatal(err)
			}
			art = mutate.Annotations(art, map[string]string{"org.example.kind": at}).(v1.Image)
			art = mutate.Subject(art, subjectDesc).(v1.Image)
			ad, _ := art.Digest()
			want = append(want, ad)
			// Pushed by digest only, as signers do.
			if err := remote.Write(c.digestRef(t, repo, ad), art, c.opts(ctx, noFallback)...); err != nil {
				t.Fatalf("push artifact %s with subject: %v", at, err)
			}
		}

		idx, err := remote.Referrers(c.digestRef(t, repo, sd), c.opts(ctx, noFallback)...)
		if err != nil {
			t.Fatalf("remote.Referrers: %v", err)
		}
		im, err := idx.IndexManifest()
		if err != nil {
			t.Fatal(err)
		}
		var got []v1.Hash
		for _, m := range im.Manifests {
			got = append(got, m.Digest)
			if m.ArtifactType != sbomType && m.ArtifactType != sigType {
				t.Errorf("referrer %s: artifactType %q, want one of %s, %s", m.Digest, m.ArtifactType, sbomType, sigType)
			}
			if m.Annotations["org.example.kind"] != m.ArtifactType {
				t.Errorf("referrer %s: annotations %v, want org.example.kind=%s", m.Digest, m.Annotations, m.ArtifactType)
			}
		}
		slices.SortFunc(got, func(a, b v1.Hash) int { return strings.Compare(a.String(), b.String()) })
		slices.SortFunc(want, func(a, b v1.Hash) int { return strings.Compare(a.String(), b.String()) })
		if !slices.Equal(got, want) {
			t.Errorf("referrers %v, want %v", got, want)
		}

		// Server-side filtering (the client filters too; the raw answer shows
		// what the server did).
		res := c.do(ctx, http.MethodGet, "/v2/"+repo+"/referrers/"+sd.String()+"?artifactType="+url.QueryEscape(sbomType), nil, nil)
		if res.Status != http.StatusOK {
			t.Fatalf("%v", res)
		}
		if ct := res.Header.Get("Content-Type"); ct != string(types.OCIImageIndex) {
			t.Errorf("referrers Content-Type %q, want %s", ct, types.OCIImageIndex)
		}
		var filtered v1.IndexManifest
		if err := json.Unmarshal(res.Body, &filtered); err != nil {
			t.Fatalf("%v: %v", res, err)
		}
		if len(filtered.Manifests) != 1 || filtered.Manifests[0].ArtifactType != sbomType {
			t.Errorf("referrers?artifactType=%s: %v", sbomType, res)
		}
		if res.Header.Get("OCI-Filters-Applied") != "artifactType" {
			t.Logf("note: no OCI-Filters-Applied: artifactType header: %v", res)
		}

		// A subject with no referrers gives an empty index, not 404.
		res = c.do(ctx, http.MethodGet, "/v2/"+repo+"/referrers/"+sha256Digest([]byte("nothing")).String(), nil, nil)
		var empty map[string]json.RawMessage
		json.Unmarshal(res.Body, &empty)
		if res.Status != http.StatusOK || !bytes.Equal(bytes.Join(bytes.Fields(empty["manifests"]), nil), []byte("[]")) {
			t.Errorf("referrers of an unknown digest: want 200 with \"manifests\": []: %v", res)
		}
	})
}
