package iam

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/cofferhq/coffer/internal/metadata"
)

// get reads the JSON document kind/key into a T, mapping absence to
// ErrNoSuchEntity with AWS's message.
func get[T any](tx metadata.DocTx, kind, key, what string) (T, int64, error) {
	var v T
	d, err := tx.Get(kind, key)
	if errors.Is(err, metadata.ErrNotFound) {
		return v, 0, fmt.Errorf("%w: The %s with name %s cannot be found.", ErrNoSuchEntity, what, key)
	}
	if err != nil {
		return v, 0, err
	}
	if err := json.Unmarshal(d.Data, &v); err != nil {
		return v, 0, fmt.Errorf("iam: stored %s %s: %w", what, key, err)
	}
	return v, d.Version, nil
}

// put writes v as kind/key: version 0 creates (EntityAlreadyExists if
// present), otherwise compare-and-set.
func put(tx metadata.DocTx, kind, key, what string, v any, version int64) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = tx.Put(metadata.Document{Kind: kind, Key: key, Data: data, Version: version})
	if errors.Is(err, metadata.ErrExists) {
		return fmt.Errorf("%w: %s with name %s already exists.", ErrEntityExists, what, key)
	}
	return err
}

func list[T any](tx metadata.DocTx, kind string) ([]T, error) {
	docs, err := tx.List(kind, "")
	if err != nil {
		return nil, err
	}
	out := make([]T, 0, len(docs))
	for _, d := range docs {
		var v T
		if err := json.Unmarshal(d.Data, &v); err != nil {
			return nil, fmt.Errorf("iam: stored %s %s: %w", kind, d.Key, err)
		}
		out = append(out, v)
	}
	return out, nil
}

// update runs fn in one write transaction and, after a commit, invalidates
// cached identity policies.
func (s *Service) update(ctx context.Context, fn func(metadata.DocTx) error) error {
	err := s.cfg.Docs.UpdateDocs(ctx, fn)
	if err == nil {
		s.Invalidate()
	}
	return err
}

func (s *Service) view(ctx context.Context, fn func(metadata.DocTx) error) error {
	return s.cfg.Docs.ViewDocs(ctx, fn)
}
