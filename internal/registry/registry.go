// Package registry is Coffer's data-plane service: repositories, encrypted
// blobs, resumable uploads, manifests, tags and referrers, independent of any
// wire protocol. The OCI layer (internal/oci) and the ECR API call it.
//
// What it guarantees:
//   - Every stored byte is ciphertext in the envelope format
//     (internal/crypto/envelope), with fresh data keys per object from the
//     repository's key source (DataKeys).
//   - Content becomes visible only after its digest and size are verified,
//     its ciphertext is durable, and one metadata transaction commits it.
//   - Stored content that fails authentication or its digest check is never
//     served: reads fail with ErrCorrupt.
//
// Storage naming (SPEC STO-04/05): layer objects live in the logical layer
// bucket `layers/<domain>/<object-id>`, manifests in the manifest bucket
// `manifests/<repository-id>/sha256:<hex>/<object-id>`. Each object's
// identity, bound into its ciphertext, is its S3-style ARN
// (`arn:aws:s3:::prod-<region>-starport-layer-bucket/...`).
package registry

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/cofferhq/coffer/internal/crypto/envelope"
	"github.com/cofferhq/coffer/internal/crypto/rootkey"
	"github.com/cofferhq/coffer/internal/metadata"
	"github.com/cofferhq/coffer/internal/storage"
)

// DomainAES256 is the encryption domain shared by all AES256 repositories:
// identical blobs in it are stored once.
const DomainAES256 = "aes256"

// Config configures a Registry.
type Config struct {
	Region    string
	AccountID string
	Store     metadata.Store
	Driver    storage.Driver
	// Keys issues data keys; RootKeys for AES256.
	Keys DataKeys
	// Root seals transient secrets (upload hash states).
	Root *rootkey.Key
	// CreateOnPush creates unknown repositories on their first push.
	CreateOnPush bool
	// Quotas returns a repository's limits (quota.Rules.For); nil: none.
	Quotas func(repository string) metadata.Quota
	Log    *slog.Logger
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

// Registry is the data-plane service.
type Registry struct {
	cfg   Config
	log   *slog.Logger
	now   func() time.Time
	pulls pullRecorder
}

// New validates cfg and returns a Registry.
func New(cfg Config) (*Registry, error) {
	var errs []error
	if cfg.Region == "" {
		errs = append(errs, errors.New("registry: Region is required"))
	}
	if cfg.AccountID == "" {
		errs = append(errs, errors.New("registry: AccountID is required"))
	}
	if cfg.Store == nil || cfg.Driver == nil || cfg.Keys == nil || cfg.Root == nil {
		errs = append(errs, errors.New("registry: Store, Driver, Keys and Root are required"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	r := &Registry{cfg: cfg, log: cfg.Log, now: cfg.Now}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	if r.now == nil {
		r.now = time.Now
	}
	return r, nil
}

// Region returns the registry's region.
func (r *Registry) Region() string { return r.cfg.Region }

// AccountID returns the registry's account.
func (r *Registry) AccountID() string { return r.cfg.AccountID }

// RepositoryARN returns arn:aws:ecr:<region>:<account>:repository/<name>
// (SPEC STO-06).
func (r *Registry) RepositoryARN(name string) string {
	return RepositoryARN(r.cfg.Region, r.cfg.AccountID, name)
}

// RepositoryARN returns a repository's ARN,
// arn:aws:ecr:<region>:<account>:repository/<name> (SPEC STO-06), for
// callers without a Registry.
func RepositoryARN(region, accountID, name string) string {
	return "arn:aws:ecr:" + region + ":" + accountID + ":repository/" + name
}

// Ready reports whether metadata and blob storage answer.
func (r *Registry) Ready(ctx context.Context) error {
	if err := r.cfg.Store.Ping(ctx); err != nil {
		return fmt.Errorf("metadata store: %w", err)
	}
	if err := r.cfg.Driver.Ping(ctx); err != nil {
		return fmt.Errorf("blob storage: %w", err)
	}
	return nil
}

// Repository returns an existing repository.
func (r *Registry) Repository(ctx context.Context, name RepoName) (metadata.Repository, error) {
	repo, err := r.cfg.Store.GetRepository(ctx, string(name))
	if errors.Is(err, metadata.ErrNotFound) {
		return metadata.Repository{}, fmt.Errorf("%w: repository %s does not exist", ErrNameUnknown, name)
	}
	if err != nil {
		return metadata.Repository{}, fmt.Errorf("get repository %s: %w", name, err)
	}
	return repo, nil
}

// RepositoryForPush returns the repository a push goes to, creating it with
// the registry's defaults when create-on-push is enabled and mayCreate (the
// caller's ecr:CreateRepository permission, as ECR's create-on-push
// requires) allows it.
func (r *Registry) RepositoryForPush(ctx context.Context, name RepoName, mayCreate func() error) (metadata.Repository, error) {
	repo, err := r.Repository(ctx, name)
	if err == nil || !errors.Is(err, ErrNameUnknown) || !r.cfg.CreateOnPush {
		return repo, err
	}
	if err := mayCreate(); err != nil {
		return metadata.Repository{}, err
	}
	return r.CreateRepository(ctx, metadata.Repository{Name: string(name)}, true)
}

// CreateRepository creates a repository, filling in defaults: AES256
// encryption (SPEC ENC-03) and MUTABLE tags. With existingOK, an existing
// repository of that name is returned instead of ErrExists.
func (r *Registry) CreateRepository(ctx context.Context, repo metadata.Repository, existingOK bool) (metadata.Repository, error) {
	if repo.ID == "" {
		repo.ID = newID()
	}
	if repo.EncryptionType == "" {
		repo.EncryptionType = metadata.EncryptionAES256
	}
	if repo.EncryptionType == metadata.EncryptionAES256 {
		repo.Domain = DomainAES256
	} else {
		repo.Domain = repo.ID
	}
	if repo.TagMutability == "" {
		repo.TagMutability = metadata.TagMutable
	}
	if repo.CreatedAt.IsZero() {
		repo.CreatedAt = r.now().UTC()
	}
	err := r.cfg.Store.CreateRepository(ctx, repo)
	if errors.Is(err, metadata.ErrExists) && existingOK {
		return r.Repository(ctx, RepoName(repo.Name))
	}
	if err != nil {
		return metadata.Repository{}, fmt.Errorf("create repository %s: %w", repo.Name, err)
	}
	r.log.InfoContext(ctx, "repository created", slog.String("repository", repo.Name), slog.String("encryption_type", repo.EncryptionType))
	return repo, nil
}

// ListRepositories returns up to n repository names after last.
func (r *Registry) ListRepositories(ctx context.Context, last string, n int) ([]string, error) {
	repos, err := r.cfg.Store.ListRepositories(ctx, last, n)
	if err != nil {
		return nil, fmt.Errorf("list repositories: %w", err)
	}
	names := make([]string, len(repos))
	for i, repo := range repos {
		names[i] = repo.Name
	}
	return names, nil
}

// newID returns 128 random bits as 32 hex characters.
func newID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("registry: crypto/rand failed: " + err.Error())
	}
	return hex.EncodeToString(b[:])
}

func layerKey(domain string) string { return "layers/" + domain + "/" + newID() }

func manifestKey(repoID string, d Digest) string {
	return "manifests/" + repoID + "/" + string(d) + "/" + newID()
}

// objectARN is the identity bound into an object's ciphertext: the ARN of
// the object in ECR's bucket naming (SPEC STO-04/05).
func (r *Registry) objectARN(key string) string {
	if rest, ok := strings.CutPrefix(key, "layers/"); ok {
		return "arn:aws:s3:::prod-" + r.cfg.Region + "-starport-layer-bucket/" + rest
	}
	if rest, ok := strings.CutPrefix(key, "manifests/"); ok {
		return "arn:aws:s3:::" + r.cfg.Region + "-starport-manifest-bucket/" + rest
	}
	return "arn:aws:s3:::coffer-" + r.cfg.Region + "/" + key
}

// writeObject streams src into a new sealed object under key and returns
// the plaintext size. With h non-nil the plaintext is hashed into it (on a
// second goroutine) and the object is bound (envelope CloseBound) to h's
// sum at the end; otherwise it is bound to binding, the content digest the
// caller already knows. On error nothing is left behind.
func (r *Registry) writeObject(ctx context.Context, repo metadata.Repository, key string, src io.Reader, h hash.Hash, binding []byte) (int64, error) {
	arn := r.objectARN(key)
	slots, keys, err := r.cfg.Keys.New(ctx, repo, arn)
	if err != nil {
		return 0, err
	}
	hdr, err := envelope.NewHeader(envelope.DefaultSegmentShift, slots...)
	if err != nil {
		return 0, fmt.Errorf("envelope header: %w", err)
	}
	sw, err := r.cfg.Driver.Writer(ctx, key)
	if err != nil {
		return 0, fmt.Errorf("open object %s: %w", key, err)
	}
	ew, err := envelope.NewWriter(sw, hdr, []byte(arn), keys...)
	if err != nil {
		_ = sw.Cancel(ctx)
		return 0, fmt.Errorf("envelope writer: %w", err)
	}
	var n int64
	if h != nil {
		n, err = copyHashing(ew, src, h)
	} else {
		n, err = io.Copy(ew, src)
	}
	if err == nil {
		if h != nil {
			binding = h.Sum(nil)
		}
		err = ew.CloseBound(binding)
	}
	if err == nil {
		err = sw.Commit(ctx)
	} else {
		_ = sw.Cancel(context.WithoutCancel(ctx))
	}
	if err != nil {
		return n, fmt.Errorf("write object %s: %w", key, err)
	}
	return n, nil
}

// openObject returns the plaintext [off, off+n) of a sealed object of
// plainSize bytes (n < 0: to the end), bound to binding (the content
// digest). Authentication failures, including a binding that does not
// match, surface as ErrCorrupt from Read: a whole read that ends without
// error has proven the content's digest.
func (r *Registry) openObject(ctx context.Context, repo metadata.Repository, key string, plainSize, off, n int64, binding []byte) (io.ReadCloser, error) {
	if n < 0 {
		n = plainSize - off
	}
	if off < 0 || n < 0 || off+n > plainSize {
		return nil, fmt.Errorf("range %d+%d outside object of %d bytes", off, n, plainSize)
	}
	rc, err := r.cfg.Driver.Reader(ctx, key, 0, -1)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, fmt.Errorf("%w: object %s is missing from storage", ErrCorrupt, key)
	}
	if err != nil {
		return nil, fmt.Errorf("open object %s: %w", key, err)
	}
	br := bufio.NewReaderSize(rc, 64<<10)
	hdr, err := envelope.ParseHeader(br)
	if err != nil {
		rc.Close()
		return nil, fmt.Errorf("%w: object %s: %v", ErrCorrupt, key, err)
	}
	arn := r.objectARN(key)
	keys, err := r.cfg.Keys.Open(ctx, repo, arn, hdr.Slots)
	if err != nil {
		rc.Close()
		return nil, err
	}
	if off == 0 && n == plainSize {
		pr, err := envelope.NewBoundReader(br, hdr, []byte(arn), plainSize, binding, keys...)
		if err != nil {
			rc.Close()
			return nil, fmt.Errorf("%w: object %s: %v", ErrCorrupt, key, err)
		}
		return &objectReader{r: pr, c: rc, key: key}, nil
	}
	rc.Close()
	cOff, cLen, err := hdr.Span(plainSize, off, n)
	if err != nil {
		return nil, fmt.Errorf("%w: object %s: %v", ErrCorrupt, key, err)
	}
	rc, err = r.cfg.Driver.Reader(ctx, key, cOff, cLen)
	if err != nil {
		return nil, fmt.Errorf("%w: object %s: %v", ErrCorrupt, key, err)
	}
	pr, err := envelope.NewBoundRangeReader(bufio.NewReaderSize(rc, 64<<10), hdr, []byte(arn), plainSize, off, n, binding, keys...)
	if err != nil {
		rc.Close()
		return nil, fmt.Errorf("%w: object %s: %v", ErrCorrupt, key, err)
	}
	return &objectReader{r: pr, c: rc, key: key}, nil
}

// objectReader maps envelope failures to ErrCorrupt.
type objectReader struct {
	r   io.Reader
	c   io.Closer
	key string
}

func (o *objectReader) Read(p []byte) (int, error) {
	n, err := o.r.Read(p)
	if err != nil && err != io.EOF {
		err = fmt.Errorf("%w: object %s: %v", ErrCorrupt, o.key, err)
	}
	return n, err
}

func (o *objectReader) Close() error { return o.c.Close() }

// digestBinding returns the envelope binding of content with digest d: the
// raw SHA-256 sum.
func digestBinding(d Digest) []byte {
	b, err := hex.DecodeString(d.Hex())
	if err != nil {
		panic("registry: digestBinding of an unvalidated digest")
	}
	return b
}
