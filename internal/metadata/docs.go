package metadata

import "context"

// Document is one small versioned record of a kind that has no table of its
// own: IAM users, access keys, groups, roles, policies and STS sessions, and
// later other control-plane state. Data is opaque to the store (JSON in
// practice); secrets inside it are sealed by the caller.
type Document struct {
	Kind string
	Key  string
	Data []byte
	// Version is 1 on creation and grows by one on every update; callers
	// use it for compare-and-set.
	Version int64
}

// DocTx reads and writes documents inside one transaction.
type DocTx interface {
	// Get returns a document or ErrNotFound.
	Get(kind, key string) (Document, error)
	// List returns the documents of a kind whose key starts with prefix, in
	// key order.
	List(kind, prefix string) ([]Document, error)
	// Put creates (Version 0: ErrExists if present) or replaces (Version
	// n: ErrConflict unless the stored version is n) a document, and
	// returns the stored version.
	Put(d Document) (int64, error)
	// Delete removes a document; ErrNotFound if absent.
	Delete(kind, key string) error
}

// DocStore is the document part of the Store contract.
type DocStore interface {
	// ViewDocs runs fn in a read-only snapshot.
	ViewDocs(ctx context.Context, fn func(DocTx) error) error
	// UpdateDocs runs fn in one write transaction: it commits when fn
	// returns nil and rolls back otherwise. Writes are serialized.
	UpdateDocs(ctx context.Context, fn func(DocTx) error) error
}
