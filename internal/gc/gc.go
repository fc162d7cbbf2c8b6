// Package gc is Coffer's online garbage collector. It runs while pushes and
// pulls go on and reclaims four kinds of garbage:
//
//   - blob links no manifest of their repository references (the layers and
//     configs of deleted images: BatchDeleteImage, manifest DELETE,
//     lifecycle expiry), once unreferenced for longer than Grace: the link
//     is deleted in a transaction that checks again that no manifest of the
//     repository references the digest and that the link is still older
//     than Grace (metadata.Store.UnlinkBlobIfUnreferenced). A link's age
//     counts from the later of its creation (or the last commit or mount of
//     the digest into the repository) and the last deletion of a manifest
//     referencing it, so a push whose blobs are uploaded but whose manifest
//     is not PUT yet never loses a link within Grace, and a manifest PUT
//     racing the unlink either commits first (the link stays) or fails with
//     MANIFEST_BLOB_UNKNOWN. The remaining window: a client that HEADs a
//     blob whose link has been unreferenced for almost Grace, skips the
//     upload and PUTs its manifest after the unlink gets
//     MANIFEST_BLOB_UNKNOWN and must push the blob again (docker and crane
//     do on retry). Unlinking lowers the repository's quota usage at once;
//     the blob itself goes with the next kind, in the same run, when no
//     other repository links it;
//   - blobs no repository of their encryption domain links and no manifest
//     references (left by DeleteRepository for the shared AES256 domain, by
//     OCI blob DELETE, by lifecycle expiry): the metadata row is deleted
//     first, in a transaction that checks again that nothing links or
//     references the blob (metadata.Store.DeleteBlobIfUnreferenced), and
//     only then the ciphertext object. A concurrent push or mount of the
//     same digest either commits its link first (the blob stays) or finds
//     the row gone and stores the blob anew: no row ever points at a
//     deleted object;
//   - abandoned upload sessions, not updated for UploadTTL: the session row
//     goes first (only if still stale, inside the transaction), then its
//     part objects;
//   - storage orphans: objects under layers/ and manifests/ that no row
//     references (objects of deleted repositories or manifests whose
//     deletion failed, parts of failed uploads, crashes between an object
//     write and its metadata commit). The referenced keys are read from one
//     snapshot taken before the walk, and only objects older than Grace are
//     deleted: every flow that writes an object commits the row naming it
//     within one request, so an object younger than Grace may still be
//     about to be referenced, and one that was referenced after the
//     snapshot was either young then or already in it.
//
// Blob rows younger than Grace are left alone too, so a blob committed a
// moment ago by a push whose manifest is still on its way is never touched.
package gc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/cofferhq/coffer/internal/loop"
	"github.com/cofferhq/coffer/internal/metadata"
	"github.com/cofferhq/coffer/internal/storage"
)

// Defaults of Config.
const (
	DefaultGrace     = time.Hour
	DefaultUploadTTL = 24 * time.Hour
	pageSize         = 1000
)

// Prefixes of the object namespace GC sweeps (registry's buckets).
var sweepPrefixes = []string{"layers/", "manifests/"}

// Config configures a Collector.
type Config struct {
	Store  metadata.Store
	Driver storage.Driver
	// Grace: blob rows and objects younger than this are never collected
	// (0: DefaultGrace; negative: none, only safe when nothing writes).
	Grace time.Duration
	// UploadTTL: upload sessions not updated for this long are abandoned
	// (0: DefaultUploadTTL).
	UploadTTL time.Duration
	Log       *slog.Logger
	Now       func() time.Time
}

// Collector runs garbage collections.
type Collector struct{ cfg Config }

// New returns a Collector.
func New(cfg Config) (*Collector, error) {
	if cfg.Store == nil || cfg.Driver == nil {
		return nil, errors.New("gc: Store and Driver are required")
	}
	if cfg.Grace == 0 {
		cfg.Grace = DefaultGrace
	}
	if cfg.Grace < 0 {
		cfg.Grace = 0
	}
	if cfg.UploadTTL <= 0 {
		cfg.UploadTTL = DefaultUploadTTL
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Collector{cfg: cfg}, nil
}

// Kinds of Item.
const (
	KindLink   = "link"
	KindBlob   = "blob"
	KindUpload = "upload"
	KindOrphan = "orphan"
)

// Item is one reclaimed (or, dry, reclaimable) thing.
type Item struct {
	Kind string
	Name string   // link: repository@digest; blob: domain/digest; upload: session ID; orphan: object key
	Keys []string // storage keys deleted (none for a link)
	// Bytes: stored (ciphertext) bytes; for a link, the blob's plaintext
	// size, what the repository's quota usage drops by (counted in
	// Report.LinkBytes, not Report.Bytes: the blob's own item counts its
	// storage once it goes).
	Bytes int64
}

// Report sums up one collection.
type Report struct {
	DryRun bool
	Items  []Item
	// Links unlinked from their repository and the plaintext bytes they
	// held against its quota.
	Links     int
	LinkBytes int64
	Blobs     int
	Uploads   int
	Orphans   int
	Bytes     int64
	// Errors are failures to delete objects (their rows are gone; the next
	// run's orphan sweep retries them).
	Errors []error
}

func (r *Report) add(it Item) {
	r.Items = append(r.Items, it)
	if it.Kind == KindLink {
		r.Links++
		r.LinkBytes += it.Bytes
		return
	}
	r.Bytes += it.Bytes
	switch it.Kind {
	case KindBlob:
		r.Blobs++
	case KindUpload:
		r.Uploads++
	case KindOrphan:
		r.Orphans++
	}
}

// Run performs one collection. With dryRun nothing is deleted and the
// report lists what would be.
func (c *Collector) Run(ctx context.Context, dryRun bool) (Report, error) {
	rep := Report{DryRun: dryRun}
	now := c.cfg.Now()
	// Links first: the blobs they alone kept are reclaimed by the blob
	// sweep that follows.
	if err := c.links(ctx, now.Add(-c.cfg.Grace), dryRun, &rep); err != nil {
		return rep, err
	}
	if err := c.blobs(ctx, now.Add(-c.cfg.Grace), dryRun, &rep); err != nil {
		return rep, err
	}
	if err := c.uploads(ctx, now.Add(-c.cfg.UploadTTL), dryRun, &rep); err != nil {
		return rep, err
	}
	if err := c.orphans(ctx, now.Add(-c.cfg.Grace), dryRun, &rep); err != nil {
		return rep, err
	}
	return rep, nil
}

// size is the stored size of an object, or 0 if it cannot be read.
func (c *Collector) size(ctx context.Context, key string) int64 {
	info, err := c.cfg.Driver.Stat(ctx, key)
	if err != nil {
		return 0
	}
	return info.Size
}

func (c *Collector) deleteObject(ctx context.Context, key string, rep *Report) {
	if err := c.cfg.Driver.Delete(context.WithoutCancel(ctx), key); err != nil {
		rep.Errors = append(rep.Errors, fmt.Errorf("gc: delete %s: %w", key, err))
		c.cfg.Log.WarnContext(ctx, "gc: delete object failed; retried by the next run", "key", key, "error", err)
	}
}

func (c *Collector) blobs(ctx context.Context, before time.Time, dryRun bool, rep *Report) error {
	var afterDomain, afterDigest string
	for {
		page, err := c.cfg.Store.UnreferencedBlobs(ctx, before, afterDomain, afterDigest, pageSize)
		if err != nil {
			return fmt.Errorf("gc: %w", err)
		}
		for _, b := range page {
			afterDomain, afterDigest = b.Domain, b.Digest
			if !dryRun {
				var deleted bool
				b, deleted, err = c.cfg.Store.DeleteBlobIfUnreferenced(ctx, b.Domain, b.Digest, before)
				if err != nil {
					return fmt.Errorf("gc: %w", err)
				}
				if !deleted {
					continue // linked or pushed again meanwhile
				}
			}
			it := Item{Kind: KindBlob, Name: b.Domain + "/" + b.Digest, Keys: []string{b.ObjectKey}, Bytes: c.size(ctx, b.ObjectKey)}
			if !dryRun {
				c.deleteObject(ctx, b.ObjectKey, rep)
				c.cfg.Log.DebugContext(ctx, "gc: blob reclaimed", "domain", b.Domain, "digest", b.Digest, "bytes", it.Bytes)
			}
			rep.add(it)
		}
		if len(page) < pageSize {
			return nil
		}
	}
}

func (c *Collector) links(ctx context.Context, before time.Time, dryRun bool, rep *Report) error {
	var afterRepo, afterDigest string
	// Dry: how many unlinkable links each blob has, to tell which blobs
	// the unlinking would leave to the blob sweep.
	type blobKey struct{ domain, digest string }
	candidates := map[blobKey]int{}
	for {
		page, err := c.cfg.Store.UnreferencedLinks(ctx, before, afterRepo, afterDigest, pageSize)
		if err != nil {
			return fmt.Errorf("gc: %w", err)
		}
		for _, l := range page {
			afterRepo, afterDigest = l.RepoID, l.Digest
			if dryRun {
				candidates[blobKey{l.Domain, l.Digest}]++
			} else {
				var deleted bool
				l, deleted, err = c.cfg.Store.UnlinkBlobIfUnreferenced(ctx, l.RepoID, l.Digest, before)
				if err != nil {
					return fmt.Errorf("gc: %w", err)
				}
				if !deleted {
					continue // referenced or linked again meanwhile
				}
				c.cfg.Log.DebugContext(ctx, "gc: link removed", "repository", l.Repository, "digest", l.Digest, "bytes", l.Size)
			}
			rep.add(Item{Kind: KindLink, Name: l.Repository + "@" + l.Digest, Bytes: l.Size})
		}
		if len(page) < pageSize {
			break
		}
	}
	// A dry run cannot leave the blob sweep to find them: a blob whose
	// every link is unlinkable is reported here (the sweep re-checks what
	// manifests of other repositories reference when it runs for real).
	for k, n := range candidates {
		repos, err := c.cfg.Store.BlobRepositories(ctx, k.domain, k.digest, 0)
		if err != nil {
			return fmt.Errorf("gc: %w", err)
		}
		if len(repos) > n {
			continue
		}
		b, err := c.cfg.Store.GetBlob(ctx, k.domain, k.digest)
		if err != nil || !b.CreatedAt.Before(before) {
			continue
		}
		rep.add(Item{Kind: KindBlob, Name: b.Domain + "/" + b.Digest, Keys: []string{b.ObjectKey}, Bytes: c.size(ctx, b.ObjectKey)})
	}
	return nil
}

func (c *Collector) uploads(ctx context.Context, before time.Time, dryRun bool, rep *Report) error {
	after := ""
	for {
		page, err := c.cfg.Store.StaleUploads(ctx, before, after, pageSize)
		if err != nil {
			return fmt.Errorf("gc: %w", err)
		}
		for _, u := range page {
			after = u.ID
			if !dryRun {
				var deleted bool
				u, deleted, err = c.cfg.Store.DeleteStaleUpload(ctx, u.ID, before)
				if err != nil {
					return fmt.Errorf("gc: %w", err)
				}
				if !deleted {
					continue
				}
			}
			it := Item{Kind: KindUpload, Name: u.ID}
			for _, p := range u.Parts {
				it.Keys = append(it.Keys, p.ObjectKey)
				it.Bytes += c.size(ctx, p.ObjectKey)
				if !dryRun {
					c.deleteObject(ctx, p.ObjectKey, rep)
				}
			}
			rep.add(it)
		}
		if len(page) < pageSize {
			return nil
		}
	}
}

func (c *Collector) orphans(ctx context.Context, before time.Time, dryRun bool, rep *Report) error {
	// Snapshot first, walk second (see the package comment).
	refs := make(map[string]struct{})
	if err := c.cfg.Store.ObjectKeys(ctx, func(k string) error { refs[k] = struct{}{}; return nil }); err != nil {
		return fmt.Errorf("gc: %w", err)
	}
	// Keys this run already deleted are not orphans to report again.
	for _, it := range rep.Items {
		for _, k := range it.Keys {
			refs[k] = struct{}{}
		}
	}
	for _, prefix := range sweepPrefixes {
		err := c.cfg.Driver.Walk(ctx, prefix, func(info storage.Info) error {
			if _, ok := refs[info.Key]; ok || !info.ModTime.Before(before) {
				return nil
			}
			if !dryRun {
				c.deleteObject(ctx, info.Key, rep)
			}
			rep.add(Item{Kind: KindOrphan, Name: info.Key, Keys: []string{info.Key}, Bytes: info.Size})
			return nil
		})
		if err != nil {
			return fmt.Errorf("gc: walk %s: %w", prefix, err)
		}
	}
	return nil
}

// Orphans runs only the storage-orphan sweep of Run: objects under layers/
// and manifests/ that no row references and that are older than Grace.
// With dryRun nothing is deleted (coffer fsck reports them; fsck --repair
// deletes them).
func (c *Collector) Orphans(ctx context.Context, dryRun bool) (Report, error) {
	rep := Report{DryRun: dryRun}
	err := c.orphans(ctx, c.cfg.Now().Add(-c.cfg.Grace), dryRun, &rep)
	return rep, err
}

// Loop runs a collection every interval until ctx ends; the server starts
// it in a goroutine.
func (c *Collector) Loop(ctx context.Context, interval time.Duration) {
	loop.Every(ctx, interval, func(ctx context.Context) {
		rep, err := c.Run(ctx, false)
		if err != nil {
			if ctx.Err() == nil {
				c.cfg.Log.WarnContext(ctx, "gc run", "error", err)
			}
			return
		}
		if len(rep.Items) > 0 || len(rep.Errors) > 0 {
			c.cfg.Log.InfoContext(ctx, "gc run", "links", rep.Links, "link_bytes", rep.LinkBytes, "blobs", rep.Blobs, "uploads", rep.Uploads, "orphans", rep.Orphans,
				"bytes", rep.Bytes, "errors", len(rep.Errors))
		}
	})
}
