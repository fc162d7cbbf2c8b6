package blobhttp

import (
	"errors"
	"testing"
)

func TestParseRange(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		h      string
		size   int64
		off, n int64
		ok     bool
		unsat  bool
	}{
		{"bytes=0-9", 100, 0, 10, true, false},
		{"bytes=90-", 100, 90, 10, true, false},
		{"bytes=90-200", 100, 90, 10, true, false},
		{"bytes=-10", 100, 90, 10, true, false},
		{"bytes=-200", 100, 0, 100, true, false},
		{"bytes=100-", 100, 0, 0, false, true},
		{"bytes=-0", 100, 0, 0, false, true},
		{"bytes=0-0", 0, 0, 0, false, true},
		{"bytes=5-4", 100, 0, 0, false, false},
		{"bytes=0-1,5-6", 100, 0, 0, false, false},
		{"items=0-1", 100, 0, 0, false, false},
		{"bytes=a-b", 100, 0, 0, false, false},
		{"", 100, 0, 0, false, false},
	} {
		off, n, ok, err := ParseRange(tc.h, tc.size)
		if ok != tc.ok || errors.Is(err, ErrUnsatisfiable) != tc.unsat || (ok && (off != tc.off || n != tc.n)) {
			t.Errorf("ParseRange(%q, %d) = %d, %d, %v, %v", tc.h, tc.size, off, n, ok, err)
		}
	}
}

func FuzzParseRange(f *testing.F) {
	for _, s := range []string{"bytes=0-9", "bytes=-5", "bytes=5-", "bytes=1-2,3-4", "bytes=99999999999999999999-"} {
		f.Add(s, int64(100))
	}
	f.Fuzz(func(t *testing.T, h string, size int64) {
		if size < 0 {
			size = -size
		}
		if size < 0 {
			return
		}
		off, n, ok, err := ParseRange(h, size)
		if ok && (err != nil || off < 0 || n <= 0 || off+n > size) {
			t.Fatalf("ParseRange(%q, %d) = %d, %d out of bounds", h, size, off, n)
		}
	})
}
