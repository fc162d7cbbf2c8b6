package ecrapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/cofferhq/coffer/internal/auth"
	"github.com/cofferhq/coffer/internal/metadata"
	"github.com/cofferhq/coffer/internal/registry"
)

// Images: PutImage, BatchGetImage, BatchDeleteImage (this file), ListImages
// and DescribeImages (images_list.go). They go through the same registry
// calls as the OCI door (PutManifest, ResolveManifest, ReadManifest), so tag
// immutability, reference checks and pull recording are identical on both.

var imageOps = map[string]op{
	"PutImage":         (*Handler).putImage,
	"BatchGetImage":    (*Handler).batchGetImage,
	"BatchDeleteImage": (*Handler).batchDeleteImage,
	"ListImages":       (*Handler).listImages,
	"DescribeImages":   (*Handler).describeImages,
}

func init() { opGroups = append(opGroups, imageOps) }

// ImageIdentifierList and MediaTypeList bounds (botocore model).
const maxImageIDs = 100

// imageID is ECR's ImageIdentifier.
type imageID struct {
	ImageDigest string `json:"imageDigest,omitempty"`
	ImageTag    string `json:"imageTag,omitempty"`
}

// imageFailure is ECR's ImageFailure.
type imageFailure struct {
	ImageID       imageID `json:"imageId"`
	FailureCode   string  `json:"failureCode"`
	FailureReason string  `json:"failureReason"`
}

// ImageFailureCode values (botocore model).
const (
	failInvalidDigest    = "InvalidImageDigest"
	failInvalidTag       = "InvalidImageTag"
	failTagDigest        = "ImageTagDoesNotMatchDigest"
	failNotFound         = "ImageNotFound"
	failMissingDigestTag = "MissingDigestAndTag"
	failReferencedByList = "ImageReferencedByManifestList"
	failKMS              = "KmsError"
)

// image is ECR's Image.
type image struct {
	RegistryID             string  `json:"registryId"`
	RepositoryName         string  `json:"repositoryName"`
	ImageID                imageID `json:"imageId"`
	ImageManifest          string  `json:"imageManifest"`
	ImageManifestMediaType string  `json:"imageManifestMediaType,omitempty"`
}

func imgParamErr(format string, args ...any) *Error {
	return &Error{Type: "InvalidParameterException", Status: http.StatusBadRequest, Message: fmt.Sprintf(format, args...)}
}

func imgErr(typ, format string, args ...any) *Error {
	return &Error{Type: typ, Status: http.StatusBadRequest, Message: fmt.Sprintf(format, args...)}
}

// imgRequired is the message of a required member that is missing.
func imgRequired(member string) *Error {
	return imgParamErr("Invalid parameter at '%s' failed to satisfy constraint: 'Member must not be null'", member)
}

// digestCause is a ParseDigest error without its sentinel's words (which
// are about upload content, not a malformed parameter).
func digestCause(err error) string {
	return strings.TrimPrefix(err.Error(), registry.ErrDigestInvalid.Error()+": ")
}

// imgTime is an ECR timestamp: epoch seconds with milliseconds.
func imgTime(t time.Time) float64 { return float64(t.UnixMilli()) / 1000 }

// imageRepo checks registryId and repositoryName (with the repository
// operations' rules and words: registryScope), names the repository in the
// audit record, authorizes action on it and returns it. Authorization comes
// before the existence check, so a caller without access learns nothing
// about which repositories exist.
func (h *Handler) imageRepo(ctx context.Context, info *auth.Info, action, registryID, name string) (metadata.Repository, error) {
	scope := h.registryScope()
	if registryID != "" {
		if err := scope.checkRegistryID(&registryID); err != nil {
			return metadata.Repository{}, err
		}
	}
	if name == "" {
		return metadata.Repository{}, imgRequired("repositoryName")
	}
	rn, err := repositoryName(name)
	if err != nil {
		return metadata.Repository{}, err
	}
	arn := h.cfg.Registry.RepositoryARN(string(rn))
	info.Resources = append(info.Resources, arn)
	if info.Params == nil {
		info.Params = map[string]any{}
	}
	info.Params["repositoryName"] = string(rn)
	if err := h.cfg.Authz.Authorize(ctx, info, action, arn); err != nil {
		return metadata.Repository{}, err
	}
	repo, err := h.cfg.Registry.Repository(ctx, rn)
	if errors.Is(err, registry.ErrNameUnknown) {
		return metadata.Repository{}, scope.repositoryNotFound(rn)
	}
	return repo, err
}

type putImageInput struct {
	RegistryID             string  `json:"registryId"`
	RepositoryName         string  `json:"repositoryName"`
	ImageManifest          *string `json:"imageManifest"`
	ImageManifestMediaType string  `json:"imageManifestMediaType"`
	ImageTag               *string `json:"imageTag"`
	ImageDigest            *string `json:"imageDigest"`
}

// putImage stores a manifest and optionally tags it: the OCI manifest PUT
// through the ECR API, with ECR's errors.
func (h *Handler) putImage(r *http.Request, info *auth.Info, body []byte) (any, error) {
	var in putImageInput
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	ctx := r.Context()
	repo, err := h.imageRepo(ctx, info, "ecr:PutImage", in.RegistryID, in.RepositoryName)
	if err != nil {
		return nil, err
	}
	if in.ImageManifest == nil {
		return nil, imgRequired("imageManifest")
	}
	manifest := []byte(*in.ImageManifest)
	if len(manifest) < 1 || len(manifest) > registry.MaxManifestSize {
		return nil, imgParamErr("Invalid parameter at 'imageManifest' failed to satisfy constraint: 'Member must have length between 1 and %d'", registry.MaxManifestSize)
	}
	d := registry.ManifestDigest(manifest)
	if in.ImageDigest != nil {
		want, err := registry.ParseDigest(*in.ImageDigest)
		if err != nil {
			return nil, imgParamErr("Invalid parameter at 'imageDigest' failed to satisfy constraint: %s", digestCause(err))
		}
		if want != d {
			return nil, imgErr("ImageDigestDoesNotMatchException",
				"Provided digest '%s' does not match the digest '%s' that Amazon ECR calculated for the image manifest", want, d)
		}
	}
	ref, tag := string(d), ""
	if in.ImageTag != nil {
		tag = *in.ImageTag
		if len(tag) < 1 || len(tag) > 300 || !registry.ValidTag(tag) {
			return nil, imgParamErr("Invalid parameter at 'imageTag' failed to satisfy constraint: 'must be 1 to 128 characters of [a-zA-Z0-9_.-], not starting with . or -'")
		}
		ref = tag
		info.Params["imageTag"] = tag
	}
	// Same manifest under the same tag (or untagged, by digest) is already
	// there: ECR refuses the no-op push.
	if cur, err := h.cfg.Registry.ResolveManifest(ctx, repo, ref); err == nil && cur.Digest == string(d) {
		what := fmt.Sprintf("Image with digest '%s'", d)
		if tag != "" {
			what += fmt.Sprintf(" and tag '%s'", tag)
		}
		return nil, imgErr("ImageAlreadyExistsException", "%s already exists in the repository with name '%s' in registry with id '%s'",
			what, repo.Name, h.cfg.Registry.AccountID())
	}
	res, err := h.cfg.Registry.PutManifest(ctx, repo, ref, in.ImageManifestMediaType, manifest)
	switch {
	case errors.Is(err, registry.ErrManifestChildUnknown):
		return nil, imgErr("ReferencedImagesNotFoundException", "The manifest list references images that do not exist in the repository with name '%s': %v", repo.Name, err)
	case errors.Is(err, registry.ErrManifestBlobUnknown):
		return nil, imgErr("LayersNotFoundException", "Layers referenced by the image manifest are not in the repository with name '%s': %v", repo.Name, err)
	case err != nil:
		return nil, err
	}
	return map[string]any{"image": image{
		RegistryID:             h.cfg.Registry.AccountID(),
		RepositoryName:         repo.Name,
		ImageID:                imageID{ImageDigest: string(res.Digest), ImageTag: tag},
		ImageManifest:          *in.ImageManifest,
		ImageManifestMediaType: res.MediaType,
	}}, nil
}

// resolveImageID finds the manifest an ImageIdentifier names, or says why
// not with an ImageFailure.
func (h *Handler) resolveImageID(ctx context.Context, repo metadata.Repository, id imageID) (metadata.Manifest, *imageFailure, error) {
	fail := func(code, reason string) (metadata.Manifest, *imageFailure, error) {
		return metadata.Manifest{}, &imageFailure{ImageID: id, FailureCode: code, FailureReason: reason}, nil
	}
	if f := checkImageID(id); f != nil {
		return metadata.Manifest{}, f, nil
	}
	ref := id.ImageTag
	if ref == "" {
		ref = id.ImageDigest
	}
	m, err := h.cfg.Registry.ResolveManifest(ctx, repo, ref)
	if errors.Is(err, registry.ErrManifestUnknown) {
		return fail(failNotFound, "Requested image not found")
	}
	if err != nil {
		return metadata.Manifest{}, nil, err
	}
	if id.ImageDigest != "" && id.ImageTag != "" && m.Digest != id.ImageDigest {
		return fail(failTagDigest, "Invalid request parameters: image tag and digest do not match")
	}
	return m, nil, nil
}

// checkImageID validates an ImageIdentifier's form.
func checkImageID(id imageID) *imageFailure {
	fail := func(code, reason string) *imageFailure {
		return &imageFailure{ImageID: id, FailureCode: code, FailureReason: reason}
	}
	if id.ImageDigest == "" && id.ImageTag == "" {
		return fail(failMissingDigestTag, "Invalid request parameters: both tag and digest cannot be null")
	}
	if id.ImageDigest != "" {
		if _, err := registry.ParseDigest(id.ImageDigest); err != nil {
			return fail(failInvalidDigest, "Invalid request parameters: image digest must be sha256:<64 lowercase hex characters>")
		}
	}
	if id.ImageTag != "" && (len(id.ImageTag) > 300 || !registry.ValidTag(id.ImageTag)) {
		return fail(failInvalidTag, "Invalid request parameters: image tag must be 1 to 128 characters of [a-zA-Z0-9_.-], not starting with . or -")
	}
	return nil
}

func checkImageIDList(ids []imageID, present bool) error {
	if !present {
		return imgRequired("imageIds")
	}
	if len(ids) < 1 || len(ids) > maxImageIDs {
		return imgParamErr("Invalid parameter at 'imageIds' failed to satisfy constraint: 'Member must have length between 1 and %d'", maxImageIDs)
	}
	return nil
}

type batchGetImageInput struct {
	RegistryID         string    `json:"registryId"`
	RepositoryName     string    `json:"repositoryName"`
	ImageIDs           []imageID `json:"imageIds"`
	AcceptedMediaTypes []string  `json:"acceptedMediaTypes"`
}

// batchGetImage returns manifests: the first step of a pull. Each image read
// is recorded as a pull (lastRecordedPullTime). Manifests are served as
// stored, never converted: a manifest whose type the caller does not
// accept is an ImageNotFound failure, as a registry answers an Accept
// header it cannot satisfy.
func (h *Handler) batchGetImage(r *http.Request, info *auth.Info, body []byte) (any, error) {
	var in batchGetImageInput
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	ctx := r.Context()
	repo, err := h.imageRepo(ctx, info, "ecr:BatchGetImage", in.RegistryID, in.RepositoryName)
	if err != nil {
		return nil, err
	}
	if err := checkImageIDList(in.ImageIDs, in.ImageIDs != nil); err != nil {
		return nil, err
	}
	if in.AcceptedMediaTypes != nil && (len(in.AcceptedMediaTypes) < 1 || len(in.AcceptedMediaTypes) > 100) {
		return nil, imgParamErr("Invalid parameter at 'acceptedMediaTypes' failed to satisfy constraint: 'Member must have length between 1 and 100'")
	}
	images, failures := []image{}, []imageFailure{}
	for _, id := range in.ImageIDs {
		m, f, err := h.resolveImageID(ctx, repo, id)
		if err != nil {
			return nil, err
		}
		if f != nil {
			failures = append(failures, *f)
			continue
		}
		if in.AcceptedMediaTypes != nil && !slices.Contains(in.AcceptedMediaTypes, m.MediaType) {
			failures = append(failures, imageFailure{ImageID: id, FailureCode: failNotFound,
				FailureReason: fmt.Sprintf("Requested image not found in an accepted media type: its manifest is %s", m.MediaType)})
			continue
		}
		manifest, err := h.cfg.Registry.ReadManifest(ctx, repo, m)
		if errors.Is(err, registry.ErrKMS) {
			// The repository's KMS key refused (SPEC GRANT-03).
			failures = append(failures, imageFailure{ImageID: id, FailureCode: failKMS, FailureReason: err.Error()})
			continue
		}
		if err != nil {
			return nil, err
		}
		images = append(images, image{
			RegistryID:             h.cfg.Registry.AccountID(),
			RepositoryName:         repo.Name,
			ImageID:                imageID{ImageDigest: m.Digest, ImageTag: id.ImageTag},
			ImageManifest:          string(manifest),
			ImageManifestMediaType: m.MediaType,
		})
	}
	return map[string]any{"images": images, "failures": failures}, nil
}

type batchDeleteImageInput struct {
	RegistryID     string    `json:"registryId"`
	RepositoryName string    `json:"repositoryName"`
	ImageIDs       []imageID `json:"imageIds"`
}

// batchDeleteImage deletes with ECR's semantics: a tag is untagged, and the
// image goes with its last tag; a digest deletes the image with all its
// tags. The answer lists every (digest, tag) removed, or the digest alone
// for an untagged image.
func (h *Handler) batchDeleteImage(r *http.Request, info *auth.Info, body []byte) (any, error) {
	var in batchDeleteImageInput
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	ctx := r.Context()
	repo, err := h.imageRepo(ctx, info, "ecr:BatchDeleteImage", in.RegistryID, in.RepositoryName)
	if err != nil {
		return nil, err
	}
	if err := checkImageIDList(in.ImageIDs, in.ImageIDs != nil); err != nil {
		return nil, err
	}
	deleted, failures := []imageID{}, []imageFailure{}
	for _, id := range in.ImageIDs {
		if f := checkImageID(id); f != nil {
			failures = append(failures, *f)
			continue
		}
		del, err := h.cfg.Registry.DeleteImage(ctx, repo, registry.Digest(id.ImageDigest), id.ImageTag)
		var code, reason string
		switch {
		case errors.Is(err, registry.ErrManifestUnknown):
			code, reason = failNotFound, "Requested image not found"
		case errors.Is(err, registry.ErrTagMismatch):
			code, reason = failTagDigest, "Invalid request parameters: image tag and digest do not match"
		case errors.Is(err, registry.ErrImageReferenced):
			code, reason = failReferencedByList, "Requested image is referenced by a manifest list in the repository; delete the manifest list first"
		case err != nil:
			return nil, err
		}
		if code != "" {
			failures = append(failures, imageFailure{ImageID: id, FailureCode: code, FailureReason: reason})
			continue
		}
		if len(del.Tags) == 0 {
			deleted = append(deleted, imageID{ImageDigest: del.Digest})
		}
		for _, t := range del.Tags {
			deleted = append(deleted, imageID{ImageDigest: del.Digest, ImageTag: t})
		}
	}
	return map[string]any{"imageIds": deleted, "failures": failures}, nil
}
