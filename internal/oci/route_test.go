package oci

import "testing"

func TestParseRoute(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		path string
		want route
		ok   bool
	}{
		{"/v2/", route{kind: routeBase}, true},
		{"/v2", route{kind: routeBase}, true},
		{"/v2/_catalog", route{kind: routeCatalog}, true},
		{"/v2/a/b/tags/list", route{kind: routeTags, name: "a/b"}, true},
		{"/v2/a/manifests/latest", route{kind: routeManifest, name: "a", ref: "latest"}, true},
		{"/v2/a/b/blobs/sha256:x", route{kind: routeBlob, name: "a/b", ref: "sha256:x"}, true},
		{"/v2/a/blobs/uploads/", route{kind: routeUploadStart, name: "a"}, true},
		{"/v2/a/blobs/uploads", route{kind: routeUploadStart, name: "a"}, true},
		{"/v2/a/blobs/uploads/abc", route{kind: routeUpload, name: "a", ref: "abc"}, true},
		{"/v2/blobs/blobs/uploads/abc", route{kind: routeUpload, name: "blobs", ref: "abc"}, true},
		{"/v2/a/manifests/blobs/x", route{kind: routeBlob, name: "a/manifests", ref: "x"}, true},
		{"/v2/a/referrers/sha256:x", route{kind: routeReferrers, name: "a", ref: "sha256:x"}, true},
		{"/v2/a", route{}, false},
		{"/v3/a/manifests/x", route{}, false},
	} {
		got, ok := parseRoute(tc.path)
		if ok != tc.ok || (ok && got != tc.want) {
			t.Errorf("parseRoute(%q) = %+v, %v; want %+v, %v", tc.path, got, ok, tc.want, tc.ok)
		}
	}
}
