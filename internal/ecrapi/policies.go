package ecrapi

import (
	"errors"
	"net/http"

	"github.com/cofferhq/coffer/internal/auth"
	"github.com/cofferhq/coffer/internal/authz"
	"github.com/cofferhq/coffer/internal/metadata"
	"github.com/cofferhq/coffer/internal/policy"
)

// policyOps manage the resource-based policies the decision point
// (internal/authz) enforces on every ECR and /v2/ request: one repository
// policy per repository (document authz.KindRepositoryPolicy, key: the
// repository name) and the registry policy (authz.KindRegistryPolicy, key
// registryPolicyKey). A policy is stored as the text the client sent, after
// it parsed strictly as a resource-based policy: a document the decision
// point could not read is never stored.
var policyOps = map[string]op{
	"SetRepositoryPolicy":    (*Handler).setRepositoryPolicy,
	"GetRepositoryPolicy":    (*Handler).getRepositoryPolicy,
	"DeleteRepositoryPolicy": (*Handler).deleteRepositoryPolicy,
	"PutRegistryPolicy":      (*Handler).putRegistryPolicy,
	"GetRegistryPolicy":      (*Handler).getRegistryPolicy,
	"DeleteRegistryPolicy":   (*Handler).deleteRegistryPolicy,
}

func init() { opGroups = append(opGroups, policyOps) }

// registryPolicyKey is the document key of the registry policy, the one
// authz reads.
const registryPolicyKey = "registry"

// parsePolicy checks that text is a resource-based policy the decision point
// can evaluate; the parser's message says what is wrong.
func parsePolicy(what, text string) (*policy.Policy, error) {
	pol, err := policy.Parse([]byte(text), policy.Resource)
	if err != nil {
		return nil, invalidParameter("Invalid parameter at 'PolicyText' failed to satisfy constraint: 'Invalid %s policy provided': %v", what, err)
	}
	return pol, nil
}

// locksOut reports whether pol explicitly denies the caller
// ecr:SetRepositoryPolicy on the repository: once stored, the caller could
// not change it again, which ECR lets happen only with force. Conditions
// see no request context keys, so a Deny whose condition holds without them
// counts too: a false alarm costs a force, a miss could cost the repository.
func locksOut(pol *policy.Policy, info *auth.Info, arn string) bool {
	p := info.Principal
	effect, _ := pol.Evaluate(&policy.Request{
		Principal: policy.Principal{ARN: p.ARN, Account: p.AccountID, Type: p.Type, RoleARN: p.RoleARN},
		Action:    "ecr:SetRepositoryPolicy",
		Resource:  arn,
	})
	return effect == policy.Deny
}

// repositoryPolicyShape is the output of the three repository policy
// operations.
type repositoryPolicyShape struct {
	RegistryID     string `json:"registryId"`
	RepositoryName string `json:"repositoryName"`
	PolicyText     string `json:"policyText"`
}

// registryPolicyShape is the output of the three registry policy
// operations.
type registryPolicyShape struct {
	RegistryID string `json:"registryId"`
	PolicyText string `json:"policyText"`
}

// putDoc creates or replaces a document inside tx.
func putDoc(tx metadata.DocTx, kind, key string, data []byte) error {
	var version int64
	d, err := tx.Get(kind, key)
	switch {
	case err == nil:
		version = d.Version
	case !errors.Is(err, metadata.ErrNotFound):
		return err
	}
	_, err = tx.Put(metadata.Document{Kind: kind, Key: key, Data: data, Version: version})
	return err
}

// setRepositoryPolicy stores a repository policy. A policy that would deny
// the caller ecr:SetRepositoryPolicy on the repository needs force, as in
// ECR: without it nobody but an identity the policy spares could ever
// change the policy again.
func (h *Handler) setRepositoryPolicy(r *http.Request, info *auth.Info, body []byte) (any, error) {
	s := h.registryScope()
	in, err := s.parseSetRepositoryPolicy(body)
	if err != nil {
		return nil, err
	}
	pol, err := parsePolicy("repository", in.text)
	if err != nil {
		return nil, err
	}
	ctx := r.Context()
	arn := h.cfg.Registry.RepositoryARN(string(in.name))
	if err := h.authorizeRepo(ctx, info, "ecr:SetRepositoryPolicy", arn); err != nil {
		return nil, err
	}
	if !in.force && locksOut(pol, info, arn) {
		return nil, invalidParameter("Invalid parameter at 'PolicyText': the policy denies you ecr:SetRepositoryPolicy on the repository, so you could not change it again; set force to apply it anyway")
	}
	err = h.cfg.Registry.UpdateRepositoryDocs(ctx, in.name, func(_ metadata.Repository, tx metadata.DocTx) error {
		return putDoc(tx, authz.KindRepositoryPolicy, string(in.name), []byte(in.text))
	})
	if err != nil {
		return nil, s.repositoryErr(err, in.name)
	}
	return repositoryPolicyShape{s.account, string(in.name), in.text}, nil
}

func (h *Handler) getRepositoryPolicy(r *http.Request, info *auth.Info, body []byte) (any, error) {
	s := h.registryScope()
	name, err := s.parseRepositoryRef(body)
	if err != nil {
		return nil, err
	}
	ctx := r.Context()
	if err := h.authorizeRepo(ctx, info, "ecr:GetRepositoryPolicy", h.cfg.Registry.RepositoryARN(string(name))); err != nil {
		return nil, err
	}
	if _, err := h.cfg.Registry.Repository(ctx, name); err != nil {
		return nil, s.repositoryErr(err, name)
	}
	var text []byte
	err = h.cfg.Registry.Docs().ViewDocs(ctx, func(tx metadata.DocTx) error {
		d, err := tx.Get(authz.KindRepositoryPolicy, string(name))
		text = d.Data
		return err
	})
	if errors.Is(err, metadata.ErrNotFound) {
		return nil, repoErr("RepositoryPolicyNotFoundException",
			"Repository policy does not exist for the repository with name '%s' in the registry with id '%s'", name, s.account)
	}
	if err != nil {
		return nil, err
	}
	return repositoryPolicyShape{s.account, string(name), string(text)}, nil
}

func (h *Handler) deleteRepositoryPolicy(r *http.Request, info *auth.Info, body []byte) (any, error) {
	s := h.registryScope()
	name, err := s.parseRepositoryRef(body)
	if err != nil {
		return nil, err
	}
	ctx := r.Context()
	if err := h.authorizeRepo(ctx, info, "ecr:DeleteRepositoryPolicy", h.cfg.Registry.RepositoryARN(string(name))); err != nil {
		return nil, err
	}
	var text []byte
	err = h.cfg.Registry.UpdateRepositoryDocs(ctx, name, func(_ metadata.Repository, tx metadata.DocTx) error {
		d, err := tx.Get(authz.KindRepositoryPolicy, string(name))
		if errors.Is(err, metadata.ErrNotFound) {
			return repoErr("RepositoryPolicyNotFoundException",
				"Repository policy does not exist for the repository with name '%s' in the registry with id '%s'", name, s.account)
		}
		if err != nil {
			return err
		}
		text = d.Data
		return tx.Delete(authz.KindRepositoryPolicy, string(name))
	})
	if err != nil {
		return nil, s.repositoryErr(err, name)
	}
	return repositoryPolicyShape{s.account, string(name), string(text)}, nil
}

// putRegistryPolicy stores the registry policy. The decision point applies
// it to every repository request (ECR's registry policy scope V2), next to
// the repository's own policy.
func (h *Handler) putRegistryPolicy(r *http.Request, info *auth.Info, body []byte) (any, error) {
	s := h.registryScope()
	text, err := parsePutRegistryPolicy(body)
	if err != nil {
		return nil, err
	}
	if _, err := parsePolicy("registry", text); err != nil {
		return nil, err
	}
	ctx := r.Context()
	if err := h.authorizeRepo(ctx, info, "ecr:PutRegistryPolicy", "*"); err != nil {
		return nil, err
	}
	err = h.cfg.Registry.Docs().UpdateDocs(ctx, func(tx metadata.DocTx) error {
		return putDoc(tx, authz.KindRegistryPolicy, registryPolicyKey, []byte(text))
	})
	if err != nil {
		return nil, err
	}
	return registryPolicyShape{s.account, text}, nil
}

func (s registryScope) registryPolicyNotFound() error {
	return repoErr("RegistryPolicyNotFoundException", "Registry policy does not exist in the registry with id '%s'", s.account)
}

func (h *Handler) getRegistryPolicy(r *http.Request, info *auth.Info, body []byte) (any, error) {
	s := h.registryScope()
	if err := parseNoMembers(body); err != nil {
		return nil, err
	}
	ctx := r.Context()
	if err := h.authorizeRepo(ctx, info, "ecr:GetRegistryPolicy", "*"); err != nil {
		return nil, err
	}
	var text []byte
	err := h.cfg.Registry.Docs().ViewDocs(ctx, func(tx metadata.DocTx) error {
		d, err := tx.Get(authz.KindRegistryPolicy, registryPolicyKey)
		text = d.Data
		return err
	})
	if errors.Is(err, metadata.ErrNotFound) {
		return nil, s.registryPolicyNotFound()
	}
	if err != nil {
		return nil, err
	}
	return registryPolicyShape{s.account, string(text)}, nil
}

func (h *Handler) deleteRegistryPolicy(r *http.Request, info *auth.Info, body []byte) (any, error) {
	s := h.registryScope()
	if err := parseNoMembers(body); err != nil {
		return nil, err
	}
	ctx := r.Context()
	if err := h.authorizeRepo(ctx, info, "ecr:DeleteRegistryPolicy", "*"); err != nil {
		return nil, err
	}
	var text []byte
	err := h.cfg.Registry.Docs().UpdateDocs(ctx, func(tx metadata.DocTx) error {
		d, err := tx.Get(authz.KindRegistryPolicy, registryPolicyKey)
		if err != nil {
			return err
		}
		text = d.Data
		return tx.Delete(authz.KindRegistryPolicy, registryPolicyKey)
	})
	if errors.Is(err, metadata.ErrNotFound) {
		return nil, s.registryPolicyNotFound()
	}
	if err != nil {
		return nil, err
	}
	return registryPolicyShape{s.account, string(text)}, nil
}
