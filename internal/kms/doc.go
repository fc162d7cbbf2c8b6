// Package kms is Coffer's built-in KMS: a service that speaks the AWS KMS
// API (JSON 1.1, X-Amz-Target: TrentService.<Op>, SigV4 service "kms") and
// enforces key policies, grants and key states the way AWS KMS does (SPEC
// KMS, FLOW, GRANT, PERM, CTX, section 3.4/3.5). docs/kms.md is the
// operator's and implementer's guide.
//
// # What it trusts
//
//   - The caller identity it is given: the HTTP Handler takes the principal
//     from the request's auth.Info, which the AWS door fills in after
//     verifying SigV4; in-process callers (the registry, through Client)
//     pass a Caller.
//   - The metadata store (keys, material, aliases, grants as documents) and
//     the service root key, which seals every version of key material.
//   - Config.IdentityPolicies for the caller's IAM policies.
//
// Everything in a request is untrusted: identifiers, policies, grant
// constraints, ciphertext blobs and encryption contexts are validated, and
// failures answer with AWS's error names.
//
// # What it guarantees
//
//   - Authorization on every call: the key policy is a resource policy and
//     a gate (IAM counts only where the key policy delegates to the
//     account, SPEC J-03); an explicit Deny wins; grants add their
//     operations for their grantee when their encryption context
//     constraints match; key state (Enabled, Disabled, PendingDeletion) is
//     checked on every call. A revoked grant, a disabled key or a new key
//     policy takes effect on the very next call (SPEC GRANT-04): the caches
//     never serve state older than the last completed write.
//   - Key material is 256 bits from crypto/rand, sealed under the root key
//     with a context naming the key and version, never exported and never
//     overwritten: rotation adds a version, old versions keep decrypting,
//     and each version has a use cap after which the key rotates itself.
//   - Ciphertexts are AES-256-GCM with the canonical encryption context as
//     additional data, so a changed, missing or extra pair fails (SPEC
//     CTX-01), and every decryption failure looks the same.
//   - Every call, over HTTP or in process, is handed to Config.Events.
//
// # Ciphertext blob, version 1
//
//	+------+------+----------------------+-----------+----------+-------------------+---------+
//	| 0x01 | 0x24 | key ID (36 bytes,    | material  | nonce    | AES-256-GCM       | tag     |
//	|      |      | ASCII lowercase UUID)| version   | 12 bytes | ciphertext        | 16 bytes|
//	|      |      |                      | u32 BE    |          | (len = plaintext) |         |
//	+------+------+----------------------+-----------+----------+-------------------+---------+
//	 \______________ header (42 bytes) ______________/
//
//	additional data = header || CanonicalContext(encryption context)
//
// Known-answer vectors in testdata/kat freeze it; testdata/kat/verify.py
// re-derives them with an independent implementation.
//
// # Storage
//
// Documents in metadata.DocStore: kms.key (key ID), kms.material (key ID
// "/" version, written once), kms.usage (uses reserved per version),
// kms.alias (alias name), kms.grant (key ID "/" grant ID).
package kms
