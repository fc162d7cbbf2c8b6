//go:build e2e

package e2e

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// verifyImage reads every blob of img and checks it against the manifest:
// config digest and size, each layer's digest and size, and each layer's
// uncompressed digest against the config's diff_ids. (It does what
// go-containerregistry's validate.Image does, without adding go-cmp to
// the project's go.mod.)
func verifyImage(img v1.Image) error {
	m, err := img.Manifest()
	if err != nil {
		return fmt.Errorf("manifest: %w", err)
	}
	raw, err := img.RawConfigFile()
	if err != nil {
		return fmt.Errorf("config blob %s: %w", m.Config.Digest, err)
	}
	if d := sha256Digest(raw); d != m.Config.Digest || int64(len(raw)) != m.Config.Size {
		return fmt.Errorf("config blob: got %s (%d bytes), manifest says %s (%d bytes)", d, len(raw), m.Config.Digest, m.Config.Size)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	if len(cf.RootFS.DiffIDs) != len(m.Layers) {
		return fmt.Errorf("config has %d diff_ids, manifest %d layers", len(cf.RootFS.DiffIDs), len(m.Layers))
	}
	for i, desc := range m.Layers {
		l, err := img.LayerByDigest(desc.Digest)
		if err != nil {
			return fmt.Errorf("layer %d %s: %w", i, desc.Digest, err)
		}
		d, n, err := hashStream(l.Compressed)
		if err != nil {
			return fmt.Errorf("layer %d %s: %w", i, desc.Digest, err)
		}
		if d != desc.Digest || n != desc.Size {
			return fmt.Errorf("layer %d: got %s (%d bytes), manifest says %s (%d bytes)", i, d, n, desc.Digest, desc.Size)
		}
		u, _, err := hashStream(l.Uncompressed)
		if err != nil {
			return fmt.Errorf("layer %d %s uncompressed: %w", i, desc.Digest, err)
		}
		if u != cf.RootFS.DiffIDs[i] {
			return fmt.Errorf("layer %d %s: uncompressed digest %s, config diff_id %s", i, desc.Digest, u, cf.RootFS.DiffIDs[i])
		}
	}
	return nil
}

// verifyIndex checks every image an index names with verifyImage.
func verifyIndex(idx v1.ImageIndex) error {
	im, err := idx.IndexManifest()
	if err != nil {
		return fmt.Errorf("index manifest: %w", err)
	}
	for _, desc := range im.Manifests {
		if !desc.MediaType.IsImage() {
			continue
		}
		img, err := idx.Image(desc.Digest)
		if err != nil {
			return fmt.Errorf("image %s: %w", desc.Digest, err)
		}
		if d, err := img.Digest(); err != nil || d != desc.Digest {
			return fmt.Errorf("image %s: digest %s, %v", desc.Digest, d, err)
		}
		if err := verifyImage(img); err != nil {
			return fmt.Errorf("image %s: %w", desc.Digest, err)
		}
	}
	return nil
}

func hashStream(open func() (io.ReadCloser, error)) (v1.Hash, int64, error) {
	rc, err := open()
	if err != nil {
		return v1.Hash{}, 0, err
	}
	defer rc.Close()
	h := sha256.New()
	n, err := io.Copy(h, rc)
	if err != nil {
		return v1.Hash{}, n, err
	}
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(h.Sum(nil))}, n, nil
}
