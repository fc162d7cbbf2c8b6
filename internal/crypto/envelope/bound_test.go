package envelope

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func encryptBound(t testing.TB, h *Header, pt, binding []byte, keys [][]byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := NewWriter(&buf, h, testIdentity, keys...)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(pt); err != nil {
		t.Fatal(err)
	}
	if err := w.CloseBound(binding); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func readBound(obj []byte, plainSize, off, n int64, binding []byte, keys [][]byte) ([]byte, error) {
	r := bytes.NewReader(obj)
	h, err := ParseHeader(r)
	if err != nil {
		return nil, err
	}
	cOff, cLen, err := h.Span(plainSize, off, n)
	if err != nil {
		return nil, err
	}
	src := io.NewSectionReader(bytes.NewReader(obj), cOff, cLen)
	var pr io.Reader
	if binding == nil {
		pr, err = NewRangeReader(src, h, testIdentity, plainSize, off, n, keys...)
	} else {
		pr, err = NewBoundRangeReader(src, h, testIdentity, plainSize, off, n, binding, keys...)
	}
	if err != nil {
		return nil, err
	}
	return io.ReadAll(pr)
}

// A bound object opens only with its binding, and only the final segment
// depends on it.
func TestBinding(t *testing.T) {
	t.Parallel()
	const shift = 12
	seg := int64(1) << shift
	for _, nslots := range []int{1, 2} {
		for _, size := range []int64{0, 1, seg, 3*seg + 7} {
			h := mustHeader(t, shift, nslots)
			keys := testKeys[:nslots]
			pt := pattern(int(size))
			sum := sha256.Sum256(pt)
			obj := encryptBound(t, h, pt, sum[:], keys)
			if got, err := readBound(obj, size, 0, size, sum[:], keys); err != nil || !bytes.Equal(got, pt) {
				t.Fatalf("slots %d size %d: bound read = %v", nslots, size, err)
			}
			other := sha256.Sum256([]byte("other"))
			for name, b := range map[string][]byte{"wrong": other[:], "missing": nil, "truncated": sum[:31]} {
				got, err := readBound(obj, size, 0, size, b, keys)
				if !errors.Is(err, ErrAuth) {
					t.Fatalf("slots %d size %d %s binding: err = %v", nslots, size, name, err)
				}
				// Everything before the final segment is authentic.
				finalStart := max(0, (size-1)/seg*seg)
				if !bytes.Equal(got, pt[:min(int64(len(got)), finalStart)]) || int64(len(got)) > finalStart {
					t.Fatalf("slots %d size %d %s binding: released %d bytes", nslots, size, name, len(got))
				}
			}
			if size > seg { // a range before the final segment needs no binding
				if got, err := readBound(obj, size, 1, seg, nil, keys); err != nil || !bytes.Equal(got, pt[1:1+seg]) {
					t.Fatalf("slots %d size %d: unbound range read = %v", nslots, size, err)
				}
			}
		}
	}
	// An unbound object does not open with a binding.
	h := mustHeader(t, shift, 1)
	obj := encrypt(t, h, testIdentity, []byte("x"), testKeys[:1])
	if _, err := readBound(obj, 1, 0, 1, []byte("b"), testKeys[:1]); !errors.Is(err, ErrAuth) {
		t.Fatalf("unbound object with a binding: %v", err)
	}
	// Oversized bindings are refused.
	w, _ := NewWriter(io.Discard, h, testIdentity, testKeys[0])
	if err := w.CloseBound(make([]byte, MaxBinding+1)); err == nil {
		t.Fatal("CloseBound accepted an oversized binding")
	}
}

// TestBoundKnownAnswer freezes a bound object, cross-checked against an
// independent transcription of the rule "final segment AD = aadBase || u8 j
// || binding".
func TestBoundKnownAnswer(t *testing.T) {
	const shift = 12
	pt := pattern(2*4096 + 5)
	binding := sha256.Sum256(pt)
	h := mustHeader(t, shift, 2)
	obj := encryptBound(t, h, pt, binding[:], testKeys[:2])

	// Independent transcription.
	d := sha256.New()
	d.Write([]byte("coffer-envelope-v1"))
	d.Write(h.Bytes())
	var n4 [4]byte
	binary.BigEndian.PutUint32(n4[:], uint32(len(testIdentity)))
	d.Write(n4[:])
	d.Write(testIdentity)
	base := d.Sum(nil)
	ref := append([]byte{}, h.Bytes()...)
	for i := 0; i < 3; i++ {
		last := i == 2
		c := pt[i*4096 : min(len(pt), (i+1)*4096)]
		var nonce [12]byte
		binary.BigEndian.PutUint64(nonce[:8], uint64(i))
		if last {
			nonce[11] = 1
		}
		for j := 0; j < 2; j++ {
			block, _ := aes.NewCipher(testKeys[j])
			g, _ := cipher.NewGCM(block)
			ad := append(append([]byte{}, base...), byte(j))
			if last {
				ad = append(ad, binding[:]...)
			}
			c = g.Seal(nil, nonce[:], c, ad)
		}
		ref = append(ref, c...)
	}
	if !bytes.Equal(ref, obj) {
		t.Fatal("CloseBound differs from the independent transcription")
	}
	path := filepath.Join("testdata", "kat", "v1-2slot-3seg-bound.hex")
	text := "# Coffer envelope format v1, bound object: inputs as v1-2slot-3seg, binding = sha256(plaintext)\n" +
		"# binding: " + hex.EncodeToString(binding[:]) + "\n"
	x := hex.EncodeToString(obj)
	for len(x) > 0 {
		k := min(64, len(x))
		text += x[:k] + "\n"
		x = x[k:]
	}
	if *update {
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create)", err)
	}
	if strings.TrimSpace(string(want)) != strings.TrimSpace(text) {
		t.Fatalf("bound encoding changed; the format is frozen")
	}
}
