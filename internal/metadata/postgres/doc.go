// Package postgres implements metadata.Store on PostgreSQL (11 or newer;
// tested on 15) through pgx/v5 and its pool, for deployments that run
// several Coffer replicas over one database. It also gives those replicas
// three coordination tools: notifications (Notify, Listen) to invalidate
// caches across replicas, counters (Tick, Count) to fence them, and
// leadership (Leader) to run a singleton job.
//
// # What it trusts and guarantees
//
// It trusts the database server and its callers for the syntax of names,
// digests and tags; it enforces everything else the metadata contract
// states, inside transactions: reference checks, immutable tags,
// deduplication per encryption domain, and that a link, an upload and a
// blob always belong to the repository's own domain. The metadatatest
// suite, which SQLite passes too, runs against it (see Tests below), plus
// races written against the locks described here (races_test.go).
//
// Text columns cannot hold NUL or invalid UTF-8 in PostgreSQL: writing such
// a value fails (SQLite would store it), a lookup by one finds nothing
// (ErrNotFound), and a paging bound of the form last+"\x00" (the byte-wise
// successor) is handled exactly. Callers validate names, digests and tags,
// so none of these reaches the store in practice.
//
// # Durability
//
// A method returns after its transaction commits; with the server's
// default synchronous_commit=on, that means the commit's WAL is flushed
// (and, with synchronous replication configured, replicated), so an
// acknowledged push survives a crash of the server. The store does not
// change synchronous_commit; a DSN that turns it off trades that away.
//
// # Schema
//
// The logical schema is the SQLite one, table for table and index for index
// (see the sqlite package for the diagram): TEXT, BIGINT, BOOLEAN and
// BYTEA; timestamps are BIGINT unix microseconds UTC; JSON is TEXT. Every
// text column that is compared, ordered or paged over is COLLATE "C", so
// listings are byte-wise as in SQLite whatever the database's default
// collation (the tests run on an ICU en-US database to prove it). One
// spelling differs: the covering index for image pages (manifests_images)
// keys on (repo_id, digest) and INCLUDEs the listed columns, where SQLite
// keys on all of them; both make a page an index-only range scan.
//
// Migrations are numbered files (migrations/NNNN_name.sql, embedded), one
// for each file of the sqlite package's migrations with the same name
// (TestMigrationsMirrorSQLite). Open applies the pending ones while holding
// a session advisory lock, so replicas starting together migrate once: the
// first applies, the others wait and find nothing to do. Each migration
// commits together with its schema_migrations row (PostgreSQL DDL is
// transactional). Open refuses a schema newer than the binary
// (ErrSchemaTooNew). The tables live in the first schema of the DSN's
// search_path (public by default); advisory lock keys are derived from that
// schema's name, so deployments sharing a database in separate schemas
// share neither migrations nor document locks nor leadership.
//
// # Concurrency and isolation
//
// SQLite serializes writers with one connection; here writers run in
// parallel, each in one READ COMMITTED transaction that takes, in a fixed
// order, the row locks that make it behave as if it ran alone:
//
//	repository row  FOR KEY SHARE (writers that add rows under it)
//	                FOR NO KEY UPDATE (the same writers under a quota: checks queue)
//	                FOR NO KEY UPDATE (UpdateRepository)
//	                FOR UPDATE (DeleteRepository: waits for, then excludes, the above)
//	referenced rows FOR KEY SHARE (links, blobs, child manifests a push checks)
//	manifest row    inserted, or FOR KEY SHARE; FOR UPDATE to delete it
//	tag row         FOR UPDATE (every tag move or delete)
//	documents       pg_advisory_xact_lock(schema:"documents")
//
// READ COMMITTED takes a fresh snapshot per statement, and a locking
// statement that waited re-reads the row the other transaction committed.
// So a transaction that holds the right lock always decides on the latest
// committed state, and conflicting writers queue on a lock instead of
// failing. SERIALIZABLE would give the same guarantees with no explicit
// locks, but by aborting one of two conflicting transactions; under
// contention (32 pushers moving one tag) that means retry storms, and a
// retried PutManifest calls the caller's Immutable func again. Per method:
//
//   - PutManifest: repository FOR KEY SHARE (ErrRepositoryUnknown if it
//     went); each blob reference's link and blob row, and each child
//     manifest, FOR KEY SHARE, so an UnlinkBlob, DeleteManifest or
//     DeleteImage of them waits for the push (or the push sees them gone:
//     ErrBlobUnknown, ErrManifestUnknown); manifest INSERT ... ON CONFLICT
//     DO NOTHING (a concurrent insert of the same digest waits, then
//     finds it), else the existing row FOR KEY SHARE (a concurrent delete
//     makes it insert anew); then the tag row FOR UPDATE, or an INSERT ...
//     ON CONFLICT DO NOTHING that is re-read locked if a concurrent push
//     created the tag first. Pushes moving one tag queue on its row, and
//     each reads the digest the previous one committed: PreviousTag forms
//     one chain and the Immutable check cannot interleave with another
//     move. Immutable runs while the tag row is locked.
//   - CommitUpload: repository FOR KEY SHARE, then DELETE of the session
//     (the row lock makes a second commit of it find nothing:
//     ErrNotFound), then blob INSERT ... ON CONFLICT DO NOTHING (one row per
//     domain and digest; the loser waits and reads the winner's row, held
//     FOR KEY SHARE) and the link. CommitBlob: the same without a session.
//     LinkBlob: repository and blob FOR KEY SHARE, then the link.
//   - CreateUpload: repository FOR KEY SHARE, then INSERT (ErrExists on
//     unique_violation 23505). UpdateUpload: one UPDATE ... WHERE size =
//     expected; an UPDATE that waited re-evaluates the WHERE against the
//     committed row, so exactly one update per size wins (ErrConflict for
//     the others). DeleteUpload, UnlinkBlob, DeleteTag, RecordPull: one
//     statement each (its row lock is the whole story). DeleteManifest
//     (and every manifest DeleteImage deletes): the links of the blobs it
//     references FOR NO KEY UPDATE in digest order, their linked_at set to
//     now (GC's grace for unreferenced links starts again), then the
//     DELETE, whose row lock and cascade to tags and references are the
//     rest. A link write (CommitUpload, CommitBlob, LinkBlob) of a digest
//     already linked refreshes linked_at the same way. NO KEY UPDATE does
//     not conflict with a push's FOR KEY SHARE of the link.
//   - GC: DeleteBlobIfUnreferenced locks the blob row FOR UPDATE, and
//     UnlinkBlobIfUnreferenced the link row FOR UPDATE, before re-checking
//     in a fresh statement that nothing links or references them and that
//     they are older than the grace: the lock waits for pushes holding the
//     row FOR KEY SHARE and for link refreshes, whose commits the check
//     then sees; pushes that come later find the row gone.
//   - CreateRepository(With): INSERT; the unique indexes decide a race for
//     a name (23505: ErrExists). UpdateRepository: FOR NO KEY UPDATE, so
//     concurrent updates queue and none is lost, while pushes go on.
//     UpdateRepositoryDocs: repository FOR KEY SHARE, then the document lock.
//   - DeleteRepository(With): repository FOR UPDATE first. Every writer that
//     adds rows under a repository holds it FOR KEY SHARE, so the delete
//     waits for those in flight and excludes new ones (they then fail with
//     ErrRepositoryUnknown); the orphan collection that follows sees every
//     row the cascade deletes (TestDeleteRepositoryRacesPushes).
//   - DeleteImage: the tag row FOR UPDATE (with a tag), then the manifest
//     row FOR UPDATE, then the "still tagged" and "referenced by an index"
//     checks: new tags and index references need that row FOR KEY SHARE,
//     so none can appear between the checks and the delete.
//   - UpdateDocs, and every transaction that hands out a writable DocTx:
//     a transaction-scoped advisory lock serializes document writers across
//     all replicas, as the contract's "writes are serialized" requires;
//     while fn holds it no other writer can commit a document, so its reads
//     are stable. ViewDocs: REPEATABLE READ, READ ONLY (one snapshot).
//   - PutSettingIfAbsent: INSERT ... ON CONFLICT DO NOTHING, then a read of
//     the winner.
//   - Reads (GetX, ResolveTag, ListTags, ListManifests, ListImages,
//     Referrers): one statement each, hence one snapshot; they take no
//     locks and never wait for writers. A filtered ListImages with a
//     window runs its two statements (page, end of window) in one
//     REPEATABLE READ, READ ONLY transaction.
//
// Taking locks in the one order above keeps deadlocks out of the paths
// the tests race (DeleteImage locks the manifest before the tag for this
// reason: the other order deadlocked against a re-push,
// TestRaceDeleteImageRepush). They remain possible where a statement's own
// locks come in an order the code does not choose, such as an ON DELETE
// CASCADE over many tag rows meeting pushes, and the server then aborts
// one transaction after deadlock_timeout (1s by default). Every write
// therefore runs in a loop (retry) that re-runs the whole transaction on
// SQLSTATE 40P01 (deadlock), and on 40001 (serialization failure, which
// READ COMMITTED does not raise, but a future SERIALIZABLE transaction
// would), up to 10 times with a random pause growing to 50 ms, and then
// gives up with ErrConflict wrapping the server's error. TestDeadlockRetried
// provokes a real deadlock to prove it. A transaction function may thus
// run more than once; each resets its results at the start.
//
// # Pool and performance
//
// Each query holds a pool connection for its round trip, each write
// transaction for all of its statements (a push of five layers: about 15,
// then the WAL flush at commit). Statements are prepared once per
// connection (pgx's statement cache), so warm connections (MinConns) skip
// the parse; connections beyond what the server's CPUs can run only queue
// there.
// Measured on the 2-core test machine, server on the same host,
// synchronous_commit on, while other jobs kept its load average at 7 to 15
// (medians of 6 runs of 1s; single runs varied up to 2x, so read the
// figures as magnitudes). For RunParallel benchmarks ns/op is wall time per
// operation, all goroutines together.
//
//	ResolveTag, 8 goroutines, MaxConns 1          82 µs/op   ~12,000/s
//	                          MaxConns 2          61 µs/op   ~16,000/s
//	                          MaxConns 4          46 µs/op   ~22,000/s
//	                          MaxConns 8, 16      50-70 µs/op (noise)
//	PutManifest, one pusher                       5.3 ms/op  ~190/s
//	PutManifest, 16 pushers, 8 conns, one tag     2.5 ms/op  ~400/s
//	PutManifest, 16 pushers, 8 conns, own tags    1.2 ms/op  ~800/s
//	ListTags, page of 1,000 of 100,000 tags       0.87 ms/op
//
// (SQLite's own benchmarks, run at the same time: ResolveTag 83 µs/op,
// PutManifest 4.9 ms/op, ListTags page 2.3 ms/op.)
//
// Reads scale with connections until the server's CPUs are busy: with
// MaxConns 1 every reader waits for the one connection and each round trip
// pays the client-server latency alone; here, with client and server
// sharing two cores, more than about 2 per core bought nothing. A single
// pusher is bound by its round trips and the commit's WAL flush; parallel
// pushers share flushes (group commit) and scale with connections, unless
// they move the same tag, where they queue on its row lock for the rest of
// the transaction and the flush. A tag page is one index range scan; its
// cost is transferring and decoding 1,000 rows. Size MaxConns to what the
// server can run at once (a few per server core) and to max_connections
// divided by the replicas; MinConns near MaxConns avoids paying connection
// setup and statement preparation on a burst. Listen and Leader take one
// connection each, outside the pool.
//
// # Notifications and leadership
//
// Notify is pg_notify on a pool connection. Listen holds a dedicated
// connection that has run LISTEN, delivers each notification to fn, and
// after losing the connection reconnects, listens again and calls
// fn(Resync), because notifications of the gap are lost. Leader holds a
// session advisory lock (pg_try_advisory_lock) on a dedicated connection
// for as long as fn leads; the lock dies with the connection, which Leader
// watches by reading from it (a terminated session is seen at once) and
// pinging it every LeaderCheck. Both need a direct connection or a
// session-mode pooler. A counter is a sequence (coffer_counter_<name> in
// the store's schema, created on first use): Tick is nextval, Count reads
// last_value; both are outside transactions, so a Tick is seen by every
// session's next Count and ticks never wait for each other.
//
// # Tests
//
// COFFER_TEST_POSTGRES_DSN names a server whose user may CREATE DATABASE.
// Without it, TestMain starts a throwaway server: initdb into a temporary
// directory and pg_ctl start on 127.0.0.1 and a free port (as the postgres
// OS user through runuser when running as root), and stops it by the PID in
// postmaster.pid at the end. The binaries are looked up in
// /usr/lib/postgresql/*/bin and $PATH; if they are missing, every test
// that needs the server fails saying what to install (apt-get install
// postgresql); nothing is skipped. The run uses one database (ICU en-US
// collation where available; synchronous_commit off for speed, which
// benchmarks turn back on), and each test a schema of its own selected
// through search_path, so parallel subtests never collide.
package postgres
