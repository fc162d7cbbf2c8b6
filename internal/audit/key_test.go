package audit

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fakeSeal stands in for the root key: it is not encryption, only a
// reversible change that proves the stored bytes went through it.
func fakeSeal(b []byte) ([]byte, error) {
	return append([]byte("sealed:"), flip(b)...), nil
}

func flip(b []byte) []byte {
	out := make([]byte, len(b))
	for i, c := range b {
		out[i] = c ^ 0x55
	}
	return out
}

func fakeOpen(b []byte) ([]byte, error) {
	rest, ok := bytes.CutPrefix(b, []byte("sealed:"))
	if !ok {
		return nil, errors.New("not sealed")
	}
	return flip(rest), nil
}

func TestLoadOrCreateSigningKey(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "audit")
	path := filepath.Join(dir, "signing.key")
	k1, err := LoadOrCreateSigningKey(path, fakeSeal, fakeOpen)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode = %v, %v", fi.Mode(), err)
	}
	raw, _ := os.ReadFile(path)
	if bytes.Contains(raw, k1.Seed()) || !strings.HasPrefix(string(raw), keyFileHeader) {
		t.Fatal("the key file holds the seed unsealed")
	}
	pub, err := ReadPublicKey(filepath.Join(dir, "signing.pub"))
	if err != nil || !pub.Equal(k1.Public()) {
		t.Fatalf("signing.pub = %v, %v", pub, err)
	}
	k2, err := LoadOrCreateSigningKey(path, fakeSeal, fakeOpen)
	if err != nil || !k2.Equal(k1) {
		t.Fatalf("reload = %v", err)
	}
	if _, err := LoadOrCreateSigningKey(path, fakeSeal, func([]byte) ([]byte, error) { return nil, errors.New("wrong root key") }); err == nil {
		t.Fatal("a key that does not open was accepted")
	}
	other, _, _ := ed25519.GenerateKey(nil)
	os.WriteFile(filepath.Join(dir, "signing.pub"), MarshalPublicKey(other), 0o644)
	if _, err := LoadOrCreateSigningKey(path, fakeSeal, fakeOpen); err == nil || !strings.Contains(err.Error(), "replaced") {
		t.Fatalf("a replaced signing.pub = %v", err)
	}
	os.Remove(filepath.Join(dir, "signing.pub"))
	if _, err := LoadOrCreateSigningKey(path, fakeSeal, fakeOpen); err != nil {
		t.Fatal(err)
	}
	if pub, _ := ReadPublicKey(filepath.Join(dir, "signing.pub")); !pub.Equal(k1.Public()) {
		t.Fatal("signing.pub was not rewritten")
	}
}
