package s3

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	s3sdk "github.com/aws/aws-sdk-go-v2/service/s3"
)

// retryBase is the largest delay before the first retry; the window
// doubles with each further attempt up to Config.MaxBackoff.
const retryBase = 200 * time.Millisecond

// backoff is exponential backoff with full jitter: the delay before retry
// n (1-based) is uniform in [0, min(max, retryBase*2^(n-1))). It is the
// SDK retryer's delay and the part uploads' own.
type backoff struct {
	max time.Duration
}

// BackoffDelay implements retry.BackoffDelayer.
func (b backoff) BackoffDelay(attempt int, _ error) (time.Duration, error) {
	window := b.max
	if attempt >= 1 && attempt < 32 {
		window = min(window, retryBase<<(attempt-1))
	}
	if window <= 0 {
		return 0, nil
	}
	return rand.N(window), nil
}

// retryable classifies errors as the SDK's standard retryer does: 5xx,
// throttling, timeouts and broken connections are retried; a canceled
// context and 4xx answers are not.
var retryable = retry.IsErrorRetryables(retry.DefaultRetryables)

// noSDKRetry turns off the SDK's retryer for one call whose retries the
// driver runs itself.
func noSDKRetry(o *s3sdk.Options) { o.Retryer = aws.NopRetryer{} }

// uploadPart uploads one part, retrying failed attempts itself with
// backoff. Parts have their own loop rather than the SDK retryer's because
// the SDK's retry quota is shared by the whole client: a burst of failures
// across many concurrent parts would exhaust it and fail uploads that one
// more attempt would finish, and nesting both loops would multiply attempts.
func (d *Driver) uploadPart(ctx context.Context, in *s3sdk.UploadPartInput, part []byte) (*s3sdk.UploadPartOutput, error) {
	for attempt := 1; ; attempt++ {
		// A fresh reader per attempt: the SDK may have consumed the last one.
		in.Body = bytes.NewReader(part)
		in.ContentLength = aws.Int64(int64(len(part)))
		out, err := d.client.UploadPart(ctx, in, noSDKRetry)
		if err == nil {
			return out, nil
		}
		if attempt > d.maxRetries || ctx.Err() != nil || retryable.IsErrorRetryable(err) != aws.TrueTernary {
			return nil, err
		}
		delay, _ := d.backoff.BackoffDelay(attempt, err)
		if sleep(ctx, delay) != nil {
			return nil, err
		}
	}
}

// maxPutAttempts bounds the PUTs of one small object that fail with
// ExistingObjectIsDirectory.
const maxPutAttempts = 3

// isDirectoryRace reports ExistingObjectIsDirectory (409). Real S3 has no
// directories; filesystem-backed servers (versitygw's posix backend) send
// it when the key is a directory, but also when a concurrent Delete pruned
// the parent directory the PUT had just created. That race clears on the
// next attempt and a real conflict does not, so a few attempts are cheap.
func isDirectoryRace(err error) bool {
	code, _ := errorCode(err)
	return code == "ExistingObjectIsDirectory"
}

// sleep waits for d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Aborting a multipart upload.
const (
	// maxAbortAttempts bounds the aborts of one upload.
	maxAbortAttempts = 4
	// landingGrace is how long parts cut off on the client may still take
	// to land on the server; their upload is checked again after it.
	landingGrace = 250 * time.Millisecond
)

// abortUpload aborts a multipart upload and, as S3 advises, checks with
// ListParts that it is gone, aborting again while it is not: a part upload
// still running on the server when the abort arrives may finish after it
// and keep the upload (and its storage) alive. With cutOff, parts were
// canceled on the client without an answer, so the check is repeated once
// after landingGrace.
func (d *Driver) abortUpload(ctx context.Context, objKey, uploadID string, cutOff bool) error {
	graced := !cutOff
	for attempt := 1; ; attempt++ {
		_, err := d.client.AbortMultipartUpload(ctx, &s3sdk.AbortMultipartUploadInput{
			Bucket: &d.bucket, Key: &objKey, UploadId: &uploadID,
		})
		if err != nil && !isNoSuchUpload(err) {
			return fail(ctx, "abort multipart upload", objKey, err)
		}
		for {
			_, err = d.client.ListParts(ctx, &s3sdk.ListPartsInput{
				Bucket: &d.bucket, Key: &objKey, UploadId: &uploadID, MaxParts: aws.Int32(1),
			})
			if err == nil || graced {
				break
			}
			graced = true
			if err := sleep(ctx, landingGrace); err != nil {
				return fail(ctx, "abort multipart upload", objKey, err)
			}
		}
		switch {
		case isNoSuchUpload(err) || isNotFound(err):
			return nil
		case err != nil:
			return fail(ctx, "abort multipart upload: check", objKey, err)
		case attempt == maxAbortAttempts:
			return fmt.Errorf("s3: abort multipart upload %q: still present after %d aborts", objKey, attempt)
		}
		delay, _ := d.backoff.BackoffDelay(attempt, nil)
		if err := sleep(ctx, delay); err != nil {
			return fail(ctx, "abort multipart upload", objKey, err)
		}
	}
}
