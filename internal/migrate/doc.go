// Package migrate copies a single-node Coffer deployment (SQLite metadata
// in <data>/coffer.db, objects under <data>/blobs) into PostgreSQL and an
// S3 bucket: `coffer migrate` (issue #9).
//
// # What it guarantees
//
//   - Byte for byte. Every object is copied under its own key, unchanged:
//     its ciphertext is bound to its identity (object ARN, repository ARN;
//     docs/envelope.md), so nothing is re-encrypted and the target must run
//     under the same service root key. Every metadata row of every table
//     (Tables) is copied as it is, the root key check and the account ID
//     among them.
//   - Objects first, metadata last, in one transaction. The target's
//     metadata names no object before every object is in place, and a
//     run interrupted at any point leaves the target database empty; the
//     next run skips the objects already present with the same size (with
//     Verify, the same SHA-256) and finishes the job. A run after a
//     complete one only verifies.
//   - Never over another deployment. A target database that holds rows
//     of a different deployment (another root key check or account ID),
//     or of the same one but differing from the source (served since),
//     is refused; so is a schema with a table this package does not know.
//   - Verified. At the end the rows of every table are counted on both
//     sides and every source object is looked up in the target (same key,
//     same size); with Verify every copied object is read back and its
//     SHA-256 compared with the source's.
//
// # What it trusts
//
// The caller for a quiet source: the server on the data directory must be
// stopped (cmd/coffer checks the audit trail's lock). The source is read
// in one snapshot, but objects written meanwhile would be missed.
package migrate
