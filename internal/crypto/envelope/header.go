package envelope

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"unicode/utf8"
)

// Key sources a Slot can name, and the default segment size.
const (
	// SourceRoot marks a data key wrapped by the service root key
	// (AES256 repositories).
	SourceRoot uint8 = 1
	// SourceKMS marks a data key wrapped by a KMS key (KMS and KMS_DSSE
	// repositories).
	SourceKMS uint8 = 2
	// DefaultSegmentShift is the default log2 of the plaintext segment
	// size: 1<<16 = 64 KiB.
	DefaultSegmentShift = 16
)

// Sentinel errors. Callers test them with errors.Is; the returned errors wrap
// them with detail that never contains key material or plaintext.
var (
	// ErrFormat reports a malformed header or an impossible size.
	ErrFormat = errors.New("envelope: malformed ciphertext header")
	// ErrAuth reports a segment that failed authentication: a flipped
	// byte, a changed header or identity, wrong keys, reordered or spliced
	// segments, or data after the final segment.
	ErrAuth = errors.New("envelope: ciphertext failed authentication")
	// ErrTruncated reports a ciphertext that ended before the final segment
	// was complete.
	ErrTruncated = errors.New("envelope: ciphertext truncated")
	// ErrRange reports a plaintext range outside the object.
	ErrRange = errors.New("envelope: invalid plaintext range")
)

// Format limits (docs/envelope.md).
const (
	version1      = 1
	minShift      = 12
	maxShift      = 24
	maxKeyIDLen   = 2048
	maxWrappedLen = 4096
	maxHeaderLen  = 16 << 10
	fixedLen      = 7 // magic, version, seg_shift, nslots
	tagSize       = 16
	keySize       = 32
)

var magic = [4]byte{'C', 'F', 'E', 0}

// Slot names one layer's data key: where its wrapping key lives (Source),
// which key wrapped it (KeyID, e.g. a KMS key ARN or a root key check value),
// and the wrapped data key itself. Slot j supplies the key of layer j.
type Slot struct {
	Source  uint8
	KeyID   string
	Wrapped []byte
}

// Header is the parsed or freshly built object header. Its exported fields
// are informational copies: the encoded bytes fixed at construction are what
// Bytes returns and what the ciphertext is bound to, so changing the fields
// afterwards changes nothing. A Header must come from NewHeader or
// ParseHeader; the zero Header is unusable and its methods panic.
type Header struct {
	Version      uint8
	SegmentShift uint8
	Slots        []Slot

	raw []byte
}

// NewHeader validates the segment shift (12..24) and the slots (one for a
// single layer, two for dual layer) and returns the encoded header. Invalid
// input is reported as ErrFormat with detail.
func NewHeader(segmentShift uint8, slots ...Slot) (*Header, error) {
	if segmentShift < minShift || segmentShift > maxShift {
		return nil, fmt.Errorf("%w: segment shift %d outside %d..%d", ErrFormat, segmentShift, minShift, maxShift)
	}
	if len(slots) != 1 && len(slots) != 2 {
		return nil, fmt.Errorf("%w: %d slots, want 1 or 2", ErrFormat, len(slots))
	}
	size := fixedLen
	for i, s := range slots {
		if err := checkSlot(s.Source, len(s.KeyID), len(s.Wrapped)); err != nil {
			return nil, fmt.Errorf("slot %d: %w", i, err)
		}
		if !utf8.ValidString(s.KeyID) {
			return nil, fmt.Errorf("slot %d: %w: key ID is not UTF-8", i, ErrFormat)
		}
		size += 5 + len(s.KeyID) + len(s.Wrapped)
	}
	if size > maxHeaderLen { // unreachable with the limits above; kept as a guard
		return nil, fmt.Errorf("%w: header of %d bytes exceeds %d", ErrFormat, size, maxHeaderLen)
	}
	raw := make([]byte, 0, size)
	raw = append(raw, magic[:]...)
	raw = append(raw, version1, segmentShift, uint8(len(slots)))
	h := &Header{Version: version1, SegmentShift: segmentShift, Slots: make([]Slot, len(slots))}
	for i, s := range slots {
		raw = append(raw, s.Source)
		raw = binary.BigEndian.AppendUint16(raw, uint16(len(s.KeyID)))
		raw = append(raw, s.KeyID...)
		raw = binary.BigEndian.AppendUint16(raw, uint16(len(s.Wrapped)))
		raw = append(raw, s.Wrapped...)
		h.Slots[i] = Slot{Source: s.Source, KeyID: s.KeyID, Wrapped: bytes.Clone(s.Wrapped)}
	}
	h.raw = raw
	return h, nil
}

func checkSlot(source uint8, keyIDLen, wrappedLen int) error {
	switch {
	case source != SourceRoot && source != SourceKMS:
		return fmt.Errorf("%w: unknown key source %d", ErrFormat, source)
	case keyIDLen < 1 || keyIDLen > maxKeyIDLen:
		return fmt.Errorf("%w: key ID length %d outside 1..%d", ErrFormat, keyIDLen, maxKeyIDLen)
	case wrappedLen < 1 || wrappedLen > maxWrappedLen:
		return fmt.Errorf("%w: wrapped key length %d outside 1..%d", ErrFormat, wrappedLen, maxWrappedLen)
	}
	return nil
}

// ParseHeader reads exactly one header from r, never more: afterwards r is
// positioned at the first segment. It reads at most 16 KiB and validates each
// length before reading the bytes it counts. A malformed or short header is
// ErrFormat; other read errors are returned wrapped.
func ParseHeader(r io.Reader) (*Header, error) {
	raw := make([]byte, fixedLen, 256)
	if err := readHeaderPart(r, raw); err != nil {
		return nil, err
	}
	if [4]byte(raw[:4]) != magic {
		return nil, fmt.Errorf("%w: bad magic", ErrFormat)
	}
	if raw[4] != version1 {
		return nil, fmt.Errorf("%w: unsupported version %d", ErrFormat, raw[4])
	}
	shift, nslots := raw[5], int(raw[6])
	if shift < minShift || shift > maxShift {
		return nil, fmt.Errorf("%w: segment shift %d outside %d..%d", ErrFormat, shift, minShift, maxShift)
	}
	if nslots != 1 && nslots != 2 {
		return nil, fmt.Errorf("%w: %d slots, want 1 or 2", ErrFormat, nslots)
	}
	h := &Header{Version: version1, SegmentShift: shift, Slots: make([]Slot, nslots)}
	for i := range nslots {
		start := len(raw)
		raw = append(raw, 0, 0, 0)
		if err := readHeaderPart(r, raw[start:]); err != nil {
			return nil, err
		}
		source := raw[start]
		idLen := int(binary.BigEndian.Uint16(raw[start+1:]))
		if err := checkSlot(source, idLen, 1); err != nil {
			return nil, fmt.Errorf("slot %d: %w", i, err)
		}
		idStart := len(raw)
		raw = append(raw, make([]byte, idLen+2)...)
		if err := readHeaderPart(r, raw[idStart:]); err != nil {
			return nil, err
		}
		keyID := raw[idStart : idStart+idLen]
		if !utf8.Valid(keyID) {
			return nil, fmt.Errorf("slot %d: %w: key ID is not UTF-8", i, ErrFormat)
		}
		wLen := int(binary.BigEndian.Uint16(raw[idStart+idLen:]))
		if err := checkSlot(source, idLen, wLen); err != nil {
			return nil, fmt.Errorf("slot %d: %w", i, err)
		}
		wStart := len(raw)
		raw = append(raw, make([]byte, wLen)...)
		if err := readHeaderPart(r, raw[wStart:]); err != nil {
			return nil, err
		}
		h.Slots[i] = Slot{Source: source, KeyID: string(keyID), Wrapped: bytes.Clone(raw[wStart:])}
	}
	if len(raw) > maxHeaderLen { // unreachable with the limits above; kept as a guard
		return nil, fmt.Errorf("%w: header of %d bytes exceeds %d", ErrFormat, len(raw), maxHeaderLen)
	}
	h.raw = raw
	return h, nil
}

func readHeaderPart(r io.Reader, p []byte) error {
	if _, err := io.ReadFull(r, p); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return fmt.Errorf("%w: truncated header", ErrFormat)
		}
		return fmt.Errorf("envelope: read header: %w", err)
	}
	return nil
}

// Bytes returns a copy of the encoded header.
func (h *Header) Bytes() []byte { return bytes.Clone(h.valid()) }

// Len returns the length of the encoded header in bytes.
func (h *Header) Len() int64 { return int64(len(h.valid())) }

// SegmentSize returns the plaintext segment size in bytes.
func (h *Header) SegmentSize() int { return 1 << h.valid()[5] }

// nslots returns the number of layers.
func (h *Header) nslots() int { return int(h.valid()[6]) }

// overhead returns the per-segment ciphertext expansion.
func (h *Header) overhead() int64 { return int64(tagSize * h.nslots()) }

// valid returns the raw header, panicking on a Header not built by this
// package (a broken caller invariant, like a zero key).
func (h *Header) valid() []byte {
	if h == nil || len(h.raw) < fixedLen {
		panic("envelope: use of a Header not made by NewHeader or ParseHeader")
	}
	return h.raw
}

// segments returns the number of segments of a plaintext of size plainSize
// (>= 0): max(1, ceil(plainSize / S)).
func (h *Header) segments(plainSize int64) int64 {
	s := int64(h.SegmentSize())
	n := plainSize / s
	if plainSize%s != 0 || n == 0 {
		n++
	}
	return n
}

// CiphertextSize returns the total stored size, header included, of an object
// whose plaintext is plainSize bytes. It returns -1 if plainSize is negative
// or the result would overflow an int64.
func (h *Header) CiphertextSize(plainSize int64) int64 {
	if plainSize < 0 {
		return -1
	}
	extra := h.Len() + h.segments(plainSize)*h.overhead()
	if plainSize > math.MaxInt64-extra {
		return -1
	}
	return plainSize + extra
}

// PlaintextSize is the inverse of CiphertextSize: it returns the plaintext
// size of a stored object of cipherSize bytes, header included, or ErrFormat
// if no plaintext size encrypts to exactly that many bytes.
func (h *Header) PlaintextSize(cipherSize int64) (int64, error) {
	ov := h.overhead()
	body := cipherSize - h.Len()
	if cipherSize < 0 || body < ov {
		return 0, fmt.Errorf("%w: object of %d bytes is too short", ErrFormat, cipherSize)
	}
	s := int64(h.SegmentSize())
	cs := s + ov
	full, rem := body/cs, body%cs
	switch {
	case rem == 0:
		return full * s, nil
	case rem > ov || (rem == ov && full == 0):
		return full*s + rem - ov, nil
	}
	return 0, fmt.Errorf("%w: object of %d bytes ends with a partial segment", ErrFormat, cipherSize)
}

// Span returns the absolute byte range [cipherOff, cipherOff+cipherLen) of
// the stored object that must be read to decrypt the plaintext range
// [off, off+n) of an object of plainSize bytes: every segment the range
// touches, whole. The range must be non-empty and lie inside the plaintext;
// the one exception is the empty range (0, 0) of an empty object, which spans
// its single empty segment. Anything else is ErrRange.
func (h *Header) Span(plainSize, off, n int64) (cipherOff, cipherLen int64, err error) {
	total := h.CiphertextSize(plainSize)
	switch {
	case total < 0:
		return 0, 0, fmt.Errorf("%w: plaintext size %d", ErrRange, plainSize)
	case plainSize == 0 && off == 0 && n == 0:
		return h.Len(), total - h.Len(), nil
	case off < 0 || n <= 0 || off >= plainSize || n > plainSize-off:
		return 0, 0, fmt.Errorf("%w: offset %d length %d of %d bytes", ErrRange, off, n, plainSize)
	}
	first, last := h.segmentRange(off, n)
	cs := int64(h.SegmentSize()) + h.overhead()
	cipherOff = h.Len() + first*cs
	end := h.Len() + (last+1)*cs
	if last == h.segments(plainSize)-1 {
		end = total
	}
	return cipherOff, end - cipherOff, nil
}

// segmentRange returns the first and last segment index touched by the
// non-empty plaintext range [off, off+n).
func (h *Header) segmentRange(off, n int64) (first, last int64) {
	shift := h.valid()[5]
	return off >> shift, (off + n - 1) >> shift
}
