package kms

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/cofferhq/coffer/internal/metadata"
)

// managedServices are the services whose AWS managed key Coffer creates on
// demand, with the key's description. Only ECR's (SPEC KMS-01/02).
var managedServices = map[string]string{
	"ecr": "Default key that protects my ECR data when no other key is defined",
}

// managedAliasService returns the service of an AWS managed key alias
// ("alias/aws/ecr" -> "ecr").
func managedAliasService(alias string) (string, bool) {
	svc, ok := strings.CutPrefix(alias, awsAliasPrefix)
	if !ok {
		return "", false
	}
	_, known := managedServices[svc]
	return svc, known
}

// managedKeyPolicy is the key policy of an AWS managed key, with AWS's
// semantics: every principal of the account may use the key through the
// service (kms:ViaService, kms:CallerAccount), the account may read its
// metadata and revoke grants, and nobody may change its policy, disable
// it, rotate it on demand or schedule its deletion: those actions are in
// no statement, so the key-policy gate refuses them to everyone, the
// account root user included, with AccessDeniedException.
func (s *Service) managedKeyPolicy(service string) string {
	return fmt.Sprintf(`{
  "Version" : "2012-10-17",
  "Id" : "auto-%[1]s-1",
  "Statement" : [ {
    "Sid" : "Allow access through Amazon %[2]s for all principals in the account that are authorized to use Amazon %[2]s",
    "Effect" : "Allow",
    "Principal" : {
      "AWS" : "*"
    },
    "Action" : [ "kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:CreateGrant", "kms:DescribeKey" ],
    "Resource" : "*",
    "Condition" : {
      "StringEquals" : {
        "kms:CallerAccount" : "%[3]s",
        "kms:ViaService" : "%[1]s.%[4]s.amazonaws.com"
      }
    }
  }, {
    "Sid" : "Allow direct access to key metadata to the account",
    "Effect" : "Allow",
    "Principal" : {
      "AWS" : "%[5]s"
    },
    "Action" : [ "kms:Describe*", "kms:Get*", "kms:List*", "kms:RevokeGrant" ],
    "Resource" : "*"
  } ]
}`, service, strings.ToUpper(service), s.cfg.AccountID, s.cfg.Region, s.rootArn)
}

// ManagedKey returns the ARN of the AWS managed key of a service ("ecr"),
// creating it and its alias (alias/aws/ecr) the first time anything asks
// for it (SPEC KMS-01/02). Concurrent first calls create one key.
func (s *Service) ManagedKey(ctx context.Context, service string) (string, error) {
	if _, ok := managedServices[service]; !ok {
		return "", errorf(codeNotFound, fmt.Sprintf("Alias %s is not found.", s.aliasARN(awsAliasPrefix+service)))
	}
	id, err := s.resolveAlias(ctx, awsAliasPrefix+service)
	if errors.Is(err, errKeyGone) {
		id, err = s.ensureManagedKey(ctx, service)
	}
	if err != nil {
		return "", asError(err)
	}
	return s.keyARN(id), nil
}

// ensureManagedKey creates the AWS managed key of service unless its alias
// exists, in one transaction, and returns the key ID.
func (s *Service) ensureManagedKey(ctx context.Context, service string) (KeyID, error) {
	alias := awsAliasPrefix + service
	id, err := newKeyID()
	if err != nil {
		return "", err
	}
	now := s.now().UTC()
	mat, err := s.newMaterialRecord(id, 1, "", now)
	if err != nil {
		return "", err
	}
	rec := keyRecord{ID: id, Created: now, Description: managedServices[service], State: stateEnabled,
		Manager: managerAWS, Service: service, Policy: s.managedKeyPolicy(service), Current: 1,
		// AWS managed keys rotate every year, and that cannot be changed.
		Rotation: true, RotationDays: 365, NextRotation: now.AddDate(0, 0, 365)}
	var out KeyID
	err = s.update(ctx, func(tx metadata.DocTx) error {
		a, _, err := getDoc[aliasRecord](tx, kindAlias, alias)
		if err == nil {
			out = a.Target
			return nil
		}
		if !errors.Is(err, metadata.ErrNotFound) {
			return err
		}
		if err := putDoc(tx, kindKey, string(id), rec, 0); err != nil {
			return err
		}
		if err := putDoc(tx, kindMaterial, materialKey(id, 1), mat, 0); err != nil {
			return err
		}
		out = id
		return putDoc(tx, kindAlias, alias, aliasRecord{Name: alias, Target: id, Created: now, Updated: now}, 0)
	})
	if err != nil {
		return "", err
	}
	if out == id {
		s.log.InfoContext(ctx, "created the AWS managed key", "alias", alias, "key_arn", s.keyARN(id))
	}
	return out, nil
}
