package envelope

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

// FuzzParseHeader feeds arbitrary bytes to ParseHeader. It must never panic,
// must fail only with ErrFormat, and on success must have consumed exactly
// the header, whose bytes NewHeader reproduces from the parsed fields.
func FuzzParseHeader(f *testing.F) {
	for _, n := range []int{1, 2} {
		f.Add(mustHeader(f, 12, n).Bytes())
		f.Add(append(mustHeader(f, 24, n).Bytes(), 1, 2, 3))
	}
	f.Add([]byte("CFE\x00\x01\x10\x01\x01\x00\x01k\x00\x01w"))
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bytes.NewReader(data)
		h, err := ParseHeader(r)
		if err != nil {
			if !errors.Is(err, ErrFormat) || h != nil {
				t.Fatalf("ParseHeader = %v, %v", h, err)
			}
			return
		}
		raw := h.Bytes()
		if h.Len() > maxHeaderLen || !bytes.Equal(raw, data[:h.Len()]) || r.Len() != len(data)-len(raw) {
			t.Fatal("ParseHeader did not consume exactly the header")
		}
		again, err := NewHeader(h.SegmentShift, h.Slots...)
		if err != nil || !bytes.Equal(again.Bytes(), raw) {
			t.Fatalf("NewHeader does not reproduce a parsed header: %v", err)
		}
		if c := h.CiphertextSize(0); c < h.Len() {
			t.Fatalf("CiphertextSize(0) = %d", c)
		}
	})
}

// FuzzReader treats arbitrary bytes as a stored object and decrypts it with
// fixed keys and identity, in full and in a range. It must never panic, and
// a read that ends without error must be genuine: since encryption is
// deterministic given header, keys and identity, the plaintext it returned
// must re-encrypt to exactly the input. A successful full read also implies
// the range read succeeds with the matching slice.
func FuzzReader(f *testing.F) {
	for _, n := range []int{1, 2} {
		for _, L := range []int{0, 1, 100, 4096, 4097} {
			h := mustHeader(f, 12, n)
			f.Add(encrypt(f, h, testIdentity, pattern(L), testKeys[:n]), int64(L), int64(0), int64(L))
			f.Add(encrypt(f, h, testIdentity, pattern(L), testKeys[:n]), int64(L), int64(L/2), int64(1))
		}
	}
	f.Fuzz(func(t *testing.T, data []byte, plainSize, off, n int64) {
		r := bytes.NewReader(data)
		h, err := ParseHeader(r)
		if err != nil {
			return
		}
		keys := testKeys[:len(h.Slots)]
		body := data[h.Len():]
		pr, err := NewReader(bytes.NewReader(body), h, testIdentity, plainSize, keys...)
		var pt []byte
		if err == nil {
			pt, err = io.ReadAll(pr)
		}
		fullOK := err == nil
		if fullOK {
			if obj := encrypt(t, h, testIdentity, pt, keys); !bytes.Equal(obj, data) {
				t.Fatal("reader returned plaintext for an object the Writer did not produce")
			}
		} else if !errors.Is(err, ErrAuth) && !errors.Is(err, ErrTruncated) && !errors.Is(err, ErrRange) {
			t.Fatalf("unexpected error: %v", err)
		}

		co, cl, err := h.Span(plainSize, off, n)
		if err != nil {
			return
		}
		co -= h.Len()
		if co < 0 || co > int64(len(body)) {
			return
		}
		span := body[co:min(co+cl, int64(len(body)))]
		rr, err := NewRangeReader(bytes.NewReader(span), h, testIdentity, plainSize, off, n, keys...)
		if err != nil {
			t.Fatalf("NewRangeReader rejected a range Span accepted: %v", err)
		}
		got, err := io.ReadAll(rr)
		if fullOK && (err != nil || !bytes.Equal(got, pt[off:off+n])) {
			t.Fatalf("range read of a genuine object: %v", err)
		}
		if err == nil && int64(len(got)) != n {
			t.Fatalf("range read returned %d bytes, want %d", len(got), n)
		}
	})
}
