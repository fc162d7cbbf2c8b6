// Package envelope implements Coffer's versioned, streaming ciphertext format
// for every stored object (layers, manifests, upload parts): a header naming
// the wrapped data keys, then the plaintext cut into fixed-size segments, each
// sealed with AES-256-GCM once per layer (one layer for AES256 and KMS
// repositories, two independent layers for KMS_DSSE).
//
// # What it trusts
//
//   - The caller's data keys: 32 random bytes per slot, fresh for every
//     object and distinct between slots. Nonces are derived from the segment
//     index, so a data key used for two objects is a nonce reuse that breaks
//     confidentiality and integrity. A key that is not 32 bytes, is all zero,
//     or appears in both slots makes NewWriter and the readers panic: it can
//     only be a programming error.
//   - The caller's identity string (for example the storage ARN of the
//     object) and, when reading, the plaintext size recorded in metadata.
//   - The standard library's crypto/aes, crypto/cipher and crypto/sha256.
//
// Everything read from storage, header included, is untrusted.
//
// # What it guarantees
//
// Readers release plaintext segment by segment, and only after every layer
// of that segment authenticated. A flipped bit anywhere (header or body), a
// changed identity, segments reordered, dropped, duplicated or spliced from
// another object, a truncated object and bytes after the final segment all
// end in an error before any plaintext of the affected segment is returned:
// the caller sees an authentic prefix of the plaintext, then the error
// (ErrFormat, ErrAuth or ErrTruncated; check with errors.Is). Range reads
// decrypt only the segments they touch and give the same guarantee for them.
//
// Writer and readers stream in constant memory (one segment buffer each) and
// do not allocate per call on the hot path. Neither is safe for concurrent
// use.
//
// # Format (version 1)
//
//	object  = header || segment_0 || ... || segment_{n-1}
//
//	header  +------+---------+-----------+--------+----------------+
//	        | CFE\0| version | seg_shift | nslots | nslots x slot  |
//	        |  4 B | u8 = 1  | u8 12..24 | u8 1|2 |                |
//	        +------+---------+-----------+--------+----------------+
//	slot    +--------+-----------+--------------+-----------+-------------+
//	        | source | u16 BE    | key_id       | u16 BE    | wrapped     |
//	        | u8 1|2 | len       | 1..2048 UTF-8| len       | 1..4096 B   |
//	        +--------+-----------+--------------+-----------+-------------+
//
//	S       = 1 << seg_shift (plaintext segment size; default 64 KiB)
//	n       = max(1, ceil(L / S)); all segments hold S plaintext bytes but
//	          the last, which holds 1..S (0 only when L == 0)
//	aadBase = SHA-256("coffer-envelope-v1" || header || u32 BE len(id) || id)
//	nonce   = u64 BE i || 00 00 00 || (01 if segment i is the last else 00)
//	c_{-1}  = plaintext segment i
//	c_j     = AES-256-GCM(key_j).Seal(nonce, c_{j-1}, aadBase || u8 j)
//	segment_i = c_{nslots-1}   (plaintext size + 16 * nslots bytes)
//
// The header bytes are in every segment's additional data, so any change to
// them (a wrapped key, a key ID, the segment size) fails authentication. The
// index in the nonce stops reordering, the last flag stops truncation at a
// segment boundary, and the identity stops copying an object elsewhere.
// docs/envelope.md has the rationale and known-answer vectors; the vectors
// are frozen in testdata/kat.
package envelope
