package registry

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"strings"

	"github.com/cofferhq/coffer/internal/metadata"
)

// MaxManifestSize is ECR's manifest size limit.
const MaxManifestSize = 4 << 20

// Manifest media types Coffer stores.
const (
	MediaTypeOCIManifest    = "application/vnd.oci.image.manifest.v1+json"
	MediaTypeOCIIndex       = "application/vnd.oci.image.index.v1+json"
	MediaTypeDockerManifest = "application/vnd.docker.distribution.manifest.v2+json"
	MediaTypeDockerList     = "application/vnd.docker.distribution.manifest.list.v2+json"
	mediaTypeOCIConfig      = "application/vnd.oci.image.config.v1+json"
)

// foreignLayerTypes may reference blobs that live elsewhere (their urls);
// a manifest need not have them pushed (SPEC WIN-09).
var foreignLayerTypes = map[string]bool{
	"application/vnd.docker.image.rootfs.foreign.diff.tar.gzip":    true,
	"application/vnd.oci.image.layer.nondistributable.v1.tar":      true,
	"application/vnd.oci.image.layer.nondistributable.v1.tar+gzip": true,
	"application/vnd.oci.image.layer.nondistributable.v1.tar+zstd": true,
}

// Descriptor is an OCI content descriptor.
type Descriptor struct {
	MediaType    string            `json:"mediaType"`
	Digest       string            `json:"digest"`
	Size         int64             `json:"size"`
	URLs         []string          `json:"urls,omitempty"`
	Annotations  map[string]string `json:"annotations,omitempty"`
	ArtifactType string            `json:"artifactType,omitempty"`
	Platform     json.RawMessage   `json:"platform,omitempty"`
}

type manifestDoc struct {
	SchemaVersion *int              `json:"schemaVersion"`
	MediaType     string            `json:"mediaType"`
	ArtifactType  string            `json:"artifactType"`
	Config        *Descriptor       `json:"config"`
	Layers        []Descriptor      `json:"layers"`
	Manifests     []Descriptor      `json:"manifests"`
	Subject       *Descriptor       `json:"subject"`
	Annotations   map[string]string `json:"annotations"`
}

// parsedManifest is what PutManifest learns from a manifest body.
type parsedManifest struct {
	mediaType    string
	artifactType string
	subject      string
	refs         []metadata.Ref
	// layers are the digests of the layers stored in the repository (not
	// foreign ones), in manifest order, repeats included: the image size.
	layers []string
}

func manifestErr(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrManifestInvalid, fmt.Sprintf(format, args...))
}

// parseManifest validates a manifest body against its declared content type.
func parseManifest(contentType string, body []byte) (parsedManifest, error) {
	var doc manifestDoc
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&doc); err != nil {
		return parsedManifest{}, manifestErr("manifest is not valid JSON: %v", err)
	}
	if dec.More() {
		return parsedManifest{}, manifestErr("trailing data after the manifest JSON")
	}
	ct := ""
	if contentType != "" {
		if mt, _, err := mime.ParseMediaType(contentType); err == nil {
			ct = mt
		}
	}
	mt := doc.MediaType
	switch {
	case mt != "" && ct != "" && ct != mt && ct != "application/json" && ct != "application/octet-stream":
		return parsedManifest{}, manifestErr("Content-Type %q does not match the manifest's mediaType %q", ct, mt)
	case mt == "" && ct != "" && ct != "application/json" && ct != "application/octet-stream":
		mt = ct
	case mt == "" && doc.Manifests != nil:
		mt = MediaTypeOCIIndex
	case mt == "":
		mt = MediaTypeOCIManifest
	}
	if doc.SchemaVersion == nil || *doc.SchemaVersion != 2 {
		if strings.HasPrefix(mt, "application/vnd.docker.distribution.manifest.v1") {
			return parsedManifest{}, fmt.Errorf("%w: Docker schema 1 manifests are not supported; push with a current client", ErrManifestInvalid)
		}
		return parsedManifest{}, manifestErr("schemaVersion must be 2")
	}
	p := parsedManifest{mediaType: mt, artifactType: doc.ArtifactType}
	switch mt {
	case MediaTypeOCIManifest, MediaTypeDockerManifest:
		if doc.Manifests != nil {
			return parsedManifest{}, manifestErr("an image manifest must not have manifests")
		}
		if doc.Config == nil {
			return parsedManifest{}, manifestErr("config descriptor is required")
		}
		if err := checkDescriptor("config", *doc.Config); err != nil {
			return parsedManifest{}, err
		}
		p.refs = append(p.refs, metadata.Ref{Digest: doc.Config.Digest, Kind: metadata.RefBlob})
		if p.artifactType == "" && doc.Config.MediaType != mediaTypeOCIConfig {
			p.artifactType = doc.Config.MediaType
		}
		for i, l := range doc.Layers {
			if err := checkDescriptor(fmt.Sprintf("layers[%d]", i), l); err != nil {
				return parsedManifest{}, err
			}
			if foreignLayerTypes[l.MediaType] && len(l.URLs) > 0 {
				continue // foreign layer: its blob may live elsewhere (WIN-09)
			}
			p.refs = append(p.refs, metadata.Ref{Digest: l.Digest, Kind: metadata.RefBlob})
			p.layers = append(p.layers, l.Digest)
		}
	case MediaTypeOCIIndex, MediaTypeDockerList:
		if doc.Config != nil || doc.Layers != nil {
			return parsedManifest{}, manifestErr("an index must not have config or layers")
		}
		for i, m := range doc.Manifests {
			if err := checkDescriptor(fmt.Sprintf("manifests[%d]", i), m); err != nil {
				return parsedManifest{}, err
			}
			p.refs = append(p.refs, metadata.Ref{Digest: m.Digest, Kind: metadata.RefManifest})
		}
	default:
		return parsedManifest{}, manifestErr("unsupported manifest media type %q", mt)
	}
	if doc.Subject != nil {
		if err := checkDescriptor("subject", *doc.Subject); err != nil {
			return parsedManifest{}, err
		}
		p.subject = doc.Subject.Digest
	}
	p.refs = dedupRefs(p.refs)
	return p, nil
}

func checkDescriptor(where string, d Descriptor) error {
	if d.MediaType == "" {
		return manifestErr("%s: mediaType is required", where)
	}
	if _, err := ParseDigest(d.Digest); err != nil {
		return manifestErr("%s: %v", where, err)
	}
	if d.Size < 0 {
		return manifestErr("%s: size must not be negative", where)
	}
	return nil
}

func dedupRefs(refs []metadata.Ref) []metadata.Ref {
	seen := make(map[string]bool, len(refs))
	out := refs[:0]
	for _, r := range refs {
		if !seen[r.Digest] {
			seen[r.Digest] = true
			out = append(out, r)
		}
	}
	return out
}

// PutManifestResult reports a stored manifest.
type PutManifestResult struct {
	Digest    Digest
	Subject   string
	MediaType string // the manifest's media type, as stored
}

// PutManifest stores a manifest under ref (a tag, or its own digest) in
// repo. Every referenced blob and child manifest must already be in the
// repository; a tag protected by the repository's immutability settings
// cannot move.
func (r *Registry) PutManifest(ctx context.Context, repo metadata.Repository, ref, contentType string, body []byte) (PutManifestResult, error) {
	if len(body) > MaxManifestSize {
		return PutManifestResult{}, fmt.Errorf("%w: %d bytes exceeds the %d byte limit", ErrManifestTooLarge, len(body), MaxManifestSize)
	}
	sum := sha256.Sum256(body)
	d := Digest("sha256:" + hex.EncodeToString(sum[:]))
	tag := ""
	if IsDigest(ref) {
		want, err := ParseDigest(ref)
		if err != nil {
			return PutManifestResult{}, err
		}
		if want != d {
			return PutManifestResult{}, fmt.Errorf("%w: manifest content has digest %s, not %s", ErrDigestInvalid, d, want)
		}
	} else {
		if !ValidTag(ref) {
			return PutManifestResult{}, manifestErr("invalid tag %q", truncate(ref))
		}
		tag = ref
	}
	p, err := parseManifest(contentType, body)
	if err != nil {
		return PutManifestResult{}, err
	}
	size := r.imageSize(ctx, repo, p)
	key := manifestKey(repo.ID, d)
	if _, err := r.writeObject(ctx, repo, key, bytes.NewReader(body), nil, sum[:]); err != nil {
		return PutManifestResult{}, err
	}
	res, err := r.cfg.Store.PutManifest(ctx, metadata.PutManifest{
		Manifest: metadata.Manifest{
			RepoID: repo.ID, Digest: string(d), MediaType: p.mediaType, Size: int64(len(body)),
			ObjectKey: key, ArtifactType: p.artifactType, Subject: p.subject,
			// Annotations stay in the encrypted manifest only: they are
			// content, and the metadata store is not encrypted.
			PushedAt:  r.now().UTC(),
			ImageSize: size,
		},
		Refs:      p.refs,
		Tag:       tag,
		Immutable: TagImmutable(repo),
		Quota:     r.quota(repo),
	})
	if err != nil || !res.Created {
		r.deleteObjects(ctx, key) // unique key: referenced by no row
	}
	switch {
	case errors.Is(err, metadata.ErrBlobUnknown):
		return PutManifestResult{}, fmt.Errorf("%w: %v", ErrManifestBlobUnknown, err)
	case errors.Is(err, metadata.ErrManifestUnknown):
		return PutManifestResult{}, fmt.Errorf("%w: %w: %v", ErrManifestBlobUnknown, ErrManifestChildUnknown, err)
	case errors.Is(err, metadata.ErrTagImmutable):
		return PutManifestResult{}, &TagImmutableError{Tag: tag, Repository: repo.Name}
	case errors.Is(err, metadata.ErrRepositoryUnknown):
		return PutManifestResult{}, fmt.Errorf("%w: repository %s does not exist", ErrNameUnknown, repo.Name)
	case errors.Is(err, metadata.ErrQuotaExceeded):
		return PutManifestResult{}, quotaErr(repo, err)
	case err != nil:
		return PutManifestResult{}, fmt.Errorf("put manifest %s: %w", d, err)
	}
	return PutManifestResult{Digest: d, Subject: p.subject, MediaType: p.mediaType}, nil
}

// TagImmutable returns the repository's rule for whether an existing tag may
// move (ECR imageTagMutability with exclusion filters).
func TagImmutable(repo metadata.Repository) func(tag string) bool {
	return func(tag string) bool {
		excluded := false
		for _, f := range repo.TagMutabilityExclusions {
			if wildcardMatch(f, tag) {
				excluded = true
				break
			}
		}
		switch repo.TagMutability {
		case metadata.TagImmutable:
			return true
		case metadata.TagImmutableWithExclusion:
			return !excluded
		case metadata.TagMutableWithExclusion:
			return excluded
		default:
			return false
		}
	}
}

// wildcardMatch matches s against a pattern where '*' matches any run of
// characters, in time linear in len(pattern)*len(s) at worst.
func wildcardMatch(pattern, s string) bool {
	p, i := 0, 0
	star, mark := -1, 0
	for i < len(s) {
		switch {
		case p < len(pattern) && pattern[p] == '*':
			star, mark = p, i
			p++
		case p < len(pattern) && pattern[p] == s[i]:
			p++
			i++
		case star >= 0:
			p = star + 1
			mark++
			i = mark
		default:
			return false
		}
	}
	for p < len(pattern) && pattern[p] == '*' {
		p++
	}
	return p == len(pattern)
}

// ResolveManifest returns the manifest that ref (tag or digest) names.
func (r *Registry) ResolveManifest(ctx context.Context, repo metadata.Repository, ref string) (metadata.Manifest, error) {
	var (
		m   metadata.Manifest
		err error
	)
	if IsDigest(ref) {
		d, perr := ParseDigest(ref)
		if perr != nil {
			return metadata.Manifest{}, perr
		}
		m, err = r.cfg.Store.GetManifest(ctx, repo.ID, string(d))
	} else {
		if !ValidTag(ref) {
			// No manifest can have an invalid tag: a read of one is a miss
			// (404), as the distribution spec's conformance suite expects.
			return metadata.Manifest{}, fmt.Errorf("%w: %q is not a valid tag", ErrManifestUnknown, truncate(ref))
		}
		m, err = r.cfg.Store.ResolveTag(ctx, repo.ID, ref)
	}
	if errors.Is(err, metadata.ErrNotFound) {
		return metadata.Manifest{}, fmt.Errorf("%w: %s in %s", ErrManifestUnknown, truncate(ref), repo.Name)
	}
	if err != nil {
		return metadata.Manifest{}, fmt.Errorf("resolve %s: %w", truncate(ref), err)
	}
	return m, nil
}

// ReadManifest returns the verified manifest bytes and records the pull.
func (r *Registry) ReadManifest(ctx context.Context, repo metadata.Repository, m metadata.Manifest) ([]byte, error) {
	body, err := r.readManifest(ctx, repo, m)
	if err != nil {
		return nil, err
	}
	r.pulls.record(repo.ID, m.Digest, r.now())
	return body, nil
}

func (r *Registry) readManifest(ctx context.Context, repo metadata.Repository, m metadata.Manifest) ([]byte, error) {
	rc, err := r.openObject(ctx, repo, m.ObjectKey, m.Size, 0, -1, digestBinding(Digest(m.Digest)))
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}

// DeleteManifest deletes by digest (the manifest and its tags) or by tag
// (only the tag).
func (r *Registry) DeleteManifest(ctx context.Context, repo metadata.Repository, ref string) error {
	if !IsDigest(ref) {
		if !ValidTag(ref) {
			return fmt.Errorf("%w: invalid tag %q", ErrManifestInvalid, truncate(ref))
		}
		if err := r.cfg.Store.DeleteTag(ctx, repo.ID, ref); err != nil {
			if errors.Is(err, metadata.ErrNotFound) {
				return fmt.Errorf("%w: tag %s in %s", ErrManifestUnknown, ref, repo.Name)
			}
			return fmt.Errorf("delete tag %s: %w", ref, err)
		}
		return nil
	}
	d, err := ParseDigest(ref)
	if err != nil {
		return err
	}
	orphan, err := r.cfg.Store.DeleteManifest(ctx, repo.ID, string(d))
	if errors.Is(err, metadata.ErrNotFound) {
		return fmt.Errorf("%w: %s in %s", ErrManifestUnknown, d, repo.Name)
	}
	if err != nil {
		return fmt.Errorf("delete manifest %s: %w", d, err)
	}
	if orphan != "" {
		r.deleteObjects(ctx, orphan)
	}
	return nil
}

// ListTags returns up to n tags after last (n < 0: all), and whether more
// follow.
func (r *Registry) ListTags(ctx context.Context, repo metadata.Repository, last string, n int) ([]string, bool, error) {
	limit := n + 1
	if n < 0 {
		limit = 0
	}
	tags, err := r.cfg.Store.ListTags(ctx, repo.ID, last, limit)
	if err != nil {
		return nil, false, fmt.Errorf("list tags: %w", err)
	}
	if n >= 0 && len(tags) > n {
		return tags[:n], true, nil
	}
	return tags, false, nil
}

// Referrers returns descriptors of the manifests whose subject is d,
// optionally filtered by artifactType. Annotations are read from each
// referrer's encrypted manifest, never from plaintext metadata.
func (r *Registry) Referrers(ctx context.Context, repo metadata.Repository, d Digest, artifactType string) ([]Descriptor, error) {
	ms, err := r.cfg.Store.Referrers(ctx, repo.ID, string(d), artifactType)
	if err != nil {
		return nil, fmt.Errorf("referrers of %s: %w", d, err)
	}
	out := make([]Descriptor, 0, len(ms))
	for _, m := range ms {
		body, err := r.readManifest(ctx, repo, m)
		if err != nil {
			return nil, err
		}
		var doc struct {
			Annotations map[string]string `json:"annotations"`
		}
		if err := json.Unmarshal(body, &doc); err != nil {
			return nil, fmt.Errorf("%w: stored manifest %s: %v", ErrCorrupt, m.Digest, err)
		}
		out = append(out, Descriptor{MediaType: m.MediaType, Digest: m.Digest, Size: m.Size, ArtifactType: m.ArtifactType, Annotations: doc.Annotations})
	}
	return out, nil
}
