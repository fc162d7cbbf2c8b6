package envelope

import (
	"errors"
	"fmt"
	"io"
)

// reader decrypts a run of consecutive segments. It holds one ciphertext
// segment buffer, opens each segment in place, and hands out plaintext only
// after every layer of that segment has authenticated.
type reader struct {
	src    io.Reader
	l      layers
	buf    []byte // ciphertext, then plaintext, of the current segment
	out    []byte // authenticated plaintext not yet returned (within buf)
	err    error  // sticky; io.EOF after the last segment
	one    [1]byte
	seg    int64 // next segment to read
	end    int64 // one past the last segment to read
	nseg   int64 // segments in the whole object
	first  int64 // first segment of the range
	skip   int   // plaintext bytes to drop from the first segment
	remain int64 // plaintext bytes still to return
	segLen int64 // ciphertext size of a full segment
	lastCT int64 // ciphertext size of the object's final segment
}

// NewReader returns a reader of the whole plaintext of an object. r must be
// positioned just after the header (as ParseHeader leaves it) and yield the
// rest of the object and nothing more; plainSize is the trusted plaintext
// size from metadata. Missing bytes are reported as ErrTruncated, bytes after
// the final segment and any other mismatch as ErrAuth. Read returns plaintext
// only after its segment authenticates, so on error the caller has seen an
// authentic prefix and nothing else. It panics on malformed keys, as
// NewWriter does.
func NewReader(r io.Reader, h *Header, identity []byte, plainSize int64, keys ...[]byte) (io.Reader, error) {
	return newRangeReader(r, h, identity, plainSize, 0, plainSize, nil, keys)
}

// NewBoundReader is NewReader for an object written with CloseBound: the
// final segment authenticates only with the same binding, else ErrAuth.
func NewBoundReader(r io.Reader, h *Header, identity []byte, plainSize int64, binding []byte, keys ...[]byte) (io.Reader, error) {
	return newRangeReader(r, h, identity, plainSize, 0, plainSize, binding, keys)
}

// NewBoundRangeReader is NewRangeReader for an object written with
// CloseBound. The binding matters only when the range includes the final
// segment.
func NewBoundRangeReader(r io.Reader, h *Header, identity []byte, plainSize, off, n int64, binding []byte, keys ...[]byte) (io.Reader, error) {
	return newRangeReader(r, h, identity, plainSize, off, n, binding, keys)
}

// NewRangeReader returns a reader of the plaintext range [off, off+n) of an
// object of plainSize bytes. r must yield exactly the stored bytes
// Span(plainSize, off, n) describes: extra bytes are ErrAuth, missing ones
// ErrTruncated. Invalid ranges are ErrRange. It panics on malformed keys, as
// NewWriter does, and likewise does not retain keys or identity.
func NewRangeReader(r io.Reader, h *Header, identity []byte, plainSize, off, n int64, keys ...[]byte) (io.Reader, error) {
	return newRangeReader(r, h, identity, plainSize, off, n, nil, keys)
}

func newRangeReader(r io.Reader, h *Header, identity []byte, plainSize, off, n int64, binding []byte, keys [][]byte) (io.Reader, error) {
	l, err := newLayers(h, identity, keys)
	if err != nil {
		return nil, err
	}
	if err := l.bind(binding); err != nil {
		return nil, err
	}
	_, cipherLen, err := h.Span(plainSize, off, n)
	if err != nil {
		return nil, err
	}
	rd := &reader{
		src:    r,
		l:      l,
		nseg:   h.segments(plainSize),
		remain: n,
		segLen: int64(h.SegmentSize()) + h.overhead(),
	}
	rd.lastCT = h.CiphertextSize(plainSize) - h.Len() - (rd.nseg-1)*rd.segLen
	if n > 0 {
		rd.first, rd.end = h.segmentRange(off, n)
		rd.end++
		rd.skip = int(off - rd.first*int64(h.SegmentSize()))
	} else { // the empty object: one empty segment
		rd.first, rd.end = 0, 1
	}
	rd.seg = rd.first
	// A range of short segments needs less than a full segment buffer.
	rd.buf = make([]byte, min(rd.segLen, cipherLen))
	return rd, nil
}

// Read implements io.Reader.
func (r *reader) Read(p []byte) (int, error) {
	for len(r.out) == 0 {
		if r.err != nil {
			return 0, r.err
		}
		r.next()
	}
	n := copy(p, r.out)
	r.out = r.out[n:]
	return n, nil
}

// WriteTo implements io.WriterTo, so io.Copy writes each authenticated
// segment straight from the segment buffer.
func (r *reader) WriteTo(w io.Writer) (int64, error) {
	var total int64
	for {
		if len(r.out) > 0 {
			n, err := w.Write(r.out)
			total += int64(n)
			r.out = r.out[n:]
			if err == nil && len(r.out) > 0 {
				err = io.ErrShortWrite
			}
			if err != nil {
				return total, err
			}
		}
		if r.err == io.EOF {
			return total, nil
		}
		if r.err != nil {
			return total, r.err
		}
		r.next()
	}
}

// next reads, authenticates and decrypts the next segment into r.out, or sets
// r.err (io.EOF after the last segment of the range).
func (r *reader) next() {
	if r.seg == r.end {
		r.finish(io.EOF)
		return
	}
	i := r.seg
	last := i == r.nseg-1
	size := r.segLen
	if last {
		size = r.lastCT
	}
	ct := r.buf[:size]
	if _, err := io.ReadFull(r.src, ct); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			err = ErrTruncated
		}
		r.finish(fmt.Errorf("envelope: segment %d: %w", i, err))
		return
	}
	if i+1 == r.end {
		// The source must end here: nothing after the range's final
		// segment is authenticated, so extra bytes are an error.
		n, err := io.ReadFull(r.src, r.one[:])
		if n > 0 {
			r.finish(fmt.Errorf("envelope: data after segment %d: %w", i, ErrAuth))
			return
		}
		if !errors.Is(err, io.EOF) {
			r.finish(fmt.Errorf("envelope: segment %d: %w", i, err))
			return
		}
	}
	pt, err := r.l.open(ct, uint64(i), last)
	if err != nil {
		r.finish(fmt.Errorf("envelope: segment %d: %w", i, ErrAuth))
		return
	}
	if i == r.first {
		pt = pt[r.skip:]
	}
	if int64(len(pt)) > r.remain {
		pt = pt[:r.remain]
	}
	r.remain -= int64(len(pt))
	r.out = pt
	r.seg++
}

// finish records the terminal state and drops the key schedules and buffer.
// It is only called when no plaintext is pending.
func (r *reader) finish(err error) {
	r.err = err
	r.l.wipe()
	clear(r.buf)
	r.buf = nil
	r.out = nil
}
