// Package metadata defines the transactional metadata Store: repositories,
// blobs and their repository links, manifests with their references, tags,
// and upload sessions. Implementations live in sqlite/ (and later postgres/);
// package metadatatest is the one contract suite they all pass.
//
// What the Store guarantees (the registry relies on each point):
//   - Every mutating method is one transaction: it commits completely or not
//     at all, and a commit is durable before the method returns.
//   - PutManifest checks every reference inside the same transaction that
//     inserts the manifest and moves the tag, so a manifest never becomes
//     visible while a blob it references is missing, and a concurrent tag move
//     cannot interleave with the immutability check.
//   - Blobs are deduplicated per encryption domain: (Domain, Digest) is unique.
//   - Timestamps are stored with at least microsecond precision, in UTC.
package metadata

import (
	"context"
	"errors"
	"time"
)

// Sentinel errors. Implementations wrap them; callers test with errors.Is.
var (
	ErrNotFound          = errors.New("metadata: not found")
	ErrExists            = errors.New("metadata: already exists")
	ErrRepositoryUnknown = errors.New("metadata: repository unknown")
	ErrBlobUnknown       = errors.New("metadata: referenced blob unknown")
	ErrManifestUnknown   = errors.New("metadata: referenced manifest unknown")
	ErrTagImmutable      = errors.New("metadata: tag is immutable")
	ErrConflict          = errors.New("metadata: concurrent modification")
)

// Encryption types, as ECR names them.
const (
	EncryptionAES256  = "AES256"
	EncryptionKMS     = "KMS"
	EncryptionKMSDSSE = "KMS_DSSE"
)

// Tag mutability settings, as ECR names them.
const (
	TagMutable                = "MUTABLE"
	TagImmutable              = "IMMUTABLE"
	TagMutableWithExclusion   = "MUTABLE_WITH_EXCLUSION"
	TagImmutableWithExclusion = "IMMUTABLE_WITH_EXCLUSION"
)

// Repository is one ECR repository.
type Repository struct {
	ID   string // random UUID, stable for the repository's life; names its storage
	Name string // ECR name, unique
	// Domain is the encryption domain: blobs are deduplicated within it.
	// "aes256" for every AES256 repository; the repository ID for KMS ones.
	Domain         string
	EncryptionType string // AES256, KMS or KMS_DSSE; never changes (ENC-07)
	KMSKey         string // key ARN for KMS types, "" for AES256
	TagMutability  string
	// TagMutabilityExclusions are wildcard filters (ECR's
	// imageTagMutabilityExclusionFilters); stored, interpreted by the caller.
	TagMutabilityExclusions []string
	ScanOnPush              bool
	CreatedAt               time.Time
}

// Blob is one stored, committed blob in an encryption domain.
type Blob struct {
	Domain    string
	Digest    string // "sha256:<hex>" (validated by the caller)
	Size      int64  // plaintext size
	ObjectKey string // storage key of the ciphertext object
	CreatedAt time.Time
}

// Upload is a resumable blob upload session.
type Upload struct {
	ID        string // random UUID
	RepoID    string
	Domain    string
	Size      int64  // plaintext bytes received so far
	Parts     []Part // ciphertext objects holding the data, in order
	HashState []byte // sealed running SHA-256 state (opaque to the store)
	StartedAt time.Time
	UpdatedAt time.Time
}

// Part is one ciphertext object of an upload session.
type Part struct {
	ObjectKey string `json:"k"`
	Size      int64  `json:"s"` // plaintext bytes in this part
	// Binding is the envelope binding the part was sealed with (hex of
	// the upload's running SHA-256 after this part).
	Binding string `json:"b,omitempty"`
}

// RefKind tells what a manifest reference points at.
type RefKind int

// Reference kinds.
const (
	RefBlob     RefKind = 1 // config or layer blob: must be linked to the repository
	RefManifest RefKind = 2 // index child: must exist in the repository
)

// Ref is one reference from a manifest, checked at PutManifest.
type Ref struct {
	Digest string
	Kind   RefKind
}

// Manifest is one manifest stored in a repository.
type Manifest struct {
	RepoID       string
	Digest       string
	MediaType    string
	Size         int64
	ObjectKey    string // storage key of the encrypted manifest bytes
	ArtifactType string // OCI artifactType, or the config media type for artifacts
	Subject      string // digest of the subject manifest, "" if none
	Annotations  map[string]string
	PushedAt     time.Time
	LastPulledAt time.Time // zero if never pulled
	Tags         []string  // filled by ListManifests only
}

// PutManifest describes one manifest write.
type PutManifest struct {
	Manifest Manifest
	Refs     []Ref
	// Tag to point at the manifest, "" for a push by digest.
	Tag string
	// Immutable reports whether an existing tag may not move; consulted inside
	// the transaction only when Tag exists and points at another digest.
	Immutable func(tag string) bool
}

// PutManifestResult reports what PutManifest did.
type PutManifestResult struct {
	Created     bool   // the manifest row did not exist before
	PreviousTag string // digest the tag pointed at before, "" if new or unchanged
}

// Store is the metadata contract.
type Store interface {
	DocStore

	// Close releases the store.
	Close() error
	// Ping reports whether the database answers (readiness).
	Ping(ctx context.Context) error

	// GetSetting returns a registry-wide setting or ErrNotFound.
	GetSetting(ctx context.Context, key string) (string, error)
	// PutSettingIfAbsent stores value under key unless it exists, and returns
	// the value stored (the existing one when present).
	PutSettingIfAbsent(ctx context.Context, key, value string) (string, error)

	// CreateRepository inserts a repository; ErrExists if the name is taken.
	CreateRepository(ctx context.Context, r Repository) error
	// GetRepository returns a repository by name, or ErrNotFound.
	GetRepository(ctx context.Context, name string) (Repository, error)
	// ListRepositories returns up to limit repositories with names after
	// `after`, in name order.
	ListRepositories(ctx context.Context, after string, limit int) ([]Repository, error)
	// DeleteRepository removes the repository with its tags, manifests, blob
	// links and uploads, and returns the storage keys that no row references
	// any more (its manifests' objects, its uploads' parts, and blobs of its
	// own domain) so the caller can delete them; ErrNotFound if absent.
	DeleteRepository(ctx context.Context, name string) (orphans []string, err error)

	// GetBlob returns the committed blob (Domain, Digest), or ErrNotFound.
	GetBlob(ctx context.Context, domain, digest string) (Blob, error)
	// BlobLinked reports whether the digest is linked to the repository and
	// returns the blob; ErrNotFound if it is not linked.
	BlobLinked(ctx context.Context, repoID, digest string) (Blob, error)
	// LinkBlob links an existing blob of the repository's domain to the
	// repository (cross-repository mount); ErrNotFound if the domain lacks it.
	LinkBlob(ctx context.Context, repoID, domain, digest string) (Blob, error)
	// UnlinkBlob removes the repository's link; ErrNotFound if not linked.
	UnlinkBlob(ctx context.Context, repoID, digest string) error
	// CommitUpload, in one transaction, deletes the upload session, inserts b
	// unless (b.Domain, b.Digest) exists, and links the digest to the upload's
	// repository. It returns the blob now stored (the existing one on dedup)
	// and whether b was inserted. ErrNotFound if the session is gone.
	CommitUpload(ctx context.Context, uploadID string, b Blob) (stored Blob, inserted bool, err error)
	// CommitBlob is CommitUpload without a session: it inserts b unless it
	// exists and links it to repoID (used when re-encrypting on mount).
	CommitBlob(ctx context.Context, repoID string, b Blob) (stored Blob, inserted bool, err error)

	// CreateUpload inserts a new session.
	CreateUpload(ctx context.Context, u Upload) error
	// GetUpload returns a session or ErrNotFound.
	GetUpload(ctx context.Context, id string) (Upload, error)
	// UpdateUpload replaces Size, Parts, HashState and UpdatedAt of the
	// session, but only if its stored Size equals expectedSize; otherwise
	// ErrConflict (a concurrent or stale chunk). ErrNotFound if gone.
	UpdateUpload(ctx context.Context, u Upload, expectedSize int64) error
	// DeleteUpload removes a session and returns it (so its parts can be
	// deleted); ErrNotFound if absent.
	DeleteUpload(ctx context.Context, id string) (Upload, error)

	// PutManifest writes a manifest and optionally a tag; see PutManifest.
	// Missing blob refs: ErrBlobUnknown; missing manifest refs:
	// ErrManifestUnknown; both wrapped with the digest in the message.
	PutManifest(ctx context.Context, p PutManifest) (PutManifestResult, error)
	// GetManifest returns a manifest by digest or ErrNotFound.
	GetManifest(ctx context.Context, repoID, digest string) (Manifest, error)
	// ResolveTag returns the manifest a tag points at, or ErrNotFound.
	ResolveTag(ctx context.Context, repoID, tag string) (Manifest, error)
	// ListTags returns up to limit tag names after `last`, in lexical order.
	ListTags(ctx context.Context, repoID, last string, limit int) ([]string, error)
	// DeleteTag removes one tag; ErrNotFound if absent.
	DeleteTag(ctx context.Context, repoID, tag string) error
	// DeleteManifest removes a manifest and every tag pointing at it, and
	// returns its storage key if no other row references the object;
	// ErrNotFound if absent.
	DeleteManifest(ctx context.Context, repoID, digest string) (orphan string, err error)
	// Referrers returns the manifests of the repository whose Subject is the
	// digest, optionally only those with the given artifactType, in digest
	// order.
	Referrers(ctx context.Context, repoID, subject, artifactType string) ([]Manifest, error)
	// ListManifests returns up to limit manifests of the repository with
	// digests after `after`, in digest order, each with its Tags sorted
	// (limit <= 0: no limit), from one consistent snapshot. ECR
	// ListImages and DescribeImages page through it.
	ListManifests(ctx context.Context, repoID, after string, limit int) ([]Manifest, error)
	// RecordPull sets LastPulledAt of a manifest (best effort, may be batched).
	RecordPull(ctx context.Context, repoID, digest string, at time.Time) error
}
