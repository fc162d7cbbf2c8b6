package ecrapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/cofferhq/coffer/internal/auth"
	"github.com/cofferhq/coffer/internal/metadata"
	"github.com/cofferhq/coffer/internal/registry"
)

// tagOps tag repositories (the only taggable ECR resource). A repository's
// tags are one document (kindRepositoryTags) written only while the
// repository exists and deleted with it.
var tagOps = map[string]op{
	"TagResource":         (*Handler).tagResource,
	"UntagResource":       (*Handler).untagResource,
	"ListTagsForResource": (*Handler).listTagsForResource,
}

func init() { opGroups = append(opGroups, tagOps) }

// readTags returns a repository's tags document (version 0 if none).
func readTags(tx metadata.DocTx, name registry.RepoName) ([]tagShape, int64, error) {
	d, err := tx.Get(kindRepositoryTags, string(name))
	if errors.Is(err, metadata.ErrNotFound) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, err
	}
	var tags []tagShape
	if err := json.Unmarshal(d.Data, &tags); err != nil {
		return nil, 0, fmt.Errorf("tags of %s: %w", name, err)
	}
	return tags, d.Version, nil
}

// putTags stores tags (sorted by key) over the document at version (0: a
// new one); an empty set deletes the document.
func putTags(tx metadata.DocTx, name registry.RepoName, tags []tagShape, version int64) error {
	if len(tags) == 0 {
		if version == 0 {
			return nil
		}
		return tx.Delete(kindRepositoryTags, string(name))
	}
	tags = slices.Clone(tags)
	slices.SortFunc(tags, func(a, b tagShape) int { return strings.Compare(a.Key, b.Key) })
	data, err := json.Marshal(tags)
	if err != nil {
		return err
	}
	_, err = tx.Put(metadata.Document{Kind: kindRepositoryTags, Key: string(name), Data: data, Version: version})
	return err
}

func (h *Handler) tagResource(r *http.Request, info *auth.Info, body []byte) (any, error) {
	s := h.registryScope()
	name, add, err := s.parseTagResource(body)
	if err != nil {
		return nil, err
	}
	ctx := r.Context()
	info.RequestTags = requestTags(add)
	if err := h.authorizeRepo(ctx, info, "ecr:TagResource", h.cfg.Registry.RepositoryARN(string(name))); err != nil {
		return nil, err
	}
	err = h.cfg.Registry.UpdateRepositoryDocs(ctx, name, func(_ metadata.Repository, tx metadata.DocTx) error {
		tags, version, err := readTags(tx, name)
		if err != nil {
			return err
		}
		// Existing tags not named in the request stay; named ones take
		// the new value.
		for _, t := range add {
			if i := slices.IndexFunc(tags, func(o tagShape) bool { return o.Key == t.Key }); i >= 0 {
				tags[i].Value = t.Value
			} else {
				tags = append(tags, t)
			}
		}
		if len(tags) > maxTagsPerResource {
			return repoErr("TooManyTagsException",
				"The repository with name '%s' would have %d tags; a resource can have at most %d", name, len(tags), maxTagsPerResource)
		}
		return putTags(tx, name, tags, version)
	})
	if err != nil {
		return nil, s.repositoryErr(err, name)
	}
	return struct{}{}, nil
}

func (h *Handler) untagResource(r *http.Request, info *auth.Info, body []byte) (any, error) {
	s := h.registryScope()
	name, keys, err := s.parseUntagResource(body)
	if err != nil {
		return nil, err
	}
	ctx := r.Context()
	info.RequestTagKeys = keys
	if err := h.authorizeRepo(ctx, info, "ecr:UntagResource", h.cfg.Registry.RepositoryARN(string(name))); err != nil {
		return nil, err
	}
	err = h.cfg.Registry.UpdateRepositoryDocs(ctx, name, func(_ metadata.Repository, tx metadata.DocTx) error {
		tags, version, err := readTags(tx, name)
		if err != nil || version == 0 {
			return err
		}
		// Keys the repository does not have are ignored, as in ECR.
		tags = slices.DeleteFunc(tags, func(t tagShape) bool { return slices.Contains(keys, t.Key) })
		return putTags(tx, name, tags, version)
	})
	if err != nil {
		return nil, s.repositoryErr(err, name)
	}
	return struct{}{}, nil
}

func (h *Handler) listTagsForResource(r *http.Request, info *auth.Info, body []byte) (any, error) {
	s := h.registryScope()
	name, err := s.parseListTagsForResource(body)
	if err != nil {
		return nil, err
	}
	ctx := r.Context()
	if err := h.authorizeRepo(ctx, info, "ecr:ListTagsForResource", h.cfg.Registry.RepositoryARN(string(name))); err != nil {
		return nil, err
	}
	if _, err := h.cfg.Registry.Repository(ctx, name); err != nil {
		return nil, s.repositoryErr(err, name)
	}
	var tags []tagShape
	err = h.cfg.Registry.Docs().ViewDocs(ctx, func(tx metadata.DocTx) error {
		var err error
		tags, _, err = readTags(tx, name)
		return err
	})
	if err != nil {
		return nil, err
	}
	if tags == nil {
		tags = []tagShape{}
	}
	return struct {
		Tags []tagShape `json:"tags"`
	}{tags}, nil
}

// requestTags is the aws:RequestTag/<key> view of a request's tags.
func requestTags(tags []tagShape) map[string]string {
	if len(tags) == 0 {
		return nil
	}
	m := make(map[string]string, len(tags))
	for _, t := range tags {
		m[t.Key] = t.Value
	}
	return m
}
