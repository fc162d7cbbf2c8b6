//go:build e2e

package e2e

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"io"
	"math/rand/v2"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

const (
	bigLayerSize = 1 << 30   // 1 GiB
	rssLimitKiB  = 150 << 10 // 150 MiB: the server must stream, not buffer
)

// prngLayer is a layer whose bytes come from a seeded ChaCha8 stream, so a
// 1 GiB layer needs neither 1 GiB of RAM nor a temp file. Its media type
// is the uncompressed OCI layer, so digest and diff ID are the same.
type prngLayer struct {
	seed   uint64
	size   int64
	digest v1.Hash
}

func newPRNGLayer(t *testing.T, seed uint64, size int64) *prngLayer {
	t.Helper()
	l := &prngLayer{seed: seed, size: size}
	start := time.Now()
	h := sha256.New()
	if _, err := io.Copy(h, l.stream()); err != nil {
		t.Fatal(err)
	}
	l.digest = v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(h.Sum(nil))}
	t.Logf("generated %d MiB layer %s in %v", size>>20, l.digest, time.Since(start).Round(time.Millisecond))
	return l
}

func (l *prngLayer) stream() io.Reader {
	var key [32]byte
	binary.LittleEndian.PutUint64(key[:], l.seed)
	return io.LimitReader(rand.NewChaCha8(key), l.size)
}

func (l *prngLayer) Digest() (v1.Hash, error)             { return l.digest, nil }
func (l *prngLayer) DiffID() (v1.Hash, error)             { return l.digest, nil }
func (l *prngLayer) Size() (int64, error)                 { return l.size, nil }
func (l *prngLayer) MediaType() (types.MediaType, error)  { return types.OCIUncompressedLayer, nil }
func (l *prngLayer) Compressed() (io.ReadCloser, error)   { return io.NopCloser(l.stream()), nil }
func (l *prngLayer) Uncompressed() (io.ReadCloser, error) { return io.NopCloser(l.stream()), nil }

// TestBigLayerStreams pushes and pulls a 1 GiB layer while sampling the
// server's resident memory: peak RSS must stay under 150 MiB.
func TestBigLayerStreams(t *testing.T) {
	ctx := testContext(t, 10*time.Minute)
	c := startCoffer(t)
	layer := newPRNGLayer(t, 0xC0FFEE, bigLayerSize)
	img, err := mutate.AppendLayers(mutate.MediaType(empty.Image, types.OCIManifestSchema1), layer)
	if err != nil {
		t.Fatal(err)
	}
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	ref := c.ref(t, "e2e/big:1g")

	startKiB, _ := procStatusKiB(c.PID(), "VmRSS")
	rss := sampleRSS(c.PID())

	start := time.Now()
	if err := remote.Write(ref, img, c.opts(ctx)...); err != nil {
		rss.Stop()
		t.Fatalf("push 1 GiB image: %v", err)
	}
	push := time.Since(start)

	start = time.Now()
	pulled, err := remote.Layer(c.digestRef(t, "e2e/big", layer.digest), c.opts(ctx)...)
	if err != nil {
		rss.Stop()
		t.Fatalf("remote.Layer: %v", err)
	}
	// The remote reader verifies digest and size as well; hash it here too
	// so a wrong answer cannot slip through a client quirk.
	got, n, err := hashStream(pulled.Compressed)
	pull := time.Since(start)
	maxKiB, samples := rss.Stop()
	if err != nil {
		t.Fatalf("pull 1 GiB layer after %d bytes: %v", n, err)
	}
	if got != layer.digest || n != bigLayerSize {
		t.Fatalf("pulled %d bytes with digest %s, want %d bytes with %s", n, got, int64(bigLayerSize), layer.digest)
	}
	wantManifest, _ := img.Digest()
	if desc, err := remote.Head(ref, c.opts(ctx)...); err != nil {
		t.Errorf("HEAD %s: %v", ref, err)
	} else if desc.Digest != wantManifest {
		t.Errorf("HEAD %s: digest %s, want %s", ref, desc.Digest, wantManifest)
	}

	hwmKiB, err := procStatusKiB(c.PID(), "VmHWM")
	if err != nil {
		t.Fatalf("read VmHWM: %v", err)
	}
	peak := max(hwmKiB, maxKiB)
	mbps := func(d time.Duration) float64 { return float64(bigLayerSize) / 1e6 / d.Seconds() }
	t.Logf("coffer RSS: %d MiB at start, max sampled VmRSS %d MiB over %d samples, VmHWM %d MiB (limit %d MiB)",
		startKiB>>10, maxKiB>>10, samples, hwmKiB>>10, rssLimitKiB>>10)
	t.Logf("1 GiB push %v (%.0f MB/s), pull %v (%.0f MB/s)", push.Round(time.Millisecond), mbps(push), pull.Round(time.Millisecond), mbps(pull))
	if peak >= rssLimitKiB {
		t.Errorf("coffer peak RSS %d MiB >= %d MiB while moving a 1 GiB layer: blobs must be streamed", peak>>10, rssLimitKiB>>10)
	}
}
