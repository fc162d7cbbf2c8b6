package rootkey

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"encoding/hex"
	"errors"
	"maps"
	"testing"
)

// repoContext is the ECR-style context used throughout these tests.
func repoContext() map[string]string {
	return map[string]string{
		"aws:ecr:arn":    "arn:aws:ecr:us-west-2:111122223333:repository/repository-name",
		"coffer:purpose": "data-key",
	}
}

func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// sealWithNonce is Wrap with a chosen nonce, for known answers and as the
// fuzz oracle. It uses the plain GCM API, independent of Wrap's
// NewGCMWithRandomNonce.
func sealWithNonce(t testing.TB, k *Key, nonce, pt []byte, ec map[string]string) []byte {
	t.Helper()
	block, err := aes.NewCipher(k.b[:])
	if err != nil {
		t.Fatal(err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		t.Fatal(err)
	}
	out := append([]byte{wrapVersion}, nonce...)
	return aead.Seal(out, nonce, pt, CanonicalContext(ec))
}

func TestWrapRoundTrip(t *testing.T) {
	t.Parallel()
	k := testKey(t)
	tests := []struct {
		name string
		pt   []byte
		ec   map[string]string
	}{
		{"data key", bytes.Repeat([]byte{7}, 32), repoContext()},
		{"empty plaintext", nil, repoContext()},
		{"nil context", []byte("secret"), nil},
		{"empty value", []byte("secret"), map[string]string{"k": ""}},
		{"large", bytes.Repeat([]byte("hash state "), 1000), repoContext()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			w, err := k.Wrap(tt.pt, tt.ec)
			if err != nil {
				t.Fatal(err)
			}
			if len(w) != wrapOverhead+len(tt.pt) || w[0] != wrapVersion {
				t.Fatalf("wrapped form: %d bytes, version %d", len(w), w[0])
			}
			if len(tt.pt) > 4 && bytes.Contains(w, tt.pt[:5]) {
				t.Fatal("plaintext visible in wrapped form")
			}
			got, err := k.Unwrap(w, maps.Clone(tt.ec))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, tt.pt) {
				t.Fatal("round trip changed the plaintext")
			}
			w2, err := k.Wrap(tt.pt, tt.ec)
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Equal(w, w2) {
				t.Fatal("two wraps are identical: nonce not random")
			}
		})
	}
}

func TestWrapEmptyAndNilContextAgree(t *testing.T) {
	t.Parallel()
	k := testKey(t)
	w, err := k.Wrap([]byte("x"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := k.Unwrap(w, map[string]string{}); err != nil {
		t.Fatalf("nil and empty contexts differ: %v", err)
	}
}

func TestUnwrapFailures(t *testing.T) {
	t.Parallel()
	k := testKey(t)
	other, err := Generate()
	if err != nil {
		t.Fatal(err)
	}
	ec := repoContext()
	w, err := k.Wrap(bytes.Repeat([]byte{9}, 32), ec)
	if err != nil {
		t.Fatal(err)
	}
	with := func(f func(m map[string]string)) map[string]string {
		m := maps.Clone(ec)
		f(m)
		return m
	}
	flip := func(i int) []byte {
		b := bytes.Clone(w)
		b[i] ^= 1
		return b
	}
	tests := []struct {
		name    string
		key     *Key
		wrapped []byte
		ec      map[string]string
	}{
		{"changed value", k, w, with(func(m map[string]string) { m["coffer:purpose"] = "hash-state" })},
		{"changed key name", k, w, with(func(m map[string]string) { delete(m, "aws:ecr:arn"); m["aws:ECR:arn"] = ec["aws:ecr:arn"] })},
		{"missing pair", k, w, with(func(m map[string]string) { delete(m, "coffer:purpose") })},
		{"extra pair", k, w, with(func(m map[string]string) { m["aws:s3:arn"] = "arn:aws:s3:::b/k" })},
		{"nil context", k, w, nil},
		{"other key", other, w, ec},
		{"version", k, flip(0), ec},
		{"nonce", k, flip(5), ec},
		{"ciphertext", k, flip(20), ec},
		{"tag", k, flip(len(w) - 1), ec},
		{"truncated", k, w[:len(w)-1], ec},
		{"too short", k, w[:wrapOverhead-1], ec},
		{"extended", k, append(bytes.Clone(w), 0), ec},
		{"empty", k, nil, ec},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			pt, err := tt.key.Unwrap(tt.wrapped, tt.ec)
			if !errors.Is(err, ErrUnwrap) || err.Error() != ErrUnwrap.Error() {
				t.Fatalf("Unwrap error = %v, want exactly ErrUnwrap", err)
			}
			if pt != nil {
				t.Fatal("plaintext returned with error")
			}
		})
	}
}

// TestWrapKnownAnswer pins the wire format. The expected values were
// computed independently with Python's cryptography package (AESGCM).
func TestWrapKnownAnswer(t *testing.T) {
	t.Parallel()
	k := testKey(t)
	nonce := mustHex(t, "a0a1a2a3a4a5a6a7a8a9aaab")
	pt := mustHex(t, "404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f")
	tests := []struct {
		name string
		pt   []byte
		ec   map[string]string
		want string
	}{
		{"repo context", pt, repoContext(), "01a0a1a2a3a4a5a6a7a8a9aaaba6593e6e018e44f82a2ccd984b378e9120fd0b43c6e2143bc4577cdd23f62b5e6a4b51616e4b53183150bf0ff9ae2764"},
		{"empty", nil, nil, "01a0a1a2a3a4a5a6a7a8a9aaab013c2a51fd68c05c5c2227a0f37e31fa"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			want := mustHex(t, tt.want)
			if got := sealWithNonce(t, k, nonce, tt.pt, tt.ec); !bytes.Equal(got, want) {
				t.Fatalf("seal = %x, want %x", got, want)
			}
			got, err := k.Unwrap(want, tt.ec)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, tt.pt) {
				t.Fatalf("Unwrap = %x, want %x", got, tt.pt)
			}
		})
	}
}

func TestCanonicalContext(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		ec   map[string]string
		want string
	}{
		{"nil", nil, "00000000"},
		{"empty", map[string]string{}, "00000000"},
		{"one pair", map[string]string{"a": "b"}, "00000001" + "00000001" + "61" + "00000001" + "62"},
		{"empty strings", map[string]string{"": ""}, "00000001" + "00000000" + "00000000"},
		// Bytewise order: "B" (0x42) < "a" (0x61) < "b" (0x62) < "é" (0xc3 0xa9).
		{"sorted bytewise", map[string]string{"b": "1", "é": "4", "a": "2", "B": "3"},
			"00000004" +
				"00000001" + "42" + "00000001" + "33" +
				"00000001" + "61" + "00000001" + "32" +
				"00000001" + "62" + "00000001" + "31" +
				"00000002" + "c3a9" + "00000001" + "34"},
		// Computed independently with Python (struct.pack, sorted keys).
		{"ecr", repoContext(), "000000020000000b6177733a6563723a61726e0000003d61726e3a6177733a6563723a75732d776573742d323a3131313132323232333333333a7265706f7369746f72792f7265706f7369746f72792d6e616d650000000e636f666665723a707572706f736500000008646174612d6b6579"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := hex.EncodeToString(CanonicalContext(tt.ec)); got != tt.want {
				t.Fatalf("CanonicalContext = %s, want %s", got, tt.want)
			}
		})
	}
}

func TestCanonicalContextInjective(t *testing.T) {
	t.Parallel()
	pairs := []map[string]string{
		{"ab": "c"},
		{"a": "bc"},
		{"a": "b", "c": ""},
		{"a": "b", "": "c"},
		{"a": "", "b": "c"},
		{"abc": ""},
		{"": "abc"},
		{},
	}
	seen := map[string]int{}
	for i, ec := range pairs {
		enc := string(CanonicalContext(ec))
		if j, dup := seen[enc]; dup {
			t.Fatalf("contexts %d and %d encode alike", j, i)
		}
		seen[enc] = i
	}
}
