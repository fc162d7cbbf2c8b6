package envelope

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"
	"testing"
	"testing/iotest"
)

func TestNewHeaderValidation(t *testing.T) {
	t.Parallel()
	ok := testSlots[0]
	with := func(f func(*Slot)) Slot {
		s := ok
		f(&s)
		return s
	}
	tests := []struct {
		name  string
		shift uint8
		slots []Slot
		valid bool
	}{
		{"default", DefaultSegmentShift, []Slot{ok}, true},
		{"min shift", 12, []Slot{ok}, true},
		{"max shift", 24, []Slot{ok}, true},
		{"dual layer", 16, testSlots, true},
		{"shift 0", 0, []Slot{ok}, false},
		{"shift 11", 11, []Slot{ok}, false},
		{"shift 25", 25, []Slot{ok}, false},
		{"no slots", 16, nil, false},
		{"three slots", 16, []Slot{ok, ok, ok}, false},
		{"source 0", 16, []Slot{with(func(s *Slot) { s.Source = 0 })}, false},
		{"source 3", 16, []Slot{with(func(s *Slot) { s.Source = 3 })}, false},
		{"empty key ID", 16, []Slot{with(func(s *Slot) { s.KeyID = "" })}, false},
		{"max key ID", 16, []Slot{with(func(s *Slot) { s.KeyID = strings.Repeat("k", 2048) })}, true},
		{"long key ID", 16, []Slot{with(func(s *Slot) { s.KeyID = strings.Repeat("k", 2049) })}, false},
		{"non-UTF-8 key ID", 16, []Slot{with(func(s *Slot) { s.KeyID = "key\xff" })}, false},
		{"empty wrapped", 16, []Slot{with(func(s *Slot) { s.Wrapped = nil })}, false},
		{"max wrapped", 16, []Slot{with(func(s *Slot) { s.Wrapped = make([]byte, 4096) })}, true},
		{"long wrapped", 16, []Slot{with(func(s *Slot) { s.Wrapped = make([]byte, 4097) })}, false},
		{"bad second slot", 16, []Slot{ok, with(func(s *Slot) { s.Source = 9 })}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h, err := NewHeader(tt.shift, tt.slots...)
			if !tt.valid {
				if !errors.Is(err, ErrFormat) {
					t.Fatalf("error = %v, want ErrFormat", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if h.SegmentShift != tt.shift || h.SegmentSize() != 1<<tt.shift || h.Version != 1 {
				t.Fatalf("header fields: %+v", h)
			}
			// Round trip through ParseHeader, leaving following bytes unread.
			r := bytes.NewReader(append(h.Bytes(), "BODY"...))
			p, err := ParseHeader(r)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(p.Bytes(), h.Bytes()) || p.Len() != h.Len() || p.SegmentShift != tt.shift {
				t.Fatal("parsed header differs")
			}
			for i := range tt.slots {
				s, q := tt.slots[i], p.Slots[i]
				if s.Source != q.Source || s.KeyID != q.KeyID || !bytes.Equal(s.Wrapped, q.Wrapped) {
					t.Fatalf("slot %d differs", i)
				}
			}
			if rest, _ := io.ReadAll(r); string(rest) != "BODY" {
				t.Fatalf("ParseHeader over-read: %q left", rest)
			}
		})
	}
}

func TestHeaderMaxSize(t *testing.T) {
	t.Parallel()
	big := Slot{Source: SourceKMS, KeyID: strings.Repeat("é", 1024), Wrapped: make([]byte, 4096)}
	h, err := NewHeader(16, big, big)
	if err != nil {
		t.Fatal(err)
	}
	if h.Len() > maxHeaderLen {
		t.Fatalf("largest header is %d bytes, over %d", h.Len(), maxHeaderLen)
	}
	if _, err := ParseHeader(iotest.OneByteReader(bytes.NewReader(h.Bytes()))); err != nil {
		t.Fatal(err)
	}
}

func TestHeaderIsACopy(t *testing.T) {
	t.Parallel()
	slot := Slot{Source: SourceRoot, KeyID: "k", Wrapped: []byte{1, 2, 3}}
	h, err := NewHeader(16, slot)
	if err != nil {
		t.Fatal(err)
	}
	before := h.Bytes()
	slot.Wrapped[0] = 9
	h.Bytes()[0] = 'X'
	h.Slots[0].Wrapped[1] = 9
	h.SegmentShift = 20
	if !bytes.Equal(h.Bytes(), before) || h.SegmentSize() != 1<<16 {
		t.Fatal("header bytes changed through an alias or a field")
	}
}

func TestParseHeaderErrors(t *testing.T) {
	t.Parallel()
	good := mustHeader(t, 16, 2).Bytes()
	set := func(i int, v byte) []byte {
		b := bytes.Clone(good)
		b[i] = v
		return b
	}
	tests := []struct {
		name string
		in   []byte
	}{
		{"empty", nil},
		{"bad magic", set(0, 'D')},
		{"magic NUL", set(3, 1)},
		{"version 0", set(4, 0)},
		{"version 2", set(4, 2)},
		{"shift 11", set(5, 11)},
		{"shift 25", set(5, 25)},
		{"no slots", set(6, 0)},
		{"three slots", set(6, 3)},
		{"source 0", set(7, 0)},
		{"source 3", set(7, 3)},
		{"key ID length 0", set(9, 0)[:10]},
		{"key ID length 2049", append(set(8, 0x08), 0x01)[:10]},
		{"key ID not UTF-8", set(10, 0xff)},
		{"huge wrapped length", func() []byte {
			b := bytes.Clone(good)
			off := 7 + 3 + len(testSlots[0].KeyID)
			b[off], b[off+1] = 0xff, 0xff
			return b
		}()},
		{"zero wrapped length", func() []byte {
			b := bytes.Clone(good)
			off := 7 + 3 + len(testSlots[0].KeyID)
			b[off], b[off+1] = 0, 0
			return b
		}()},
	}
	// Every proper prefix of a good header is truncated.
	for n := range len(good) {
		tests = append(tests, struct {
			name string
			in   []byte
		}{fmt.Sprintf("prefix %d", n), good[:n]})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h, err := ParseHeader(bytes.NewReader(tt.in))
			if !errors.Is(err, ErrFormat) || h != nil {
				t.Fatalf("ParseHeader = %v, %v; want ErrFormat", h, err)
			}
		})
	}
}

func TestParseHeaderReadError(t *testing.T) {
	t.Parallel()
	boom := errors.New("disk on fire")
	good := mustHeader(t, 16, 1).Bytes()
	r := io.MultiReader(bytes.NewReader(good[:10]), iotest.ErrReader(boom))
	_, err := ParseHeader(r)
	if !errors.Is(err, boom) || errors.Is(err, ErrFormat) {
		t.Fatalf("error = %v, want the read error and not ErrFormat", err)
	}
}

func TestSizes(t *testing.T) {
	t.Parallel()
	for _, nslots := range []int{1, 2} {
		h := mustHeader(t, 12, nslots)
		S := int64(4096)
		ov := int64(16 * nslots)
		hl := h.Len()
		tests := []struct {
			plain, cipher int64
		}{
			{0, hl + ov},
			{1, hl + 1 + ov},
			{S - 1, hl + S - 1 + ov},
			{S, hl + S + ov},
			{S + 1, hl + S + 1 + 2*ov},
			{3 * S, hl + 3*S + 3*ov},
			{3*S + 7, hl + 3*S + 7 + 4*ov},
		}
		for _, tt := range tests {
			if got := h.CiphertextSize(tt.plain); got != tt.cipher {
				t.Errorf("slots=%d CiphertextSize(%d) = %d, want %d", nslots, tt.plain, got, tt.cipher)
			}
			if got, err := h.PlaintextSize(tt.cipher); err != nil || got != tt.plain {
				t.Errorf("slots=%d PlaintextSize(%d) = %d, %v; want %d", nslots, tt.cipher, got, err, tt.plain)
			}
		}
		// Inverse over a dense range, and every impossible size rejected.
		valid := map[int64]bool{}
		for p := range 3*S + 2 {
			c := h.CiphertextSize(p)
			valid[c] = true
			if got, err := h.PlaintextSize(c); err != nil || got != p {
				t.Fatalf("slots=%d PlaintextSize(CiphertextSize(%d)) = %d, %v", nslots, p, got, err)
			}
		}
		for c := int64(-1); c < h.CiphertextSize(3*S+1); c++ {
			if valid[c] {
				continue
			}
			if _, err := h.PlaintextSize(c); !errors.Is(err, ErrFormat) {
				t.Fatalf("slots=%d PlaintextSize(%d) error = %v, want ErrFormat", nslots, c, err)
			}
		}
		if got := h.CiphertextSize(-1); got != -1 {
			t.Errorf("CiphertextSize(-1) = %d", got)
		}
		if got := h.CiphertextSize(math.MaxInt64); got != -1 {
			t.Errorf("CiphertextSize(MaxInt64) = %d", got)
		}
	}
}

func TestSpan(t *testing.T) {
	t.Parallel()
	h := mustHeader(t, 12, 2)
	hl, cs := h.Len(), int64(4096+32)
	L := int64(3*4096 + 7)
	total := h.CiphertextSize(L)
	tests := []struct {
		name             string
		plain, off, n    int64
		wantOff, wantLen int64
		wantErr          bool
	}{
		{"first byte", L, 0, 1, hl, cs, false},
		{"whole first segment", L, 0, 4096, hl, cs, false},
		{"crosses boundary", L, 4095, 2, hl, 2 * cs, false},
		{"second segment", L, 4096, 4096, hl + cs, cs, false},
		{"last byte", L, L - 1, 1, hl + 3*cs, 7 + 32, false},
		{"whole object", L, 0, L, hl, total - hl, false},
		{"last two segments", L, 2 * 4096, 4103, hl + 2*cs, total - hl - 2*cs, false},
		{"empty object", 0, 0, 0, hl, 32, false},
		{"empty range", L, 0, 0, 0, 0, true},
		{"empty range at end", L, L, 0, 0, 0, true},
		{"negative offset", L, -1, 1, 0, 0, true},
		{"negative length", L, 0, -1, 0, 0, true},
		{"past end", L, L, 1, 0, 0, true},
		{"overlong", L, 1, L, 0, 0, true},
		{"overflow", L, 5, math.MaxInt64, 0, 0, true},
		{"negative size", -1, 0, 0, 0, 0, true},
		{"byte of empty object", 0, 0, 1, 0, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			off, n, err := h.Span(tt.plain, tt.off, tt.n)
			if tt.wantErr {
				if !errors.Is(err, ErrRange) {
					t.Fatalf("Span error = %v, want ErrRange", err)
				}
				return
			}
			if err != nil || off != tt.wantOff || n != tt.wantLen {
				t.Fatalf("Span = %d, %d, %v; want %d, %d", off, n, err, tt.wantOff, tt.wantLen)
			}
		})
	}
}

func TestZeroHeaderPanics(t *testing.T) {
	t.Parallel()
	defer func() {
		if recover() == nil {
			t.Fatal("no panic")
		}
	}()
	var h Header
	h.SegmentSize()
}
