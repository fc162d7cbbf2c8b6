// Package rootkey holds Coffer's service root key, the equivalent of ECR's
// "AES256" (S3-managed) key: one 32-byte AES-256 key per installation that
// wraps each object's data key in AES256 repositories and seals small
// server-side secrets (upload hash states, KMS key material, IAM secrets).
//
// # What it trusts
//
// The operator: the key file (or COFFER_ROOT_KEY) is the one secret that
// protects everything the root key wraps. The file is trusted only if no one
// but its owner can access it; LoadFile refuses a file with any group or
// other permission bit. crypto/rand for key generation and nonces.
//
// # What it guarantees
//
//   - The key never leaves the package as text except through MarshalFile
//     (for WriteFile): a Key prints as "rootkey.Key(REDACTED)" under fmt and
//     slog, marshals to {} under encoding/json, and errors never quote key
//     text, not even malformed input.
//   - Key values are incomparable; use CheckValue and Matches, which compare
//     in constant time.
//   - Wrap/Unwrap is AES-256-GCM with a random nonce, binding an encryption
//     context as additional data: a changed, missing or extra pair fails.
//     Every unwrap failure is the single error ErrUnwrap, which reveals
//     nothing about the cause.
//
// # Formats
//
// Key file (LoadFile, WriteFile; mode 0600; surrounding whitespace allowed):
//
//	coffer-root-key-v1\n
//	<standard base64 of the 32 key bytes, 44 characters>\n
//
// Environment form (COFFER_ROOT_KEY; FromBase64): the base64 line alone.
//
// Key check value (CheckValue), safe to store and log, so that a restart
// with a different key is detected before anything is decrypted:
//
//	hex(HMAC-SHA256(key, "coffer root key check v1"))[:32]
//
// Wrapped value (Wrap, Unwrap):
//
//	+------+--------------+---------------------+----------+
//	| 0x01 | nonce (12 B) | ciphertext (len(pt))| tag 16 B |
//	+------+--------------+---------------------+----------+
//	AES-256-GCM(root key, nonce, pt, additional data = CanonicalContext(ec))
//
// Canonical encryption context (CanonicalContext), shared with the built-in
// KMS (SPEC CTX-01); keys sorted bytewise:
//
//	u32 BE count || { u32 BE len(key) || key || u32 BE len(value) || value }*
package rootkey
