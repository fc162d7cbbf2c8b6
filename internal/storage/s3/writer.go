package s3

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	s3sdk "github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/cofferhq/coffer/internal/storage"
)

// minBuf is a Writer's first buffer. It doubles up to PartSize as data
// arrives, so the many small objects (manifests, small layers) never
// allocate a whole part.
const minBuf = 64 << 10

type writerState int

const (
	stateOpen writerState = iota
	stateCommitted
	stateDiscarded // canceled, or Commit failed and cleaned up
)

var (
	errCommitted = errors.New("s3: writer already committed")
	errDiscarded = errors.New("s3: writer already canceled or failed")
)

// writer buffers up to one part and uploads full parts in the background.
// Like any io.Writer it is not safe for concurrent use; its part uploads
// run on their own goroutines and report through mu.
type writer struct {
	d      *Driver
	key    string // storage key
	objKey string // S3 key

	// uploadCtx carries the part uploads that Write starts: io.Writer's
	// Write has no context, so the Writer keeps the one it was opened with
	// (derived, so that stop ends the uploads when the writer finishes or
	// a part fails). It is the one context this package stores.
	uploadCtx context.Context
	stop      context.CancelFunc

	buf      []byte // the part being filled
	size     int64
	uploadID string        // "" until the first part is shipped
	nparts   int32         // parts shipped so far
	slots    chan struct{} // one per part in flight
	free     chan []byte   // buffers of finished parts, for reuse
	wg       sync.WaitGroup
	state    writerState

	mu    sync.Mutex
	parts []s3types.CompletedPart
	err   error // first failure of a part upload or of Write; sticky
}

// Writer starts a new object under key. Nothing is sent until the first
// part fills up (then a multipart upload starts) or until Commit (then a
// single PUT writes a small object).
func (d *Driver) Writer(ctx context.Context, key string) (storage.Writer, error) {
	objKey, err := d.objectKey(key)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fail(ctx, "writer", key, err)
	}
	uploadCtx, stop := context.WithCancel(ctx)
	return &writer{
		d:         d,
		key:       key,
		objKey:    objKey,
		uploadCtx: uploadCtx,
		stop:      stop,
		slots:     make(chan struct{}, d.concurrency),
		free:      make(chan []byte, d.concurrency+1),
	}, nil
}

func (w *writer) closedErr() error {
	if w.state == stateCommitted {
		return fmt.Errorf("s3: %q: %w", w.key, errCommitted)
	}
	return fmt.Errorf("s3: %q: %w", w.key, errDiscarded)
}

func (w *writer) failure() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

func (w *writer) setFailure(err error) {
	w.mu.Lock()
	if w.err == nil {
		w.err = err
	}
	w.mu.Unlock()
}

// Write appends p to the object. It blocks while Concurrency parts are in
// flight and a further part is full, which bounds the Writer's buffers to
// (Concurrency+1)*PartSize. A failed part upload fails the next Write.
func (w *writer) Write(p []byte) (int, error) {
	if w.state != stateOpen {
		return 0, w.closedErr()
	}
	if err := w.failure(); err != nil {
		return 0, err
	}
	n := 0
	for len(p) > 0 {
		// A full part is shipped only once more data arrives, so an object
		// of at most PartSize bytes is one PUT at Commit.
		if int64(len(w.buf)) == w.d.partSize {
			if err := w.shipPart(w.uploadCtx, "write"); err != nil {
				w.setFailure(err)
				return n, err
			}
		}
		w.reserve(len(p))
		m := copy(w.buf[len(w.buf):cap(w.buf)], p)
		w.buf = w.buf[:len(w.buf)+m]
		p = p[m:]
		n += m
		w.size += int64(m)
	}
	return n, nil
}

// reserve grows the buffer to hold need more bytes, up to a whole part.
// Small buffers double; from a quarter part on (or once a part has
// shipped) the buffer is a whole part, which keeps the garbage of growing
// below half a part.
func (w *writer) reserve(need int) {
	want := min(w.d.partSize, int64(len(w.buf))+int64(need))
	if int64(cap(w.buf)) >= want {
		return
	}
	var nb []byte
	if c := max(want, 2*int64(cap(w.buf)), minBuf); c >= w.d.partSize/4 || w.nparts > 0 {
		nb = w.partBuf()
	} else {
		nb = make([]byte, 0, c)
	}
	w.buf = append(nb, w.buf...)
}

// partBuf returns an empty whole-part buffer: one that a finished part
// upload of this writer returned, else one from the Driver's pool, else a
// new one. A buffer is only taken when every other buffer of the writer is
// in flight, so the writer never holds more than Concurrency+1.
func (w *writer) partBuf() []byte {
	select {
	case b := <-w.free:
		return b[:0]
	default:
	}
	if b, ok := w.d.bufs.Get().(*[]byte); ok {
		return (*b)[:0]
	}
	return make([]byte, 0, w.d.partSize)
}

// putBuf hands a whole-part buffer back to the Driver's pool, for the
// next large Writer.
func (d *Driver) putBuf(b []byte) {
	if int64(cap(b)) != d.partSize {
		return
	}
	b = b[:0]
	d.bufs.Put(&b)
}

// Size reports the bytes written so far.
func (w *writer) Size() int64 { return w.size }

// shipPart starts the multipart upload if needed, waits for a free upload
// slot (or for ctx or the upload to end) and uploads the full buffer on a
// new goroutine. op names the caller in errors.
func (w *writer) shipPart(ctx context.Context, op string) error {
	if w.nparts == maxParts {
		return fmt.Errorf("s3: write %q: object larger than %d parts of %d bytes", w.key, maxParts, w.d.partSize)
	}
	if w.uploadID == "" {
		out, err := w.d.client.CreateMultipartUpload(w.uploadCtx, &s3sdk.CreateMultipartUploadInput{
			Bucket:               &w.d.bucket,
			Key:                  &w.objKey,
			ServerSideEncryption: w.d.sse,
		})
		if err != nil {
			return fail(w.uploadCtx, "start multipart upload", w.key, err)
		}
		if aws.ToString(out.UploadId) == "" {
			return fmt.Errorf("s3: start multipart upload %q: empty upload ID", w.key)
		}
		w.uploadID = *out.UploadId
	}
	select {
	case w.slots <- struct{}{}:
	case <-w.uploadCtx.Done():
		return w.stopped(w.uploadCtx, op)
	case <-ctx.Done():
		return w.stopped(ctx, op)
	}
	if err := w.failure(); err != nil {
		<-w.slots
		return err
	}
	w.nparts++
	num, part := w.nparts, w.buf
	w.buf = nil
	w.wg.Go(func() {
		defer func() {
			// The buffer is free before the slot is: the writer takes a
			// new buffer only after taking a slot, so it finds this one.
			w.free <- part
			<-w.slots
		}()
		out, err := w.d.uploadPart(w.uploadCtx, &s3sdk.UploadPartInput{
			Bucket:     &w.d.bucket,
			Key:        &w.objKey,
			UploadId:   &w.uploadID,
			PartNumber: aws.Int32(num),
		}, part)
		if err != nil {
			w.setFailure(fail(w.uploadCtx, fmt.Sprintf("upload part %d of", num), w.key, err))
			w.stop() // no point finishing the other parts
			return
		}
		w.mu.Lock()
		w.parts = append(w.parts, s3types.CompletedPart{ETag: out.ETag, PartNumber: aws.Int32(num)})
		w.mu.Unlock()
	})
	return nil
}

// stopped explains why ctx ended: a failed part (which stops the uploads)
// rather than the cancellation it caused.
func (w *writer) stopped(ctx context.Context, op string) error {
	if err := w.failure(); err != nil {
		return err
	}
	return fail(ctx, op, w.key, ctx.Err())
}

// Commit makes the object visible: a single PUT for an object of at most
// PartSize bytes, otherwise the last part and CompleteMultipartUpload once
// every part is stored. On failure nothing becomes visible and the
// multipart upload is aborted.
func (w *writer) Commit(ctx context.Context) error {
	if w.state != stateOpen {
		return w.closedErr()
	}
	if err := w.commit(ctx); err != nil {
		if derr := w.discard(ctx); derr != nil {
			return errors.Join(err, derr)
		}
		return err
	}
	w.state = stateCommitted
	w.stop()
	w.releaseBuf()
	return nil
}

func (w *writer) commit(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fail(ctx, "commit", w.key, err)
	}
	if err := w.failure(); err != nil {
		return err
	}
	if w.uploadID == "" {
		return w.putObject(ctx)
	}
	if len(w.buf) > 0 {
		if err := w.shipPart(ctx, "commit"); err != nil {
			return err
		}
	}
	if err := w.wait(ctx); err != nil {
		return err
	}
	if err := w.failure(); err != nil {
		return err
	}
	parts := w.parts // every part goroutine has returned
	slices.SortFunc(parts, func(a, b s3types.CompletedPart) int {
		return int(aws.ToInt32(a.PartNumber) - aws.ToInt32(b.PartNumber))
	})
	// Last chance to give up before the object becomes visible.
	if err := ctx.Err(); err != nil {
		return fail(ctx, "commit", w.key, err)
	}
	_, err := w.d.client.CompleteMultipartUpload(ctx, &s3sdk.CompleteMultipartUploadInput{
		Bucket:          &w.d.bucket,
		Key:             &w.objKey,
		UploadId:        &w.uploadID,
		MultipartUpload: &s3types.CompletedMultipartUpload{Parts: parts},
	})
	if err != nil {
		return fail(ctx, "commit", w.key, err)
	}
	return nil
}

// putObject writes the whole (small) object with one PUT.
func (w *writer) putObject(ctx context.Context) error {
	defer w.releaseBuf()
	for attempt := 1; ; attempt++ {
		_, err := w.d.client.PutObject(ctx, &s3sdk.PutObjectInput{
			Bucket:               &w.d.bucket,
			Key:                  &w.objKey,
			Body:                 bytes.NewReader(w.buf),
			ContentLength:        aws.Int64(int64(len(w.buf))),
			ServerSideEncryption: w.d.sse,
		})
		if err == nil {
			return nil
		}
		if attempt == maxPutAttempts || !isDirectoryRace(err) || ctx.Err() != nil {
			return fail(ctx, "commit", w.key, err)
		}
		delay, _ := w.d.backoff.BackoffDelay(attempt, err)
		if err := sleep(ctx, delay); err != nil {
			return fail(ctx, "commit", w.key, err)
		}
	}
}

// wait waits for every part upload to return, or for ctx to end (then it
// stops them and still waits, which is quick).
func (w *writer) wait(ctx context.Context) error {
	done := make(chan struct{})
	go func() {
		w.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		w.stop()
		<-done
		return fail(ctx, "commit", w.key, ctx.Err())
	}
}

// Cancel discards the object and aborts its multipart upload. It is a no-op
// after a Cancel or a failed Commit and an error after a successful one.
// The cleanup runs even if ctx has ended (within a 30 s bound), because S3
// keeps, and bills, the parts of an upload until it is aborted.
func (w *writer) Cancel(ctx context.Context) error {
	switch w.state {
	case stateCommitted:
		return w.closedErr()
	case stateDiscarded:
		return nil
	}
	return w.discard(ctx)
}

// discard lets the part uploads in flight finish, aborts the multipart
// upload and retires the writer. Parts are not cut off: one whose body had
// reached the server can still land after the abort and bring the upload
// back (S3 documents the same), so the abort waits for their answers,
// within cleanupTimeout. Parts that were cut off anyway (the Writer's
// context ended, or another part failed) get a delayed second look.
func (w *writer) discard(ctx context.Context) error {
	w.state = stateDiscarded
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	w.wait(cctx) // on timeout it stops the parts and still waits
	cutOff := w.uploadCtx.Err() != nil
	w.stop()
	w.releaseBuf()
	if w.uploadID == "" {
		return nil
	}
	if err := w.d.abortUpload(cctx, w.objKey, w.uploadID, cutOff); err != nil {
		return fmt.Errorf("s3: %q: %w", w.key, err)
	}
	return nil
}

// releaseBuf hands every buffer of the finished writer to the Driver's
// pool. The part uploads have all returned.
func (w *writer) releaseBuf() {
	w.d.putBuf(w.buf)
	w.buf = nil
	for {
		select {
		case b := <-w.free:
			w.d.putBuf(b)
		default:
			return
		}
	}
}
