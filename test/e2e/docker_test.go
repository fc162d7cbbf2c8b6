//go:build e2e

package e2e

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// dockerCLI runs docker with a private client config (no credentials or
// manifest lists leak between tests) and the legacy builder, which works
// offline with Debian's docker.io (it has no buildx).
type dockerCLI struct {
	t   *testing.T
	ctx context.Context
	env []string
}

func newDockerCLI(t *testing.T, ctx context.Context) *dockerCLI {
	t.Helper()
	requireDocker(t)
	return &dockerCLI{t: t, ctx: ctx, env: []string{"DOCKER_CONFIG=" + t.TempDir(), "DOCKER_BUILDKIT=0", "DOCKER_CLI_HINTS=false"}}
}

// login is `aws ecr get-login-password | docker login -u AWS
// --password-stdin HOST` (SPEC USE-03, C-05).
func (d *dockerCLI) login(c *coffer) {
	d.t.Helper()
	out := run(d.t, d.ctx, d.env, strings.NewReader(c.loginToken(d.ctx)), "docker", "login", "-u", "AWS", "--password-stdin", c.Addr)
	if !strings.Contains(out, "Login Succeeded") {
		d.t.Fatalf("docker login: %s", out)
	}
}

func (d *dockerCLI) run(args ...string) string {
	d.t.Helper()
	return run(d.t, d.ctx, d.env, nil, "docker", args...)
}

// importImage makes a one-layer image from files (path -> content) with
// `docker import`, the offline way to get a base image.
func (d *dockerCLI) importImage(ref string, files map[string]string) {
	d.t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	dirs := map[string]bool{}
	for _, p := range slices.Sorted(mapsKeys(files)) {
		for dir := filepath.Dir(p); dir != "." && !dirs[dir]; dir = filepath.Dir(dir) {
			dirs[dir] = true
		}
	}
	for _, dir := range slices.Sorted(mapsKeys(dirs)) {
		tw.WriteHeader(&tar.Header{Name: dir + "/", Typeflag: tar.TypeDir, Mode: 0o755, ModTime: time.Unix(1700000000, 0)})
	}
	for _, p := range slices.Sorted(mapsKeys(files)) {
		tw.WriteHeader(&tar.Header{Name: p, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(files[p])), ModTime: time.Unix(1700000000, 0)})
		tw.Write([]byte(files[p]))
	}
	if err := tw.Close(); err != nil {
		d.t.Fatal(err)
	}
	run(d.t, d.ctx, d.env, &b, "docker", "import", "-", ref)
}

func mapsKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// removeOnCleanup removes refs from the daemon when the test ends, so the
// vfs storage driver does not pile up copies across tests.
func (d *dockerCLI) removeOnCleanup(refs ...string) {
	d.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		runErr(ctx, d.env, nil, "docker", append([]string{"rmi", "-f"}, refs...)...)
	})
}

type dockerImage struct {
	ID           string
	RepoDigests  []string
	Os           string
	Architecture string
	RootFS       struct{ Layers []string }
}

func (d *dockerCLI) inspect(ref string) dockerImage {
	d.t.Helper()
	var imgs []dockerImage
	if err := json.Unmarshal([]byte(d.run("image", "inspect", ref)), &imgs); err != nil || len(imgs) != 1 {
		d.t.Fatalf("docker image inspect %s: %v (%d images)", ref, err, len(imgs))
	}
	return imgs[0]
}

var pushDigestRE = regexp.MustCompile(`digest: (sha256:[0-9a-f]{64}) size: \d+`)

// push runs docker push and returns the manifest digest it reports.
func (d *dockerCLI) push(ref string) v1.Hash {
	d.t.Helper()
	out := d.run("push", ref)
	m := pushDigestRE.FindStringSubmatch(out)
	if m == nil {
		d.t.Fatalf("docker push %s: no digest in output:\n%s", ref, out)
	}
	h, err := v1.NewHash(m[1])
	if err != nil {
		d.t.Fatal(err)
	}
	d.t.Logf("docker push %s: %s", ref, h)
	return h
}

// TestDockerPushPull builds a three-layer image offline, pushes it with
// docker, deletes it locally, pulls it back, and checks it is the same image.
func TestDockerPushPull(t *testing.T) {
	ctx := testContext(t, 5*time.Minute)
	d := newDockerCLI(t, ctx)
	c := startCoffer(t)
	d.login(c)

	repo := c.Addr + "/e2e/app"
	base, app, mirror := repo+":base", repo+":v1", c.Addr+"/e2e/app-mirror:v1"
	d.removeOnCleanup(base, app, mirror)
	d.importImage(base, map[string]string{
		"etc/os-release": "ID=coffer-e2e\n",
		"bin/hello":      "#!/bin/sh\necho hello\n",
	})
	ctxDir := t.TempDir()
	files := map[string]string{
		"Dockerfile": "FROM " + base + "\nCOPY a.txt /data/a.txt\nCOPY more/ /data/more/\nLABEL org.example.e2e=docker\n",
		"a.txt":      strings.Repeat("layer two\n", 1000),
		"more/b.txt": strings.Repeat("layer three\n", 2000),
	}
	for p, s := range files {
		os.MkdirAll(filepath.Join(ctxDir, filepath.Dir(p)), 0o755)
		if err := os.WriteFile(filepath.Join(ctxDir, p), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	d.run("build", "-q", "-t", app, ctxDir)
	before := d.inspect(app)
	if len(before.RootFS.Layers) != 3 {
		t.Fatalf("built image has %d layers, want 3: %v", len(before.RootFS.Layers), before.RootFS.Layers)
	}

	digest := d.push(app)

	// What the registry holds, seen by a second client.
	desc, err := remote.Get(c.ref(t, "e2e/app:v1"), c.opts(ctx)...)
	if err != nil {
		t.Fatalf("remote.Get after docker push: %v", err)
	}
	if desc.Digest != digest {
		t.Errorf("registry serves %s for e2e/app:v1, docker push reported %s", desc.Digest, digest)
	}
	if desc.MediaType != types.DockerManifestSchema2 && desc.MediaType != types.OCIManifestSchema1 {
		t.Errorf("manifest media type %s, want a schema 2 or OCI manifest", desc.MediaType)
	}
	img, err := desc.Image()
	if err != nil {
		t.Fatal(err)
	}
	if err := verifyImage(img); err != nil {
		t.Errorf("validate image pushed by docker: %v", err)
	}

	// Same image into another repository: docker tries a cross-repo mount.
	d.run("tag", app, mirror)
	if md := d.push(mirror); md != digest {
		t.Errorf("push to second repository: digest %s, want %s", md, digest)
	}

	d.run("rmi", app, base, mirror)
	if _, err := runErr(ctx, d.env, nil, "docker", "image", "inspect", app); err == nil {
		t.Fatalf("%s still present locally after docker rmi", app)
	}

	d.run("pull", app)
	after := d.inspect(app)
	if after.ID != before.ID {
		t.Errorf("image ID after pull %s, before push %s", after.ID, before.ID)
	}
	if !slices.Equal(after.RootFS.Layers, before.RootFS.Layers) {
		t.Errorf("layers after pull %v, before push %v", after.RootFS.Layers, before.RootFS.Layers)
	}
	if !slices.Contains(after.RepoDigests, repo+"@"+digest.String()) {
		t.Errorf("RepoDigests %v lack %s@%s", after.RepoDigests, repo, digest)
	}
	byDigest := repo + "@" + digest.String()
	d.run("pull", byDigest)
	if got := d.inspect(byDigest); got.ID != before.ID {
		t.Errorf("pull by digest gave image %s, want %s", got.ID, before.ID)
	}
	d.run("pull", mirror)
	if got := d.inspect(mirror); got.ID != before.ID {
		t.Errorf("pull from second repository gave image %s, want %s", got.ID, before.ID)
	}

	// docker save: the archive's config and layers are the pushed ones.
	archive := filepath.Join(t.TempDir(), "app.tar")
	d.run("save", "-o", archive, app)
	checkDockerArchive(t, archive, before)
}

// checkDockerArchive reads a `docker save` archive and checks its config
// digest and layer count against the image inspected before the push.
func checkDockerArchive(t *testing.T, path string, want dockerImage) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	entries := map[string][]byte{}
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err != nil {
			break
		}
		if h.Name == "manifest.json" || strings.HasSuffix(h.Name, ".json") {
			var b bytes.Buffer
			b.ReadFrom(tr)
			entries[h.Name] = b.Bytes()
		} else {
			entries[h.Name] = nil
		}
	}
	var manifest []struct {
		Config string
		Layers []string
	}
	if err := json.Unmarshal(entries["manifest.json"], &manifest); err != nil || len(manifest) != 1 {
		t.Fatalf("docker save archive: manifest.json: %v (%d entries)", err, len(manifest))
	}
	m := manifest[0]
	if len(m.Layers) != len(want.RootFS.Layers) {
		t.Errorf("docker save archive has %d layers, want %d", len(m.Layers), len(want.RootFS.Layers))
	}
	for _, l := range m.Layers {
		if _, ok := entries[l]; !ok {
			t.Errorf("docker save archive lacks layer %s", l)
		}
	}
	cfg, ok := entries[m.Config]
	if !ok {
		t.Fatalf("docker save archive lacks config %s", m.Config)
	}
	if got := sha256Digest(cfg).String(); got != want.ID {
		t.Errorf("docker save config digest %s, want image ID %s", got, want.ID)
	}
}

// TestDockerMultiArchIndex pushes two single-platform images, joins them
// with `docker manifest create/annotate/push`, and resolves each platform
// of the resulting index with go-containerregistry.
func TestDockerMultiArchIndex(t *testing.T) {
	ctx := testContext(t, 5*time.Minute)
	d := newDockerCLI(t, ctx)
	c := startCoffer(t)
	d.login(c)

	repo := c.Addr + "/e2e/multi"
	amd, arm, list := repo+":amd64", repo+":arm64", repo+":v1"
	d.removeOnCleanup(amd, arm, list)
	d.importImage(amd, map[string]string{"etc/arch": "amd64\n"})
	d.importImage(arm, map[string]string{"etc/arch": "arm64\n"})
	amdDigest, armDigest := d.push(amd), d.push(arm)
	// docker pull of the list must pick the daemon's own platform.
	nativeRef := amd
	if runtime.GOARCH == "arm64" {
		nativeRef = arm
	}
	nativeID := d.inspect(nativeRef).ID

	d.run("manifest", "create", "--insecure", list, amd, arm)
	// docker import cannot set another architecture on this daemon, so the
	// list entry is annotated instead (what `docker manifest` is for).
	d.run("manifest", "annotate", "--os", "linux", "--arch", "arm64", "--variant", "v8", list, arm)
	out := d.run("manifest", "push", "--insecure", list)
	t.Logf("docker manifest push: %s", strings.TrimSpace(out))

	ref := c.ref(t, "e2e/multi:v1")
	desc, err := remote.Get(ref, c.opts(ctx)...)
	if err != nil {
		t.Fatalf("remote.Get index: %v", err)
	}
	if !desc.MediaType.IsIndex() {
		t.Fatalf("e2e/multi:v1 has media type %s, want an index", desc.MediaType)
	}
	if pushed := strings.TrimSpace(out); strings.HasPrefix(pushed, "sha256:") && pushed != desc.Digest.String() {
		t.Errorf("docker manifest push reported %s, registry serves %s", pushed, desc.Digest)
	}
	idx, err := desc.ImageIndex()
	if err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(im.Manifests) != 2 {
		t.Fatalf("index has %d manifests, want 2: %+v", len(im.Manifests), im.Manifests)
	}
	for _, tc := range []struct {
		platform v1.Platform
		want     v1.Hash
	}{
		{v1.Platform{OS: "linux", Architecture: "amd64"}, amdDigest},
		{v1.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}, armDigest},
	} {
		t.Run(tc.platform.String(), func(t *testing.T) {
			img, err := remote.Image(ref, c.opts(ctx, remote.WithPlatform(tc.platform))...)
			if err != nil {
				t.Fatalf("resolve %s: %v", tc.platform, err)
			}
			got, err := img.Digest()
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("platform %s resolves to %s, want %s", tc.platform, got, tc.want)
			}
			if err := verifyImage(img); err != nil {
				t.Errorf("validate %s image: %v", tc.platform, err)
			}
		})
	}

	d.run("rmi", amd, arm)
	d.run("pull", list)
	if got := d.inspect(list); got.ID != nativeID {
		t.Errorf("docker pull %s gave image %s, want the %s image %s", list, got.ID, runtime.GOARCH, nativeID)
	}
}
