// Package fs is the local-filesystem storage.Driver.
//
// # What it trusts
//
// The root directory (Config.Root) and everything above it: its owner, its
// permissions and the filesystem under it. Only Coffer's process should be
// able to write there; the driver creates the root 0700, directories 0700 and
// files 0600, but it does not fix the permissions of an existing tree. One
// Driver owns a root at a time: New deletes every staged (uncommitted) file it
// finds, so a second process or Driver on the same root would destroy the
// first one's in-flight writes (never its committed objects). Every
// directory under the root must be readable by the process, so make Root a
// directory below a mount point rather than the mount point itself, whose
// root-owned lost+found would make Walk fail.
//
// # What it guarantees
//
//   - Containment: every file operation goes through an os.Root opened on
//     the root, so neither a key nor a symbolic link planted inside the tree
//     reaches a path outside it. Keys are also checked with storage.ValidKey,
//     and a path segment longer than 255 bytes (NAME_MAX) is rejected with
//     storage.ErrInvalidKey rather than failing later with ENAMETOOLONG.
//   - Atomic, durable commits: a Writer streams into a staging file; Commit
//     flushes and fsyncs it, renames it over the key (rename(2) replaces
//     atomically, so readers see the old or the new object, never a mix) and
//     fsyncs the parent directory, plus each ancestor directory whose entry
//     is not yet known to be durable, before it returns nil. A crash before
//     the rename leaves only a staging file, which the next New removes. The
//     one exception to "visible only after nil": if a directory fsync fails
//     after the rename, the object is already visible and Commit still
//     returns the error (its durability is unknown).
//   - Concurrency: any number of goroutines may write, read and delete
//     different or equal keys. The last Commit of a key wins. A Reader opened
//     before an overwrite or Delete keeps reading the version it opened.
//   - Delete removes the object's file and then every ancestor directory that
//     became empty (never the root). Deletes are not fsynced: after a power
//     loss a deleted object may reappear, which garbage collection tolerates.
//     Pruning takes a Driver-wide lock that Commit's mkdir+rename shares, so
//     pruning never removes a directory a Commit is about to rename into and
//     never mistakes a freshly committed object for a directory; Commit still
//     recreates a vanished parent and retries a few times.
//
// Objects are regular files. The driver never creates symbolic links; a key
// whose last element is a symlink, a directory or any other non-regular file
// does not name an object (Stat and Reader report storage.ErrNotFound, Walk
// skips it, Delete removes a symlink but never a directory).
//
// Keys form a tree, so on this driver an object key cannot also be a proper
// prefix directory of another key: with "a/b" committed, committing "a/b/c"
// fails, and vice versa. Coffer's key layout (layers/<domain>/<id>,
// manifests/<repo>/<digest>) never does this.
//
// # On-disk layout
//
//	<Root>/                        0700
//	├── \staging/                  0700  in-flight Writers, one file each
//	│   └── <random>               0600  (named with crypto/rand.Text)
//	├── layers/
//	│   └── aes256/
//	│       └── <object-id>        0600  object "layers/aes256/<object-id>"
//	└── manifests/
//	    └── <repo-id>/
//	        └── sha256:<hex>       0600  object "manifests/<repo-id>/sha256:<hex>"
//
// An object key maps to the same relative path under Root. The staging
// directory is named `\staging` (a leading backslash): storage.ValidKey
// rejects every key containing a backslash, so no key can name it, no key is
// reserved, and Walk never reports it. The backslash is an ordinary file-name
// byte on Unix; this driver is meant for Unix-like systems (on Windows the
// backslash is a path separator).
package fs
