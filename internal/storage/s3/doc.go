// Package s3 is the storage.Driver for Amazon S3 and S3-compatible object
// stores (versitygw, MinIO, Ceph RGW and the like), built on aws-sdk-go-v2.
//
// # What it trusts
//
// The S3 service and the credentials it is given. The bucket must exist;
// the Driver owns the key space under its prefix ("<Prefix>/" or the whole
// bucket) and nothing else should write there. It stores only Coffer's own
// ciphertext (the envelope format), so S3 never sees a plaintext byte or a
// data key; Config.ServerSideEncryption "AES256" adds SSE-S3 on top, as
// defence in depth, never instead. The credentials need s3:PutObject,
// s3:GetObject, s3:DeleteObject, s3:ListBucket (without it S3 answers 403
// instead of 404 for a missing key), s3:AbortMultipartUpload,
// s3:ListMultipartUploadParts and s3:ListBucketMultipartUploads on that
// prefix.
//
// # What it guarantees
//
//   - Atomic visibility: nothing is visible before Commit returns nil. A
//     small object (at most PartSize bytes) is buffered and written with a
//     single PutObject at Commit; a larger one is a multipart upload whose
//     parts S3 keeps invisible until CompleteMultipartUpload. S3 replaces
//     an object atomically, so a reader sees the old or the new version.
//   - Streaming in constant memory: Write buffers one part and uploads full
//     parts in the background, at most Concurrency at a time, blocking while
//     they are all busy. One Writer holds at most (Concurrency+1)*PartSize
//     bytes of buffers (80 MiB with the defaults, 25 MiB with 5 MiB parts
//     and Concurrency 4); a small object holds about its own size, as the
//     first buffer starts at 64 KiB and doubles. Finished Writers hand their
//     part buffers to a per-Driver sync.Pool for the next large upload. An
//     object holds at most 10,000 parts (156 GiB with 16 MiB parts).
//   - No leftovers: Cancel, and a Commit that fails, let the part uploads
//     in flight finish, abort the multipart upload and check with ListParts
//     that it is gone, aborting again if a late part brought it back (all
//     within 30 s, even with an expired context). A process that dies
//     mid-upload leaves an incomplete upload behind, invisible but billed:
//     AbortStaleUploads (or a bucket lifecycle rule) removes those.
//   - Reads: Reader sends one GET with "Range: bytes=a-b" and checks the
//     answer's Content-Range, so it returns exactly the requested bytes of
//     one version, or storage.ErrInvalidRange for a range outside the
//     object (S3 trims a range past the end; the check catches that). Only
//     ranges no GET can express (empty ones) or a 416 answer cost a HEAD.
//     NoSuchKey/404 is storage.ErrNotFound; NoSuchBucket is not.
//   - Retries: every request goes through the SDK's standard retryer with
//     MaxRetries retries and exponential backoff with full jitter (at most
//     200 ms before the first retry, doubling up to MaxBackoff). Part
//     uploads run their own loop of the same shape instead, so that a burst
//     of part failures cannot drain the SDK's client-wide retry quota. A
//     PutObject answered 409 ExistingObjectIsDirectory is tried up to three
//     times: filesystem-backed servers send it when a concurrent Delete
//     pruned the directory a PUT had just created.
//   - Contexts: every call honours its context; a Writer's background part
//     uploads honour the context the Writer was opened with (Write has no
//     context of its own).
//
// One known gap: if CompleteMultipartUpload succeeds but its answer is lost,
// the SDK's retry gets NoSuchUpload and Commit fails although the object
// became visible. Coffer's metadata never references such an object, so
// garbage collection removes it.
//
// # Key layout
//
//	bucket/
//	├── <Prefix>/layers/aes256/<object-id>      object "layers/aes256/<object-id>"
//	├── <Prefix>/manifests/<repo-id>/sha256:<hex>
//	└── <Prefix>/\ping-<random>                 Ping's probe, deleted at once
//
// Keys pass storage.ValidKey and, prefix included, S3's 1024-byte limit.
// Walk lists "<Prefix>/<prefix>" with ListObjectsV2, page by page, in S3's
// UTF-8 binary order, which is Go's string order; names under the prefix
// that are not valid keys (folder markers, Ping's probes, whose backslash
// no valid key has) are skipped. Filesystem-backed servers cannot hold both
// "a/b" and "a/b/c", like the fs driver; Coffer's layout never needs that.
//
// # Writing a large object
//
//	Write ──► buf (one part) ──full──► slot free? ──► goroutine: UploadPart
//	            ▲                       (blocks)       (own retries)
//	            └──── buffer reused when a part is stored ◄──┘
//	Commit ──► last part ──► wait for all parts ──► CompleteMultipartUpload
//	Cancel ──► wait for parts ──► AbortMultipartUpload ──► ListParts: gone?
package s3
