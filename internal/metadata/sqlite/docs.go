package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/cofferhq/coffer/internal/metadata"
)

// docTx implements metadata.DocTx on one SQL transaction.
type docTx struct {
	ctx context.Context
	tx  *sql.Tx
	ro  bool
}

func (d docTx) Get(kind, key string) (metadata.Document, error) {
	doc := metadata.Document{Kind: kind, Key: key}
	err := d.tx.QueryRowContext(d.ctx, `SELECT data, version FROM documents WHERE kind = ? AND key = ?`, kind, key).
		Scan(&doc.Data, &doc.Version)
	if errors.Is(err, sql.ErrNoRows) {
		return metadata.Document{}, fmt.Errorf("document %s/%s: %w", kind, key, metadata.ErrNotFound)
	}
	if err != nil {
		return metadata.Document{}, fmt.Errorf("get document %s/%s: %w", kind, key, err)
	}
	return doc, nil
}

func (d docTx) List(kind, prefix string) ([]metadata.Document, error) {
	rows, err := d.tx.QueryContext(d.ctx,
		`SELECT key, data, version FROM documents WHERE kind = ? AND substr(key, 1, ?) = ? ORDER BY key`,
		kind, len(prefix), prefix)
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
	if doc.Version == 0 {
		_, err := d.tx.ExecContext(d.ctx, `INSERT INTO documents (kind, key, data, version) VALUES (?, ?, ?, 1)`,
			doc.Kind, doc.Key, doc.Data)
		if err != nil {
			if isUnique(err) {
				return 0, fmt.Errorf("document %s/%s: %w", doc.Kind, doc.Key, metadata.ErrExists)
			}
			return 0, fmt.Errorf("put document %s/%s: %w", doc.Kind, doc.Key, err)
		}
		return 1, nil
	}
	res, err := d.tx.ExecContext(d.ctx, `UPDATE documents SET data = ?, version = version + 1 WHERE kind = ? AND key = ? AND version = ?`,
		doc.Data, doc.Kind, doc.Key, doc.Version)
	if err != nil {
		return 0, fmt.Errorf("put document %s/%s: %w", doc.Kind, doc.Key, err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return 0, fmt.Errorf("document %s/%s version %d: %w", doc.Kind, doc.Key, doc.Version, metadata.ErrConflict)
	}
	return doc.Version + 1, nil
}

func (d docTx) Delete(kind, key string) error {
	if d.ro {
		return errors.New("delete document: read-only transaction")
	}
	res, err := d.tx.ExecContext(d.ctx, `DELETE FROM documents WHERE kind = ? AND key = ?`, kind, key)
	if err != nil {
		return fmt.Errorf("delete document %s/%s: %w", kind, key, err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return fmt.Errorf("document %s/%s: %w", kind, key, metadata.ErrNotFound)
	}
	return nil
}

// ViewDocs implements metadata.DocStore.
func (s *Store) ViewDocs(ctx context.Context, fn func(metadata.DocTx) error) error {
	tx, err := s.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback()
	return fn(docTx{ctx: ctx, tx: tx, ro: true})
}

// UpdateDocs implements metadata.DocStore.
func (s *Store) UpdateDocs(ctx context.Context, fn func(metadata.DocTx) error) error {
	return s.write(ctx, func(tx *sql.Tx) error {
		return fn(docTx{ctx: ctx, tx: tx})
	})
}
