package registry

import (
	"errors"
	"fmt"
)

// Sentinel errors of the registry service. The OCI and ECR layers map them to
// their protocol's codes; messages wrapped around them are safe to show.
var (
	ErrNameInvalid         = errors.New("invalid repository name")
	ErrNameUnknown         = errors.New("repository name not known to registry")
	ErrBlobUnknown         = errors.New("blob unknown to registry")
	ErrUploadUnknown       = errors.New("blob upload unknown to registry")
	ErrUploadInvalid       = errors.New("blob upload invalid")
	ErrDigestInvalid       = errors.New("provided digest did not match uploaded content")
	ErrSizeInvalid         = errors.New("provided length did not match content length")
	ErrManifestInvalid     = errors.New("manifest invalid")
	ErrManifestUnknown     = errors.New("manifest unknown")
	ErrManifestBlobUnknown = errors.New("manifest references a blob unknown to the repository")
	ErrManifestTooLarge    = errors.New("manifest too large")
	ErrUnsupported         = errors.New("the operation is unsupported")
	ErrTagImmutable        = errors.New("tag is immutable")
	// ErrCorrupt reports stored content that failed authentication or its
	// digest check: it is never served.
	ErrCorrupt = errors.New("stored content failed its integrity check")
	// ErrNotBuilt reports a feature whose issue has not landed yet.
	ErrNotBuilt = errors.New("not built yet")
	// ErrQuotaExceeded refuses a push that would take a repository over its
	// quota (Coffer's extension): OCI TOOMANYREQUESTS, ECR
	// LimitExceededException.
	ErrQuotaExceeded = errors.New("repository quota exceeded")
)

// Sentinels of the ECR image operations.
var (
	// ErrManifestChildUnknown accompanies ErrManifestBlobUnknown when the
	// missing reference is an index's child manifest (ECR
	// ReferencedImagesNotFoundException).
	ErrManifestChildUnknown = errors.New("manifest list references an image that does not exist")
	// ErrImageReferenced refuses to delete a manifest an index lists.
	ErrImageReferenced = errors.New("image is referenced by a manifest list")
	// ErrTagMismatch reports a tag that points at another digest than the
	// one given with it.
	ErrTagMismatch = errors.New("image tag does not match the digest")
)

// TagImmutableError refuses to move a tag the repository's immutability
// settings protect. Its text is ECR's message, so both doors (OCI manifest
// PUT and ECR PutImage) answer with the same words.
type TagImmutableError struct {
	Tag        string
	Repository string
}

func (e *TagImmutableError) Error() string {
	return fmt.Sprintf("The image tag '%s' already exists in the '%s' repository and cannot be overwritten because the repository is immutable.", e.Tag, e.Repository)
}

// Is makes errors.Is(err, ErrTagImmutable) true.
func (e *TagImmutableError) Is(target error) bool { return target == ErrTagImmutable }

// RangeError reports a chunk that does not start where the upload ends.
type RangeError struct {
	Size int64 // bytes the session holds
	Msg  string
}

func (e *RangeError) Error() string { return e.Msg }

// Is makes errors.Is(err, ErrUploadInvalid) true.
func (e *RangeError) Is(target error) bool { return target == ErrUploadInvalid }

func rangeErr(size int64, format string, args ...any) error {
	return &RangeError{Size: size, Msg: fmt.Sprintf(format, args...)}
}
