package registry

import (
	"errors"
	"strings"
	"testing"

	"github.com/cofferhq/coffer/internal/metadata"
)

var (
	dA = "sha256:" + strings.Repeat("a", 64)
	dB = "sha256:" + strings.Repeat("b", 64)
	dC = "sha256:" + strings.Repeat("c", 64)
)

func TestParseManifest(t *testing.T) {
	t.Parallel()
	ociImage := `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",
		"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"` + dA + `","size":2},
		"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"` + dB + `","size":10}]}`
	foreign := `{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json",
		"config":{"mediaType":"application/vnd.docker.container.image.v1+json","digest":"` + dA + `","size":2},
		"layers":[{"mediaType":"application/vnd.docker.image.rootfs.foreign.diff.tar.gzip","digest":"` + dC + `","size":10,"urls":["https://example.invalid/layer"]},
		{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","digest":"` + dB + `","size":10}]}`
	index := `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json",
		"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"` + dA + `","size":100}]}`
	artifact := `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","artifactType":"application/vnd.example",
		"config":{"mediaType":"application/vnd.oci.empty.v1+json","digest":"` + dA + `","size":2},"layers":[],
		"subject":{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"` + dC + `","size":5}}`
	for _, tc := range []struct {
		name, ct, body string
		wantErr        bool
		wantType       string
		wantRefs       []metadata.Ref
		wantSubject    string
		wantArtifact   string
	}{
		{name: "oci image", ct: MediaTypeOCIManifest, body: ociImage, wantType: MediaTypeOCIManifest,
			wantRefs: []metadata.Ref{{Digest: dA, Kind: metadata.RefBlob}, {Digest: dB, Kind: metadata.RefBlob}}},
		{name: "no content type", body: ociImage, wantType: MediaTypeOCIManifest,
			wantRefs: []metadata.Ref{{Digest: dA, Kind: metadata.RefBlob}, {Digest: dB, Kind: metadata.RefBlob}}},
		{name: "content type mismatch", ct: MediaTypeDockerManifest, body: ociImage, wantErr: true},
		{name: "foreign layer not required (WIN-09)", ct: MediaTypeDockerManifest, body: foreign, wantType: MediaTypeDockerManifest,
			wantRefs:     []metadata.Ref{{Digest: dA, Kind: metadata.RefBlob}, {Digest: dB, Kind: metadata.RefBlob}},
			wantArtifact: "application/vnd.docker.container.image.v1+json"},
		{name: "index", ct: MediaTypeOCIIndex, body: index, wantType: MediaTypeOCIIndex,
			wantRefs: []metadata.Ref{{Digest: dA, Kind: metadata.RefManifest}}},
		{name: "artifact with subject", ct: MediaTypeOCIManifest, body: artifact, wantType: MediaTypeOCIManifest,
			wantRefs: []metadata.Ref{{Digest: dA, Kind: metadata.RefBlob}}, wantSubject: dC, wantArtifact: "application/vnd.example"},
		{name: "not json", body: "{", wantErr: true},
		{name: "trailing data", body: ociImage + "{}", wantErr: true},
		{name: "schema 1", ct: "application/vnd.docker.distribution.manifest.v1+prettyjws", body: `{"schemaVersion":1}`, wantErr: true},
		{name: "missing config", ct: MediaTypeOCIManifest, body: `{"schemaVersion":2,"layers":[]}`, wantErr: true},
		{name: "bad layer digest", ct: MediaTypeOCIManifest, body: strings.Replace(ociImage, dB, "sha256:zz", 1), wantErr: true},
		{name: "negative size", ct: MediaTypeOCIManifest, body: strings.Replace(ociImage, `"size":10`, `"size":-1`, 1), wantErr: true},
		{name: "unknown media type", ct: "application/x-unknown", body: `{"schemaVersion":2}`, wantErr: true},
		{name: "index with layers", ct: MediaTypeOCIIndex, body: `{"schemaVersion":2,"manifests":[],"layers":[]}`, wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := parseManifest(tc.ct, []byte(tc.body))
			if tc.wantErr {
				if !errors.Is(err, ErrManifestInvalid) {
					t.Fatalf("err = %v, want ErrManifestInvalid", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if p.mediaType != tc.wantType || p.subject != tc.wantSubject || p.artifactType != tc.wantArtifact {
				t.Fatalf("got type %q subject %q artifact %q", p.mediaType, p.subject, p.artifactType)
			}
			if len(p.refs) != len(tc.wantRefs) {
				t.Fatalf("refs = %+v, want %+v", p.refs, tc.wantRefs)
			}
			for i := range p.refs {
				if p.refs[i] != tc.wantRefs[i] {
					t.Fatalf("refs = %+v, want %+v", p.refs, tc.wantRefs)
				}
			}
		})
	}
}

func FuzzParseManifest(f *testing.F) {
	f.Add(MediaTypeOCIManifest, []byte(`{"schemaVersion":2,"config":{"mediaType":"a","digest":"`+dA+`","size":1},"layers":[]}`))
	f.Add(MediaTypeOCIIndex, []byte(`{"schemaVersion":2,"manifests":[{"mediaType":"a","digest":"`+dA+`","size":1}]}`))
	f.Add("", []byte(`{"schemaVersion":2,"subject":{"mediaType":"a","digest":"`+dB+`","size":1}}`))
	f.Fuzz(func(t *testing.T, ct string, body []byte) {
		p, err := parseManifest(ct, body)
		if err != nil {
			if !errors.Is(err, ErrManifestInvalid) {
				t.Fatalf("error %v is not ErrManifestInvalid", err)
			}
			return
		}
		for _, r := range p.refs {
			if _, err := ParseDigest(r.Digest); err != nil {
				t.Fatalf("accepted reference %q: %v", r.Digest, err)
			}
		}
	})
}

func TestTagImmutable(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		mutability string
		filters    []string
		tag        string
		want       bool
	}{
		{metadata.TagMutable, nil, "latest", false},
		{metadata.TagImmutable, nil, "latest", true},
		{metadata.TagImmutableWithExclusion, []string{"latest", "dev-*"}, "latest", false},
		{metadata.TagImmutableWithExclusion, []string{"latest", "dev-*"}, "dev-42", false},
		{metadata.TagImmutableWithExclusion, []string{"latest", "dev-*"}, "v1.0", true},
		{metadata.TagMutableWithExclusion, []string{"release-*"}, "release-1", true},
		{metadata.TagMutableWithExclusion, []string{"release-*"}, "latest", false},
	} {
		repo := metadata.Repository{TagMutability: tc.mutability, TagMutabilityExclusions: tc.filters}
		if got := TagImmutable(repo)(tc.tag); got != tc.want {
			t.Errorf("%s %v %q: immutable = %v, want %v", tc.mutability, tc.filters, tc.tag, got, tc.want)
		}
	}
}
