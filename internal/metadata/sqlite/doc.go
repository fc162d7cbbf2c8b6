// Package sqlite implements metadata.Store on one SQLite database file,
// through database/sql and the pure-Go driver modernc.org/sqlite.
//
// # What it trusts and guarantees
//
// It trusts the database file (it is Coffer's own, mode 0600) and its
// callers for the syntax of names and digests; it enforces everything else
// the metadata contract states, inside transactions: reference checks,
// immutable tags, deduplication per encryption domain, and that a link,
// an upload and a blob always belong to the repository's own domain.
//
// # Durability
//
// The database runs in WAL mode with synchronous=FULL: every commit fsyncs
// the write-ahead log before the method returns, so an acknowledged push
// survives kill -9 (tested by re-running the test binary and SIGKILLing it)
// and, as far as the disk honours fsync, power loss. SQLite's automatic
// checkpoint (run by the committing writer once the WAL holds ~4 MB) copies
// the WAL into the main file and fsyncs it; journal_size_limit trims the
// -wal file afterwards. A crash at any point is recovered by SQLite on the
// next Open.
//
// # Concurrency
//
//	writes ──► w: *sql.DB, 1 connection ──► BEGIN IMMEDIATE ... COMMIT (fsync)
//	          (callers queue in database/sql; foreign_keys=ON)
//
//	reads  ──► r: *sql.DB, MaxReadConns connections, file:...?mode=ro
//	          (prepared statements; each statement reads one WAL snapshot)
//
// All writes of a process go through one connection, so they never meet
// SQLITE_BUSY among themselves, and BEGIN IMMEDIATE takes the write lock up
// front, so a transaction never fails upgrading from read to write (the
// case busy_timeout cannot help with). Readers in WAL mode see the last
// committed state and neither wait for nor block the writer. busy_timeout
// covers the rare waits on another process (a backup) or on WAL recovery.
// Write transactions are short; what serializes them is the fsync each
// commit waits for (about 1 ms here), which bounds one Store at roughly a
// thousand writes per second.
//
// PutManifest calls the caller's Immutable func while it holds the write
// lock; that func must be quick and must not call the Store.
//
// # Schema
//
// Numbered migrations (migrations/NNNN_name.sql, embedded) are applied at
// Open, each with its schema_migrations row in one transaction. Open
// refuses a database whose version is newer than the binary (ErrSchemaTooNew)
// rather than run old code against a schema it does not know.
//
//	settings(key PK, value)
//	repositories(id PK, name UNIQUE, domain, encryption_type, kms_key,
//	             tag_mutability, tag_exclusions JSON, scan_on_push, created_at)
//	     │ ON DELETE CASCADE
//	     ├── repo_blobs(repo_id, digest, linked_at)      PK(repo_id, digest)
//	     │        └ names blobs(repository.domain, digest); linked_at is
//	     │          reset to now by every (re)link of the digest and by the
//	     │          deletion of a manifest referencing it: GC's grace period
//	     │          for links no manifest references counts from it
//	     ├── uploads(id PK, repo_id, domain, size, parts JSON, hash_state,
//	     │           started_at, updated_at)             INDEX(repo_id)
//	     └── manifests(repo_id, digest, media_type, size, object_key,
//	                   artifact_type, subject, annotations JSON,
//	                   pushed_at, last_pulled_at)        PK(repo_id, digest)
//	              │ INDEX(repo_id, subject, digest) WHERE subject IS NOT NULL
//	              │ ON DELETE CASCADE
//	              ├── manifest_refs(repo_id, manifest_digest, ref_digest, kind)
//	              │        PK(repo_id, manifest_digest, ref_digest)
//	              │        INDEX(repo_id, ref_digest)
//	              └── tags(repo_id, tag, digest, updated_at)
//	                       PK(repo_id, tag)  INDEX(repo_id, digest)
//	blobs(domain, digest, size, object_key, created_at)  PK(domain, digest)
//
// Tag resolution, manifest and blob lookups, link checks, tag pages and
// referrers are each one index search (TestQueryPlans checks the plans).
// The logical schema is meant to carry over to PostgreSQL unchanged: types
// are TEXT, BIGINT, BOOLEAN and BLOB (BYTEA there); timestamps are BIGINT
// unix microseconds UTC (the zero time round-trips; NULL means "never" for
// last_pulled_at); JSON is TEXT; "" optional strings are NULL only where an
// index benefits (subject). Listing order is byte-wise (SQLite's BINARY
// collation; COLLATE "C" in PostgreSQL).
//
// Deleting a repository deletes its rows by cascade and returns the storage
// keys nobody references any more: its manifests' objects, its uploads'
// parts, and, for a repository that owns its domain (a KMS repository, whose
// domain is its ID), every blob of that domain. Blobs of the shared
// "aes256" domain are left to garbage collection.
package sqlite
