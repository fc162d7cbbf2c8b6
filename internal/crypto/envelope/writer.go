package envelope

import (
	"errors"
	"fmt"
	"io"
)

// errClosed is returned by Write and Close after Close.
var errClosed = errors.New("envelope: Writer already closed")

// Writer encrypts a stream into the envelope format. It holds one segment
// buffer (segment size plus 16 bytes per layer) and nothing else that grows:
// Write copies into the buffer, or seals straight from the caller's slice
// when a whole segment is available, and each sealed segment goes to the
// destination in exactly one Write call. A full segment is held back until
// more data arrives or Close is called, because only then is it known whether
// it is the last.
//
// A Writer is not safe for concurrent use. Errors from the destination are
// sticky: once a Write fails, every later call returns the same error.
type Writer struct {
	dst     io.Writer
	l       layers
	buf     []byte // plaintext of the current segment; sealed in place
	n       int    // plaintext bytes buffered in buf
	segSize int
	seg     uint64 // index of the segment being filled
	err     error
	closed  bool
}

// NewWriter writes h.Bytes() to w and returns a Writer that encrypts
// everything written to it into the segments that follow. keys[j] is the
// 32-byte plaintext data key of slot j and must be fresh and random for this
// object: the format's nonces are deterministic, so reusing a data key for
// two objects is a catastrophic nonce reuse. identity binds the ciphertext to
// where it is stored (for example the storage ARN) and must not be empty.
//
// NewWriter panics if a key is not 32 bytes, is all zero, or is used by both
// slots; those are broken invariants of the caller, never input errors.
// Close must be called to write the final segment; it does not close w.
// Neither keys nor identity is retained: the caller may clear the keys once
// NewWriter returns.
func NewWriter(w io.Writer, h *Header, identity []byte, keys ...[]byte) (*Writer, error) {
	l, err := newLayers(h, identity, keys)
	if err != nil {
		return nil, err
	}
	if err := writeAll(w, h.raw); err != nil {
		return nil, fmt.Errorf("envelope: write header: %w", err)
	}
	s := h.SegmentSize()
	return &Writer{
		dst:     w,
		l:       l,
		buf:     make([]byte, s, s+int(h.overhead())),
		segSize: s,
	}, nil
}

// Write encrypts p. It returns len(p) unless the destination failed.
func (w *Writer) Write(p []byte) (int, error) {
	if w.closed {
		return 0, errClosed
	}
	if w.err != nil {
		return 0, w.err
	}
	total := 0
	for len(p) > 0 {
		if w.n == w.segSize {
			// A full segment is buffered and more data follows: it is
			// not the last one.
			if err := w.flush(w.l.seal(w.buf, w.n, w.seg, false)); err != nil {
				return total, err
			}
		}
		if w.n == 0 && len(p) > w.segSize {
			// More than a whole segment is at hand, so this segment is
			// not the last: seal it straight from p.
			if err := w.flush(w.l.sealFrom(w.buf, p[:w.segSize], w.seg, false)); err != nil {
				return total, err
			}
			total += w.segSize
			p = p[w.segSize:]
			continue
		}
		c := copy(w.buf[w.n:w.segSize], p)
		w.n += c
		total += c
		p = p[c:]
	}
	return total, nil
}

// Close seals and writes the final segment (empty if nothing was written)
// and releases the key schedules. It does not close the destination. Calling
// Close again, or Write after Close, returns an error.
func (w *Writer) Close() error {
	if w.closed {
		return errClosed
	}
	w.closed = true
	defer w.release()
	if w.err != nil {
		return w.err
	}
	return w.flush(w.l.seal(w.buf, w.n, w.seg, true))
}

// CloseBound is Close with a binding: binding (at most MaxBinding bytes,
// typically the SHA-256 of the whole plaintext) is appended to the final
// segment's additional data, so the object opens only for a reader that
// presents the same binding (NewBoundReader). A registry binds each object
// to its content digest this way: a reader that authenticates the final
// segment has proven the digest without hashing the content again.
func (w *Writer) CloseBound(binding []byte) error {
	if w.closed {
		return errClosed
	}
	if err := w.l.bind(binding); err != nil {
		w.closed = true
		w.release()
		return err
	}
	return w.Close()
}

// flush writes one sealed segment and starts the next.
func (w *Writer) flush(ct []byte) error {
	if err := writeAll(w.dst, ct); err != nil {
		w.err = fmt.Errorf("envelope: write segment %d: %w", w.seg, err)
		return w.err
	}
	w.seg++
	w.n = 0
	return nil
}

func (w *Writer) release() {
	w.l.wipe()
	clear(w.buf[:cap(w.buf)])
	w.buf = nil
}

// writeAll writes p in one call and reports a short write as an error.
func writeAll(w io.Writer, p []byte) error {
	n, err := w.Write(p)
	if err == nil && n != len(p) {
		err = io.ErrShortWrite
	}
	return err
}
