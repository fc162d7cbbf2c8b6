// Package gc is Coffer's online garbage collector. It runs while pushes and
// pulls go on and reclaims three kinds of garbage:
//
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
	KindBlob   = "blob"
	KindUpload = "upload"
	KindOrphan = "orphan"
)

// Item is one reclaimed (or, dry, reclaimable) thing.
type Item struct {
	Kind  string
	Name  string   // blob: domain/digest; upload: session ID; orphan: object key
	Keys  []string // storage keys deleted
	Bytes int64    // stored (ciphertext) bytes
}

// Report sums up one collection.
type Report struct {
	DryRun  bool
	Items   []Item
	Blobs   int
	Uploads int
	Orphans int
	Bytes   int64
	// Errors are failures to delete objects (their rows are gone; the next
	// run's orphan sweep retries them).
	Errors []error
}

func (r *Report) add(it Item) {
	r.Items = append(r.Items, it)
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

// Loop runs a collection every interval until ctx ends; the server starts
// it in a goroutine.
func (c *Collector) Loop(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		rep, err := c.Run(ctx, false)
		if err != nil {
			if ctx.Err() == nil {
				c.cfg.Log.WarnContext(ctx, "gc run", "error", err)
			}
			continue
		}
		if len(rep.Items) > 0 || len(rep.Errors) > 0 {
			c.cfg.Log.InfoContext(ctx, "gc run", "blobs", rep.Blobs, "uploads", rep.Uploads, "orphans", rep.Orphans,
				"bytes", rep.Bytes, "errors", len(rep.Errors))
		}
	}
}
