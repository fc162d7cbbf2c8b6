package cache

import (
	"context"
	"maps"
	"slices"
	"sync/atomic"
	"time"

	"github.com/cofferhq/coffer/internal/metadata"
)

// DefaultTTL is the TTL the server uses unless configured otherwise
// (metadata_cache_ttl).
const DefaultTTL = time.Second

// DefaultMaxEntries bounds each cached method's table when
// Config.MaxEntries is 0.
const DefaultMaxEntries = 10000

// Config configures a Store.
type Config struct {
	// TTL bounds how long an entry is used, and so how stale a read can
	// be after a write made by another process. 0 (or negative) turns
	// caching off: every read goes to the inner store.
	TTL time.Duration
	// MaxEntries bounds the entries cached per method; 0 means
	// DefaultMaxEntries.
	MaxEntries int
	// OnWrite, if set, runs after every invalidating write made through
	// the Store, once the generation has moved: the server uses it to tell
	// the other replicas (issue #9). It must not call back into the Store.
	OnWrite func()
}

// Store is a metadata.Store that caches GetRepository and ResolveTag of
// an inner store (see the package comment for the consistency rule).
//
// Methods it does not declare pass through to the inner store unchanged:
// the reads it does not cache, and the writes that cannot change a cached
// answer or a resource-policy document, so they leave the generation
// alone (uploads, blob commits and links, settings, and the garbage
// collector's deletions of unreferenced blobs and stale uploads).
// TestMethodsClassified lists each with its reason, and fails for a method
// added to metadata.Store that nobody has classified.
type Store struct {
	metadata.Store // the inner store

	ttl     time.Duration
	onWrite func()
	gen     atomic.Uint64
	repos   *Map[string, metadata.Repository]
	tags    *Map[tagKey, metadata.Manifest]
}

type tagKey struct{ repoID, tag string }

var _ metadata.Store = (*Store)(nil)

// New returns a Store in front of inner.
func New(inner metadata.Store, cfg Config) *Store {
	n := cfg.MaxEntries
	if n <= 0 {
		n = DefaultMaxEntries
	}
	return &Store{
		Store:   inner,
		ttl:     max(cfg.TTL, 0),
		onWrite: cfg.OnWrite,
		repos:   NewMap[string, metadata.Repository](n),
		tags:    NewMap[tagKey, metadata.Manifest](n),
	}
}

// Unwrap returns the inner store, for its methods beyond metadata.Store
// (PostgreSQL's Leader, Notify and Listen). Writes made through it do
// not bump the generation.
func (s *Store) Unwrap() metadata.Store { return s.Store }

// Generation returns the number of invalidating writes made through s so
// far. A value derived from reads that began when Generation returned g is
// current while Generation still returns g (and the TTL has not run out,
// for writes made by other processes).
func (s *Store) Generation() uint64 { return s.gen.Load() }

// TTL returns the configured TTL (0: caching is off).
func (s *Store) TTL() time.Duration { return s.ttl }

// bump invalidates every entry; writers defer it, so it runs after the
// inner call has returned (committed or not). Then it runs OnWrite.
func (s *Store) bump() {
	s.gen.Add(1)
	if s.onWrite != nil {
		s.onWrite()
	}
}

// Invalidate moves the generation without running OnWrite: for a write
// another process made (a replica's change notification), so that every
// entry and everything keyed on Generation is read anew.
func (s *Store) Invalidate() { s.gen.Add(1) }

// GetRepository implements metadata.Store from the cache when it can.
func (s *Store) GetRepository(ctx context.Context, name string) (metadata.Repository, error) {
	if s.ttl == 0 {
		return s.Store.GetRepository(ctx, name)
	}
	gen, now := s.gen.Load(), time.Now()
	if r, ok := s.repos.Get(name, gen, now, s.ttl); ok {
		return cloneRepository(r), nil
	}
	r, err := s.Store.GetRepository(ctx, name)
	if err == nil {
		s.repos.Put(name, cloneRepository(r), gen, now)
	}
	return r, err
}

// ResolveTag implements metadata.Store from the cache when it can.
func (s *Store) ResolveTag(ctx context.Context, repoID, tag string) (metadata.Manifest, error) {
	if s.ttl == 0 {
		return s.Store.ResolveTag(ctx, repoID, tag)
	}
	k := tagKey{repoID, tag}
	gen, now := s.gen.Load(), time.Now()
	if m, ok := s.tags.Get(k, gen, now, s.ttl); ok {
		return cloneManifest(m), nil
	}
	m, err := s.Store.ResolveTag(ctx, repoID, tag)
	if err == nil {
		s.tags.Put(k, cloneManifest(m), gen, now)
	}
	return m, err
}

// The writes below bump the generation: each can change a repository, a
// tag or a document (policies and tags among them).

// CreateRepository implements metadata.Store and invalidates.
func (s *Store) CreateRepository(ctx context.Context, r metadata.Repository) error {
	defer s.bump()
	return s.Store.CreateRepository(ctx, r)
}

// CreateRepositoryWith implements metadata.Store and invalidates.
func (s *Store) CreateRepositoryWith(ctx context.Context, r metadata.Repository, fn func(metadata.DocTx) error) error {
	defer s.bump()
	return s.Store.CreateRepositoryWith(ctx, r, fn)
}

// UpdateRepository implements metadata.Store and invalidates.
func (s *Store) UpdateRepository(ctx context.Context, name string, fn func(*metadata.Repository) error) (metadata.Repository, error) {
	defer s.bump()
	return s.Store.UpdateRepository(ctx, name, fn)
}

// UpdateRepositoryDocs implements metadata.Store and invalidates.
func (s *Store) UpdateRepositoryDocs(ctx context.Context, name string, fn func(metadata.Repository, metadata.DocTx) error) error {
	defer s.bump()
	return s.Store.UpdateRepositoryDocs(ctx, name, fn)
}

// DeleteRepository implements metadata.Store and invalidates.
func (s *Store) DeleteRepository(ctx context.Context, name string) ([]string, error) {
	defer s.bump()
	return s.Store.DeleteRepository(ctx, name)
}

// DeleteRepositoryWith implements metadata.Store and invalidates.
func (s *Store) DeleteRepositoryWith(ctx context.Context, name string, fn func(metadata.Repository, bool, metadata.DocTx) error) (metadata.Repository, []string, error) {
	defer s.bump()
	return s.Store.DeleteRepositoryWith(ctx, name, fn)
}

// UpdateDocs implements metadata.DocStore and invalidates: any document
// may be a policy or a repository's tags.
func (s *Store) UpdateDocs(ctx context.Context, fn func(metadata.DocTx) error) error {
	defer s.bump()
	return s.Store.UpdateDocs(ctx, fn)
}

// PutManifest implements metadata.Store and invalidates (it moves a tag).
func (s *Store) PutManifest(ctx context.Context, p metadata.PutManifest) (metadata.PutManifestResult, error) {
	defer s.bump()
	return s.Store.PutManifest(ctx, p)
}

// DeleteTag implements metadata.Store and invalidates.
func (s *Store) DeleteTag(ctx context.Context, repoID, tag string) error {
	defer s.bump()
	return s.Store.DeleteTag(ctx, repoID, tag)
}

// DeleteManifest implements metadata.Store and invalidates.
func (s *Store) DeleteManifest(ctx context.Context, repoID, digest string) (string, error) {
	defer s.bump()
	return s.Store.DeleteManifest(ctx, repoID, digest)
}

// DeleteImage implements metadata.Store and invalidates.
func (s *Store) DeleteImage(ctx context.Context, repoID, digest, tag string) (metadata.ImageDeletion, error) {
	defer s.bump()
	return s.Store.DeleteImage(ctx, repoID, digest, tag)
}

// RecordPull implements metadata.Store and invalidates: LastPulledAt is
// part of what ResolveTag returns (DescribeImages by tag shows it). The
// registry batches pulls and records them every few seconds, so this
// costs one refill of the cache per batch, not one per pull.
func (s *Store) RecordPull(ctx context.Context, repoID, digest string, at time.Time) error {
	defer s.bump()
	return s.Store.RecordPull(ctx, repoID, digest, at)
}

// cloneRepository copies the parts of r that share memory.
func cloneRepository(r metadata.Repository) metadata.Repository {
	r.TagMutabilityExclusions = slices.Clone(r.TagMutabilityExclusions)
	return r
}

// cloneManifest copies the parts of m that share memory.
func cloneManifest(m metadata.Manifest) metadata.Manifest {
	m.Annotations = maps.Clone(m.Annotations)
	m.Tags = slices.Clone(m.Tags)
	return m
}
