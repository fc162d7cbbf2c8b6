package kms

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cofferhq/coffer/internal/loop"
	"github.com/cofferhq/coffer/internal/metadata"
	"github.com/cofferhq/coffer/internal/policy"
)

// Rotation types (RotationType enum).
const (
	rotationAutomatic = "AUTOMATIC"
	rotationOnDemand  = "ON_DEMAND"
)

// usage counts encryptions per key material version against the version's
// use cap (STYLE: "each version has a use cap"). Uses are reserved from the
// store in blocks, so the hot path is one atomic decrement and the store is
// written once per block; a crash forfeits the rest of a block, which only
// makes the count pessimistic. When a version's reservations reach the cap
// the key rotates itself and new ciphertexts use the next version; old
// versions keep decrypting.
type usage struct {
	mu sync.Mutex
	m  map[matKey]*useCounter
}

type useCounter struct {
	mu   sync.Mutex   // serializes reservations
	left atomic.Int64 // uses left in this process's reserved blocks; negative while a reservation is due
}

func (s *Service) counter(k matKey) *useCounter {
	s.use.mu.Lock()
	defer s.use.mu.Unlock()
	c := s.use.m[k]
	if c == nil {
		c = &useCounter{}
		s.use.m[k] = c
	}
	return c
}

// consume counts one encryption under version k. It reports false when the
// version has reached its cap.
func (s *Service) consume(ctx context.Context, k matKey) (bool, error) {
	c := s.counter(k)
	if c.left.Add(-1) >= 0 {
		return true, nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.left.Load() >= 0 {
		// Another caller's reservation covered this use too.
		return true, nil
	}
	block := min(uint64(1)<<20, max(1, s.cfg.MaterialUseCap/16))
	var got uint64
	err := s.cfg.Docs.UpdateDocs(ctx, func(tx metadata.DocTx) error {
		key := materialKey(k.id, k.version)
		u, ver, err := getDoc[usageRecord](tx, kindUsage, key)
		if err != nil && !errors.Is(err, metadata.ErrNotFound) {
			return err
		}
		if u.Reserved >= s.cfg.MaterialUseCap {
			return nil
		}
		got = min(block, s.cfg.MaterialUseCap-u.Reserved)
		u.Reserved += got
		return putDoc(tx, kindUsage, key, u, ver)
	})
	if err != nil {
		return false, internal(err)
	}
	if got == 0 {
		return false, nil
	}
	c.left.Add(int64(got))
	return true, nil
}

// currentMaterial returns the material new ciphertexts of v use, after
// counting the use; a version at its cap rotates the key first.
func (s *Service) currentMaterial(ctx context.Context, v *keyView) (*material, error) {
	for range 3 {
		ok, err := s.consume(ctx, matKey{v.rec.ID, v.rec.Current})
		if err != nil {
			return nil, err
		}
		if ok {
			m, err := s.openMaterial(v, v.rec.Current)
			if err != nil {
				return nil, internal(err)
			}
			return m, nil
		}
		if err := s.rotate(ctx, v.rec.ID, v.rec.Current, rotationAutomatic); err != nil {
			return nil, err
		}
		s.log.InfoContext(ctx, "key material reached its use cap; rotated", "key_arn", v.arn, "version", v.rec.Current)
		if v, err = s.view(ctx, v.rec.ID); err != nil {
			return nil, internal(err)
		}
	}
	return nil, internal(errors.New("kms: key material use cap reached repeatedly"))
}

// rotate adds a material version to a key and makes it current, unless the
// current version is no longer from (someone rotated already; from 0
// always rotates). Existing versions are never touched.
func (s *Service) rotate(ctx context.Context, id KeyID, from uint32, kind string) error {
	now := s.now().UTC()
	err := s.update(ctx, func(tx metadata.DocTx) error {
		r, ver, err := getDoc[keyRecord](tx, kindKey, string(id))
		if errors.Is(err, metadata.ErrNotFound) {
			return errKeyGone
		}
		if err != nil {
			return err
		}
		if from != 0 && r.Current != from {
			return nil
		}
		next := r.Current + 1
		mat, err := s.newMaterialRecord(id, next, kind, now)
		if err != nil {
			return err
		}
		if err := putDoc(tx, kindMaterial, materialKey(id, next), mat, 0); err != nil {
			return err
		}
		r.Current = next
		switch kind {
		case rotationOnDemand:
			r.OnDemand++
		case rotationAutomatic:
			if r.Rotation && !r.NextRotation.After(now) {
				for !r.NextRotation.After(now) {
					r.NextRotation = r.NextRotation.AddDate(0, 0, int(r.RotationDays))
				}
			}
		}
		return putDoc(tx, kindKey, string(id), r, ver)
	})
	s.dropMaterials(id)
	return err
}

func rotationDays(p *int32) (int32, error) {
	if p == nil {
		return 365, nil
	}
	if *p < 90 || *p > 2560 {
		return 0, validation("rotationPeriodInDays", fmt.Sprint(*p), "Member must have value between 90 and 2560")
	}
	return *p, nil
}

// EnableKeyRotation turns on automatic rotation every RotationPeriodInDays
// (90 to 2560, default 365).
func (s *Service) EnableKeyRotation(ctx context.Context, c Caller, in *EnableKeyRotationInput) (_ *Empty, err error) {
	cl := s.begin(ctx, c, "EnableKeyRotation", false)
	defer func() { err = cl.end(err) }()
	if in == nil {
		in = &EnableKeyRotationInput{}
	}
	cl.param("keyId", in.KeyId)
	days, err := rotationDays(in.RotationPeriodInDays)
	if err != nil {
		return nil, err
	}
	cl.param("rotationPeriodInDays", days)
	_, err = s.mutateKey(ctx, cl, c, in.KeyId, "kms:EnableKeyRotation", enabledOnly, func(pc policy.Context) {
		pc["kms:rotationperiodindays"] = []string{fmt.Sprint(days)}
	}, nil, func(_ *keyView, r *keyRecord) error {
		r.Rotation, r.RotationDays = true, days
		r.NextRotation = s.now().UTC().AddDate(0, 0, int(days))
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &Empty{}, nil
}

// DisableKeyRotation turns automatic rotation off.
func (s *Service) DisableKeyRotation(ctx context.Context, c Caller, in *KeyIDInput) (_ *Empty, err error) {
	cl := s.begin(ctx, c, "DisableKeyRotation", false)
	defer func() { err = cl.end(err) }()
	if in == nil {
		in = &KeyIDInput{}
	}
	cl.param("keyId", in.KeyId)
	_, err = s.mutateKey(ctx, cl, c, in.KeyId, "kms:DisableKeyRotation", enabledOnly, nil, nil, func(_ *keyView, r *keyRecord) error {
		r.Rotation, r.RotationDays, r.NextRotation = false, 0, time.Time{}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &Empty{}, nil
}

// GetKeyRotationStatus reports whether automatic rotation is on, its
// period and the next rotation date.
func (s *Service) GetKeyRotationStatus(ctx context.Context, c Caller, in *KeyIDInput) (_ *GetKeyRotationStatusOutput, err error) {
	cl := s.begin(ctx, c, "GetKeyRotationStatus", true)
	defer func() { err = cl.end(err) }()
	if in == nil {
		in = &KeyIDInput{}
	}
	cl.param("keyId", in.KeyId)
	v, err := s.resolve(ctx, "keyId", in.KeyId, refAnyForm)
	if err != nil {
		return nil, err
	}
	cl.key(v)
	if err := s.authorize(ctx, authz{caller: c, action: "kms:GetKeyRotationStatus", view: v}); err != nil {
		return nil, err
	}
	out := &GetKeyRotationStatusOutput{KeyRotationEnabled: v.rec.Rotation, KeyId: v.arn}
	if v.rec.Rotation {
		d := v.rec.RotationDays
		out.RotationPeriodInDays = &d
		out.NextRotationDate = NewTimestamp(v.rec.NextRotation)
	}
	return out, nil
}

// RotateKeyOnDemand adds a new material version now (at most 25 times per
// key); ciphertexts under older versions keep decrypting.
func (s *Service) RotateKeyOnDemand(ctx context.Context, c Caller, in *KeyIDInput) (_ *KeyIDOutput, err error) {
	cl := s.begin(ctx, c, "RotateKeyOnDemand", false)
	defer func() { err = cl.end(err) }()
	if in == nil {
		in = &KeyIDInput{}
	}
	cl.param("keyId", in.KeyId)
	v, err := s.resolve(ctx, "keyId", in.KeyId, refAnyForm)
	if err != nil {
		return nil, err
	}
	cl.key(v)
	if err := s.authorize(ctx, authz{caller: c, action: "kms:RotateKeyOnDemand", view: v}); err != nil {
		return nil, err
	}
	if err := checkState(v, enabledOnly); err != nil {
		return nil, err
	}
	if v.rec.Manager == managerAWS {
		return nil, errorf(codeUnsupported, fmt.Sprintf("%s is an AWS managed key: it rotates automatically and cannot be rotated on demand.", v.arn))
	}
	if v.rec.OnDemand >= maxOnDemand {
		return nil, errorf(codeLimitExceeded, fmt.Sprintf("%s has been rotated on demand %d times, the limit.", v.arn, maxOnDemand))
	}
	if err := s.rotate(ctx, v.rec.ID, 0, rotationOnDemand); err != nil {
		return nil, asError(err)
	}
	return &KeyIDOutput{KeyId: v.arn}, nil
}

// ListKeyRotations lists a key's rotations (ROTATIONS_ONLY, the default) or
// all of its material versions (ALL_KEY_MATERIAL), oldest first.
func (s *Service) ListKeyRotations(ctx context.Context, c Caller, in *ListKeyRotationsInput) (_ *ListKeyRotationsOutput, err error) {
	cl := s.begin(ctx, c, "ListKeyRotations", true)
	defer func() { err = cl.end(err) }()
	if in == nil {
		in = &ListKeyRotationsInput{}
	}
	cl.param("keyId", in.KeyId)
	include := orDefault(in.IncludeKeyMaterial, "ROTATIONS_ONLY")
	if include != "ROTATIONS_ONLY" && include != "ALL_KEY_MATERIAL" {
		return nil, validation("includeKeyMaterial", include, "Member must satisfy enum value set: [ALL_KEY_MATERIAL, ROTATIONS_ONLY]")
	}
	v, err := s.resolve(ctx, "keyId", in.KeyId, refAnyForm)
	if err != nil {
		return nil, err
	}
	cl.key(v)
	if err := s.authorize(ctx, authz{caller: c, action: "kms:ListKeyRotations", view: v}); err != nil {
		return nil, err
	}
	mats := slices.Clone(v.mats)
	if include == "ROTATIONS_ONLY" {
		mats = slices.DeleteFunc(mats, func(m materialRecord) bool { return m.Rotation == "" })
	}
	start, end, next, err := page(len(mats), func(i int) string { return fmt.Sprintf("%010d", mats[i].Version) }, in.Limit, in.Marker, 100)
	if err != nil {
		return nil, err
	}
	out := &ListKeyRotationsOutput{Rotations: []RotationsListEntry{}, NextMarker: next, Truncated: next != ""}
	for _, m := range mats[start:end] {
		e := RotationsListEntry{KeyId: string(v.rec.ID), KeyMaterialId: m.ID, KeyMaterialState: "NON_CURRENT"}
		if m.Version == v.rec.Current {
			e.KeyMaterialState = "CURRENT"
		}
		if m.Rotation != "" {
			e.RotationDate, e.RotationType = NewTimestamp(m.Created), m.Rotation
		}
		out.Rotations = append(out.Rotations, e)
	}
	return out, nil
}

// deleteKey deletes a key with its material, usage counters, grants and
// aliases, in one transaction; errKeyGone if it does not exist.
func (s *Service) deleteKey(ctx context.Context, id KeyID) error {
	err := s.update(ctx, func(tx metadata.DocTx) error {
		if err := tx.Delete(kindKey, string(id)); errors.Is(err, metadata.ErrNotFound) {
			return errKeyGone
		} else if err != nil {
			return err
		}
		for _, kind := range []string{kindMaterial, kindUsage, kindGrant} {
			docs, err := tx.List(kind, string(id)+"/")
			if err != nil {
				return err
			}
			for _, d := range docs {
				if err := tx.Delete(kind, d.Key); err != nil {
					return err
				}
			}
		}
		aliases, err := listDocs[aliasRecord](tx, kindAlias, "")
		if err != nil {
			return err
		}
		for _, a := range aliases {
			if a.Target == id {
				if err := tx.Delete(kindAlias, a.Name); err != nil {
					return err
				}
			}
		}
		return nil
	})
	s.dropMaterials(id)
	if err == nil {
		s.log.InfoContext(ctx, "deleted a key whose scheduled deletion date passed", "key_arn", s.keyARN(id))
	}
	return err
}

// Sweep deletes keys whose scheduled deletion date has passed and rotates
// keys whose automatic rotation is due. Run calls it periodically; keys due
// for deletion are also deleted by the first call that touches them.
func (s *Service) Sweep(ctx context.Context) (deleted, rotated int, err error) {
	var recs []keyRecord
	if err := s.cfg.Docs.ViewDocs(ctx, func(tx metadata.DocTx) error {
		var e error
		recs, e = listDocs[keyRecord](tx, kindKey, "")
		return e
	}); err != nil {
		return 0, 0, err
	}
	now := s.now()
	var errs []error
	for _, r := range recs {
		switch {
		case r.State == statePendingDeletion && !now.Before(r.DeletionDate):
			if err := s.deleteKey(ctx, r.ID); err != nil && !errors.Is(err, errKeyGone) {
				errs = append(errs, err)
				continue
			}
			deleted++
		case r.Rotation && r.State == stateEnabled && !now.Before(r.NextRotation):
			if err := s.rotate(ctx, r.ID, r.Current, rotationAutomatic); err != nil && !errors.Is(err, errKeyGone) {
				errs = append(errs, err)
				continue
			}
			rotated++
		}
	}
	return deleted, rotated, errors.Join(errs...)
}

// Run calls Sweep every interval until ctx is done.
func (s *Service) Run(ctx context.Context, every time.Duration) {
	loop.Every(ctx, every, func(ctx context.Context) {
		if _, _, err := s.Sweep(ctx); err != nil && ctx.Err() == nil {
			s.log.ErrorContext(ctx, "kms sweep failed", "error", err)
		}
	})
}
