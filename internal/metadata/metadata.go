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
	"fmt"
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
	// ErrImmutableField reports an UpdateRepository that tried to change a
	// field fixed at creation (the encryption configuration among them,
	// SPEC ENC-07).
	ErrImmutableField = errors.New("metadata: field cannot change after creation")
	// ErrQuotaExceeded reports a write refused because it would take a
	// repository over its Quota; the error is a *QuotaError.
	ErrQuotaExceeded = errors.New("metadata: repository quota exceeded")
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

// Link is one repository's link to a blob of its domain (garbage
// collection of links no manifest references).
type Link struct {
	RepoID     string
	Repository string // the repository's name
	Domain     string // the repository's encryption domain
	Digest     string
	Size       int64 // the blob's plaintext size (what quotas count)
	// LinkedAt is when the link was last made or last lost a referencing
	// manifest (see Store.UnreferencedLinks).
	LinkedAt time.Time
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
	Tags         []string  // filled by ListManifests and ListImages only
	// ImageSize is ECR's imageSizeInBytes, computed at push: the sum of the
	// image's layer sizes, or for an index the largest of its children's.
	// -1 for manifests stored before it was recorded.
	ImageSize int64
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
	// Quota, if not zero, refuses (with a *QuotaError, nothing changed) a
	// new manifest that would take the repository's Usage over it, checked
	// in the same transaction after the insert. A manifest that exists
	// already adds nothing and is never refused, so a tag can always move.
	Quota Quota
}

// PutManifestResult reports what PutManifest did.
type PutManifestResult struct {
	Created     bool   // the manifest row did not exist before
	PreviousTag string // digest the tag pointed at before, "" if new or unchanged
}

// Quota bounds what one repository may hold (Coffer's extension; ECR has
// no such limit). A zero field is no limit.
type Quota struct {
	MaxImages int64 // manifests, as Usage.Images counts them
	MaxBytes  int64 // as Usage.Bytes counts them
}

// IsZero reports whether q limits nothing.
func (q Quota) IsZero() bool { return q.MaxImages <= 0 && q.MaxBytes <= 0 }

// Check returns a *QuotaError if u is over q, else nil.
func (q Quota) Check(u Usage) error {
	if q.MaxImages > 0 && u.Images > q.MaxImages {
		return &QuotaError{Limit: QuotaImages, Max: q.MaxImages, Usage: u}
	}
	if q.MaxBytes > 0 && u.Bytes > q.MaxBytes {
		return &QuotaError{Limit: QuotaBytes, Max: q.MaxBytes, Usage: u}
	}
	return nil
}

// Usage is what a repository holds, as quotas count it.
type Usage struct {
	// Images is the number of its manifests: images, indexes, an index's
	// children and artifacts (signatures, SBOMs) alike, tagged or not.
	Images int64
	// Bytes is the plaintext size of the distinct blobs linked to it
	// (layers and configs, each counted once however many images share
	// it, and whether or not another repository links it too) plus the
	// size of its manifests. Ciphertext overhead is not counted.
	Bytes int64
}

// Limits a QuotaError names.
const (
	QuotaImages = "images"
	QuotaBytes  = "bytes"
)

// QuotaError is a write refused by a Quota: it would have taken the
// repository's Usage (after the write) over Max for Limit.
type QuotaError struct {
	Limit string // QuotaImages or QuotaBytes
	Max   int64
	Usage Usage
}

func (e *QuotaError) Error() string {
	if e.Limit == QuotaImages {
		return fmt.Sprintf("%v: %d images would exceed the limit of %d", ErrQuotaExceeded, e.Usage.Images, e.Max)
	}
	return fmt.Sprintf("%v: %d bytes would exceed the limit of %d", ErrQuotaExceeded, e.Usage.Bytes, e.Max)
}

// Is makes errors.Is(err, ErrQuotaExceeded) true.
func (e *QuotaError) Is(target error) bool { return target == ErrQuotaExceeded }

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

	// CreateRepositoryWith is CreateRepository with companion documents in
	// the same transaction: after the row is inserted, fn writes the
	// documents that belong to the new repository (its tags). If fn fails,
	// nothing is created and fn's error is returned (wrapped). ErrExists if
	// the name is taken; fn is then not called.
	CreateRepositoryWith(ctx context.Context, r Repository, fn func(DocTx) error) error
	// UpdateRepository changes a repository's settings in one transaction:
	// fn edits the stored repository in place, or returns an error to refuse
	// (returned wrapped; nothing changes). Only TagMutability,
	// TagMutabilityExclusions and ScanOnPush may change: an edit of ID, Name,
	// Domain, EncryptionType, KMSKey or CreatedAt fails with
	// ErrImmutableField and changes nothing, so no caller can alter the
	// encryption configuration (SPEC ENC-07). It returns the repository as
	// stored; ErrNotFound if absent (fn is then not called).
	UpdateRepository(ctx context.Context, name string, fn func(*Repository) error) (Repository, error)
	// UpdateRepositoryDocs runs fn in one write transaction in which the
	// repository exists and cannot be deleted concurrently: documents that
	// belong to a repository (its policy, its tags) are written only while it
	// exists, so none can outlive it and attach to a later repository of the
	// same name. fn's error rolls back and is returned (wrapped); ErrNotFound
	// if the repository is absent (fn is then not called).
	UpdateRepositoryDocs(ctx context.Context, name string, fn func(Repository, DocTx) error) error
	// DeleteRepositoryWith is DeleteRepository with a guard and companion
	// documents in the same transaction: before anything is deleted, fn sees
	// the repository, whether it holds any manifest, and the documents. If
	// fn returns an error nothing changes and the error is returned
	// (wrapped); otherwise fn's document writes (deleting the repository's
	// policy and tags) commit together with the deletion. It returns the
	// deleted repository and the orphaned storage keys as DeleteRepository
	// does; ErrNotFound if absent (fn is then not called).
	DeleteRepositoryWith(ctx context.Context, name string, fn func(r Repository, hasManifests bool, docs DocTx) error) (Repository, []string, error)

	// GetBlob returns the committed blob (Domain, Digest), or ErrNotFound.
	GetBlob(ctx context.Context, domain, digest string) (Blob, error)
	// BlobLinked reports whether the digest is linked to the repository and
	// returns the blob; ErrNotFound if it is not linked.
	BlobLinked(ctx context.Context, repoID, digest string) (Blob, error)
	// LinkBlob links an existing blob of the repository's domain to the
	// repository (cross-repository mount); ErrNotFound if the domain lacks it.
	LinkBlob(ctx context.Context, repoID, domain, digest string) (Blob, error)
	// BlobRepositories returns up to limit names of repositories of the
	// domain that link the digest, in name order (a cross-repository mount
	// without "from" looks for one the caller may read).
	BlobRepositories(ctx context.Context, domain, digest string, limit int) ([]string, error)
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

	// Quotas. The ...Within methods are the blob writes above under a
	// Quota: in the same transaction, a link that is new and takes the
	// repository's Usage over q is refused with a *QuotaError and nothing
	// changes (the upload session stays). A link that exists already adds
	// nothing and is never refused. A zero q is the plain method. Writers
	// checking one repository's quota are serialized, so concurrent pushes
	// cannot overshoot it together.

	// CommitUploadWithin is CommitUpload under q.
	CommitUploadWithin(ctx context.Context, uploadID string, b Blob, q Quota) (stored Blob, inserted bool, err error)
	// CommitBlobWithin is CommitBlob under q.
	CommitBlobWithin(ctx context.Context, repoID string, b Blob, q Quota) (stored Blob, inserted bool, err error)
	// LinkBlobWithin is LinkBlob under q.
	LinkBlobWithin(ctx context.Context, repoID, domain, digest string, q Quota) (Blob, error)
	// RepositoryUsage returns what the repository holds, as quotas count
	// it, from one consistent snapshot; ErrRepositoryUnknown if absent.
	RepositoryUsage(ctx context.Context, repoID string) (Usage, error)

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
	// ManifestChildren returns, for every index of the repository, the
	// digests of the manifests it references (RefManifest refs).
	ManifestChildren(ctx context.Context, repoID string) (map[string][]string, error)
	// RecordPull sets LastPulledAt of a manifest (best effort, may be batched).
	RecordPull(ctx context.Context, repoID, digest string, at time.Time) error

	// Images (ECR API)

	// ListImages returns up to q.Limit manifests of the repository with
	// digests from q.From on (inclusive), in digest order, each with its
	// Tags sorted, keeping only those q.TagStatus selects (limit <= 0: no
	// limit), from one consistent snapshot. ObjectKey and Annotations may
	// be left empty: listing needs only what ECR's image views show. With a
	// tag filter and q.Window > 0, at most q.Window manifests are examined;
	// see ImagePage.ScannedTo.
	ListImages(ctx context.Context, repoID string, q ImageQuery) (ImagePage, error)
	// ImageTags returns the tags pointing at a manifest, sorted (none: nil).
	ImageTags(ctx context.Context, repoID, digest string) ([]string, error)
	// DeleteImage deletes the ECR way, in one transaction. With a tag: the
	// tag goes (ErrNotFound if absent; ErrImageTagMismatch if digest is not
	// "" and the tag points elsewhere), and the manifest too once no tag
	// points at it, unless another manifest of the repository references it.
	// With tag "": the manifest and all its tags go (ErrNotFound if absent;
	// ErrImageReferenced if an index of the repository references it).
	DeleteImage(ctx context.Context, repoID, digest, tag string) (ImageDeletion, error)
	// BlobReferenced reports whether a manifest of the repository references
	// the blob (as config or layer).
	BlobReferenced(ctx context.Context, repoID, digest string) (bool, error)

	// Garbage collection (internal/gc)

	// UnreferencedBlobs returns up to limit blobs created before `before`
	// that no repository of their domain links and no manifest of their
	// domain references, in (Domain, Digest) order after the cursor
	// (afterDomain, afterDigest) ("", "" for the start).
	UnreferencedBlobs(ctx context.Context, before time.Time, afterDomain, afterDigest string, limit int) ([]Blob, error)
	// DeleteBlobIfUnreferenced deletes the blob row in one transaction if,
	// inside that transaction, it was created before `before` and is still
	// neither linked nor referenced, and returns it with deleted true (the
	// caller then deletes its object). A concurrent link or push of the same
	// digest either commits first (the row stays) or finds the row gone and
	// inserts its own. An absent row is (Blob{}, false, nil).
	DeleteBlobIfUnreferenced(ctx context.Context, domain, digest string, before time.Time) (b Blob, deleted bool, err error)
	// UnreferencedLinks returns up to limit blob links that no manifest of
	// their repository references and whose LinkedAt is before `before`, in
	// (RepoID, Digest) order after the cursor (afterRepo, afterDigest) ("",
	// "" for the start). A link's LinkedAt is when it was last made (a
	// commit or mount of a digest the repository links already refreshes
	// it) or last lost a referencing manifest (deleting a manifest refreshes
	// the links of the blobs it references), whichever is later, so a
	// grace period measured against it protects both a push whose manifest
	// is still on its way and a client that saw the blob just before the
	// last image using it was deleted.
	UnreferencedLinks(ctx context.Context, before time.Time, afterRepo, afterDigest string, limit int) ([]Link, error)
	// UnlinkBlobIfUnreferenced deletes the repository's link to the digest
	// in one transaction if, inside that transaction, its LinkedAt is
	// before `before` and no manifest of the repository references the
	// digest, and returns it with deleted true (the blob row stays for
	// DeleteBlobIfUnreferenced). A concurrent PutManifest referencing the
	// digest either commits first (the link stays) or finds the link gone
	// (ErrBlobUnknown); a concurrent commit or mount of the digest either
	// commits first (LinkedAt is refreshed, the link stays) or links it
	// anew. An absent link is (Link{}, false, nil).
	UnlinkBlobIfUnreferenced(ctx context.Context, repoID, digest string, before time.Time) (l Link, deleted bool, err error)
	// StaleUploads returns up to limit upload sessions last updated before
	// `before`, in ID order after afterID.
	StaleUploads(ctx context.Context, before time.Time, afterID string, limit int) ([]Upload, error)
	// DeleteStaleUpload deletes a session if, inside the transaction, it
	// was still last updated before `before`, and returns it (its parts are
	// the caller's to delete). Absent or updated since: deleted false.
	DeleteStaleUpload(ctx context.Context, id string, before time.Time) (u Upload, deleted bool, err error)
	// ObjectKeys calls fn with every storage key a row references (blobs,
	// manifests, upload parts), in no particular order, from one consistent
	// snapshot. An error from fn stops and is returned.
	ObjectKeys(ctx context.Context, fn func(key string) error) error
}

// Tag filters of ImageQuery (ECR's tagStatus).
const (
	TagStatusAny      = "ANY"
	TagStatusTagged   = "TAGGED"
	TagStatusUntagged = "UNTAGGED"
)

// ImageQuery selects a page of images.
type ImageQuery struct {
	From      string // first digest to consider (inclusive); "" for the start
	TagStatus string // TagStatusAny ("" too), TagStatusTagged or TagStatusUntagged
	Limit     int
	// Window bounds how many manifests a filtered query examines, so that
	// a page costs the same however rare the matches are (0: no bound).
	Window int
}

// ImagePage is one page of ListImages.
type ImagePage struct {
	Images []Manifest
	// ScannedTo is the last digest examined when the Window ran out before
	// Limit images matched: the page is short, and the listing continues
	// after ScannedTo. "" otherwise.
	ScannedTo string
}

// ImageDeletion reports what DeleteImage removed.
type ImageDeletion struct {
	Digest          string   // the manifest's digest
	Tags            []string // tags removed, sorted
	ManifestDeleted bool
	// ObjectKey is the deleted manifest's storage key, for the caller to
	// delete ("" when the manifest stays).
	ObjectKey string
}

// Sentinel errors of DeleteImage.
var (
	ErrImageTagMismatch = errors.New("metadata: tag points at another digest")
	ErrImageReferenced  = errors.New("metadata: manifest is referenced by an index")
)
