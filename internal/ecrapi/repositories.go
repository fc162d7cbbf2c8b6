package ecrapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/cofferhq/coffer/internal/auth"
	"github.com/cofferhq/coffer/internal/authz"
	"github.com/cofferhq/coffer/internal/metadata"
	"github.com/cofferhq/coffer/internal/registry"
)

// repositoryOps are the repository operations: create, describe, delete,
// and the two settings that may change after creation. The encryption
// configuration is fixed at creation (SPEC ENC-07): no operation here or
// anywhere writes it again.
var repositoryOps = map[string]op{
	"CreateRepository":              (*Handler).createRepository,
	"DescribeRepositories":          (*Handler).describeRepositories,
	"DeleteRepository":              (*Handler).deleteRepository,
	"PutImageTagMutability":         (*Handler).putImageTagMutability,
	"PutImageScanningConfiguration": (*Handler).putImageScanningConfiguration,
}

func init() { opGroups = append(opGroups, repositoryOps) }

// repositoryShape is ECR's Repository structure.
type repositoryShape struct {
	RepositoryARN                      string                 `json:"repositoryArn"`
	RegistryID                         string                 `json:"registryId"`
	RepositoryName                     string                 `json:"repositoryName"`
	RepositoryURI                      string                 `json:"repositoryUri"`
	CreatedAt                          float64                `json:"createdAt"` // epoch seconds
	ImageTagMutability                 string                 `json:"imageTagMutability"`
	ImageTagMutabilityExclusionFilters []exclusionFilterShape `json:"imageTagMutabilityExclusionFilters,omitempty"`
	ImageScanningConfiguration         scanningShape          `json:"imageScanningConfiguration"`
	EncryptionConfiguration            encryptionShape        `json:"encryptionConfiguration"`
}

// repository returns the Repository shape; its URI is the registry host the
// client reached, as a docker reference names it.
func (h *Handler) repository(r *http.Request, repo metadata.Repository) repositoryShape {
	out := repositoryShape{
		RepositoryARN:                      h.cfg.Registry.RepositoryARN(repo.Name),
		RegistryID:                         h.cfg.Registry.AccountID(),
		RepositoryName:                     repo.Name,
		RepositoryURI:                      r.Host + "/" + repo.Name,
		CreatedAt:                          float64(repo.CreatedAt.UnixMilli()) / 1000,
		ImageTagMutability:                 repo.TagMutability,
		ImageTagMutabilityExclusionFilters: exclusionFilters(repo.TagMutabilityExclusions),
		ImageScanningConfiguration:         scanningShape{ScanOnPush: repo.ScanOnPush},
		EncryptionConfiguration:            encryptionShape{EncryptionType: repo.EncryptionType},
	}
	if repo.KMSKey != "" {
		out.EncryptionConfiguration.KMSKey = &repo.KMSKey
	}
	return out
}

func exclusionFilters(filters []string) []exclusionFilterShape {
	var out []exclusionFilterShape
	for _, f := range filters {
		out = append(out, exclusionFilterShape{FilterType: "WILDCARD", Filter: f})
	}
	return out
}

// authorizeRepo records the resource for the audit record and asks the
// decision point.
func (h *Handler) authorizeRepo(ctx context.Context, info *auth.Info, action, resource string) error {
	info.Resources = append(info.Resources, resource)
	return h.cfg.Authz.Authorize(ctx, info, action, resource)
}

// repositoryErr turns the registry's "no such repository" into ECR's
// RepositoryNotFoundException; other errors pass through.
func (s registryScope) repositoryErr(err error, name registry.RepoName) error {
	if errors.Is(err, registry.ErrNameUnknown) {
		return s.repositoryNotFound(name)
	}
	return err
}

// Document kinds of the ECR API that have no table of their own. The
// repository and registry policies are authz's kinds: the decision point
// reads what the API writes.
const kindRepositoryTags = authz.KindRepositoryTags // key: repository name; JSON []tagShape sorted by Key

// clearRepositoryDocs deletes the documents that belong to a repository
// (policy and tags) inside a metadata transaction, if they exist.
func clearRepositoryDocs(tx metadata.DocTx, name registry.RepoName) error {
	for _, kind := range []string{authz.KindRepositoryPolicy, kindRepositoryTags} {
		if err := tx.Delete(kind, string(name)); err != nil && !errors.Is(err, metadata.ErrNotFound) {
			return fmt.Errorf("delete %s document of %s: %w", kind, name, err)
		}
	}
	return nil
}

func (h *Handler) createRepository(r *http.Request, info *auth.Info, body []byte) (any, error) {
	s := h.registryScope()
	in, err := s.parseCreateRepository(body)
	if err != nil {
		return nil, err
	}
	ctx := r.Context()
	arn := h.cfg.Registry.RepositoryARN(string(in.name))
	info.RequestTags = requestTags(in.tags)
	if err := h.authorizeRepo(ctx, info, "ecr:CreateRepository", arn); err != nil {
		return nil, err
	}
	// As in ECR, tagging on creation also needs ecr:TagResource.
	if len(in.tags) > 0 {
		if err := h.cfg.Authz.Authorize(ctx, info, "ecr:TagResource", arn); err != nil {
			return nil, err
		}
	}
	exists := func() error {
		return repoErr("RepositoryAlreadyExistsException",
			"The repository with name '%s' already exists in the registry with id '%s'", in.name, s.account)
	}
	// A KMS repository's key is checked and its grants created first
	// (SPEC FLOW-01/02), with the caller's identity; if anything fails
	// afterwards the grants are retired, so nothing is left behind.
	var grants kmsGrantsDoc
	if in.encryption != metadata.EncryptionAES256 {
		if _, err := h.cfg.Registry.Repository(ctx, in.name); err == nil {
			return nil, exists()
		}
		if grants, err = h.provisionKMS(ctx, info, in.name, in.kmsKey); err != nil {
			return nil, err
		}
	}
	repo, err := h.cfg.Registry.CreateRepositoryWith(ctx, metadata.Repository{
		Name:                    string(in.name),
		EncryptionType:          in.encryption,
		KMSKey:                  grants.KeyARN,
		TagMutability:           in.mutability,
		TagMutabilityExclusions: in.exclusions,
		ScanOnPush:              in.scanOnPush,
	}, func(tx metadata.DocTx) error {
		// A new repository starts with no policy and exactly the tags
		// given, whatever a document store restored from elsewhere holds.
		if err := clearRepositoryDocs(tx, in.name); err != nil {
			return err
		}
		if grants.KeyARN != "" {
			if err := putKMSGrants(tx, in.name, grants); err != nil {
				return err
			}
		}
		if len(in.tags) == 0 {
			return nil
		}
		return putTags(tx, in.name, in.tags, 0)
	})
	if err != nil && grants.KeyARN != "" {
		h.retireQuietly(ctx, grants)
	}
	if errors.Is(err, registry.ErrRepositoryExists) {
		return nil, exists()
	}
	if err != nil {
		return nil, err
	}
	return map[string]any{"repository": h.repository(r, repo)}, nil
}

func (h *Handler) describeRepositories(r *http.Request, info *auth.Info, body []byte) (any, error) {
	s := h.registryScope()
	in, err := s.parseDescribeRepositories(body)
	if err != nil {
		return nil, err
	}
	ctx := r.Context()
	out := struct {
		Repositories []repositoryShape `json:"repositories"`
		NextToken    string            `json:"nextToken,omitempty"`
	}{Repositories: []repositoryShape{}}

	if in.names != nil {
		// Every name is authorized before any is looked up, so a denied
		// caller learns nothing about which repositories exist.
		for _, name := range in.names {
			if err := h.authorizeRepo(ctx, info, "ecr:DescribeRepositories", h.cfg.Registry.RepositoryARN(string(name))); err != nil {
				return nil, err
			}
		}
		for _, name := range in.names {
			repo, err := h.cfg.Registry.Repository(ctx, name)
			if err != nil {
				return nil, s.repositoryErr(err, name)
			}
			out.Repositories = append(out.Repositories, h.repository(r, repo))
		}
		return out, nil
	}

	if err := h.authorizeRepo(ctx, info, "ecr:DescribeRepositories", h.cfg.Registry.RepositoryARN("*")); err != nil {
		return nil, err
	}
	repos, err := h.cfg.Registry.Repositories(ctx, in.after, in.limit+1)
	if err != nil {
		return nil, err
	}
	if len(repos) > in.limit {
		repos = repos[:in.limit]
		out.NextToken = pageToken(repos[len(repos)-1].Name)
	}
	out.Repositories = make([]repositoryShape, len(repos))
	for i, repo := range repos {
		out.Repositories[i] = h.repository(r, repo)
	}
	return out, nil
}

func (h *Handler) deleteRepository(r *http.Request, info *auth.Info, body []byte) (any, error) {
	s := h.registryScope()
	in, err := s.parseDeleteRepository(body)
	if err != nil {
		return nil, err
	}
	ctx := r.Context()
	if err := h.authorizeRepo(ctx, info, "ecr:DeleteRepository", h.cfg.Registry.RepositoryARN(string(in.name))); err != nil {
		return nil, err
	}
	// The emptiness check, the deletion and the removal of the policy and
	// tags are one transaction: an image pushed meanwhile either makes the
	// delete fail or is deleted with it.
	var (
		grants    kmsGrantsDoc
		hasGrants bool
	)
	repo, err := h.cfg.Registry.DeleteRepository(ctx, in.name, func(_ metadata.Repository, hasImages bool, tx metadata.DocTx) error {
		if hasImages && !in.force {
			return repoErr("RepositoryNotEmptyException",
				"The repository with name '%s' in registry with id '%s' cannot be deleted because it still contains images", in.name, s.account)
		}
		var err error
		if grants, hasGrants, err = takeKMSGrants(tx, in.name); err != nil {
			return err
		}
		return clearRepositoryDocs(tx, in.name)
	})
	if err != nil {
		return nil, s.repositoryErr(err, in.name)
	}
	// SPEC FLOW-08, GRANT-06, TRBL-01: the grants are retired with the
	// caller's identity once the repository is gone.
	if hasGrants && h.cfg.KMS != nil {
		if err := h.retireRepositoryGrants(ctx, info, in.name, grants); err != nil {
			return nil, err
		}
	}
	return map[string]any{"repository": h.repository(r, repo)}, nil
}

func (h *Handler) putImageTagMutability(r *http.Request, info *auth.Info, body []byte) (any, error) {
	s := h.registryScope()
	in, err := s.parsePutImageTagMutability(body)
	if err != nil {
		return nil, err
	}
	ctx := r.Context()
	if err := h.authorizeRepo(ctx, info, "ecr:PutImageTagMutability", h.cfg.Registry.RepositoryARN(string(in.name))); err != nil {
		return nil, err
	}
	repo, err := h.cfg.Registry.UpdateRepository(ctx, in.name, func(repo *metadata.Repository) error {
		repo.TagMutability, repo.TagMutabilityExclusions = in.mutability, in.exclusions
		return nil
	})
	if err != nil {
		return nil, s.repositoryErr(err, in.name)
	}
	return struct {
		RegistryID                         string                 `json:"registryId"`
		RepositoryName                     string                 `json:"repositoryName"`
		ImageTagMutability                 string                 `json:"imageTagMutability"`
		ImageTagMutabilityExclusionFilters []exclusionFilterShape `json:"imageTagMutabilityExclusionFilters,omitempty"`
	}{s.account, repo.Name, repo.TagMutability, exclusionFilters(repo.TagMutabilityExclusions)}, nil
}

func (h *Handler) putImageScanningConfiguration(r *http.Request, info *auth.Info, body []byte) (any, error) {
	s := h.registryScope()
	name, scanOnPush, err := s.parsePutImageScanningConfiguration(body)
	if err != nil {
		return nil, err
	}
	ctx := r.Context()
	if err := h.authorizeRepo(ctx, info, "ecr:PutImageScanningConfiguration", h.cfg.Registry.RepositoryARN(string(name))); err != nil {
		return nil, err
	}
	repo, err := h.cfg.Registry.UpdateRepository(ctx, name, func(repo *metadata.Repository) error {
		repo.ScanOnPush = scanOnPush
		return nil
	})
	if err != nil {
		return nil, s.repositoryErr(err, name)
	}
	return struct {
		RegistryID                 string        `json:"registryId"`
		RepositoryName             string        `json:"repositoryName"`
		ImageScanningConfiguration scanningShape `json:"imageScanningConfiguration"`
	}{s.account, repo.Name, scanningShape{ScanOnPush: repo.ScanOnPush}}, nil
}
