package fs

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	iofs "io/fs"
	"os"
	"path"
	"sync"
	"syscall"
)

// bufSize is the write buffer of each Writer. Callers write anything from
// a few KiB (io.Copy: 32 KiB) to envelope chunks of 64 KiB+28; coalescing
// them into 256 KiB write(2) calls beat write-through by 1.5-3x for 4-64 KiB
// writes in BenchmarkWrite, and larger buffers (1-4 MiB) were no faster (the
// buffer falls out of L2) while costing 4-16x the memory per upload.
const bufSize = 256 << 10

// bufPool recycles write buffers so short-lived Writers of small objects do
// not each allocate and zero a buffer.
var bufPool = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, bufSize) }}

type writerState int

const (
	stateOpen writerState = iota
	stateCommitted
	stateDiscarded // canceled, or Commit failed and cleaned up
)

var (
	errCommitted = errors.New("fs: writer already committed")
	errDiscarded = errors.New("fs: writer already canceled or failed")
)

// writer streams into a staging file. Like any io.Writer it is not safe for
// concurrent use.
type writer struct {
	d     *Driver
	key   string
	tmp   string // staging path inside the root
	f     *os.File
	bw    *bufio.Writer
	size  int64
	err   error // first write error, sticky
	state writerState
}

func newWriter(d *Driver, key, tmp string, f *os.File) *writer {
	bw := bufPool.Get().(*bufio.Writer)
	bw.Reset(f)
	return &writer{d: d, key: key, tmp: tmp, f: f, bw: bw}
}

func (w *writer) closedErr() error {
	if w.state == stateCommitted {
		return fmt.Errorf("fs: %q: %w", w.key, errCommitted)
	}
	return fmt.Errorf("fs: %q: %w", w.key, errDiscarded)
}

// Write appends p to the staged object.
func (w *writer) Write(p []byte) (int, error) {
	if w.state != stateOpen {
		return 0, w.closedErr()
	}
	if w.err != nil {
		return 0, w.err
	}
	n, err := w.bw.Write(p)
	w.size += int64(n)
	if err != nil {
		w.err = fmt.Errorf("fs: write %q: %w", w.key, err)
		return n, w.err
	}
	return n, nil
}

// Size reports the bytes written so far.
func (w *writer) Size() int64 { return w.size }

// Commit flushes and fsyncs the staging file, renames it over the key and
// fsyncs the directories involved. On any failure before the rename nothing
// becomes visible and the staging file is removed.
func (w *writer) Commit(ctx context.Context) error {
	if w.state != stateOpen {
		return w.closedErr()
	}
	if err := w.seal(ctx); err != nil {
		w.discard()
		return err
	}
	gen, unsynced, err := w.d.publish(w.tmp, w.key)
	if err != nil {
		w.discard()
		return fmt.Errorf("fs: commit %q: %w", w.key, err)
	}
	// The object is visible now; the context no longer applies. If a
	// directory fsync fails the object stays visible but its durability is
	// unknown, so Commit reports the error and Cancel will not remove it.
	w.state = stateCommitted
	if err := w.d.syncParents(w.key, gen, unsynced); err != nil {
		return fmt.Errorf("fs: commit %q: sync directory: %w", w.key, err)
	}
	return nil
}

// seal makes the staging file complete and durable and closes it.
func (w *writer) seal(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("fs: commit %q: %w", w.key, err)
	}
	if w.err != nil {
		return w.err
	}
	if err := w.bw.Flush(); err != nil {
		return fmt.Errorf("fs: commit %q: %w", w.key, err)
	}
	w.releaseBuf()
	if err := w.f.Sync(); err != nil {
		return fmt.Errorf("fs: commit %q: fsync: %w", w.key, err)
	}
	err := w.f.Close()
	w.f = nil
	if err != nil {
		return fmt.Errorf("fs: commit %q: %w", w.key, err)
	}
	// Last chance to give up before the object becomes visible.
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("fs: commit %q: %w", w.key, err)
	}
	return nil
}

// Cancel discards the staged object. It is a no-op after a Cancel or a
// failed Commit and an error after a successful one.
func (w *writer) Cancel(ctx context.Context) error {
	switch w.state {
	case stateCommitted:
		return w.closedErr()
	case stateDiscarded:
		return nil
	}
	if err := w.discard(); err != nil {
		return fmt.Errorf("fs: cancel %q: %w", w.key, err)
	}
	return nil
}

// discard closes and removes the staging file and retires the writer.
func (w *writer) discard() error {
	w.state = stateDiscarded
	w.releaseBuf()
	var cerr error
	if w.f != nil {
		cerr = w.f.Close()
		w.f = nil
	}
	rerr := w.d.root.Remove(w.tmp)
	if errors.Is(rerr, iofs.ErrNotExist) {
		rerr = nil
	}
	return errors.Join(cerr, rerr)
}

func (w *writer) releaseBuf() {
	if w.bw != nil {
		w.bw.Reset(nil) // drops unflushed bytes and the file reference
		bufPool.Put(w.bw)
		w.bw = nil
	}
}

// publish renames the staging file tmp to key, creating parent directories
// as needed. It returns the directory-removal generation and the ancestor
// directories whose entries are not known to be durable, both read while
// the new object pins those directories in place.
func (d *Driver) publish(tmp, key string) (gen uint64, unsynced []string, err error) {
	d.ns.RLock()
	defer d.ns.RUnlock()
	parent := path.Dir(key)
	for attempt := 1; ; attempt++ {
		err = d.root.Rename(tmp, key)
		if err == nil {
			break
		}
		if parent == "." || !errors.Is(err, iofs.ErrNotExist) || attempt == maxPublishAttempts {
			return 0, nil, describeConflict(err)
		}
		// The parent is missing: never created, or removed between our
		// MkdirAll and Rename (another Delete saw it empty). Recreate it and
		// retry. ENOENT on the staging file itself ends after a few rounds.
		if err = d.root.MkdirAll(parent, dirPerm); err != nil && !errors.Is(err, iofs.ErrNotExist) {
			return 0, nil, describeConflict(err)
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for p := parent; p != "."; p = path.Dir(p) {
		if _, ok := d.durable[p]; !ok {
			unsynced = append(unsynced, p)
		}
	}
	return d.gen, unsynced, nil
}

// describeConflict explains the errors a key gets when it, or one of its
// prefixes, is already used the other way round (object vs directory).
func describeConflict(err error) error {
	for _, e := range []error{syscall.ENOTDIR, syscall.EISDIR, syscall.EEXIST, syscall.ENOTEMPTY} {
		if errors.Is(err, e) {
			return fmt.Errorf("key collides with an existing object or key prefix: %w", err)
		}
	}
	return err
}

// syncParents makes the rename of key durable: it fsyncs the key's parent
// and, for every ancestor in unsynced, the directory holding that
// ancestor's entry. It then remembers those ancestors as durable unless a
// directory was removed since publish read gen (the ancestor could be a new
// directory by the same name, whose entry nobody synced).
func (d *Driver) syncParents(key string, gen uint64, unsynced []string) error {
	parent := path.Dir(key)
	dirs := make([]string, 0, 1+len(unsynced))
	dirs = append(dirs, parent)
	for _, p := range unsynced {
		dirs = append(dirs, path.Dir(p))
	}
	for _, dir := range dirs {
		if err := d.syncDir(dir); err != nil {
			if isNotFound(err) {
				// Only pruning removes directories, and only empty ones: the
				// object was deleted after it committed. Nothing to persist.
				return nil
			}
			return err
		}
	}
	if len(unsynced) == 0 {
		return nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.gen != gen {
		return nil
	}
	if len(d.durable)+len(unsynced) > maxDurableDirs {
		clear(d.durable)
	}
	for _, p := range unsynced {
		d.durable[p] = struct{}{}
	}
	return nil
}
