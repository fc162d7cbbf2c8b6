package rootkey

import (
	"crypto/aes"
	"crypto/cipher"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
)

// wrapVersion is the first byte of every wrapped value.
const wrapVersion = 1

// wrapOverhead is version byte + 12-byte nonce + 16-byte tag.
const wrapOverhead = 1 + 12 + 16

// ErrUnwrap is the one error Unwrap returns, whatever the cause: wrong key,
// changed, missing or extra context pair, tampered or truncated input, or an
// unknown version. It deliberately carries no detail.
var ErrUnwrap = errors.New("rootkey: unwrap failed")

// Wrap encrypts plaintext (a data key or a small secret) under the root key
// with AES-256-GCM and a random 96-bit nonce, binding the encryption context
// ec as additional data. The result is
//
//	0x01 || nonce (12 bytes) || ciphertext || tag (16 bytes)
//
// Unwrap needs exactly the same context (nil and empty are the same). Callers
// should include a pair naming the purpose (for example "coffer:purpose" =
// "data-key") so a value wrapped for one use can never be accepted for
// another. With random nonces one root key may wrap at most 2^32 values.
func (k *Key) Wrap(plaintext []byte, ec map[string]string) ([]byte, error) {
	aead, err := k.aead()
	if err != nil {
		return nil, err
	}
	out := make([]byte, 1, wrapOverhead+len(plaintext))
	out[0] = wrapVersion
	return aead.Seal(out, nil, plaintext, CanonicalContext(ec)), nil
}

// Unwrap reverses Wrap. Any failure is ErrUnwrap, without detail.
func (k *Key) Unwrap(wrapped []byte, ec map[string]string) ([]byte, error) {
	if len(wrapped) < wrapOverhead || wrapped[0] != wrapVersion {
		return nil, ErrUnwrap
	}
	aead, err := k.aead()
	if err != nil {
		return nil, ErrUnwrap
	}
	pt, err := aead.Open(make([]byte, 0, len(wrapped)-wrapOverhead), nil, wrapped[1:], CanonicalContext(ec))
	if err != nil {
		return nil, ErrUnwrap
	}
	return pt, nil
}

// aead returns AES-256-GCM with random nonces (the form Go's FIPS 140 mode
// accepts) under the root key.
func (k *Key) aead() (cipher.AEAD, error) {
	block, err := aes.NewCipher(k.bytes()[:])
	if err != nil {
		return nil, fmt.Errorf("rootkey: %w", err)
	}
	aead, err := cipher.NewGCMWithRandomNonce(block)
	if err != nil {
		return nil, fmt.Errorf("rootkey: %w", err)
	}
	return aead, nil
}

// CanonicalContext encodes an encryption context deterministically, for use
// as AES-GCM additional data (SPEC CTX-01): keys sorted bytewise, then
//
//	u32 BE count || for each pair: u32 BE len(key) || key || u32 BE len(value) || value
//
// A nil or empty map encodes as four zero bytes. The encoding is injective:
// distinct contexts never encode alike. It panics on a key or value longer
// than 4 GiB.
func CanonicalContext(ec map[string]string) []byte {
	keys := make([]string, 0, len(ec))
	size := 4
	for k, v := range ec {
		if uint64(len(k)) > math.MaxUint32 || uint64(len(v)) > math.MaxUint32 {
			panic("rootkey: encryption context entry longer than 4 GiB")
		}
		keys = append(keys, k)
		size += 8 + len(k) + len(v)
	}
	slices.Sort(keys) // string order is bytewise
	out := make([]byte, 0, size)
	out = binary.BigEndian.AppendUint32(out, uint32(len(keys)))
	for _, k := range keys {
		v := ec[k]
		out = binary.BigEndian.AppendUint32(out, uint32(len(k)))
		out = append(out, k...)
		out = binary.BigEndian.AppendUint32(out, uint32(len(v)))
		out = append(out, v...)
	}
	return out
}
