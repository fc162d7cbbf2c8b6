package audit

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
)

// Segments are preallocated. A write that grows a file makes its fsync
// commit the file system's journal as well (the new size, the new
// blocks); a write over blocks that were already written and synced does
// not, and on ext4 costs about half the CPU and half the latency (111 µs
// against 62 µs of CPU per 10 KiB write + sync on this project's VMs).
// Every request waits for one of these syncs (group commit), so a spare
// segment file is prepared ahead of need, off the request path: zero
// filled to the size the last segment reached, synced, in state/tmp. A
// new segment takes it over (header written, renamed into segments/, the
// directory synced) and its group commits overwrite zeros with
// fdatasync. No spare is made when its file system would be left with
// less than spareHeadroom free. The zero tail ends the valid prefix (parseFrames stops at a
// zero-length frame), so recovery and tail never read it as records, and
// a spare left by a crash is removed with state/tmp on the next start.
const (
	spareMin = 1 << 20
	spareMax = 64 << 20
)

// spares prepares one spare segment file at a time.
type spares struct {
	dir string
	log *slog.Logger

	mu     sync.Mutex
	ready  *os.File // a zero-filled, synced file, or nil
	path   string
	size   int64 // the size of the next spare
	making bool
	closed bool
	wg     sync.WaitGroup
}

func newSpares(dir string, log *slog.Logger) *spares {
	p := &spares{dir: dir, log: log, size: spareMin}
	p.mu.Lock()
	p.startLocked()
	p.mu.Unlock()
	return p
}

// observe sizes the next spares after a segment that reached n bytes.
func (p *spares) observe(n int64) {
	want := (n + n/4 + spareMin - 1) / spareMin * spareMin
	p.mu.Lock()
	p.size = min(max(want, spareMin), spareMax)
	p.mu.Unlock()
}

// take returns the ready spare and its path, or nil when none is ready,
// and starts preparing the next one.
func (p *spares) take() (*os.File, string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	f, path := p.ready, p.path
	p.ready, p.path = nil, ""
	p.startLocked()
	return f, path
}

func (p *spares) startLocked() {
	if p.making || p.closed || p.ready != nil {
		return
	}
	p.making = true
	size := p.size
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		f, path, err := makeSpare(p.dir, size)
		if err != nil {
			p.log.Warn("audit: preparing a spare segment failed; segments are created on demand", "error", err)
		}
		p.mu.Lock()
		defer p.mu.Unlock()
		p.making = false
		if f == nil {
			return
		}
		if p.closed {
			f.Close()
			os.Remove(path)
			return
		}
		p.ready, p.path = f, path
	}()
}

// close waits for a spare being made and removes the spare.
func (p *spares) close() {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	p.wg.Wait()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ready != nil {
		p.ready.Close()
		os.Remove(p.path)
		p.ready, p.path = nil, ""
	}
}

// spareHeadroom is the free space a spare must leave on its file system:
// preallocation must never be what fills a disk that records still fit
// on.
const spareHeadroom = 256 << 20

func makeSpare(dir string, size int64) (*os.File, string, error) {
	if free, err := freeBytes(dir); err != nil || free < size+spareHeadroom {
		return nil, "", nil // segments are created on demand
	}
	f, err := os.CreateTemp(dir, "spare-*.wal")
	if err != nil {
		return nil, "", err
	}
	zero := make([]byte, 1<<20)
	for off := int64(0); off < size && err == nil; off += int64(len(zero)) {
		_, err = f.Write(zero[:min(int64(len(zero)), size-off)])
	}
	if err == nil {
		err = f.Sync()
	}
	if err != nil {
		f.Close()
		os.Remove(f.Name())
		return nil, "", fmt.Errorf("spare segment: %w", err)
	}
	return f, f.Name(), nil
}

// adoptSpare makes a spare file the segment p: the header frame at its
// start, synced, then the file renamed into place and the directory
// synced.
func adoptSpare(f *os.File, spare, p string, header []byte) error {
	if _, err := f.WriteAt(header, 0); err != nil {
		return err
	}
	if err := datasync(f); err != nil {
		return err
	}
	if err := os.Rename(spare, p); err != nil {
		return err
	}
	return syncDir(filepath.Dir(p))
}
