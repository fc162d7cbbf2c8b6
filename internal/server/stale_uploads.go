package server

import (
	"context"
	"log/slog"
	"time"

	"github.com/cofferhq/coffer/internal/loop"
	"github.com/cofferhq/coffer/internal/storage"
)

// staleUploadsEvery paces the abort of abandoned S3 multipart uploads.
const staleUploadsEvery = time.Hour

// staleAborter is what the S3 driver offers for multipart uploads that
// writers left behind (a crash, a connection dropped mid-part): S3 keeps
// and bills their parts until they are aborted.
type staleAborter interface {
	AbortStaleUploads(ctx context.Context, olderThan time.Duration) (int, error)
}

// staleUploads is the leader's periodic abort of abandoned multipart
// uploads, a backstop for buckets without an AbortIncompleteMultipartUpload
// lifecycle rule.
type staleUploads struct {
	driver    staleAborter
	olderThan time.Duration // must exceed the longest upload in progress
	every     time.Duration
	log       *slog.Logger
}

// newStaleUploads returns the job for d, or nil when d has no multipart
// uploads (the filesystem) or olderThan is 0 (turned off).
func newStaleUploads(d storage.Driver, olderThan time.Duration, log *slog.Logger) *staleUploads {
	a, ok := d.(staleAborter)
	if !ok || olderThan <= 0 {
		return nil
	}
	return &staleUploads{driver: a, olderThan: olderThan, every: staleUploadsEvery, log: log.With("log", "s3_uploads")}
}

// loop runs once at once (a leadership term may be shorter than the
// interval) and then every s.every until ctx ends.
func (s *staleUploads) loop(ctx context.Context) {
	s.run(ctx)
	loop.Every(ctx, s.every, s.run)
}

// run aborts once; a failure is logged, never fatal: the next run
// retries, and what was aborted before the failure is counted.
func (s *staleUploads) run(ctx context.Context) {
	n, err := s.driver.AbortStaleUploads(ctx, s.olderThan)
	if n > 0 {
		s.log.InfoContext(ctx, "aborted abandoned multipart uploads", "uploads", n, "older_than", s.olderThan.String())
	}
	if err != nil && ctx.Err() == nil {
		s.log.WarnContext(ctx, "cannot abort abandoned multipart uploads", "err", err)
	}
}
