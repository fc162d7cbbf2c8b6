package main

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"runtime"
	"sync"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// zeros is the plaintext the generator encrypts: AES-CTR over zeros is the
// key stream itself. Read-only, shared by every stream.
var zeros = make([]byte, 1<<20)

// stream is a deterministic pseudo-random byte stream: AES-256-CTR over
// zeros, keyed by SHA-256 of the seed. It runs at several GB/s (AES-NI), so
// regenerating a layer costs the client far less than sending it, and the
// same seed always gives the same bytes, so digests computed once before
// timing stay valid for every round.
type stream struct {
	ctr  cipher.Stream
	left int64
}

func newStream(seed string, size int64) *stream {
	key := sha256.Sum256([]byte("coffer-bench/" + seed))
	block, err := aes.NewCipher(key[:])
	if err != nil {
		panic(err) // a 32-byte key always works
	}
	return &stream{ctr: cipher.NewCTR(block, make([]byte, aes.BlockSize)), left: size}
}

func (s *stream) Read(p []byte) (int, error) {
	if s.left <= 0 {
		return 0, io.EOF
	}
	n := min(int64(len(p)), int64(len(zeros)), s.left)
	s.ctr.XORKeyStream(p[:n], zeros[:n])
	s.left -= n
	return int(n), nil
}

func (s *stream) Close() error { return nil }

// genLayer is a v1.Layer whose bytes are a stream: Compressed regenerates
// them on every call, so a 1 GiB image is never held in memory. Its digest
// is computed once, before any timing (see digestLayers).
type genLayer struct {
	seed   string
	size   int64
	digest v1.Hash
}

func (l *genLayer) Digest() (v1.Hash, error) { return l.digest, nil }

// DiffID is the digest: the bytes are random, not a real compressed tar, and
// registries never look inside a layer.
func (l *genLayer) DiffID() (v1.Hash, error)             { return l.digest, nil }
func (l *genLayer) Compressed() (io.ReadCloser, error)   { return newStream(l.seed, l.size), nil }
func (l *genLayer) Uncompressed() (io.ReadCloser, error) { return newStream(l.seed, l.size), nil }
func (l *genLayer) Size() (int64, error)                 { return l.size, nil }
func (l *genLayer) MediaType() (types.MediaType, error)  { return types.OCILayer, nil }

// digestLayers computes every layer's SHA-256 on all cores, once.
func digestLayers(layers []*genLayer) {
	var wg sync.WaitGroup
	sem := make(chan struct{}, runtime.NumCPU())
	for _, l := range layers {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			h := sha256.New()
			buf := make([]byte, 1<<20)
			if _, err := io.CopyBuffer(h, onlyReader{newStream(l.seed, l.size)}, buf); err != nil {
				panic(err) // the stream cannot fail
			}
			l.digest = v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(h.Sum(nil))}
		}()
	}
	wg.Wait()
}

// onlyReader hides any WriterTo/ReaderFrom so that io.CopyBuffer uses the
// buffer it is given.
type onlyReader struct{ io.Reader }

// testImage is one generated image: its layers, its manifest digest and the
// number of bytes a push or a pull moves (layers and config).
type testImage struct {
	name     string
	img      v1.Image
	layers   []*genLayer
	digest   v1.Hash
	bytes    int64
	manifest []byte
}

// newTestImage builds an OCI image of n random layers of size bytes each.
// The seed prefix keeps the big and the small images apart; it is the same
// in every round and every registry, so all see the same bytes.
func newTestImage(prefix string, n int, size int64) (*testImage, error) {
	layers := make([]*genLayer, n)
	for i := range layers {
		layers[i] = &genLayer{seed: fmt.Sprintf("%s/%d/%d", prefix, size, i), size: size}
	}
	digestLayers(layers)
	adds := make([]mutate.Addendum, n)
	for i, l := range layers {
		adds[i] = mutate.Addendum{Layer: l, MediaType: types.OCILayer}
	}
	base := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	base = mutate.ConfigMediaType(base, types.OCIConfigJSON)
	img, err := mutate.Append(base, adds...)
	if err != nil {
		return nil, fmt.Errorf("build image %s: %w", prefix, err)
	}
	// A fixed creation time and a label make the config, hence the
	// manifest digest, deterministic.
	cfg, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("config of image %s: %w", prefix, err)
	}
	cfg = cfg.DeepCopy()
	cfg.Architecture, cfg.OS = "amd64", "linux"
	cfg.Config.Labels = map[string]string{"org.opencontainers.image.title": "coffer-bench " + prefix}
	if img, err = mutate.ConfigFile(img, cfg); err != nil {
		return nil, fmt.Errorf("set config of image %s: %w", prefix, err)
	}
	t := &testImage{name: prefix, img: img, layers: layers}
	if t.digest, err = img.Digest(); err != nil {
		return nil, fmt.Errorf("digest of image %s: %w", prefix, err)
	}
	if t.manifest, err = img.RawManifest(); err != nil {
		return nil, fmt.Errorf("manifest of image %s: %w", prefix, err)
	}
	m, err := img.Manifest()
	if err != nil {
		return nil, fmt.Errorf("manifest of image %s: %w", prefix, err)
	}
	t.bytes = m.Config.Size
	for _, l := range m.Layers {
		t.bytes += l.Size
	}
	return t, nil
}

// layerBytes is the size of the image's layers alone.
func (t *testImage) layerBytes() int64 {
	var n int64
	for _, l := range t.layers {
		n += l.size
	}
	return n
}
