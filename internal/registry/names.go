package registry

import (
	"fmt"
	"regexp"
	"strings"
)

// RepoName is a validated ECR repository name.
type RepoName string

// ECR's grammar (the botocore model's RepositoryName pattern, also the OCI
// one): 2-256 characters, lowercase segments joined by '/', whose parts
// are separated by '.', '_', '__' or a run of '-'.
var repoNameRE = regexp.MustCompile(`^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*$`)

// ParseRepoName validates an ECR repository name.
func ParseRepoName(s string) (RepoName, error) {
	if len(s) < 2 || len(s) > 256 {
		return "", fmt.Errorf("%w: repository name must be 2 to 256 characters long", ErrNameInvalid)
	}
	if !repoNameRE.MatchString(s) {
		return "", fmt.Errorf("%w: repository name %q must be lowercase segments of [a-z0-9] separated by '.', '_', '__' or dashes, joined by '/'", ErrNameInvalid, s)
	}
	return RepoName(s), nil
}

// Digest is a validated "sha256:<64 lowercase hex>" content digest. Coffer
// stores content under SHA-256 only.
type Digest string

// digestRE is the OCI digest grammar (algorithm:encoded).
var digestRE = regexp.MustCompile(`^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$`)

// ParseDigest validates a digest. A well-formed digest of another algorithm
// is ErrUnsupportedDigest; anything else is ErrDigestInvalid.
func ParseDigest(s string) (Digest, error) {
	if len(s) > 256 || !digestRE.MatchString(s) {
		return "", fmt.Errorf("%w: %q is not a digest", ErrDigestInvalid, truncate(s))
	}
	alg, hex, _ := strings.Cut(s, ":")
	if alg != "sha256" {
		return "", fmt.Errorf("%w: digest algorithm %q is not supported; use sha256", ErrDigestInvalid, alg)
	}
	if len(hex) != 64 || strings.Trim(hex, "0123456789abcdef") != "" {
		return "", fmt.Errorf("%w: %q is not a sha256 digest (64 lowercase hex characters)", ErrDigestInvalid, truncate(s))
	}
	return Digest(s), nil
}

// Hex returns the encoded part of the digest.
func (d Digest) Hex() string { return strings.TrimPrefix(string(d), "sha256:") }

// tagRE is the OCI tag grammar; ECR allows the same 1-128 characters.
var tagRE = regexp.MustCompile(`^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$`)

// ValidTag reports whether s is a valid tag.
func ValidTag(s string) bool { return tagRE.MatchString(s) }

// IsDigest reports whether a manifest reference is a digest rather than a tag.
func IsDigest(ref string) bool { return strings.Contains(ref, ":") }

func truncate(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}
