package oci

import (
	"strings"
	"testing"
)

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
