package ecrapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/cofferhq/coffer/internal/auth"
	"github.com/cofferhq/coffer/internal/kms"
	"github.com/cofferhq/coffer/internal/metadata"
	"github.com/cofferhq/coffer/internal/registry"
)

// KMS-encrypted repositories (SPEC ENC-04..06, FLOW-01/02/08, GRANT,
// PERM-05/06, TRBL-01). CreateRepository checks the key with DescribeKey
// and creates two grants on it, both with the CALLER's identity through ECR
// (kms:ViaService ecr.<region>.amazonaws.com); DeleteRepository retires
// them, again with the caller's identity.

// kindKMSGrants is the document that records a KMS repository's grants.
// Key: repository name; JSON kmsGrantsDoc.
const kindKMSGrants = "ecr.kmsgrants"

type kmsGrantsDoc struct {
	KeyARN   string   `json:"keyArn"`
	GrantIDs []string `json:"grantIds"`
}

// The two grants a KMS repository holds on its key (SPEC section 2, GRANT):
// one for the registry service that asks for data keys on push (FLOW-03/04),
// one for the storage side that opens them on pull (FLOW-05..07). A push
// that reads stored content back (a multi-part upload's join, a mount)
// needs the second as well.
var repositoryGrants = []struct {
	suffix string
	ops    []string
}{
	{"registry", []string{"GenerateDataKey", "GenerateDataKeyWithoutPlaintext", "Encrypt", "ReEncryptTo", "DescribeKey"}},
	{"storage", []string{"Decrypt", "ReEncryptFrom", "DescribeKey"}},
}

// kmsException is ECR's KmsException {message, kmsError}.
func kmsException(msg string, err error) *Error {
	e := &Error{Type: "KmsException", Status: http.StatusBadRequest, Message: msg}
	var ke *kms.Error
	if errors.As(err, &ke) {
		e.Fields = map[string]any{"kmsError": ke.Code}
	}
	return e
}

// userKMSCaller is the caller of the control-plane KMS calls: the ECR
// caller's own identity, through ECR.
func (h *Handler) userKMSCaller(info *auth.Info) kms.Caller {
	return kms.Caller{Principal: info.Principal, ViaService: registry.ECRViaService(h.cfg.Registry.Region()), InvokedBy: registry.ECRServicePrincipal}
}

// serviceKMSCaller is the registry itself, the grants' retiring principal:
// it cleans up the grants of a creation that failed half-way.
func (h *Handler) serviceKMSCaller() kms.Caller {
	via := registry.ECRViaService(h.cfg.Registry.Region())
	return kms.Caller{Principal: auth.Principal{Type: "AWSService", AccountID: h.cfg.Registry.AccountID(), PrincipalID: registry.ECRServicePrincipal},
		ViaService: via, InvokedBy: via}
}

// provisionKMS runs FLOW-01/02 for a new repository: DescribeKey on the
// configured key (alias/aws/ecr when none, which KMS creates on first use),
// checks that the key can protect the repository, then creates the two
// grants. It returns the key ARN and the grant IDs. On failure no grant is
// left behind.
func (h *Handler) provisionKMS(ctx context.Context, info *auth.Info, name registry.RepoName, keyRef string) (kmsGrantsDoc, error) {
	if h.cfg.KMS == nil {
		return kmsGrantsDoc{}, &Error{Type: "UnsupportedOperationException", Status: http.StatusBadRequest, Message: "this Coffer has no KMS configured for KMS-encrypted repositories"}
	}
	if keyRef == "" {
		keyRef = "alias/aws/ecr"
	}
	c := h.userKMSCaller(info)
	region := h.cfg.Registry.Region()
	d, err := h.cfg.KMS.DescribeKey(ctx, c, &kms.DescribeKeyInput{KeyId: keyRef})
	if err != nil {
		return kmsGrantsDoc{}, kmsException(fmt.Sprintf("The KMS key %s cannot be used for repository %s: %v", keyRef, name, err), err)
	}
	md := d.KeyMetadata
	switch {
	case md == nil:
		return kmsGrantsDoc{}, kmsException(fmt.Sprintf("KMS returned no metadata for key %s", keyRef), nil)
	case !strings.HasPrefix(md.Arn, "arn:") || strings.Split(md.Arn, ":")[3] != region:
		return kmsGrantsDoc{}, kmsException(fmt.Sprintf("The KMS key %s is not in the repository's region %s", md.Arn, region), nil)
	case !md.Enabled || md.KeyState != "Enabled":
		return kmsGrantsDoc{}, kmsException(fmt.Sprintf("The KMS key %s is not enabled (key state %s)", md.Arn, md.KeyState), nil)
	case md.KeySpec != "SYMMETRIC_DEFAULT" || md.KeyUsage != "ENCRYPT_DECRYPT":
		return kmsGrantsDoc{}, kmsException(fmt.Sprintf("The KMS key %s is not a symmetric encryption key (key spec %s, usage %s)", md.Arn, md.KeySpec, md.KeyUsage), nil)
	}
	doc := kmsGrantsDoc{KeyARN: md.Arn}
	grantee := registry.ECRViaService(region)
	repoARN := h.cfg.Registry.RepositoryARN(string(name))
	for _, g := range repositoryGrants {
		out, err := h.cfg.KMS.CreateGrant(ctx, c, &kms.CreateGrantInput{
			KeyId: md.Arn, GranteePrincipal: grantee, RetiringPrincipal: grantee, Operations: g.ops,
			Constraints: &kms.GrantConstraints{EncryptionContextSubset: map[string]string{"aws:ecr:arn": repoARN}},
		})
		if err != nil {
			h.retireQuietly(ctx, doc)
			return kmsGrantsDoc{}, kmsException(fmt.Sprintf("Could not create the %s grant on the KMS key %s for repository %s: %v", g.suffix, md.Arn, name, err), err)
		}
		doc.GrantIDs = append(doc.GrantIDs, out.GrantId)
	}
	return doc, nil
}

// retireQuietly retires grants as their retiring principal (the registry)
// after a creation that failed; failures are logged.
func (h *Handler) retireQuietly(ctx context.Context, doc kmsGrantsDoc) {
	ctx = context.WithoutCancel(ctx)
	for _, id := range doc.GrantIDs {
		if _, err := h.cfg.KMS.RetireGrant(ctx, h.serviceKMSCaller(), &kms.RetireGrantInput{KeyId: doc.KeyARN, GrantId: id}); err != nil {
			h.cfg.Log.ErrorContext(ctx, "could not retire the grant of a repository that was not created", "key_arn", doc.KeyARN, "grant_id", id, "error", err)
		}
	}
}

func putKMSGrants(tx metadata.DocTx, name registry.RepoName, doc kmsGrantsDoc) error {
	data, err := json.Marshal(doc)
	if err != nil {
		return err
	}
	if err := tx.Delete(kindKMSGrants, string(name)); err != nil && !errors.Is(err, metadata.ErrNotFound) {
		return err
	}
	_, err = tx.Put(metadata.Document{Kind: kindKMSGrants, Key: string(name), Data: data})
	return err
}

// takeKMSGrants reads and deletes a repository's grants document inside the
// delete transaction; ok is false when there is none.
func takeKMSGrants(tx metadata.DocTx, name registry.RepoName) (kmsGrantsDoc, bool, error) {
	d, err := tx.Get(kindKMSGrants, string(name))
	if errors.Is(err, metadata.ErrNotFound) {
		return kmsGrantsDoc{}, false, nil
	}
	if err != nil {
		return kmsGrantsDoc{}, false, err
	}
	var doc kmsGrantsDoc
	if err := json.Unmarshal(d.Data, &doc); err != nil {
		return kmsGrantsDoc{}, false, fmt.Errorf("grants document of %s: %w", name, err)
	}
	return doc, true, tx.Delete(kindKMSGrants, string(name))
}

// retireRepositoryGrants runs FLOW-08 with the caller's identity after the
// repository is gone. If any grant does not retire, the caller gets ECR's
// partial-success error (SPEC TRBL-01); the repository stays deleted.
func (h *Handler) retireRepositoryGrants(ctx context.Context, info *auth.Info, name registry.RepoName, doc kmsGrantsDoc) error {
	ctx = context.WithoutCancel(ctx)
	var first error
	for _, id := range doc.GrantIDs {
		_, err := h.cfg.KMS.RetireGrant(ctx, h.userKMSCaller(info), &kms.RetireGrantInput{KeyId: doc.KeyARN, GrantId: id})
		if errors.Is(err, kms.ErrNotFound) {
			continue // revoked or retired already: nothing is left behind
		}
		if err != nil && first == nil {
			first = err
		}
	}
	if first == nil {
		return nil
	}
	h.cfg.Log.WarnContext(ctx, "repository deleted but its KMS grants were not retired", "repository", name, "key_arn", doc.KeyARN, "grant_ids", doc.GrantIDs, "error", first)
	return kmsException(fmt.Sprintf("The repository [%s] has been deleted successfully but the grants created by the kmsKey [%s] failed to be retired", name, doc.KeyARN), first)
}
