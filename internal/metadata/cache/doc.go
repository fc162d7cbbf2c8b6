// Package cache is an in-process read cache in front of a metadata.Store:
// it answers GetRepository and ResolveTag, the two metadata reads of every
// manifest request, from memory.
//
// # Consistency
//
// The Store keeps a generation counter. Every write method that can change
// a cached answer, or a document the authorizer derives decisions from
// (repository and registry policies, repository tags), adds one to it after
// the inner call returns, whether it failed or not; see the method
// comments for which writes do not. A cache entry records the generation
// read before its inner read, and is used only while the generation is
// unchanged and the entry is younger than Config.TTL:
//
//	reader: g := gen ─► inner read ─► entry{g}        valid while gen == g
//	writer:              inner write (commit) ─► gen++ and age < TTL
//
// A write that commits after the read began bumps the generation after its
// commit, so the entry it could have made stale is never used again; a
// write that committed before the read began is seen by the read. So a
// write made through this Store is visible to the next read in the process.
// Writers in other processes (coffer gc and coffer lifecycle run beside a
// server on the same SQLite file, replicas sharing PostgreSQL) are not
// seen: their writes become visible within the TTL (default 1s), or at
// once when the process is told and calls Invalidate (replicas announce
// their writes through Config.OnWrite; internal/server/replicas.go). A TTL
// of 0 turns caching off; the generation still counts writes.
//
// Other packages key their own caches on Generation with the same rule
// (internal/authz caches parsed resource policies that way).
//
// Only successful reads are cached, at most Config.MaxEntries per method;
// a full table loses one entry at random per insertion. Values are copied
// in and out, so a caller that edits a returned slice or map changes only
// its own copy.
package cache
