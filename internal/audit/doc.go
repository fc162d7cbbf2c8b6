// Package audit is Coffer's audit trail (SEC-10, AUD-03, USE-07, BPT-06):
// one CloudTrail-format record of every request, durable before the
// request succeeds, tamper-evident, and queryable with CloudTrail's
// LookupEvents.
//
// # What it guarantees
//
//   - Fail closed. Store.Record returns only once the record is on disk
//     (written and fsynced); if it cannot be, it returns an error and the
//     pipeline answers 503 instead of the real response. Concurrent calls
//     share one write and one fsync (group commit).
//   - Crash safety. A crash loses no acknowledged record and leaves no
//     half-written log file: records go to a write-ahead segment first;
//     segments are sealed into log files by write-temp, fsync, rename,
//     fsync-directory, on rotation and on the next start.
//   - Tamper evidence. Every DigestInterval (and on Close) a digest file
//     lists the log files sealed since the previous digest with their
//     SHA-256, chains to the previous digest by its SHA-256 and
//     signature, and is signed with an ed25519 key. Verify reports every
//     modified, deleted, inserted, reordered or truncated log file or
//     digest, and a trail whose digests stop early.
//   - No secrets. Records carry request parameters the doors chose, passed
//     through Scrub, which drops any key named like a secret.
//
// # What it trusts
//
// The caller for the facts in auth.Info (principal, action, resources,
// source address) and for keeping the signing key sealed. Verify trusts
// only the public key it is given: keep a copy outside the data
// directory. The writer's own state (state/) is not protected against an
// intruder who can write the directory; the sealed log files and digests
// are, after the fact.
//
// # Disk layout, under the audit directory (<data>/audit)
//
//	signing.key, signing.pub          the digest key (sealed) and its public half
//	<account>/CloudTrail/<region>/YYYY/MM/DD/<account>_CloudTrail_<region>_<YYYYMMDDTHHmmZ>_<unique>.json.gz
//	<account>/CloudTrail-Digest/<region>/YYYY/MM/DD/<account>_CloudTrail-Digest_<region>_coffer_<region>_<YYYYMMDDTHHmmssZ>.json.gz
//	state/lock                        flock: one writer
//	state/segments/<ns>-<unique>.wal  write-ahead segments (frames: len | crc32c | JSON)
//	state/journal                     sealing intents and sealed files since the last digest
//	state/published                   log files published to the replicas' shared trail (shared.go)
//	state/head.json                   the last digest (the next one chains to it)
//	state/index/<unique>.idx          LookupEvents index of each log file (derived; rebuilt if lost)
//	state/tmp/                        temporary files and the spare segment (spare.go), emptied on start
//
// Log files are gzip of {"Records":[...]} (as gzip members of about 64 KiB
// of records each, so that a record is read by inflating one); digests are
// gzip of CloudTrail's digest JSON with the signature in the gzip header
// comment. LookupEvents answers from an index (index.go): the records of
// the write-ahead segments in memory, appended as they become durable, and
// per sealed log file an index file of its records sorted by time and its
// attribute values' postings, written before the segment is removed.
// docs/audit.md has the formats and the operator's view.
package audit
