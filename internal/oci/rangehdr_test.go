package oci

import (
	"errors"
	"strings"
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
		off, n, ok, err := parseRange(tc.h, tc.size)
		if ok != tc.ok || errors.Is(err, errRangeUnsatisfiable) != tc.unsat || (ok && (off != tc.off || n != tc.n)) {
			t.Errorf("parseRange(%q, %d) = %d, %d, %v, %v", tc.h, tc.size, off, n, ok, err)
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
		off, n, ok, err := parseRange(h, size)
		if ok && (err != nil || off < 0 || n <= 0 || off+n > size) {
			t.Fatalf("parseRange(%q, %d) = %d, %d out of bounds", h, size, off, n)
		}
	})
}

func FuzzParseContentRange(f *testing.F) {
	for _, s := range []string{"0-9", "bytes 0-9", "10-5", "-1-2", "a-b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, h string) {
		s, e, err := parseContentRange(h)
		if err == nil && (s < 0 || e < s) {
			t.Fatalf("parseContentRange(%q) = %d, %d", h, s, e)
		}
	})
}

func FuzzParseRoute(f *testing.F) {
	for _, s := range []string{"/v2/", "/v2/a/b/manifests/latest", "/v2/a/blobs/uploads/", "/v2/a/blobs/uploads/x", "/v2/_catalog", "/v2/a/referrers/sha256:x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		// The route parser only splits; ParseRepoName validates the name.
		// What it must guarantee is that the name is the path's prefix.
		rt, ok := parseRoute(p)
		if ok && rt.kind != routeBase && rt.kind != routeCatalog && !strings.HasPrefix(p, "/v2/"+rt.name+"/") {
			t.Fatalf("route %q: name %q is not the path's prefix", p, rt.name)
		}
	})
}
