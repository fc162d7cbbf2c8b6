package audit

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// The audit signing key is an ed25519 key. Its seed is stored sealed by
// the caller (the service root key) in <data>/audit/signing.key, 0600; the
// public key is in signing.pub next to it, PEM (PKIX), for anyone to
// verify with. Keep a copy of the public key outside the data directory:
// an intruder who can rewrite the trail can rewrite signing.pub too.

const keyFileHeader = "coffer-audit-signing-key v1"

// Dir is the audit directory of a data directory: <data>/audit.
func Dir(dataDir string) string { return filepath.Join(dataDir, "audit") }

// SigningKeyPath is the sealed signing key of a data directory:
// <data>/audit/signing.key (its public key is <data>/audit/signing.pub).
func SigningKeyPath(dataDir string) string { return filepath.Join(Dir(dataDir), "signing.key") }

// PublicKeyPath is the public key file that goes with a signing key file.
func PublicKeyPath(keyPath string) string {
	return strings.TrimSuffix(keyPath, filepath.Ext(keyPath)) + ".pub"
}

// LoadOrCreateSigningKey returns the audit signing key kept sealed at path
// (opened with open), generating and storing one (sealed with seal) on
// first use, and writes the public key file (PublicKeyPath) if it is
// missing. A public key file that does not match the key is an error: it
// was replaced, and the operator must look (delete it to have it
// rewritten).
func LoadOrCreateSigningKey(path string, seal, open func([]byte) ([]byte, error)) (ed25519.PrivateKey, error) {
	var key ed25519.PrivateKey
	data, err := os.ReadFile(path)
	switch {
	case err == nil:
		body, ok := strings.CutPrefix(string(data), keyFileHeader+"\n")
		if !ok {
			return nil, fmt.Errorf("audit: %s is not an audit signing key file", path)
		}
		sealed, err := base64.StdEncoding.DecodeString(strings.TrimSpace(body))
		if err != nil {
			return nil, fmt.Errorf("audit: %s is not an audit signing key file", path)
		}
		seed, err := open(sealed)
		if err != nil {
			return nil, fmt.Errorf("audit: the signing key %s does not open: %w", path, err)
		}
		if len(seed) != ed25519.SeedSize {
			return nil, fmt.Errorf("audit: the signing key %s has the wrong size", path)
		}
		key = ed25519.NewKeyFromSeed(seed)
		clear(seed)
	case errors.Is(err, fs.ErrNotExist):
		seed := make([]byte, ed25519.SeedSize)
		if _, err := rand.Read(seed); err != nil {
			return nil, err
		}
		key = ed25519.NewKeyFromSeed(seed)
		sealed, err := seal(seed)
		clear(seed)
		if err != nil {
			return nil, fmt.Errorf("audit: seal the signing key: %w", err)
		}
		if err := mkdirAllSync(filepath.Dir(path)); err != nil {
			return nil, fmt.Errorf("audit: %w", err)
		}
		content := keyFileHeader + "\n" + base64.StdEncoding.EncodeToString(sealed) + "\n"
		if err := writeNew(path, []byte(content), 0o600); err != nil {
			return nil, fmt.Errorf("audit: write the signing key: %w", err)
		}
	default:
		return nil, fmt.Errorf("audit: read the signing key: %w", err)
	}
	pub := key.Public().(ed25519.PublicKey)
	pubPath := PublicKeyPath(path)
	have, err := ReadPublicKey(pubPath)
	switch {
	case err == nil:
		if !have.Equal(pub) {
			return nil, fmt.Errorf("audit: %s does not match the signing key %s; it was replaced (delete it to have it rewritten)", pubPath, path)
		}
	case errors.Is(err, fs.ErrNotExist):
		if err := writeNew(pubPath, MarshalPublicKey(pub), 0o644); err != nil {
			return nil, fmt.Errorf("audit: write the public key: %w", err)
		}
	default:
		return nil, fmt.Errorf("audit: %w", err)
	}
	return key, nil
}

// writeNew creates path with data, durably, and fails if it exists.
func writeNew(path string, data []byte, perm os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	if _, err = f.Write(data); err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return err
	}
	return syncDir(filepath.Dir(path))
}

// MarshalPublicKey encodes a public key as PEM (PKIX), the form of
// signing.pub and of `coffer audit public-key`.
func MarshalPublicKey(pub ed25519.PublicKey) []byte {
	der, _ := x509.MarshalPKIXPublicKey(pub)
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

// ParsePublicKey reads a PEM (PKIX) ed25519 public key.
func ParsePublicKey(data []byte) (ed25519.PublicKey, error) {
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "PUBLIC KEY" {
		return nil, errors.New("audit: not a PEM public key")
	}
	k, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	pub, ok := k.(ed25519.PublicKey)
	if !ok {
		return nil, errors.New("audit: not an ed25519 public key")
	}
	return pub, nil
}

// ReadPublicKey reads a public key file (ParsePublicKey).
func ReadPublicKey(path string) (ed25519.PublicKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pub, err := ParsePublicKey(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return pub, nil
}
