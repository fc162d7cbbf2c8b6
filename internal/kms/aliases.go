package kms

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/cofferhq/coffer/internal/metadata"
)

// CreateAlias gives a key a friendly name. It needs kms:CreateAlias on the
// alias (IAM) and on the key (key policy and IAM). Names under alias/aws/
// are reserved for AWS managed keys (InvalidAliasNameException).
func (s *Service) CreateAlias(ctx context.Context, c Caller, in *AliasInput) (_ *Empty, err error) {
	cl := s.begin(ctx, c, "CreateAlias", false)
	defer func() { err = cl.end(err) }()
	if in == nil {
		in = &AliasInput{}
	}
	cl.param("aliasName", in.AliasName)
	cl.param("targetKeyId", in.TargetKeyId)
	if err := checkNewAliasName(in.AliasName); err != nil {
		return nil, err
	}
	v, err := s.resolve(ctx, "targetKeyId", in.TargetKeyId, refKeyOnly)
	if err != nil {
		return nil, err
	}
	cl.key(v)
	aliasARN := s.aliasARN(in.AliasName)
	if err := s.authorize(ctx, authz{caller: c, action: "kms:CreateAlias", view: v, res: aliasARN, iamOnly: true}); err != nil {
		return nil, err
	}
	if err := s.authorize(ctx, authz{caller: c, action: "kms:CreateAlias", view: v}); err != nil {
		return nil, err
	}
	if err := checkState(v, notPending); err != nil {
		return nil, err
	}
	now := s.now().UTC()
	err = s.update(ctx, func(tx metadata.DocTx) error {
		if _, err := tx.Get(kindKey, string(v.rec.ID)); err != nil {
			return err
		}
		err := putDoc(tx, kindAlias, in.AliasName, aliasRecord{Name: in.AliasName, Target: v.rec.ID, Created: now, Updated: now}, 0)
		if errors.Is(err, metadata.ErrExists) {
			return errorf(codeAlreadyExists, fmt.Sprintf("An alias with the name %s already exists", aliasARN))
		}
		return err
	})
	if errors.Is(err, metadata.ErrNotFound) {
		return nil, errorf(codeNotFound, fmt.Sprintf("Key '%s' does not exist", v.arn))
	}
	if err != nil {
		return nil, err
	}
	return &Empty{}, nil
}

// UpdateAlias points an existing alias at another key. It needs
// kms:UpdateAlias on the alias, the current key and the new key.
func (s *Service) UpdateAlias(ctx context.Context, c Caller, in *AliasInput) (_ *Empty, err error) {
	cl := s.begin(ctx, c, "UpdateAlias", false)
	defer func() { err = cl.end(err) }()
	if in == nil {
		in = &AliasInput{}
	}
	cl.param("aliasName", in.AliasName)
	cl.param("targetKeyId", in.TargetKeyId)
	if err := checkAliasPattern("aliasName", in.AliasName); err != nil {
		return nil, err
	}
	aliasARN := s.aliasARN(in.AliasName)
	oldID, err := s.resolveAlias(ctx, in.AliasName)
	if errors.Is(err, errKeyGone) {
		return nil, errorf(codeNotFound, fmt.Sprintf("Alias %s is not found.", aliasARN))
	}
	if err != nil {
		return nil, err
	}
	old, err := s.resolveRef(ctx, keyRef{id: oldID})
	if err != nil {
		return nil, err
	}
	v, err := s.resolve(ctx, "targetKeyId", in.TargetKeyId, refKeyOnly)
	if err != nil {
		return nil, err
	}
	cl.key(v)
	for _, a := range []authz{
		{caller: c, action: "kms:UpdateAlias", view: v, res: aliasARN, iamOnly: true},
		{caller: c, action: "kms:UpdateAlias", view: old},
		{caller: c, action: "kms:UpdateAlias", view: v},
	} {
		if err := s.authorize(ctx, a); err != nil {
			return nil, err
		}
	}
	if _, aws := managedAliasService(in.AliasName); aws || old.rec.Manager == managerAWS {
		return nil, errorf(codeUnsupported, fmt.Sprintf("Alias %s belongs to an AWS managed key and cannot be changed.", aliasARN))
	}
	if v.rec.Manager == managerAWS {
		return nil, errorf(codeUnsupported, fmt.Sprintf("%s is an AWS managed key: an alias cannot be pointed at it.", v.arn))
	}
	if err := checkState(v, notPending); err != nil {
		return nil, err
	}
	err = s.update(ctx, func(tx metadata.DocTx) error {
		a, ver, err := getDoc[aliasRecord](tx, kindAlias, in.AliasName)
		if errors.Is(err, metadata.ErrNotFound) {
			return errorf(codeNotFound, fmt.Sprintf("Alias %s is not found.", aliasARN))
		}
		if err != nil {
			return err
		}
		a.Target, a.Updated = v.rec.ID, s.now().UTC()
		return putDoc(tx, kindAlias, in.AliasName, a, ver)
	})
	if err != nil {
		return nil, err
	}
	return &Empty{}, nil
}

// DeleteAlias deletes an alias; the key is unaffected. It needs
// kms:DeleteAlias on the alias and on its key.
func (s *Service) DeleteAlias(ctx context.Context, c Caller, in *DeleteAliasInput) (_ *Empty, err error) {
	cl := s.begin(ctx, c, "DeleteAlias", false)
	defer func() { err = cl.end(err) }()
	if in == nil {
		in = &DeleteAliasInput{}
	}
	cl.param("aliasName", in.AliasName)
	if err := checkAliasPattern("aliasName", in.AliasName); err != nil {
		return nil, err
	}
	aliasARN := s.aliasARN(in.AliasName)
	id, err := s.resolveAlias(ctx, in.AliasName)
	if errors.Is(err, errKeyGone) {
		return nil, errorf(codeNotFound, fmt.Sprintf("Alias %s is not found.", aliasARN))
	}
	if err != nil {
		return nil, err
	}
	v, err := s.resolveRef(ctx, keyRef{id: id})
	if err != nil {
		return nil, err
	}
	cl.key(v)
	if err := s.authorize(ctx, authz{caller: c, action: "kms:DeleteAlias", view: v, res: aliasARN, iamOnly: true}); err != nil {
		return nil, err
	}
	if err := s.authorize(ctx, authz{caller: c, action: "kms:DeleteAlias", view: v}); err != nil {
		return nil, err
	}
	if _, aws := managedAliasService(in.AliasName); aws || v.rec.Manager == managerAWS {
		return nil, errorf(codeUnsupported, fmt.Sprintf("Alias %s belongs to an AWS managed key and cannot be deleted.", aliasARN))
	}
	err = s.update(ctx, func(tx metadata.DocTx) error { return tx.Delete(kindAlias, in.AliasName) })
	if errors.Is(err, metadata.ErrNotFound) {
		return nil, errorf(codeNotFound, fmt.Sprintf("Alias %s is not found.", aliasARN))
	}
	if err != nil {
		return nil, err
	}
	return &Empty{}, nil
}

// ListAliases lists the account's aliases in this region, optionally only
// those of one key. It needs kms:ListAliases (IAM only).
func (s *Service) ListAliases(ctx context.Context, c Caller, in *ListAliasesInput) (_ *ListAliasesOutput, err error) {
	cl := s.begin(ctx, c, "ListAliases", true)
	defer func() { err = cl.end(err) }()
	if in == nil {
		in = &ListAliasesInput{}
	}
	if in.KeyId != "" {
		cl.param("keyId", in.KeyId)
	}
	if err := s.authorize(ctx, authz{caller: c, action: "kms:ListAliases", res: "*"}); err != nil {
		return nil, err
	}
	var filter KeyID
	if in.KeyId != "" {
		v, err := s.resolve(ctx, "keyId", in.KeyId, refKeyOnly)
		if err != nil {
			return nil, err
		}
		cl.key(v)
		filter = v.rec.ID
	}
	var all []aliasRecord
	if err := s.cfg.Docs.ViewDocs(ctx, func(tx metadata.DocTx) error {
		all, err = listDocs[aliasRecord](tx, kindAlias, "")
		return err
	}); err != nil {
		return nil, internal(err)
	}
	if filter != "" {
		all = slices.DeleteFunc(all, func(a aliasRecord) bool { return a.Target != filter })
	}
	start, end, next, err := page(len(all), func(i int) string { return all[i].Name }, in.Limit, in.Marker, 50)
	if err != nil {
		return nil, err
	}
	out := &ListAliasesOutput{Aliases: []AliasListEntry{}, NextMarker: next, Truncated: next != ""}
	for _, a := range all[start:end] {
		out.Aliases = append(out.Aliases, AliasListEntry{AliasName: a.Name, AliasArn: s.aliasARN(a.Name), TargetKeyId: string(a.Target),
			CreationDate: NewTimestamp(a.Created), LastUpdatedDate: NewTimestamp(a.Updated)})
	}
	return out, nil
}
