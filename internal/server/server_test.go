package server

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/cofferhq/coffer/internal/config"
)

// newTestServer opens a Coffer on a fresh data directory behind httptest.
func newTestServer(t *testing.T, mutate func(*config.Config)) (*httptest.Server, *App) {
	t.Helper()
	cfg := config.Defaults()
	cfg.DataDir = t.TempDir()
	cfg.CreateOnPush = true
	cfg.InsecureAllowAnonymous = true // anonymous /v2/ on loopback; identity_test.go covers auth
	cfg.AdminAccessKeyID, cfg.AdminSecretAccessKey = adminID, adminSecret
	if mutate != nil {
		mutate(&cfg)
	}
	log := slog.New(slog.DiscardHandler)
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return startApp(t, cfg, log)
}

// startApp opens a Coffer on cfg and serves it on a loopback test server;
// both close when the test ends.
func startApp(tb testing.TB, cfg config.Config, log *slog.Logger) (*httptest.Server, *App) {
	tb.Helper()
	app, err := Open(context.Background(), cfg, log)
	if err != nil {
		tb.Fatalf("open: %v", err)
	}
	srv := httptest.NewServer(app.Handler())
	tb.Cleanup(func() {
		srv.Close()
		app.Close()
	})
	return srv, app
}

func ref(t *testing.T, srv *httptest.Server, s string) name.Reference {
	t.Helper()
	r, err := name.ParseReference(strings.TrimPrefix(srv.URL, "http://")+"/"+s, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestPushPullImage(t *testing.T) {
	t.Parallel()
	srv, _ := newTestServer(t, nil)
	img, err := random.Image(300<<10, 4)
	if err != nil {
		t.Fatal(err)
	}
	r := ref(t, srv, "team/app:v1")
	if err := remote.Write(r, img); err != nil {
		t.Fatalf("push: %v", err)
	}
	got, err := remote.Image(r)
	if err != nil {
		t.Fatalf("pull: %v", err)
	}
	wantD, _ := img.Digest()
	gotD, err := got.Digest()
	if err != nil || gotD != wantD {
		t.Fatalf("digest = %v, %v; want %v", gotD, err, wantD)
	}
	layers, _ := got.Layers()
	for _, l := range layers {
		rc, err := l.Compressed()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(io.Discard, rc); err != nil { // ggcr verifies the digest
			t.Fatalf("layer read: %v", err)
		}
		rc.Close()
	}
}

func TestIndexReferrersAndTags(t *testing.T) {
	t.Parallel()
	srv, _ := newTestServer(t, nil)
	a, _ := random.Image(1024, 1)
	b, _ := random.Image(1024, 1)
	idx := mutate.AppendManifests(empty.Index,
		mutate.IndexAddendum{Add: a, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "amd64"}}},
		mutate.IndexAddendum{Add: b, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "arm64"}}},
	)
	r := ref(t, srv, "multi/arch:latest")
	if err := remote.WriteIndex(r, idx); err != nil {
		t.Fatalf("push index: %v", err)
	}
	gotIdx, err := remote.Index(r)
	if err != nil {
		t.Fatal(err)
	}
	im, _ := gotIdx.IndexManifest()
	if len(im.Manifests) != 2 {
		t.Fatalf("index has %d manifests", len(im.Manifests))
	}

	// An artifact whose subject is image a.
	aD, _ := a.Digest()
	aDesc, _ := partial(a)
	// Annotations before Subject: ggcr's mutate.Annotations drops a subject.
	art := mutate.Annotations(mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), "application/vnd.example.sbom"),
		map[string]string{"org.example.note": "from-ciphertext"}).(v1.Image)
	art = mutate.Subject(art, aDesc).(v1.Image)
	artRef := ref(t, srv, "multi/arch@"+mustDigest(t, art).String())
	if err := remote.Write(artRef, art); err != nil {
		t.Fatalf("push artifact: %v", err)
	}
	subj := ref(t, srv, "multi/arch@"+aD.String()).(name.Digest)
	refs, err := remote.Referrers(subj)
	if err != nil {
		t.Fatalf("referrers: %v", err)
	}
	rm, _ := refs.IndexManifest()
	if len(rm.Manifests) != 1 || rm.Manifests[0].ArtifactType != "application/vnd.example.sbom" ||
		rm.Manifests[0].Annotations["org.example.note"] != "from-ciphertext" {
		t.Fatalf("referrers = %+v", rm.Manifests)
	}

	for i := 0; i < 5; i++ {
		if err := remote.Tag(ref(t, srv, "multi/arch:t"+string(rune('a'+i))).(name.Tag), a); err != nil {
			t.Fatal(err)
		}
	}
	tags, err := remote.List(r.Context(), remote.WithPageSize(2))
	if err != nil {
		t.Fatal(err)
	}
	if len(tags) != 6 {
		t.Fatalf("tags = %v", tags)
	}
}

func partial(img v1.Image) (v1.Descriptor, error) {
	m, err := img.Manifest()
	if err != nil {
		return v1.Descriptor{}, err
	}
	d, _ := img.Digest()
	sz, _ := img.Size()
	return v1.Descriptor{MediaType: m.MediaType, Digest: d, Size: sz}, nil
}

func mustDigest(t *testing.T, img v1.Image) v1.Hash {
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestChunkedUploadAndErrors(t *testing.T) {
	t.Parallel()
	srv, _ := newTestServer(t, nil)
	c := srv.Client()
	do := func(method, url string, body string, hdr map[string]string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(method, url, strings.NewReader(body))
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}
	resp := do("POST", srv.URL+"/v2/chunk/test/blobs/uploads/", "", nil)
	if resp.StatusCode != 202 {
		t.Fatalf("POST = %d", resp.StatusCode)
	}
	loc := srv.URL + resp.Header.Get("Location")
	resp = do("PATCH", loc, "hello ", map[string]string{"Content-Range": "0-5", "Content-Type": "application/octet-stream"})
	if resp.StatusCode != 202 || resp.Header.Get("Range") != "0-5" {
		t.Fatalf("PATCH 1 = %d %q", resp.StatusCode, resp.Header.Get("Range"))
	}
	resp = do("PATCH", loc, "world", map[string]string{"Content-Range": "10-14"})
	if resp.StatusCode != 416 || resp.Header.Get("Range") != "0-5" {
		t.Fatalf("out-of-order PATCH = %d %q", resp.StatusCode, resp.Header.Get("Range"))
	}
	resp = do("PATCH", loc, "world", map[string]string{"Content-Range": "6-10"})
	if resp.StatusCode != 202 {
		t.Fatalf("PATCH 2 = %d", resp.StatusCode)
	}
	const d = "sha256:b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9" // "hello world"
	resp = do("PUT", loc+"?digest="+d, "", nil)
	if resp.StatusCode != 201 {
		t.Fatalf("PUT = %d", resp.StatusCode)
	}
	get, err := c.Get(srv.URL + "/v2/chunk/test/blobs/" + d)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(get.Body)
	get.Body.Close()
	if string(body) != "hello world" || get.Header.Get("Docker-Content-Digest") != d {
		t.Fatalf("GET = %q %v", body, get.Header)
	}
	req, _ := http.NewRequest("GET", srv.URL+"/v2/chunk/test/blobs/"+d, nil)
	req.Header.Set("Range", "bytes=6-")
	rr, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(rr.Body)
	rr.Body.Close()
	if rr.StatusCode != 206 || string(body) != "world" {
		t.Fatalf("range GET = %d %q", rr.StatusCode, body)
	}

	for _, tc := range []struct {
		name, method, path string
		status             int
		code               string
	}{
		{"bad digest", "GET", "/v2/chunk/test/blobs/sha256:zz", 400, "DIGEST_INVALID"},
		{"bad name", "GET", "/v2/Upper/blobs/" + d, 400, "NAME_INVALID"},
		{"unknown repo", "GET", "/v2/nope/nope/manifests/latest", 404, "NAME_UNKNOWN"},
		{"unknown manifest", "GET", "/v2/chunk/test/manifests/latest", 404, "MANIFEST_UNKNOWN"},
		{"invalid tag read is a miss", "GET", "/v2/chunk/test/manifests/.INVALID_MANIFEST_NAME", 404, "MANIFEST_UNKNOWN"},
		{"unknown blob", "HEAD", "/v2/chunk/test/blobs/sha256:" + strings.Repeat("0", 64), 404, ""},
		{"unknown upload", "GET", "/v2/chunk/test/blobs/uploads/" + strings.Repeat("a", 32), 404, "BLOB_UPLOAD_UNKNOWN"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, srv.URL+tc.path, nil)
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.status || !strings.Contains(string(b), tc.code) {
				t.Fatalf("%s %s = %d %s", tc.method, tc.path, resp.StatusCode, b)
			}
		})
	}
}
