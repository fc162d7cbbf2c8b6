// Package sigv4 verifies AWS Signature Version 4 (AWS4-HMAC-SHA256)
// requests, in the Authorization header form and the presigned query form,
// the way AWS services do, so that the aws CLI and the AWS SDKs can call
// Coffer with --endpoint-url.
//
// It imports only the standard library (a test asserts it). The tests use
// aws-sdk-go-v2's aws/signer/v4 as the oracle and also drive the ecr and
// sts service clients, the aws CLI v1 and boto3 against a real server.
//
// # What it trusts
//
//   - The KeyStore: that Lookup returns the current secret, session token,
//     expiry and principal of an active key, and an error wrapping
//     ErrUnknownKey for an absent or inactive one. Any other Lookup error
//     is passed on as an internal failure, not an authentication failure.
//   - Config: the one region credential scopes may name, and the clock.
//   - net/http's parsing of the request line and headers (r.Host,
//     r.Header, r.RequestURI as received).
//
// Nothing in the request is trusted before the signature checks. Every
// length is bounded (Authorization header 8 KiB, credential 512 bytes, key
// ID 128, region and service names 64, signed headers 64 names of at most
// 128 bytes, query 64 KiB and 1024 parameters, session token 8 KiB, body
// MaxBody), all parsing is linear, and nothing the client sent is echoed
// in a message except short, sanitized scope parts.
//
// # What it guarantees
//
// When Verify returns no error, the holder of the secret of
// Result.AccessKeyID signed, for this region and service, within MaxSkew of
// now (or within X-Amz-Expires for a presigned URL): the method; the path
// as sent; the whole query string; the Host header and every other header
// in SignedHeaders, which includes every x-amz-* header present (S3's rule;
// it keeps X-Amz-Target and the token from being swapped on a replay); and
// the body, read whole and checked before Verify returns (never lazily: a
// JSON decoder stops before EOF and would never see a late mismatch),
// unless Result.UnsignedPayload says the signature does not cover it.
// Temporary credentials presented exactly their session token and had not
// expired; long-term keys presented none.
//
// SigV4 has no replay protection: a captured request verifies again until
// its time window closes, at AWS too. Headers outside SignedHeaders other
// than x-amz-* are not authenticated (both SDKs sign every header they
// send but User-Agent, X-Amzn-Trace-Id and a few hop-by-hop ones).
//
// # Checks, in order, and their errors
//
//  1. Form: exactly one of an "AWS4-HMAC-SHA256 ..." Authorization header
//     and presigned parameters (any of X-Amz-Algorithm, X-Amz-Credential,
//     X-Amz-Signature). Neither or both: ErrMissingAuth. An Authorization
//     header of another scheme is ignored (a client following a redirect
//     to a presigned URL may carry one).
//  2. Syntax of header, credential, SignedHeaders, X-Amz-Date,
//     X-Amz-Expires (1..604800): ErrIncompleteSignature, AWS's wording.
//  3. Scope: service (ErrWrongService), region (ErrWrongRegion), date equal
//     to X-Amz-Date's (ErrSignatureMismatch, AWS's "Date in Credential
//     scope does not match ..."), key ID shape (ErrUnknownKey).
//  4. Time: ErrRequestExpired ("Signature expired: ... is now earlier than
//     ...", "Signature not yet current: ...", and for presigned URLs S3's
//     "Request has expired" / "Request is not valid yet").
//  5. Unsigned x-amz-* header: ErrSignatureMismatch.
//  6. KeyStore lookup: ErrUnknownKey. Steps 1-5 never call the KeyStore.
//  7. Session token, compared in constant time: ErrInvalidToken; then
//     temporary credentials' expiry: ErrExpiredToken.
//  8. Body: ErrBodyTooLarge past MaxBody; X-Amz-Content-Sha256 differing
//     from the body: ErrSignatureMismatch.
//  9. Signature, compared in constant time: ErrSignatureMismatch.
//
// Failures are *Error values: Err is the sentinel, Message AWS's public
// wording, Detail a log-only note. Neither holds a secret, a signature or
// a session token. *Error also matches auth.ErrUnauthenticated. Suggested
// codes (JSON protocols' __type / Query protocols' Code):
//
//	ErrMissingAuth          MissingAuthenticationTokenException / MissingAuthenticationToken  403
//	ErrIncompleteSignature  IncompleteSignatureException / IncompleteSignature                 400
//	ErrUnknownKey           UnrecognizedClientException / InvalidClientTokenId                 403
//	ErrInvalidToken         UnrecognizedClientException / InvalidClientTokenId                 403
//	ErrExpiredToken         ExpiredTokenException / ExpiredToken                               403 (STS 400)
//	ErrSignatureMismatch    InvalidSignatureException / SignatureDoesNotMatch                  403
//	ErrWrongRegion          InvalidSignatureException / SignatureDoesNotMatch                  403
//	ErrWrongService         InvalidSignatureException / SignatureDoesNotMatch                  403
//	ErrRequestExpired       InvalidSignatureException / SignatureDoesNotMatch                  403
//	ErrBodyTooLarge         (a 413 of the door's protocol)                                     413
//
// # Canonicalization
//
//	CanonicalRequest =
//	  Method                 "\n"   as sent, e.g. POST
//	  CanonicalURI           "\n"   see below
//	  CanonicalQueryString   "\n"   see below
//	  CanonicalHeaders              "name:value\n" per signed header
//	                         "\n"
//	  SignedHeaders          "\n"   "content-type;host;x-amz-date"
//	  HashedPayload                 hex SHA-256 of the body, or the header value
//
//	StringToSign = "AWS4-HMAC-SHA256\n" X-Amz-Date "\n"
//	               yyyymmdd "/" region "/" service "/aws4_request\n"
//	               hex(SHA-256(CanonicalRequest))
//	kSigning     = HMAC(HMAC(HMAC(HMAC("AWS4"+secret, yyyymmdd), region), service), "aws4_request")
//	Signature    = hex(HMAC(kSigning, StringToSign)), 64 lowercase hex digits
//
// Canonical URI. The path as the client sent it (r.RequestURI, still
// percent-encoded; URL.EscapedPath for requests built in process): both
// SDKs sign the bytes they send. For S3 (Config.SingleEncodedServices) that
// is the canonical URI. For every other service each byte but the
// unreserved ones (A-Z a-z 0-9 - . _ ~) and '/' is percent-encoded once
// more, so "%20" becomes "%2520": aws-sdk-go-v2 applies
// httpbinding.EscapePath unless DisableURIPathEscaping (set only for S3),
// botocore applies quote(path, safe='/~'). The SDKs disagree on dot and
// empty segments: botocore removes them first (remove_dot_segments, as the
// SigV4 spec says), aws-sdk-go-v2 does not; for such a path both forms are
// tried. Either way the path was the signer's choice: the normalized form
// only matters for paths that AWS's JSON and Query APIs (always "POST /")
// never route.
//
// Canonical query. The raw query is split on '&' (empty pieces skipped,
// ';' an ordinary byte), each name and value split at the first '=' (none:
// empty value) and decoded as form data, '+' being a space, as
// URL.Query() does in aws-sdk-go-v2; then each is encoded with every byte
// but the unreserved ones as %XX, uppercase hex, a space as %20; the pairs
// are sorted by encoded name, then encoded value (sorting after encoding,
// as aws-sdk-go-v2's EncodeQuery and the spec say), and joined with '&'.
// A presigned request leaves out X-Amz-Signature. So any equivalent wire
// encoding verifies (order, hex case, "%7E" for "~"); a malformed escape
// is a mismatch.
//
// Canonical headers. The names are those of SignedHeaders, which must be
// lowercase tokens in strictly ascending byte order (both SDKs sort them)
// and include host. host's value is r.Host. Other values are all the
// request's values of that header, each with runs of spaces collapsed to
// one and then trimmed (aws-sdk-go-v2's StripExcessSpaces and TrimSpace;
// botocore collapses all whitespace, which differs only for a tab inside a
// value, and the aws-sdk-go-v2 rule wins), joined with ','. content-length
// falls back to r.ContentLength when net/http kept no header. A signed
// header the request lacks is a mismatch.
//
// Payload hash. X-Amz-Content-Sha256, when present, is the hash: a
// 64-digit lowercase hex value must equal the body's SHA-256;
// "UNSIGNED-PAYLOAD" is accepted for presigned requests and for
// Config.UnsignedPayloadServices only; STREAMING-* (chunked uploads) is
// not supported. Without the header a presigned request was signed with
// "UNSIGNED-PAYLOAD" (S3, both SDKs) or, with no body, the empty string's
// hash (botocore's SigV4QueryAuth for other services); both are tried.
// Otherwise the hash is the body's SHA-256, read up to MaxBody; r.Body is
// then replaced by a reader of the same bytes.
//
// Not supported: the Date header in place of X-Amz-Date, SigV4a
// (AWS4-ECDSA-P256-SHA256), chunked payload signing, S3 POST policies,
// SigV2.
//
// # Cost
//
// One header-form verification of a small JSON body costs 5.4-7.8 µs and
// 13 allocations (BenchmarkVerify, one core of the 2-core development
// machine while it was shared; an S3-style presigned GET about 8 µs, as it
// tries two payload hashes), most of it SHA-256. The signing key is
// derived anew per request (BenchmarkSigningKey, about 1.3 µs): a cache
// would keep secret-equivalent keys in memory and need a fingerprint of
// the secret to notice a rotation, to save a sixth of a cost that is
// already small next to a registry request.
package sigv4
