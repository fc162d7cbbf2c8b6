package ecrapi

import (
	"context"
	"encoding/base64"
	"net/http"
	"strings"

	"github.com/cofferhq/coffer/internal/auth"
	"github.com/cofferhq/coffer/internal/metadata"
	"github.com/cofferhq/coffer/internal/registry"
)

// ListImages and DescribeImages page through the repository's manifests in
// digest order with keyset pagination: a page is one index range scan, so
// its cost does not grow with the repository (a page of 1,000 out of
// 100,000 images is measured in BenchmarkDescribeImagesPage; pages of a
// repository of 1,000,000 tags through `coffer serve` in `go run ./bench
// -listing`, docs/benchmarks.md).

const (
	defaultImagePage = 100 // ECR's page when maxResults is absent
	maxImagePage     = 1000
	// imageScanWindow bounds the images an UNTAGGED page examines (each
	// probes the tags), so a page costs the same however rare untagged
	// images are: a page may then be short, with a nextToken (ECR's paging
	// allows it). 10,000 probes took 25 ms of a page's p50 and most of its
	// p99 on SQLite at 1,000,000 tags (issue #9's 50 ms); 2,000 take about
	// 5. TAGGED pages scan only tagged images and need no window.
	imageScanWindow = 2_000
)

// Page tokens are opaque to clients: base64url of kind NUL digest NUL tag.
// They hold only the position (digests of a repository the caller may
// list), so they need no signature; the kind keeps a ListImages token out
// of DescribeImages.
const (
	tokenListImages     = "li1"
	tokenDescribeImages = "di1"
	maxTokenLen         = 1024
)

func encodeImageToken(kind, digest, tag string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(kind + "\x00" + digest + "\x00" + tag))
}

func decodeImageToken(kind, tok string) (digest, tag string, err error) {
	bad := imgParamErr("Invalid parameter at 'nextToken': the token is not one this operation issued")
	if len(tok) > maxTokenLen {
		return "", "", bad
	}
	raw, derr := base64.RawURLEncoding.DecodeString(tok)
	if derr != nil {
		return "", "", bad
	}
	parts := strings.Split(string(raw), "\x00")
	if len(parts) != 3 || parts[0] != kind {
		return "", "", bad
	}
	if _, perr := registry.ParseDigest(parts[1]); perr != nil {
		return "", "", bad
	}
	if parts[2] != "" && !registry.ValidTag(parts[2]) {
		return "", "", bad
	}
	return parts[1], parts[2], nil
}

type imageFilter struct {
	TagStatus   string `json:"tagStatus"`
	ImageStatus string `json:"imageStatus"`
}

// check validates the filter and reports whether any image can match:
// Coffer has no archive, so every image is ACTIVE.
func (f *imageFilter) check() (tagStatus string, any bool, err error) {
	if f == nil {
		return metadata.TagStatusAny, true, nil
	}
	switch f.TagStatus {
	case "":
		tagStatus = metadata.TagStatusAny
	case metadata.TagStatusAny, metadata.TagStatusTagged, metadata.TagStatusUntagged:
		tagStatus = f.TagStatus
	default:
		return "", false, imgParamErr("Invalid parameter at 'filter.tagStatus' failed to satisfy constraint: 'Member must satisfy enum value set: [TAGGED, UNTAGGED, ANY]'")
	}
	switch f.ImageStatus {
	case "", "ACTIVE", "ANY":
		return tagStatus, true, nil
	case "ARCHIVED", "ACTIVATING":
		return tagStatus, false, nil
	}
	return "", false, imgParamErr("Invalid parameter at 'filter.imageStatus' failed to satisfy constraint: 'Member must satisfy enum value set: [ACTIVE, ARCHIVED, ACTIVATING, ANY]'")
}

func pageSize(maxResults *int) (int, error) {
	if maxResults == nil {
		return defaultImagePage, nil
	}
	if *maxResults < 1 || *maxResults > maxImagePage {
		return 0, imgParamErr("Invalid parameter at 'maxResults' failed to satisfy constraint: 'Member must have value between 1 and %d'", maxImagePage)
	}
	return *maxResults, nil
}

type listImagesInput struct {
	RegistryID     string       `json:"registryId"`
	RepositoryName string       `json:"repositoryName"`
	NextToken      *string      `json:"nextToken"`
	MaxResults     *int         `json:"maxResults"`
	Filter         *imageFilter `json:"filter"`
}

// listImages lists (digest, tag) pairs: one entry per tag, and the digest
// alone for an untagged image. maxResults counts entries, so the token is a
// (digest, tag) position: the next page resumes inside an image with many
// tags.
func (h *Handler) listImages(r *http.Request, info *auth.Info, body []byte) (any, error) {
	var in listImagesInput
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	ctx := r.Context()
	repo, err := h.imageRepo(ctx, info, "ecr:ListImages", in.RegistryID, in.RepositoryName)
	if err != nil {
		return nil, err
	}
	n, err := pageSize(in.MaxResults)
	if err != nil {
		return nil, err
	}
	status, anyMatch, err := in.Filter.check()
	if err != nil {
		return nil, err
	}
	// The token is the last entry listed: (digest, tag) resumes inside that
	// image after the tag; (digest, "") after the image.
	var fromDigest, fromTag, from string
	if in.NextToken != nil {
		if fromDigest, fromTag, err = decodeImageToken(tokenListImages, *in.NextToken); err != nil {
			return nil, err
		}
		from = fromDigest
		if fromTag == "" {
			from += "\x00" // the smallest string after the digest: From is inclusive
		}
	}
	ids := []imageID{}
	if !anyMatch {
		return map[string]any{"imageIds": ids}, nil
	}
	// Every image yields at least one entry, so n+1 images fill the page
	// and show whether more follow (the first may be the one the token
	// points into, already partly listed).
	page, err := h.cfg.Registry.ListImages(ctx, repo, metadata.ImageQuery{From: from, TagStatus: status, Limit: n + 1, Window: imageScanWindow})
	if err != nil {
		return nil, err
	}
	next := ""
	untagged := []string{""}
fill:
	for _, m := range page.Images {
		tags := m.Tags
		if len(tags) == 0 {
			tags = untagged
		}
		for _, t := range tags {
			if m.Digest == fromDigest && t <= fromTag {
				continue // listed on an earlier page
			}
			if len(ids) == n {
				last := ids[n-1]
				next = encodeImageToken(tokenListImages, last.ImageDigest, last.ImageTag)
				break fill
			}
			ids = append(ids, imageID{ImageDigest: m.Digest, ImageTag: t})
		}
	}
	switch {
	case next != "":
	case page.ScannedTo != "":
		next = encodeImageToken(tokenListImages, page.ScannedTo, "")
	case len(page.Images) == n+1 && len(ids) > 0:
		last := ids[len(ids)-1]
		next = encodeImageToken(tokenListImages, last.ImageDigest, last.ImageTag)
	}
	out := map[string]any{"imageIds": ids}
	if next != "" {
		out["nextToken"] = next
	}
	return out, nil
}

type describeImagesInput struct {
	RegistryID     string       `json:"registryId"`
	RepositoryName string       `json:"repositoryName"`
	ImageIDs       []imageID    `json:"imageIds"`
	NextToken      *string      `json:"nextToken"`
	MaxResults     *int         `json:"maxResults"`
	Filter         *imageFilter `json:"filter"`
}

// imageDetail is ECR's ImageDetail, without the scanning members (no
// scanner is configured: they are absent, not faked).
type imageDetail struct {
	RegistryID             string   `json:"registryId"`
	RepositoryName         string   `json:"repositoryName"`
	ImageDigest            string   `json:"imageDigest"`
	ImageTags              []string `json:"imageTags,omitempty"`
	ImageSizeInBytes       int64    `json:"imageSizeInBytes"`
	ImagePushedAt          float64  `json:"imagePushedAt"`
	ImageManifestMediaType string   `json:"imageManifestMediaType,omitempty"`
	ArtifactMediaType      string   `json:"artifactMediaType,omitempty"`
	LastRecordedPullTime   *float64 `json:"lastRecordedPullTime,omitempty"`
	SubjectManifestDigest  string   `json:"subjectManifestDigest,omitempty"`
	ImageStatus            string   `json:"imageStatus"`
}

// describeImages describes the images imageIds names (an
// ImageNotFoundException for the first that does not exist), or a page of
// all of them.
func (h *Handler) describeImages(r *http.Request, info *auth.Info, body []byte) (any, error) {
	var in describeImagesInput
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	ctx := r.Context()
	repo, err := h.imageRepo(ctx, info, "ecr:DescribeImages", in.RegistryID, in.RepositoryName)
	if err != nil {
		return nil, err
	}
	if in.ImageIDs != nil {
		if in.NextToken != nil || in.MaxResults != nil {
			return nil, imgParamErr("Invalid parameter: nextToken and maxResults cannot be used with imageIds")
		}
		if err := checkImageIDList(in.ImageIDs, true); err != nil {
			return nil, err
		}
		return h.describeImageIDs(ctx, repo, in.ImageIDs)
	}
	n, err := pageSize(in.MaxResults)
	if err != nil {
		return nil, err
	}
	status, anyMatch, err := in.Filter.check()
	if err != nil {
		return nil, err
	}
	from := ""
	if in.NextToken != nil {
		d, _, err := decodeImageToken(tokenDescribeImages, *in.NextToken)
		if err != nil {
			return nil, err
		}
		from = d + "\x00" // the smallest string after d: From is inclusive
	}
	details := []imageDetail{}
	if !anyMatch {
		return map[string]any{"imageDetails": details}, nil
	}
	page, err := h.cfg.Registry.ListImages(ctx, repo, metadata.ImageQuery{From: from, TagStatus: status, Limit: n + 1, Window: imageScanWindow})
	if err != nil {
		return nil, err
	}
	ms := page.Images
	out := map[string]any{}
	switch {
	case len(ms) > n:
		ms = ms[:n]
		out["nextToken"] = encodeImageToken(tokenDescribeImages, ms[n-1].Digest, "")
	case page.ScannedTo != "":
		out["nextToken"] = encodeImageToken(tokenDescribeImages, page.ScannedTo, "")
	}
	for _, m := range ms {
		d, err := h.imageDetail(ctx, repo, m)
		if err != nil {
			return nil, err
		}
		details = append(details, d)
	}
	out["imageDetails"] = details
	return out, nil
}

func (h *Handler) describeImageIDs(ctx context.Context, repo metadata.Repository, ids []imageID) (any, error) {
	details := []imageDetail{}
	seen := map[string]bool{}
	for _, id := range ids {
		m, f, err := h.resolveImageID(ctx, repo, id)
		if err != nil {
			return nil, err
		}
		if f != nil {
			switch f.FailureCode {
			case failNotFound, failTagDigest:
				return nil, imgErr("ImageNotFoundException", "The image with imageId {imageDigest:'%s', imageTag:'%s'} does not exist within the repository with name '%s' in the registry with id '%s'",
					nullStr(id.ImageDigest), nullStr(id.ImageTag), repo.Name, h.cfg.Registry.AccountID())
			default:
				return nil, imgParamErr("Invalid parameter at 'imageIds': %s", f.FailureReason)
			}
		}
		if seen[m.Digest] {
			continue
		}
		seen[m.Digest] = true
		m.Tags, err = h.cfg.Registry.ImageTags(ctx, repo, registry.Digest(m.Digest))
		if err != nil {
			return nil, err
		}
		d, err := h.imageDetail(ctx, repo, m)
		if err != nil {
			return nil, err
		}
		details = append(details, d)
	}
	return map[string]any{"imageDetails": details}, nil
}

func nullStr(s string) string {
	if s == "" {
		return "null"
	}
	return s
}

func (h *Handler) imageDetail(ctx context.Context, repo metadata.Repository, m metadata.Manifest) (imageDetail, error) {
	size, err := h.cfg.Registry.ImageSize(ctx, repo, m)
	if err != nil {
		return imageDetail{}, err
	}
	d := imageDetail{
		RegistryID:             h.cfg.Registry.AccountID(),
		RepositoryName:         repo.Name,
		ImageDigest:            m.Digest,
		ImageTags:              m.Tags,
		ImageSizeInBytes:       size,
		ImagePushedAt:          imgTime(m.PushedAt),
		ImageManifestMediaType: m.MediaType,
		ArtifactMediaType:      m.ArtifactType,
		SubjectManifestDigest:  m.Subject,
		ImageStatus:            "ACTIVE",
	}
	if d.ArtifactMediaType == "" && (m.MediaType == registry.MediaTypeOCIManifest || m.MediaType == registry.MediaTypeDockerManifest) {
		// The registry records a config media type only when it is not
		// the OCI image config's.
		d.ArtifactMediaType = "application/vnd.oci.image.config.v1+json"
	}
	if t := h.cfg.Registry.LastPull(m); !t.IsZero() {
		v := imgTime(t)
		d.LastRecordedPullTime = &v
	}
	return d, nil
}
