package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/cofferhq/coffer/internal/metadata"
)

// docTx implements metadata.DocTx on one transaction. No method lets a
// statement fail on purpose (a failed statement aborts a PostgreSQL
// transaction): creation uses ON CONFLICT DO NOTHING and compare-and-set a
// conditional UPDATE, so a caller may carry on after ErrExists or
// ErrConflict, as with SQLite.
type docTx struct {
	ctx context.Context
	tx  pgx.Tx
	ro  bool
}

func (d docTx) Get(kind, key string) (metadata.Document, error) {
	doc := metadata.Document{Kind: kind, Key: key}
	err := d.tx.QueryRow(d.ctx, `SELECT data, version FROM documents WHERE kind = $1 AND key = $2`, kind, key).
		Scan(&doc.Data, &doc.Version)
	if errors.Is(err, pgx.ErrNoRows) {
		return metadata.Document{}, fmt.Errorf("document %s/%s: %w", kind, key, metadata.ErrNotFound)
	}
	if err != nil {
		return metadata.Document{}, fmt.Errorf("get document %s/%s: %w", kind, key, err)
	}
	return doc, nil
}

func (d docTx) List(kind, prefix string) ([]metadata.Document, error) {
	if strings.IndexByte(prefix, 0) >= 0 {
		return nil, nil // no stored key holds NUL (PostgreSQL text cannot)
	}
	rows, err := d.tx.Query(d.ctx,
		`SELECT key, data, version FROM documents WHERE kind = $1 AND starts_with(key, $2) ORDER BY key`,
		kind, prefix)
	out, err := collect(rows, err, func(sc scanner) (metadata.Document, error) {
		doc := metadata.Document{Kind: kind}
		err := sc.Scan(&doc.Key, &doc.Data, &doc.Version)
		return doc, err
	})
	if err != nil {
		return nil, fmt.Errorf("list documents %s: %w", kind, err)
	}
	return out, nil
}

func (d docTx) Put(doc metadata.Document) (int64, error) {
	if d.ro {
		return 0, errors.New("put document: read-only transaction")
	}
	if doc.Data == nil {
		doc.Data = []byte{} // the column is NOT NULL; empty is a value
	}
	if doc.Version == 0 {
		res, err := d.tx.Exec(d.ctx, `INSERT INTO documents (kind, key, data, version) VALUES ($1, $2, $3, 1)
			ON CONFLICT (kind, key) DO NOTHING`,
			doc.Kind, doc.Key, doc.Data)
		if err != nil {
			return 0, fmt.Errorf("put document %s/%s: %w", doc.Kind, doc.Key, err)
		}
		if res.RowsAffected() != 1 {
			return 0, fmt.Errorf("document %s/%s: %w", doc.Kind, doc.Key, metadata.ErrExists)
		}
		return 1, nil
	}
	res, err := d.tx.Exec(d.ctx, `UPDATE documents SET data = $1, version = version + 1
		WHERE kind = $2 AND key = $3 AND version = $4`,
		doc.Data, doc.Kind, doc.Key, doc.Version)
	if err != nil {
		return 0, fmt.Errorf("put document %s/%s: %w", doc.Kind, doc.Key, err)
	}
	if res.RowsAffected() != 1 {
		return 0, fmt.Errorf("document %s/%s version %d: %w", doc.Kind, doc.Key, doc.Version, metadata.ErrConflict)
	}
	return doc.Version + 1, nil
}

func (d docTx) Delete(kind, key string) error {
	if d.ro {
		return errors.New("delete document: read-only transaction")
	}
	res, err := d.tx.Exec(d.ctx, `DELETE FROM documents WHERE kind = $1 AND key = $2`, kind, key)
	if err != nil {
		return fmt.Errorf("delete document %s/%s: %w", kind, key, err)
	}
	if res.RowsAffected() != 1 {
		return fmt.Errorf("document %s/%s: %w", kind, key, metadata.ErrNotFound)
	}
	return nil
}

// ViewDocs implements metadata.DocStore: fn runs in a REPEATABLE READ, READ
// ONLY transaction, so every read sees one snapshot and a write fails.
func (s *Store) ViewDocs(ctx context.Context, fn func(metadata.DocTx) error) error {
	tx, err := s.pool.BeginTx(ctx, snapshot)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	return fn(docTx{ctx: ctx, tx: tx, ro: true})
}

// UpdateDocs implements metadata.DocStore: fn runs in one READ COMMITTED
// transaction that first takes a transaction-scoped advisory lock, so
// document writers are serialized across every process using the database,
// as the contract requires (and as SQLite's single writer does). While fn
// holds the lock no other writer can commit a document, so fn's reads see a
// stable state. fn runs once, unless the database reports a deadlock.
func (s *Store) UpdateDocs(ctx context.Context, fn func(metadata.DocTx) error) error {
	return s.write(ctx, func(tx pgx.Tx) error {
		return s.withDocs(ctx, tx, fn)
	})
}

// withDocs serializes tx with every other document writer and runs fn on
// it. In a transaction that also locks a repository row, the row lock comes
// first (one order everywhere: no deadlock between them).
func (s *Store) withDocs(ctx context.Context, tx pgx.Tx, fn func(metadata.DocTx) error) error {
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, s.docsKey); err != nil {
		return fmt.Errorf("lock documents: %w", err)
	}
	return fn(docTx{ctx: ctx, tx: tx})
}
