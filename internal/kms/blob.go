package kms

import (
	"crypto/aes"
	"crypto/cipher"
	"encoding/binary"
	"errors"
	"math"
	"slices"
	"sync"

	"github.com/cofferhq/coffer/internal/crypto/rootkey"
)

// The ciphertext blob, version 1 (docs/kms.md has the diagram):
//
//	offset  size  field
//	0       1     format version, 0x01
//	1       1     n, the length of the key ID (36 in version 1)
//	2       n     key ID, ASCII (a lowercase UUID)
//	2+n     4     key material version, big-endian uint32, >= 1
//	6+n     12    AES-GCM nonce, random
//	18+n    m     AES-256-GCM ciphertext of the m-byte plaintext
//	18+n+m  16    AES-GCM tag
//
// The header is bytes [0, 6+n). The additional data is the header followed
// by rootkey.CanonicalContext(encryption context), so changing the key ID,
// the version, or any encryption context pair (changed, missing or extra)
// fails authentication (SPEC CTX-01).

const (
	blobVersion  = 1
	nonceSize    = 12
	tagSize      = 16
	keyIDLen     = 36
	blobHeader   = 2 + keyIDLen + 4
	blobOverhead = blobHeader + nonceSize + tagSize // 70
	// maxBlob is the model's CiphertextType maximum.
	maxBlob = 6144
)

// errBlob is the one error parseBlob returns.
var errBlob = errors.New("kms: malformed ciphertext blob")

// blob is a parsed ciphertext blob. header, nonce and sealed alias the
// input.
type blob struct {
	keyID   KeyID
	version uint32
	header  []byte
	nonce   []byte
	sealed  []byte // ciphertext || tag
}

// parseBlob parses a ciphertext blob without decrypting it. It checks only
// the structure; every failure is errBlob.
func parseBlob(b []byte) (blob, error) {
	if len(b) < blobOverhead || len(b) > maxBlob || b[0] != blobVersion || b[1] != keyIDLen {
		return blob{}, errBlob
	}
	id := string(b[2 : 2+keyIDLen])
	if !isUUID(id) {
		return blob{}, errBlob
	}
	v := binary.BigEndian.Uint32(b[2+keyIDLen:])
	if v == 0 {
		return blob{}, errBlob
	}
	return blob{
		keyID:   KeyID(id),
		version: v,
		header:  b[:blobHeader],
		nonce:   b[blobHeader : blobHeader+nonceSize],
		sealed:  b[blobHeader+nonceSize:],
	}, nil
}

// appendHeader appends the header of a blob for keyID and version.
func appendHeader(dst []byte, keyID KeyID, version uint32) []byte {
	dst = append(dst, blobVersion, byte(len(keyID)))
	dst = append(dst, keyID...)
	return binary.BigEndian.AppendUint32(dst, version)
}

// aad appends the additional data of a blob to dst: header || canonical
// context.
func aad(dst, header []byte, ec map[string]string) []byte {
	return appendCanonical(append(dst, header...), ec)
}

// appendCanonical appends rootkey.CanonicalContext(ec) to dst without
// allocating for small contexts: keys sorted bytewise, then
//
//	u32 BE count || for each pair: u32 BE len(key) || key || u32 BE len(value) || value
func appendCanonical(dst []byte, ec map[string]string) []byte {
	if len(ec) > 16 || uint64(len(ec)) > math.MaxUint32 {
		return append(dst, rootkey.CanonicalContext(ec)...)
	}
	var buf [16]string
	keys := buf[:0]
	for k, v := range ec {
		if uint64(len(k)) > math.MaxUint32 || uint64(len(v)) > math.MaxUint32 {
			return append(dst, rootkey.CanonicalContext(ec)...)
		}
		keys = append(keys, k)
	}
	slices.Sort(keys)
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(keys)))
	for _, k := range keys {
		v := ec[k]
		dst = binary.BigEndian.AppendUint32(dst, uint32(len(k)))
		dst = append(dst, k...)
		dst = binary.BigEndian.AppendUint32(dst, uint32(len(v)))
		dst = append(dst, v...)
	}
	return dst
}

// material is one unwrapped version of a key's material, ready to use. It
// is incomparable and never prints its key.
type material struct {
	_       [0]func()
	version uint32
	id      string // KeyMaterialId, 64 hex
	aead    cipher.AEAD
}

func (m *material) String() string { return "kms.material(REDACTED)" }

// newMaterial builds the AES-256-GCM instance of 32 bytes of key material.
func newMaterial(version uint32, id string, key []byte) (*material, error) {
	if len(key) != 32 {
		return nil, errors.New("kms: key material is not 256 bits")
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	g, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &material{version: version, id: id, aead: g}, nil
}

// seal encrypts plaintext into a new blob with the given nonce.
func (m *material) seal(keyID KeyID, nonce, plaintext []byte, ec map[string]string) []byte {
	if len(keyID) != keyIDLen || len(nonce) != nonceSize || len(plaintext) > math.MaxInt32 {
		panic("kms: seal called with a malformed key ID or nonce")
	}
	out := make([]byte, 0, blobOverhead+len(plaintext))
	out = appendHeader(out, keyID, m.version)
	out = append(out, nonce...)
	ab := aadPool.Get().(*[]byte)
	defer aadPool.Put(ab)
	*ab = aad((*ab)[:0], out[:blobHeader], ec)
	return m.aead.Seal(out, nonce, plaintext, *ab)
}

// aadPool holds additional-data buffers, so sealing and opening do not
// allocate one per call.
var aadPool = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

// open decrypts a parsed blob; any failure is errBlob.
func (m *material) open(b blob, ec map[string]string) ([]byte, error) {
	ab := aadPool.Get().(*[]byte)
	defer aadPool.Put(ab)
	*ab = aad((*ab)[:0], b.header, ec)
	pt, err := m.aead.Open(make([]byte, 0, len(b.sealed)-tagSize), b.nonce, b.sealed, *ab)
	if err != nil {
		return nil, errBlob
	}
	return pt, nil
}
