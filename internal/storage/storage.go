// Package storage defines the blob Driver contract that every object store
// behind Coffer implements (filesystem now, S3 later), plus its sentinels.
//
// A Driver stores opaque byte objects (always Coffer's own ciphertext) under
// slash-separated keys. It guarantees:
//
//   - Atomic visibility: an object written through a Writer is invisible until
//     Commit returns nil, and Commit makes it durable (fsync for fs) before
//     returning. A crash at any point never exposes a partial object.
//   - Keys are validated: ValidKey rejects empty keys, absolute keys, "." or
//     ".." segments, segments over 255 bytes, backslashes, NUL and control
//     bytes and invalid UTF-8, so no key reaches a path outside the store's
//     root and every key is storable on a filesystem and in S3.
//   - Every reader is bounded: Reader returns exactly the requested range.
//
// The contract is proven by package storagetest, run against every driver.
package storage

import (
	"context"
	"errors"
	"io"
	"strings"
	"time"
	"unicode/utf8"
)

// Sentinel errors; drivers wrap them with context.
var (
	// ErrNotFound reports that no committed object exists under the key.
	ErrNotFound = errors.New("storage: object not found")
	// ErrInvalidKey reports a key that fails ValidKey.
	ErrInvalidKey = errors.New("storage: invalid key")
	// ErrInvalidRange reports an offset or length outside the object.
	ErrInvalidRange = errors.New("storage: invalid range")
)

// Info describes a committed object.
type Info struct {
	Key     string
	Size    int64
	ModTime time.Time
}

// Writer streams a new object. Nothing is visible until Commit succeeds.
// Exactly one of Commit or Cancel must be called; after either, the Writer is
// unusable. Committing over an existing key replaces it atomically.
type Writer interface {
	io.Writer
	// Size reports the bytes written so far.
	Size() int64
	// Commit makes the object durable and visible under its key.
	Commit(ctx context.Context) error
	// Cancel discards everything written; it is safe after a failed Write.
	Cancel(ctx context.Context) error
}

// Driver is the one shared storage contract.
type Driver interface {
	// Writer starts a new object under key.
	Writer(ctx context.Context, key string) (Writer, error)
	// Reader returns the bytes [offset, offset+length) of the object; a
	// negative length means to the end. Reading past the end is ErrInvalidRange.
	Reader(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error)
	// Stat describes a committed object, or ErrNotFound.
	Stat(ctx context.Context, key string) (Info, error)
	// Delete removes the object; deleting a missing key is not an error.
	Delete(ctx context.Context, key string) error
	// Walk calls fn for every committed object whose key starts with prefix,
	// in lexical key order. An error from fn stops the walk and is returned.
	Walk(ctx context.Context, prefix string, fn func(Info) error) error
	// Ping reports whether the store is reachable and writable (readiness).
	Ping(ctx context.Context) error
}

// ValidKey reports whether key is acceptable to every driver.
func ValidKey(key string) bool {
	if key == "" || len(key) > 1024 || strings.HasPrefix(key, "/") || strings.HasSuffix(key, "/") {
		return false
	}
	for i := 0; i < len(key); i++ {
		c := key[i]
		if c < 0x20 || c == 0x7f || c == '\\' {
			return false
		}
	}
	if !utf8.ValidString(key) {
		return false
	}
	for _, seg := range strings.Split(key, "/") {
		if seg == "" || seg == "." || seg == ".." || len(seg) > 255 {
			return false
		}
	}
	return true
}
