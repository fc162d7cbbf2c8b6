//go:build e2e

package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// TestSkopeo copies a docker-archive into the registry with skopeo (as a
// docker schema 2 and as an OCI manifest), inspects it, copies it back to
// a dir: transport, and checks every digest on the way.
func TestSkopeo(t *testing.T) {
	requireTool(t, "skopeo")
	ctx := testContext(t, 5*time.Minute)
	c := startCoffer(t)

	src, err := random.Image(256<<10, 3)
	if err != nil {
		t.Fatal(err)
	}
	srcCfg, _ := src.ConfigFile()
	archive := filepath.Join(t.TempDir(), "src.tar")
	if err := tarball.WriteToFile(archive, c.ref(t, "e2e/sk:src"), src); err != nil {
		t.Fatal(err)
	}
	// skopeo reads policy, registries and auth from the system and $HOME:
	// keep it to this test.
	home := t.TempDir()
	env := []string{"HOME=" + home, "REGISTRY_AUTH_FILE=" + filepath.Join(home, "auth.json"), "XDG_RUNTIME_DIR=" + home}
	skopeo := func(args ...string) string {
		t.Helper()
		return run(t, ctx, env, nil, "skopeo", append([]string{"--insecure-policy"}, args...)...)
	}

	for _, tc := range []struct{ tag, format string }{{"1", "v2s2"}, {"oci", "oci"}} {
		t.Run(tc.format, func(t *testing.T) {
			dest := "docker://" + c.Addr + "/e2e/sk:" + tc.tag
			skopeo("copy", "--format", tc.format, "--dest-tls-verify=false", "--dest-creds", "AWS:"+c.loginToken(ctx), "docker-archive:"+archive, dest)

			var info struct {
				Digest string
				Layers []string
			}
			out := skopeo("inspect", "--tls-verify=false", "--creds", "AWS:"+c.loginToken(ctx), dest)
			if err := json.Unmarshal([]byte(out), &info); err != nil {
				t.Fatalf("skopeo inspect output: %v\n%s", err, out)
			}
			desc, err := remote.Get(c.ref(t, "e2e/sk:"+tc.tag), c.opts(ctx)...)
			if err != nil {
				t.Fatalf("remote.Get: %v", err)
			}
			if info.Digest != desc.Digest.String() {
				t.Errorf("skopeo inspect digest %s, registry serves %s", info.Digest, desc.Digest)
			}
			if len(info.Layers) != 3 {
				t.Errorf("skopeo inspect shows %d layers, want 3", len(info.Layers))
			}
			img, err := desc.Image()
			if err != nil {
				t.Fatal(err)
			}
			if err := verifyImage(img); err != nil {
				t.Errorf("verify image pushed by skopeo: %v", err)
			}
			cfg, err := img.ConfigFile()
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(cfg.RootFS.DiffIDs, srcCfg.RootFS.DiffIDs) {
				t.Errorf("diff_ids after skopeo copy %v, source %v", cfg.RootFS.DiffIDs, srcCfg.RootFS.DiffIDs)
			}

			dir := filepath.Join(t.TempDir(), "out")
			skopeo("copy", "--src-tls-verify=false", "--src-creds", "AWS:"+c.loginToken(ctx), dest, "dir:"+dir)
			manifest, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
			if err != nil {
				t.Fatal(err)
			}
			if d := sha256Digest(manifest); d != desc.Digest {
				t.Errorf("dir: manifest.json digest %s, registry %s", d, desc.Digest)
			}
			// Every blob file in dir: is named by its digest's hex.
			blobRE := regexp.MustCompile(`^[0-9a-f]{64}$`)
			entries, err := os.ReadDir(dir)
			if err != nil {
				t.Fatal(err)
			}
			blobs := 0
			for _, e := range entries {
				if !blobRE.MatchString(e.Name()) {
					continue
				}
				b, err := os.ReadFile(filepath.Join(dir, e.Name()))
				if err != nil {
					t.Fatal(err)
				}
				blobs++
				if d := sha256Digest(b); d.Hex != e.Name() {
					t.Errorf("dir: blob %s has digest %s", e.Name(), d)
				}
			}
			if blobs != 4 { // config + 3 layers
				t.Errorf("dir: %d blobs, want 4 (config and 3 layers)", blobs)
			}
		})
	}
}
