package envelope

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"testing"
	"testing/iotest"
)

// chunked writes pt to w in pieces chosen by sizes (cycled); a size of 0
// means an empty Write call.
func chunked(t testing.TB, w io.Writer, pt []byte, sizes []int) {
	t.Helper()
	for i := 0; len(pt) > 0; i++ {
		n := min(sizes[i%len(sizes)], len(pt))
		m, err := w.Write(pt[:n])
		if err != nil || m != n {
			t.Fatalf("Write(%d) = %d, %v", n, m, err)
		}
		pt = pt[n:]
	}
}

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	const shift = 12
	const S = 1 << shift
	lengths := []int{0, 1, S - 1, S, S + 1, 3 * S, 3*S + 7}
	rng := rand.New(rand.NewPCG(1, 2))
	randomSizes := make([]int, 64)
	for i := range randomSizes {
		randomSizes[i] = rng.IntN(3*S) + rng.IntN(2) // includes 0 and > S
	}
	chunkings := map[string][]int{
		"one write":    {1 << 30},
		"byte by byte": {1},
		"segment":      {S},
		"segment+1":    {S + 1},
		"odd":          {7, 0, S - 3, 2*S + 5},
		"random":       randomSizes,
	}
	for _, nslots := range []int{1, 2} {
		h := mustHeader(t, shift, nslots)
		keys := testKeys[:nslots]
		for _, L := range lengths {
			pt := pattern(L)
			want := referenceSeal(t, shift, testSlots[:nslots], testIdentity, pt, keys)
			for name, sizes := range chunkings {
				t.Run(fmt.Sprintf("slots=%d/len=%d/%s", nslots, L, name), func(t *testing.T) {
					t.Parallel()
					var buf bytes.Buffer
					w, err := NewWriter(&buf, h, testIdentity, keys...)
					if err != nil {
						t.Fatal(err)
					}
					chunked(t, w, pt, sizes)
					if err := w.Close(); err != nil {
						t.Fatal(err)
					}
					obj := buf.Bytes()
					if !bytes.Equal(obj, want) {
						t.Fatal("Writer output differs from the reference encoding")
					}
					if int64(len(obj)) != h.CiphertextSize(int64(L)) {
						t.Fatalf("object is %d bytes, CiphertextSize says %d", len(obj), h.CiphertextSize(int64(L)))
					}
					got, err := decrypt(obj, testIdentity, int64(L), keys)
					if err != nil {
						t.Fatal(err)
					}
					if !bytes.Equal(got, pt) {
						t.Fatal("round trip changed the plaintext")
					}
				})
			}
			t.Run(fmt.Sprintf("slots=%d/len=%d/readers", nslots, L), func(t *testing.T) {
				t.Parallel()
				obj := want[h.Len():]
				// iotest.TestReader checks Read with odd buffer sizes.
				r, err := NewReader(bytes.NewReader(obj), h, testIdentity, int64(L), keys...)
				if err != nil {
					t.Fatal(err)
				}
				if err := iotest.TestReader(r, pt); err != nil {
					t.Fatal(err)
				}
				// Small reads from a source that yields one byte at a time.
				r, err = NewReader(iotest.OneByteReader(bytes.NewReader(obj)), h, testIdentity, int64(L), keys...)
				if err != nil {
					t.Fatal(err)
				}
				got, err := io.ReadAll(iotest.OneByteReader(r))
				if err != nil || !bytes.Equal(got, pt) {
					t.Fatalf("one-byte reads: %v", err)
				}
				// io.Copy uses WriteTo.
				r, err = NewReader(bytes.NewReader(obj), h, testIdentity, int64(L), keys...)
				if err != nil {
					t.Fatal(err)
				}
				var out bytes.Buffer
				if n, err := io.Copy(&out, r); err != nil || n != int64(L) || !bytes.Equal(out.Bytes(), pt) {
					t.Fatalf("io.Copy = %d, %v", n, err)
				}
			})
		}
	}
}

// recorder records the size of every Write call.
type recorder struct{ sizes []int }

func (r *recorder) Write(p []byte) (int, error) {
	r.sizes = append(r.sizes, len(p))
	return len(p), nil
}

func TestOneWritePerSegment(t *testing.T) {
	t.Parallel()
	h := mustHeader(t, 12, 2)
	var rec recorder
	w, err := NewWriter(&rec, h, testIdentity, testKeys...)
	if err != nil {
		t.Fatal(err)
	}
	chunked(t, w, pattern(3*4096+7), []int{1000, 5000, 1})
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	want := []int{int(h.Len()), 4096 + 32, 4096 + 32, 4096 + 32, 7 + 32}
	if fmt.Sprint(rec.sizes) != fmt.Sprint(want) {
		t.Fatalf("Write calls = %v, want %v", rec.sizes, want)
	}
}

func TestWriterHoldsBackFullSegment(t *testing.T) {
	t.Parallel()
	h := mustHeader(t, 12, 1)
	var rec recorder
	w, err := NewWriter(&rec, h, testIdentity, testKeys[0])
	if err != nil {
		t.Fatal(err)
	}
	chunked(t, w, pattern(2*4096), []int{4096})
	// Two full segments written: only the first may be out, since the
	// second might turn out to be the last.
	if len(rec.sizes) != 2 {
		t.Fatalf("Write calls before Close = %v, want header + 1 segment", rec.sizes)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if len(rec.sizes) != 3 {
		t.Fatalf("Write calls after Close = %v", rec.sizes)
	}
}

func TestWriterAfterClose(t *testing.T) {
	t.Parallel()
	w, err := NewWriter(io.Discard, mustHeader(t, 12, 1), testIdentity, testKeys[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if n, err := w.Write([]byte("x")); err == nil || n != 0 {
		t.Fatalf("Write after Close = %d, %v", n, err)
	}
	if err := w.Close(); err == nil {
		t.Fatal("second Close succeeded")
	}
}

// failWriter accepts ok bytes, then fails.
type failWriter struct {
	ok  int
	err error
}

func (f *failWriter) Write(p []byte) (int, error) {
	if len(p) > f.ok {
		n := f.ok
		f.ok = 0
		return n, f.err
	}
	f.ok -= len(p)
	return len(p), nil
}

func TestWriterErrors(t *testing.T) {
	t.Parallel()
	h := mustHeader(t, 12, 1)
	boom := errors.New("disk full")
	t.Run("header", func(t *testing.T) {
		t.Parallel()
		if _, err := NewWriter(&failWriter{err: boom}, h, testIdentity, testKeys[0]); !errors.Is(err, boom) {
			t.Fatalf("NewWriter error = %v", err)
		}
	})
	t.Run("sticky", func(t *testing.T) {
		t.Parallel()
		w, err := NewWriter(&failWriter{ok: int(h.Len()) + 100, err: boom}, h, testIdentity, testKeys[0])
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(pattern(3 * 4096)); !errors.Is(err, boom) {
			t.Fatalf("Write error = %v", err)
		}
		if _, err := w.Write([]byte("x")); !errors.Is(err, boom) {
			t.Fatalf("second Write error = %v", err)
		}
		if err := w.Close(); !errors.Is(err, boom) {
			t.Fatalf("Close error = %v", err)
		}
	})
	t.Run("short write", func(t *testing.T) {
		t.Parallel()
		w, err := NewWriter(&failWriter{ok: int(h.Len()) + 10}, h, testIdentity, testKeys[0])
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(pattern(2 * 4096)); !errors.Is(err, io.ErrShortWrite) {
			t.Fatalf("Write error = %v, want io.ErrShortWrite", err)
		}
	})
}

func TestConstructorErrors(t *testing.T) {
	t.Parallel()
	h1, h2 := mustHeader(t, 12, 1), mustHeader(t, 12, 2)
	tests := []struct {
		name     string
		h        *Header
		identity []byte
		keys     [][]byte
	}{
		{"nil header", nil, testIdentity, testKeys[:1]},
		{"zero header", &Header{}, testIdentity, testKeys[:1]},
		{"too few keys", h2, testIdentity, testKeys[:1]},
		{"too many keys", h1, testIdentity, testKeys},
		{"no keys", h1, testIdentity, nil},
		{"empty identity", h1, nil, testKeys[:1]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if _, err := NewWriter(io.Discard, tt.h, tt.identity, tt.keys...); err == nil {
				t.Error("NewWriter succeeded")
			}
			if _, err := NewReader(bytes.NewReader(nil), tt.h, tt.identity, 0, tt.keys...); err == nil {
				t.Error("NewReader succeeded")
			}
		})
	}
}

func TestBadKeysPanic(t *testing.T) {
	t.Parallel()
	h1, h2 := mustHeader(t, 12, 1), mustHeader(t, 12, 2)
	tests := []struct {
		name string
		h    *Header
		keys [][]byte
	}{
		{"short key", h1, [][]byte{make([]byte, 16)}},
		{"long key", h1, [][]byte{seqBytes(1, 33)}},
		{"nil key", h1, [][]byte{nil}},
		{"zero key", h1, [][]byte{make([]byte, 32)}},
		{"zero second key", h2, [][]byte{testKeys[0], make([]byte, 32)}},
		{"same key twice", h2, [][]byte{testKeys[0], bytes.Clone(testKeys[0])}},
	}
	mustPanic := func(t *testing.T, name string, f func()) {
		t.Helper()
		defer func() {
			if recover() == nil {
				t.Errorf("%s did not panic", name)
			}
		}()
		f()
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			mustPanic(t, "NewWriter", func() { NewWriter(io.Discard, tt.h, testIdentity, tt.keys...) })
			mustPanic(t, "NewReader", func() { NewReader(bytes.NewReader(nil), tt.h, testIdentity, 0, tt.keys...) })
		})
	}
}

func TestNoAllocations(t *testing.T) {
	h := mustHeader(t, 16, 2)
	w, err := NewWriter(io.Discard, h, testIdentity, testKeys...)
	if err != nil {
		t.Fatal(err)
	}
	chunk := pattern(32 << 10)
	big := pattern(200 << 10)
	if a := testing.AllocsPerRun(100, func() { w.Write(chunk) }); a != 0 {
		t.Errorf("Writer.Write (copy path) allocates %v times per call", a)
	}
	if a := testing.AllocsPerRun(100, func() { w.Write(big) }); a != 0 {
		t.Errorf("Writer.Write (direct path) allocates %v times per call", a)
	}

	const L = 8 << 20
	obj := encrypt(t, h, testIdentity, make([]byte, L), testKeys)
	src := bytes.NewReader(obj[h.Len():])
	r, err := NewReader(src, h, testIdentity, L, testKeys...)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 32<<10)
	if a := testing.AllocsPerRun(200, func() {
		if _, err := r.Read(buf); err != nil {
			t.Fatal(err)
		}
	}); a != 0 {
		t.Errorf("reader.Read allocates %v times per call", a)
	}
}

func TestKeysNotRetained(t *testing.T) {
	t.Parallel()
	h := mustHeader(t, 12, 2)
	pt := pattern(3*4096 + 7)
	keys := [][]byte{bytes.Clone(testKeys[0]), bytes.Clone(testKeys[1])}
	id := bytes.Clone(testIdentity)
	var buf bytes.Buffer
	w, err := NewWriter(&buf, h, id, keys...)
	if err != nil {
		t.Fatal(err)
	}
	clear(keys[0])
	clear(keys[1])
	clear(id)
	chunked(t, w, pt, []int{1000})
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf.Bytes(), referenceSeal(t, 12, testSlots, testIdentity, pt, testKeys)) {
		t.Fatal("Writer output depends on caller memory cleared after NewWriter")
	}
}

func TestRoundTripSegmentSizes(t *testing.T) {
	t.Parallel()
	for _, shift := range []uint8{12, DefaultSegmentShift, 20, 24} {
		S := 1 << shift
		for _, L := range []int{0, 1, S - 1, S + 1} {
			if shift == 24 && L > 1 {
				continue // 16 MiB segments: keep the test fast
			}
			t.Run(fmt.Sprintf("shift=%d/len=%d", shift, L), func(t *testing.T) {
				t.Parallel()
				h := mustHeader(t, shift, 2)
				pt := pattern(L)
				obj := encrypt(t, h, testIdentity, pt, testKeys)
				if int64(len(obj)) != h.CiphertextSize(int64(L)) {
					t.Fatalf("object is %d bytes, want %d", len(obj), h.CiphertextSize(int64(L)))
				}
				got, err := decrypt(obj, testIdentity, int64(L), testKeys)
				if err != nil || !bytes.Equal(got, pt) {
					t.Fatalf("round trip: %v", err)
				}
			})
		}
	}
}
