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
)

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
