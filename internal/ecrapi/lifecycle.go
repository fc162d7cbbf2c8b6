package ecrapi

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"sort"
	"strconv"
	"unicode/utf8"

	"github.com/cofferhq/coffer/internal/auth"
	"github.com/cofferhq/coffer/internal/lifecycle"
	"github.com/cofferhq/coffer/internal/metadata"
	"github.com/cofferhq/coffer/internal/registry"
)

// lifecycleOps manage a repository's lifecycle policy (document
// lifecycle.DocKind, key: the repository name) and its preview (document
// lifecycle.PreviewDocKind). The policy is stored as the text the client
// sent, after it parsed strictly (internal/lifecycle). A preview is
// evaluated synchronously when it starts, so it is COMPLETE as soon as
// StartLifecyclePolicyPreview answers; it shows exactly what a run at that
// moment would expire.
var lifecycleOps = map[string]op{
	"PutLifecyclePolicy":          (*Handler).putLifecyclePolicy,
	"GetLifecyclePolicy":          (*Handler).getLifecyclePolicy,
	"DeleteLifecyclePolicy":       (*Handler).deleteLifecyclePolicy,
	"StartLifecyclePolicyPreview": (*Handler).startLifecyclePolicyPreview,
	"GetLifecyclePolicyPreview":   (*Handler).getLifecyclePolicyPreview,
}

func init() { opGroups = append(opGroups, lifecycleOps) }

// lifecyclePolicyText checks the model's length limits, then the grammar.
func lifecyclePolicyText(text *string, required bool) (*lifecycle.Policy, error) {
	if text == nil {
		if required {
			return nil, imgRequired("lifecyclePolicyText")
		}
		return nil, nil
	}
	if n := utf8.RuneCountInString(*text); n < 100 || n > 30720 {
		return nil, invalidParameter("Invalid parameter at 'lifecyclePolicyText' failed to satisfy constraint: 'Member must have length between 100 and 30720'")
	}
	p, err := lifecycle.Parse([]byte(*text))
	if err != nil {
		return nil, invalidParameter("Invalid parameter at 'LifecyclePolicyText' failed to satisfy constraint: 'Lifecycle policy validation failure: %v'", err)
	}
	return p, nil
}

type lifecyclePolicyShape struct {
	RegistryID          string   `json:"registryId"`
	RepositoryName      string   `json:"repositoryName"`
	LifecyclePolicyText string   `json:"lifecyclePolicyText"`
	LastEvaluatedAt     *float64 `json:"lastEvaluatedAt,omitempty"`
}

func (h *Handler) lifecyclePolicyNotFound(name string) error {
	return repoErr("LifecyclePolicyNotFoundException",
		"Lifecycle policy does not exist for the repository with name '%s' in the registry with id '%s'", name, h.cfg.Registry.AccountID())
}

func storedShape(account, name string, st lifecycle.Stored) lifecyclePolicyShape {
	out := lifecyclePolicyShape{RegistryID: account, RepositoryName: name, LifecyclePolicyText: st.PolicyText}
	if !st.LastEvaluatedAt.IsZero() {
		t := imgTime(st.LastEvaluatedAt)
		out.LastEvaluatedAt = &t
	}
	return out
}

type lifecycleInput struct {
	RegistryID          string  `json:"registryId"`
	RepositoryName      string  `json:"repositoryName"`
	LifecyclePolicyText *string `json:"lifecyclePolicyText"`
}

func (h *Handler) putLifecyclePolicy(r *http.Request, info *auth.Info, body []byte) (any, error) {
	var in lifecycleInput
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	ctx := r.Context()
	repo, err := h.imageRepo(ctx, info, "ecr:PutLifecyclePolicy", in.RegistryID, in.RepositoryName)
	if err != nil {
		return nil, err
	}
	if _, err := lifecyclePolicyText(in.LifecyclePolicyText, true); err != nil {
		return nil, err
	}
	data, _ := json.Marshal(lifecycle.Stored{PolicyText: *in.LifecyclePolicyText})
	err = h.cfg.Registry.UpdateRepositoryDocs(ctx, repoName(repo), func(_ metadata.Repository, tx metadata.DocTx) error {
		return putDoc(tx, lifecycle.DocKind, repo.Name, data)
	})
	if err != nil {
		return nil, h.registryScope().repositoryErr(err, repoName(repo))
	}
	return lifecyclePolicyShape{RegistryID: h.cfg.Registry.AccountID(), RepositoryName: repo.Name, LifecyclePolicyText: *in.LifecyclePolicyText}, nil
}

// readLifecycle returns the stored policy document, or
// LifecyclePolicyNotFoundException.
func (h *Handler) readLifecycle(ctx context.Context, name string) (lifecycle.Stored, error) {
	var st lifecycle.Stored
	err := h.cfg.Registry.Docs().ViewDocs(ctx, func(tx metadata.DocTx) error {
		d, err := tx.Get(lifecycle.DocKind, name)
		if err != nil {
			return err
		}
		return json.Unmarshal(d.Data, &st)
	})
	if errors.Is(err, metadata.ErrNotFound) {
		return st, h.lifecyclePolicyNotFound(name)
	}
	return st, err
}

func (h *Handler) getLifecyclePolicy(r *http.Request, info *auth.Info, body []byte) (any, error) {
	var in struct {
		RegistryID     string `json:"registryId"`
		RepositoryName string `json:"repositoryName"`
	}
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	ctx := r.Context()
	repo, err := h.imageRepo(ctx, info, "ecr:GetLifecyclePolicy", in.RegistryID, in.RepositoryName)
	if err != nil {
		return nil, err
	}
	st, err := h.readLifecycle(ctx, repo.Name)
	if err != nil {
		return nil, err
	}
	return storedShape(h.cfg.Registry.AccountID(), repo.Name, st), nil
}

func (h *Handler) deleteLifecyclePolicy(r *http.Request, info *auth.Info, body []byte) (any, error) {
	var in struct {
		RegistryID     string `json:"registryId"`
		RepositoryName string `json:"repositoryName"`
	}
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	ctx := r.Context()
	repo, err := h.imageRepo(ctx, info, "ecr:DeleteLifecyclePolicy", in.RegistryID, in.RepositoryName)
	if err != nil {
		return nil, err
	}
	var st lifecycle.Stored
	err = h.cfg.Registry.UpdateRepositoryDocs(ctx, repoName(repo), func(_ metadata.Repository, tx metadata.DocTx) error {
		d, err := tx.Get(lifecycle.DocKind, repo.Name)
		if errors.Is(err, metadata.ErrNotFound) {
			return h.lifecyclePolicyNotFound(repo.Name)
		}
		if err != nil {
			return err
		}
		if err := json.Unmarshal(d.Data, &st); err != nil {
			return err
		}
		return tx.Delete(lifecycle.DocKind, repo.Name)
	})
	if err != nil {
		return nil, h.registryScope().repositoryErr(err, repoName(repo))
	}
	return storedShape(h.cfg.Registry.AccountID(), repo.Name, st), nil
}

// previewDoc is the stored preview of a repository.
type previewDoc struct {
	PolicyText string          `json:"policyText"`
	Status     string          `json:"status"`
	Results    []previewResult `json:"results"`
}

type previewAction struct {
	Type string `json:"type"`
}

type previewResult struct {
	ImageTags           []string      `json:"imageTags"`
	ImageDigest         string        `json:"imageDigest"`
	ImagePushedAt       float64       `json:"imagePushedAt"`
	Action              previewAction `json:"action"`
	AppliedRulePriority int           `json:"appliedRulePriority"`
	StorageClass        string        `json:"storageClass"`
}

// planLifecycle evaluates p over every image of the repository now, as
// the lifecycle runner does.
func (h *Handler) planLifecycle(ctx context.Context, repo metadata.Repository, p *lifecycle.Policy) ([]lifecycle.Expiry, error) {
	page, err := h.cfg.Registry.ListImages(ctx, repo, metadata.ImageQuery{TagStatus: metadata.TagStatusAny})
	if err != nil {
		return nil, err
	}
	imgs := make([]lifecycle.Image, 0, len(page.Images))
	for _, m := range page.Images {
		imgs = append(imgs, lifecycle.Image{Digest: m.Digest, Tags: m.Tags, PushedAt: m.PushedAt, LastPulledAt: h.cfg.Registry.LastPull(m)})
	}
	children, err := h.cfg.Registry.ManifestChildren(ctx, repo)
	if err != nil {
		return nil, err
	}
	return lifecycle.Plan(p, imgs, children, h.now()), nil
}

func (h *Handler) startLifecyclePolicyPreview(r *http.Request, info *auth.Info, body []byte) (any, error) {
	var in lifecycleInput
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	ctx := r.Context()
	repo, err := h.imageRepo(ctx, info, "ecr:StartLifecyclePolicyPreview", in.RegistryID, in.RepositoryName)
	if err != nil {
		return nil, err
	}
	p, err := lifecyclePolicyText(in.LifecyclePolicyText, false)
	if err != nil {
		return nil, err
	}
	var text string
	if p != nil {
		text = *in.LifecyclePolicyText
	} else {
		st, err := h.readLifecycle(ctx, repo.Name)
		if err != nil {
			return nil, err
		}
		text = st.PolicyText
		if p, err = lifecycle.Parse([]byte(text)); err != nil {
			return nil, invalidParameter("stored lifecycle policy is invalid: %v", err)
		}
	}
	exp, err := h.planLifecycle(ctx, repo, p)
	if err != nil {
		return nil, err
	}
	doc := previewDoc{PolicyText: text, Status: "COMPLETE", Results: []previewResult{}}
	for _, e := range exp {
		tags := e.Image.Tags
		if tags == nil {
			tags = []string{}
		}
		doc.Results = append(doc.Results, previewResult{
			ImageTags: tags, ImageDigest: e.Image.Digest, ImagePushedAt: imgTime(e.Image.PushedAt),
			Action: previewAction{Type: "EXPIRE"}, AppliedRulePriority: e.RulePriority, StorageClass: "STANDARD",
		})
	}
	data, _ := json.Marshal(doc)
	err = h.cfg.Registry.UpdateRepositoryDocs(ctx, repoName(repo), func(_ metadata.Repository, tx metadata.DocTx) error {
		return putDoc(tx, lifecycle.PreviewDocKind, repo.Name, data)
	})
	if err != nil {
		return nil, h.registryScope().repositoryErr(err, repoName(repo))
	}
	return map[string]any{
		"registryId": h.cfg.Registry.AccountID(), "repositoryName": repo.Name,
		"lifecyclePolicyText": text, "status": "IN_PROGRESS",
	}, nil
}

const maxPreviewPage = 100

func (h *Handler) getLifecyclePolicyPreview(r *http.Request, info *auth.Info, body []byte) (any, error) {
	var in struct {
		RegistryID     string    `json:"registryId"`
		RepositoryName string    `json:"repositoryName"`
		ImageIDs       []imageID `json:"imageIds"`
		NextToken      string    `json:"nextToken"`
		MaxResults     *int      `json:"maxResults"`
		Filter         *struct {
			TagStatus string `json:"tagStatus"`
		} `json:"filter"`
	}
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	ctx := r.Context()
	repo, err := h.imageRepo(ctx, info, "ecr:GetLifecyclePolicyPreview", in.RegistryID, in.RepositoryName)
	if err != nil {
		return nil, err
	}
	limit := maxPreviewPage
	if in.MaxResults != nil {
		if *in.MaxResults < 1 || *in.MaxResults > maxPreviewPage {
			return nil, invalidParameter("Invalid parameter at 'maxResults' failed to satisfy constraint: 'Member must have value between 1 and %d'", maxPreviewPage)
		}
		limit = *in.MaxResults
	}
	if in.ImageIDs != nil && (len(in.ImageIDs) < 1 || len(in.ImageIDs) > 100) {
		return nil, invalidParameter("Invalid parameter at 'imageIds' failed to satisfy constraint: 'Member must have length between 1 and 100'")
	}
	if in.ImageIDs != nil && (in.NextToken != "" || in.MaxResults != nil) {
		return nil, invalidParameter("Invalid parameter: nextToken and maxResults cannot be used with imageIds")
	}
	tagStatus := metadata.TagStatusAny
	if in.Filter != nil && in.Filter.TagStatus != "" {
		switch in.Filter.TagStatus {
		case metadata.TagStatusAny, metadata.TagStatusTagged, metadata.TagStatusUntagged:
			tagStatus = in.Filter.TagStatus
		default:
			return nil, invalidParameter("Invalid parameter at 'filter.tagStatus' failed to satisfy constraint: 'Member must satisfy enum value set: [TAGGED, UNTAGGED, ANY]'")
		}
	}
	start := 0
	if in.NextToken != "" {
		n, err := strconv.Atoi(in.NextToken)
		if err != nil || n < 0 {
			return nil, invalidParameter("Invalid parameter at 'nextToken': not a token this operation returned")
		}
		start = n
	}
	var doc previewDoc
	err = h.cfg.Registry.Docs().ViewDocs(ctx, func(tx metadata.DocTx) error {
		d, err := tx.Get(lifecycle.PreviewDocKind, repo.Name)
		if err != nil {
			return err
		}
		return json.Unmarshal(d.Data, &doc)
	})
	if errors.Is(err, metadata.ErrNotFound) {
		return nil, repoErr("LifecyclePolicyPreviewNotFoundException",
			"There is no preview result for the repository with name '%s' in the registry with id '%s'", repo.Name, h.cfg.Registry.AccountID())
	}
	if err != nil {
		return nil, err
	}
	// The summary counts every expiring image; the list is filtered.
	total := len(doc.Results)
	var sel []previewResult
	for _, res := range doc.Results {
		if !previewMatches(res, tagStatus, in.ImageIDs) {
			continue
		}
		sel = append(sel, res)
	}
	sort.SliceStable(sel, func(i, j int) bool { return sel[i].AppliedRulePriority < sel[j].AppliedRulePriority })
	out := map[string]any{
		"registryId": h.cfg.Registry.AccountID(), "repositoryName": repo.Name,
		"lifecyclePolicyText": doc.PolicyText, "status": doc.Status,
		"summary": map[string]any{"expiringImageTotalCount": total},
	}
	if start > len(sel) {
		start = len(sel)
	}
	end := min(start+limit, len(sel))
	page := sel[start:end]
	if page == nil {
		page = []previewResult{}
	}
	out["previewResults"] = page
	if end < len(sel) {
		out["nextToken"] = strconv.Itoa(end)
	}
	return out, nil
}

func previewMatches(res previewResult, tagStatus string, ids []imageID) bool {
	switch {
	case tagStatus == metadata.TagStatusTagged && len(res.ImageTags) == 0,
		tagStatus == metadata.TagStatusUntagged && len(res.ImageTags) > 0:
		return false
	}
	if ids == nil {
		return true
	}
	for _, id := range ids {
		if id.ImageDigest != "" && id.ImageDigest != res.ImageDigest {
			continue
		}
		if id.ImageTag != "" {
			found := false
			for _, t := range res.ImageTags {
				found = found || t == id.ImageTag
			}
			if !found {
				continue
			}
		}
		if id.ImageDigest != "" || id.ImageTag != "" {
			return true
		}
	}
	return false
}

func repoName(r metadata.Repository) registry.RepoName { return registry.RepoName(r.Name) }
