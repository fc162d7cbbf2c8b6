package envelope

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/sha256"
	"encoding/binary"
	"io"
	"testing"
)

// Fixed test inputs, also used by the known-answer vectors.
var (
	testIdentity = []byte("arn:aws:s3:::us-west-2-starport-layer-bucket/layers/aes256/kat-object")
	testKeys     = [][]byte{seqBytes(0x00, 32), seqBytes(0x20, 32)}
	testSlots    = []Slot{
		{Source: SourceRoot, KeyID: "coffer-root:76148dc0ac6d86a5e8286aaa43956160", Wrapped: seqBytes(0x80, 61)},
		{Source: SourceKMS, KeyID: "arn:aws-us-gov:kms:us-gov-west-1:111122223333:key/11111111-2222-3333-4444-555555555555", Wrapped: seqBytes(0xc0, 48)},
	}
)

// seqBytes returns n bytes counting up from start.
func seqBytes(start byte, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = start + byte(i)
	}
	return b
}

// pattern returns n deterministic plaintext bytes (i*7+3 mod 251), so that
// a shifted or swapped segment never looks right by accident.
func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte((i*7 + 3) % 251)
	}
	return b
}

func mustHeader(t testing.TB, shift uint8, nslots int) *Header {
	t.Helper()
	h, err := NewHeader(shift, testSlots[:nslots]...)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// encrypt seals pt with the Writer in one Write call.
func encrypt(t testing.TB, h *Header, identity, pt []byte, keys [][]byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := NewWriter(&buf, h, identity, keys...)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(pt); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// decrypt parses the header from obj and reads the whole plaintext, as the
// registry does: header from storage, size from metadata. It returns what
// was released before any error.
func decrypt(obj, identity []byte, plainSize int64, keys [][]byte) ([]byte, error) {
	r := bytes.NewReader(obj)
	h, err := ParseHeader(r)
	if err != nil {
		return nil, err
	}
	if len(h.Slots) != len(keys) {
		keys = testKeys[:len(h.Slots)]
	}
	pr, err := NewReader(r, h, identity, plainSize, keys...)
	if err != nil {
		return nil, err
	}
	return io.ReadAll(pr)
}

// referenceSeal is a direct, non-streaming transcription of the format in
// docs/envelope.md, written without the package's encoder, Writer or layers,
// to cross-check them.
func referenceSeal(t testing.TB, shift uint8, slots []Slot, identity, pt []byte, keys [][]byte) []byte {
	t.Helper()
	hdr := []byte{'C', 'F', 'E', 0, 1, shift, byte(len(slots))}
	for _, s := range slots {
		hdr = append(hdr, s.Source, byte(len(s.KeyID)>>8), byte(len(s.KeyID)))
		hdr = append(hdr, s.KeyID...)
		hdr = append(hdr, byte(len(s.Wrapped)>>8), byte(len(s.Wrapped)))
		hdr = append(hdr, s.Wrapped...)
	}
	var idLen [4]byte
	binary.BigEndian.PutUint32(idLen[:], uint32(len(identity)))
	base := sha256.Sum256(append(append(append([]byte("coffer-envelope-v1"), hdr...), idLen[:]...), identity...))
	aeads := make([]cipher.AEAD, len(keys))
	for j, k := range keys {
		block, err := aes.NewCipher(k)
		if err != nil {
			t.Fatal(err)
		}
		if aeads[j], err = cipher.NewGCM(block); err != nil {
			t.Fatal(err)
		}
	}
	size := 1 << shift
	n := (len(pt) + size - 1) / size
	if n == 0 {
		n = 1
	}
	out := hdr
	for i := range n {
		seg := pt[i*size : min((i+1)*size, len(pt))]
		nonce := make([]byte, 12)
		binary.BigEndian.PutUint64(nonce, uint64(i))
		if i == n-1 {
			nonce[11] = 1
		}
		c := bytes.Clone(seg)
		for j, a := range aeads {
			c = a.Seal(nil, nonce, c, append(base[:], byte(j)))
		}
		out = append(out, c...)
	}
	return out
}
