//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// markedImage is an OCI image whose layer (uncompressed, so the marker is
// in the bytes the server receives), config and manifest each carry their
// own random marker.
func markedImage(t *testing.T, layerMarker, configMarker, manifestMarker string) v1.Image {
	t.Helper()
	layer := static.NewLayer([]byte(strings.Repeat(layerMarker, 4096)), types.OCIUncompressedLayer)
	img := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	img, err := mutate.AppendLayers(img, layer)
	if err != nil {
		t.Fatal(err)
	}
	cf, _ := img.ConfigFile()
	cf = cf.DeepCopy()
	cf.Config.Labels = map[string]string{"org.example.marker": configMarker}
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		t.Fatal(err)
	}
	return mutate.Annotations(img, map[string]string{"org.example.marker": manifestMarker}).(v1.Image)
}

// filesContaining lists the files under dir that contain needle.
func filesContaining(t *testing.T, dir string, needle []byte) (hits []string, scanned int) {
	t.Helper()
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		scanned++
		found, err := fileContains(path, needle)
		if err != nil {
			return err
		}
		if found {
			rel, _ := filepath.Rel(dir, path)
			hits = append(hits, rel)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("scan %s: %v", dir, err)
	}
	return hits, scanned
}

// fileContains streams a file looking for needle, across buffer edges.
func fileContains(path string, needle []byte) (bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return false, err
	}
	defer f.Close()
	buf := make([]byte, 1<<20)
	keep := 0
	for {
		n, err := f.Read(buf[keep:])
		if bytes.Contains(buf[:keep+n], needle) {
			return true, nil
		}
		if err == io.EOF {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		// Keep the tail that could start a match.
		tail := min(len(needle)-1, keep+n)
		copy(buf, buf[keep+n-tail:keep+n])
		keep = tail
	}
}

// TestNoPlaintextAtRest pushes an image with unique markers in its layer,
// config and manifest, then searches every file under the data directory
// (object store, SQLite database and its WAL) for them, with the server
// running and again after it stopped.
func TestNoPlaintextAtRest(t *testing.T) {
	ctx := testContext(t, 3*time.Minute)
	c := startCoffer(t)
	markers := map[string]string{
		"layer":    randomHex(t, 64),
		"config":   randomHex(t, 64),
		"manifest": randomHex(t, 64),
	}
	img := markedImage(t, markers["layer"], markers["config"], markers["manifest"])
	ref := c.ref(t, "e2e/secret:v1")
	if err := remote.Write(ref, img, c.opts(ctx)...); err != nil {
		t.Fatalf("push: %v", err)
	}
	// Read it back first: a pull must work and must not leave plaintext
	// behind either (e.g. a cache).
	pulled, err := remote.Image(ref, c.opts(ctx)...)
	if err != nil {
		t.Fatalf("pull: %v", err)
	}
	if err := verifyImage(pulled); err != nil {
		t.Fatalf("verify pulled image: %v", err)
	}

	// Positive control: the scanner finds a marker that straddles its
	// 1 MiB read buffer, so a clean scan below means something.
	canary := t.TempDir()
	b := append(bytes.Repeat([]byte{'x'}, 1<<20-10), markers["layer"]...)
	if err := os.WriteFile(filepath.Join(canary, "plain"), b, 0o600); err != nil {
		t.Fatal(err)
	}
	if hits, _ := filesContaining(t, canary, []byte(markers["layer"])); len(hits) != 1 {
		t.Fatalf("scanner self-check: found the marker in %v, want [plain]", hits)
	}

	for _, phase := range []string{"running", "stopped"} {
		if phase == "stopped" {
			c.Stop()
		}
		for _, what := range []string{"layer", "config", "manifest"} {
			t.Run(phase+"/"+what, func(t *testing.T) {
				hits, scanned := filesContaining(t, c.Dir, []byte(markers[what]))
				if scanned == 0 {
					t.Fatalf("no files under %s", c.Dir)
				}
				if len(hits) > 0 {
					t.Errorf("the %s's plaintext marker is stored in the clear in %v (scanned %d files under the data dir)", what, hits, scanned)
				}
			})
		}
	}
}

// corruptOneByte flips the middle byte of every regular file under dir
// and returns how many files it changed.
func corruptOneByte(t *testing.T, dir string) int {
	t.Helper()
	n := 0
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil || len(b) == 0 {
			return err
		}
		b[len(b)/2] ^= 0x01
		n++
		return os.WriteFile(path, b, 0o600)
	})
	if err != nil {
		t.Fatalf("corrupt %s: %v", dir, err)
	}
	if n == 0 {
		t.Fatalf("no stored objects under %s", dir)
	}
	return n
}

// checkCorruptRead fails the test unless fetching path failed cleanly:
// a non-2xx OCI error, or (if the error was found mid-stream) a broken
// body. Serving a whole body is a failure either way: wrong bytes are
// corrupt data, right bytes mean the damaged object was not checked.
func checkCorruptRead(t *testing.T, c *coffer, ctx context.Context, path string, want v1.Hash, accept string) {
	t.Helper()
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	start := time.Now()
	res := c.do(rctx, http.MethodGet, path, nil, map[string]string{"Accept": accept})
	took := time.Since(start).Round(time.Millisecond)
	switch {
	case errors.Is(rctx.Err(), context.DeadlineExceeded):
		t.Errorf("hangs: no complete answer within 30s: %v", res)
	case res.Status == 0:
		t.Errorf("connection failed without an HTTP answer (want an OCI error): %v", res)
	case res.Status >= 200 && res.Status < 300 && res.Err != nil:
		t.Logf("ok: corruption found mid-stream, body cut after %d bytes in %v: %v", len(res.Body), took, res)
	case res.Status >= 200 && res.Status < 300:
		if got := sha256Digest(res.Body); got != want {
			t.Errorf("served corrupt data: body digest %s, want %s: %v", got, want, res)
		} else {
			t.Errorf("served the original content although its stored object was corrupted (not read from the object store, or not authenticated?): %v", res)
		}
	case len(ociErrorCodes(res.Body)) == 0:
		t.Errorf("failed with no OCI error body: %v", res)
	default:
		t.Logf("ok: rejected in %v: %v", took, res)
	}
}

// TestCorruptedObjectIsRejected flips one byte in stored layer objects,
// then in stored manifest objects (with the server stopped, so nothing is
// cached), and checks that pulls fail cleanly instead of returning wrong
// data or hanging.
func TestCorruptedObjectIsRejected(t *testing.T) {
	for _, tc := range []struct {
		name   string
		bucket string // under the data dir
	}{
		{"layer", "blobs/layers"},
		{"manifest", "blobs/manifests"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := testContext(t, 3*time.Minute)
			c := startCoffer(t)
			img := markedImage(t, randomHex(t, 64), "c", "m")
			ref := c.ref(t, "e2e/flip:v1")
			if err := remote.Write(ref, img, c.opts(ctx)...); err != nil {
				t.Fatalf("push: %v", err)
			}
			md, _ := img.Digest()
			mt, _ := img.MediaType()
			layers, _ := img.Layers()
			ld, _ := layers[0].Digest()
			cm, _ := img.Manifest()

			c.Stop()
			n := corruptOneByte(t, filepath.Join(c.Dir, tc.bucket))
			t.Logf("flipped one byte in each of %d objects under %s", n, tc.bucket)
			c.Restart()

			switch tc.name {
			case "layer":
				// The config is a blob too, so both live under layers/.
				for _, b := range []v1.Hash{ld, cm.Config.Digest} {
					t.Run("GET blob "+b.Hex[:12], func(t *testing.T) {
						checkCorruptRead(t, c, ctx, "/v2/e2e/flip/blobs/"+b.String(), b, "*/*")
					})
				}
				pulled, err := remote.Image(ref, c.opts(ctx)...)
				if err == nil {
					err = verifyImage(pulled)
				}
				if err == nil {
					t.Errorf("go-containerregistry pulled and verified the image although all its blobs were corrupted")
				} else {
					t.Logf("go-containerregistry pull fails: %v", err)
				}
			case "manifest":
				for _, p := range []string{"/v2/e2e/flip/manifests/v1", "/v2/e2e/flip/manifests/" + md.String()} {
					t.Run("GET "+strings.TrimPrefix(p, "/v2/e2e/flip/manifests/"), func(t *testing.T) {
						checkCorruptRead(t, c, ctx, p, md, string(mt))
					})
				}
				// The blobs were not touched and must still be served.
				res := c.do(ctx, http.MethodGet, "/v2/e2e/flip/blobs/"+ld.String(), nil, nil)
				if res.Status != http.StatusOK || sha256Digest(res.Body) != ld {
					t.Errorf("untouched layer blob no longer served: %v", res)
				}
			}
			// The server must still be healthy.
			if res := c.do(ctx, http.MethodGet, "/readyz", nil, nil); res.Status != http.StatusOK {
				t.Errorf("after corrupt reads: %v", res)
			}
		})
	}
}
