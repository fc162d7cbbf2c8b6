package envelope

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"testing"
)

// readRange decrypts [off, off+n) of obj the way the registry does: Span,
// then a range reader over exactly those stored bytes.
func readRange(h *Header, obj []byte, plainSize, off, n int64, keys [][]byte) ([]byte, error) {
	co, cl, err := h.Span(plainSize, off, n)
	if err != nil {
		return nil, err
	}
	r, err := NewRangeReader(bytes.NewReader(obj[co:co+cl]), h, testIdentity, plainSize, off, n, keys...)
	if err != nil {
		return nil, err
	}
	return io.ReadAll(r)
}

// TestRangeEveryOffset reads, for every offset of a three-segment object,
// the ranges that end at each interesting place: one and two bytes, the end
// of the segment, one past it, and the end of the object. Every (off, n)
// pair over several segments would be ~10^8 decryptions; this covers every
// offset against every kind of end.
func TestRangeEveryOffset(t *testing.T) {
	t.Parallel()
	const S = 4096
	for _, nslots := range []int{1, 2} {
		for _, L := range []int64{2*S + 5, 3 * S} {
			t.Run(fmt.Sprintf("slots=%d/len=%d", nslots, L), func(t *testing.T) {
				t.Parallel()
				h := mustHeader(t, 12, nslots)
				keys := testKeys[:nslots]
				pt := pattern(int(L))
				obj := encrypt(t, h, testIdentity, pt, keys)
				for off := range L {
					toSegEnd := S - off%S
					for _, n := range []int64{1, 2, toSegEnd, toSegEnd + 1, L - off} {
						if n < 1 || off+n > L {
							continue
						}
						got, err := readRange(h, obj, L, off, n, keys)
						if err != nil {
							t.Fatalf("range [%d, +%d): %v", off, n, err)
						}
						if !bytes.Equal(got, pt[off:off+n]) {
							t.Fatalf("range [%d, +%d): wrong plaintext", off, n)
						}
					}
				}
			})
		}
	}
}

// TestRangeAllPairs reads every (off, n) whose ends lie on a grid of
// segment-boundary neighbours, plus random pairs.
func TestRangeAllPairs(t *testing.T) {
	t.Parallel()
	const S = 4096
	const L = 3*S + 7
	var grid []int64
	for k := int64(0); k <= 4; k++ {
		for d := int64(-2); d <= 2; d++ {
			if p := k*S + d; p >= 0 && p <= L {
				grid = append(grid, p)
			}
		}
	}
	grid = append(grid, L-1, L, S/2, 5)
	for _, nslots := range []int{1, 2} {
		t.Run(fmt.Sprintf("slots=%d", nslots), func(t *testing.T) {
			t.Parallel()
			rng := rand.New(rand.NewPCG(3, uint64(nslots))) // per subtest: they run in parallel
			h := mustHeader(t, 12, nslots)
			keys := testKeys[:nslots]
			pt := pattern(L)
			obj := encrypt(t, h, testIdentity, pt, keys)
			check := func(off, end int64) {
				got, err := readRange(h, obj, L, off, end-off, keys)
				if err != nil || !bytes.Equal(got, pt[off:end]) {
					t.Fatalf("range [%d, %d): %v", off, end, err)
				}
			}
			for _, a := range grid {
				for _, b := range grid {
					if a < b {
						check(a, b)
					}
				}
			}
			for range 2000 {
				a := rng.Int64N(L)
				check(a, a+1+rng.Int64N(L-a))
			}
		})
	}
}

func TestRangeEmptyObject(t *testing.T) {
	t.Parallel()
	h := mustHeader(t, 12, 2)
	obj := encrypt(t, h, testIdentity, nil, testKeys)
	got, err := readRange(h, obj, 0, 0, 0, testKeys)
	if err != nil || len(got) != 0 {
		t.Fatalf("empty range of empty object = %q, %v", got, err)
	}
	// The empty segment is still authenticated.
	bad := bytes.Clone(obj)
	bad[len(bad)-1] ^= 1
	if _, err := readRange(h, bad, 0, 0, 0, testKeys); !errors.Is(err, ErrAuth) {
		t.Fatalf("tampered empty object: %v, want ErrAuth", err)
	}
}

func TestRangeErrors(t *testing.T) {
	t.Parallel()
	const S = 4096
	const L = 3*S + 7
	h := mustHeader(t, 12, 2)
	obj := encrypt(t, h, testIdentity, pattern(L), testKeys)
	co, cl, err := h.Span(L, S+10, 100)
	if err != nil {
		t.Fatal(err)
	}
	span := obj[co : co+cl]
	cs := int64(S + 32)
	tests := []struct {
		name      string
		src       []byte
		plain     int64
		off, n    int64
		wantErr   error
		atNewRead bool // the constructor itself must fail
	}{
		{"negative offset", span, L, -1, 10, ErrRange, true},
		{"zero length", span, L, 5, 0, ErrRange, true},
		{"negative length", span, L, 5, -3, ErrRange, true},
		{"past end", span, L, L, 1, ErrRange, true},
		{"beyond end", span, L, L - 1, 2, ErrRange, true},
		{"overflow", span, L, 1, math.MaxInt64, ErrRange, true},
		{"negative size", span, -1, 0, 1, ErrRange, true},
		{"extra byte", append(bytes.Clone(span), 0), L, S + 10, 100, ErrAuth, false},
		{"next segment appended", obj[co : co+2*cs], L, S + 10, 100, ErrAuth, false},
		{"missing byte", span[:len(span)-1], L, S + 10, 100, ErrTruncated, false},
		{"nothing", nil, L, S + 10, 100, ErrTruncated, false},
		{"wrong segment", obj[co+cs : co+2*cs], L, S + 10, 100, ErrAuth, false},
		{"previous segment", obj[co-cs : co], L, S + 10, 100, ErrAuth, false},
		// A middle segment offered as the final one of a shorter object.
		{"wrong plaintext size", span, 2 * S, S + 10, 100, ErrAuth, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r, err := NewRangeReader(bytes.NewReader(tt.src), h, testIdentity, tt.plain, tt.off, tt.n, testKeys...)
			if tt.atNewRead {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("NewRangeReader error = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(r)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("read error = %v, want %v", err, tt.wantErr)
			}
			if len(got) != 0 {
				t.Fatalf("released %d bytes from a single bad segment", len(got))
			}
		})
	}
}
