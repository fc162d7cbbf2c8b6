package envelope

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// aadLabel is the domain separation prefix of aadBase.
const aadLabel = "coffer-envelope-v1"

// aadLen is len(aadBase || u8 layer).
const aadLen = sha256.Size + 1

// layers holds the per-object AEAD state shared by Writer and readers: one
// AES-256-GCM instance per slot, the additional data of each layer, and the
// nonce buffer. Everything is fixed-size so sealing a segment never allocates.
type layers struct {
	n     int
	aead  [2]cipher.AEAD
	aad   [2][aadLen]byte
	nonce [12]byte
	// bound is the final segment's binding (see CloseBound), appended to
	// its additional data; empty when the object has none.
	bound []byte
	fin   [2][aadLen + MaxBinding]byte
}

// MaxBinding is the longest binding CloseBound accepts (a SHA-512 sum).
const MaxBinding = 64

// bind sets the final segment's binding.
func (l *layers) bind(b []byte) error {
	if len(b) > MaxBinding {
		return fmt.Errorf("envelope: binding of %d bytes exceeds %d", len(b), MaxBinding)
	}
	l.bound = append(l.bound[:0], b...)
	for j := range l.n {
		copy(l.fin[j][:], l.aad[j][:])
		copy(l.fin[j][aadLen:], b)
	}
	return nil
}

// ad returns layer j's additional data for a segment.
func (l *layers) ad(j int, last bool) []byte {
	if last && len(l.bound) > 0 {
		return l.fin[j][:aadLen+len(l.bound)]
	}
	return l.aad[j][:]
}

// newLayers validates the caller's inputs and derives the per-object state.
// A malformed data key (wrong length, all zero, or shared by both slots) is a
// broken invariant of the caller, who must draw fresh random keys per object,
// and panics; everything else is an error.
func newLayers(h *Header, identity []byte, keys [][]byte) (layers, error) {
	var l layers
	if h == nil || len(h.raw) < fixedLen {
		return l, errors.New("envelope: Header not made by NewHeader or ParseHeader")
	}
	l.n = h.nslots()
	if len(keys) != l.n {
		return l, fmt.Errorf("envelope: %d data keys for %d slots", len(keys), l.n)
	}
	if len(identity) == 0 {
		return l, errors.New("envelope: empty object identity")
	}
	if uint64(len(identity)) > math.MaxUint32 {
		return l, errors.New("envelope: object identity longer than 4 GiB")
	}
	var zero [keySize]byte
	for j, k := range keys {
		if len(k) != keySize {
			panic(fmt.Sprintf("envelope: data key %d is %d bytes, want %d", j, len(k), keySize))
		}
		if subtle.ConstantTimeCompare(k, zero[:]) == 1 {
			panic(fmt.Sprintf("envelope: data key %d is all zero", j))
		}
	}
	// Identical keys in two layers with identical nonces would cancel the
	// CTR keystream and store the plaintext in the clear.
	if l.n == 2 && subtle.ConstantTimeCompare(keys[0], keys[1]) == 1 {
		panic("envelope: both slots use the same data key")
	}
	for j, k := range keys {
		block, err := aes.NewCipher(k)
		if err != nil {
			return l, fmt.Errorf("envelope: data key %d: %w", j, err)
		}
		if l.aead[j], err = cipher.NewGCM(block); err != nil {
			return l, fmt.Errorf("envelope: data key %d: %w", j, err)
		}
	}
	d := sha256.New()
	d.Write([]byte(aadLabel))
	d.Write(h.raw)
	var n [4]byte
	binary.BigEndian.PutUint32(n[:], uint32(len(identity)))
	d.Write(n[:])
	d.Write(identity)
	base := d.Sum(nil)
	for j := range l.n {
		copy(l.aad[j][:], base)
		l.aad[j][sha256.Size] = byte(j)
	}
	return l, nil
}

// setNonce writes nonce(i, last) = u64 BE i || 00 00 00 || last.
func (l *layers) setNonce(i uint64, last bool) {
	binary.BigEndian.PutUint64(l.nonce[:8], i) // bytes 8..10 stay zero
	l.nonce[11] = 0
	if last {
		l.nonce[11] = 1
	}
}

// seal encrypts segment i in place: buf[:m] holds the plaintext and buf must
// have capacity m + 16*n. It returns the ciphertext, an extension of buf.
func (l *layers) seal(buf []byte, m int, i uint64, last bool) []byte {
	l.setNonce(i, last)
	out := buf[:m]
	for j := range l.n {
		out = l.aead[j].Seal(out[:0], l.nonce[:], out, l.ad(j, last))
	}
	return out
}

// sealFrom encrypts the plaintext segment p (not aliasing buf) into buf,
// saving the copy into buf that seal needs. buf must have capacity
// len(p) + 16*n.
func (l *layers) sealFrom(buf, p []byte, i uint64, last bool) []byte {
	l.setNonce(i, last)
	out := l.aead[0].Seal(buf[:0], l.nonce[:], p, l.ad(0, last))
	for j := 1; j < l.n; j++ {
		out = l.aead[j].Seal(out[:0], l.nonce[:], out, l.ad(j, last))
	}
	return out
}

// open authenticates and decrypts segment i in place, outermost layer first,
// and returns the plaintext, a prefix of buf. On failure the failing layer's
// input is cleared, so buf never holds unauthenticated plaintext.
func (l *layers) open(buf []byte, i uint64, last bool) ([]byte, error) {
	l.setNonce(i, last)
	out := buf
	for j := l.n - 1; j >= 0; j-- {
		var err error
		in := out
		out, err = l.aead[j].Open(in[:0], l.nonce[:], in, l.ad(j, last))
		if err != nil {
			clear(in)
			return nil, err
		}
	}
	return out, nil
}

// wipe drops the key schedules so a finished Writer or reader does not keep
// key material reachable.
func (l *layers) wipe() { *l = layers{} }
