package kms

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cofferhq/coffer/internal/metadata"
	"github.com/cofferhq/coffer/internal/policy"
)

// Document kinds in the metadata store. Keys are listed by prefix, so a
// key's materials, usage counters and grants sort under "<key-id>/".
const (
	kindKey      = "kms.key"      // key: key ID
	kindMaterial = "kms.material" // key: key ID "/" version (10 digits); inserted once, never rewritten
	kindUsage    = "kms.usage"    // key: key ID "/" version; encryptions reserved under that version
	kindAlias    = "kms.alias"    // key: alias name
	kindGrant    = "kms.grant"    // key: key ID "/" grant ID
)

// Key states Coffer uses (KeyState enum).
const (
	stateEnabled         = "Enabled"
	stateDisabled        = "Disabled"
	statePendingDeletion = "PendingDeletion"
)

// Key managers.
const (
	managerCustomer = "CUSTOMER"
	managerAWS      = "AWS"
)

// keyRecord is a key's stored metadata. Its material lives in
// materialRecords.
type keyRecord struct {
	ID           KeyID     `json:"id"`
	Created      time.Time `json:"created"`
	Description  string    `json:"description,omitempty"`
	State        string    `json:"state"`
	Manager      string    `json:"manager"`
	Service      string    `json:"service,omitempty"` // AWS managed keys: the service, e.g. "ecr"
	Policy       string    `json:"policy"`
	Tags         []Tag     `json:"tags,omitempty"` // sorted by TagKey
	Current      uint32    `json:"current"`        // material version new ciphertexts use
	Rotation     bool      `json:"rotation,omitempty"`
	RotationDays int32     `json:"rotationDays,omitempty"`
	NextRotation time.Time `json:"nextRotation,omitzero"`
	OnDemand     int       `json:"onDemand,omitempty"` // on-demand rotations so far
	DeletionDate time.Time `json:"deletionDate,omitzero"`
	PendingDays  int32     `json:"pendingDays,omitempty"`
}

// materialRecord is one version of a key's material, sealed under the
// service root key. It is written once and never changed.
type materialRecord struct {
	Version  uint32    `json:"version"`
	ID       string    `json:"id"` // KeyMaterialId, 64 hex
	Sealed   []byte    `json:"sealed"`
	Created  time.Time `json:"created"`
	Rotation string    `json:"rotation,omitempty"` // "", AUTOMATIC or ON_DEMAND
}

type usageRecord struct {
	Reserved uint64 `json:"reserved"`
}

type aliasRecord struct {
	Name    string    `json:"name"`
	Target  KeyID     `json:"target"`
	Created time.Time `json:"created"`
	Updated time.Time `json:"updated"`
}

type grantRecord struct {
	ID          string            `json:"id"`
	KeyID       KeyID             `json:"key"`
	Name        string            `json:"name,omitempty"`
	Created     time.Time         `json:"created"`
	Grantee     string            `json:"grantee"`
	Retiring    string            `json:"retiring,omitempty"`
	Issuer      string            `json:"issuer"`
	Operations  []string          `json:"operations"`
	Constraints *GrantConstraints `json:"constraints,omitempty"`
}

func materialKey(id KeyID, version uint32) string {
	return fmt.Sprintf("%s/%010d", id, version)
}

func getDoc[T any](tx metadata.DocTx, kind, key string) (T, int64, error) {
	var v T
	d, err := tx.Get(kind, key)
	if err != nil {
		return v, 0, err
	}
	if err := json.Unmarshal(d.Data, &v); err != nil {
		return v, 0, fmt.Errorf("document %s/%s does not decode: %w", kind, key, err)
	}
	return v, d.Version, nil
}

func putDoc(tx metadata.DocTx, kind, key string, v any, version int64) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = tx.Put(metadata.Document{Kind: kind, Key: key, Data: data, Version: version})
	return err
}

func listDocs[T any](tx metadata.DocTx, kind, prefix string) ([]T, error) {
	docs, err := tx.List(kind, prefix)
	if err != nil {
		return nil, err
	}
	out := make([]T, 0, len(docs))
	for _, d := range docs {
		var v T
		if err := json.Unmarshal(d.Data, &v); err != nil {
			return nil, fmt.Errorf("document %s/%s does not decode: %w", kind, d.Key, err)
		}
		out = append(out, v)
	}
	return out, nil
}

// keyView is everything a call needs about one key, as of one snapshot: the
// record, its parsed policy, its grants (indexed by grantee) and its
// material records. It is immutable once built.
type keyView struct {
	rec    keyRecord
	arn    string
	policy *policy.Policy
	grants []*grantRecord // sorted by ID
	idx    map[string]*granteeGrants
	mats   []materialRecord // ascending version
	gen    uint64
}

func (v *keyView) material(version uint32) (materialRecord, bool) {
	i, ok := slices.BinarySearchFunc(v.mats, version, func(m materialRecord, t uint32) int {
		switch {
		case m.Version < t:
			return -1
		case m.Version > t:
			return 1
		}
		return 0
	})
	if !ok {
		return materialRecord{}, false
	}
	return v.mats[i], true
}

// cache holds key views and alias resolutions, valid while no write has
// happened since they were read (gen), and the unwrapped key material.
//
// Every write bumps gen after its transaction commits, so the first call
// after a RevokeGrant, DisableKey or PutKeyPolicy returns reloads the key
// from the store: grant and key-state checks run on every call against
// state no older than the last completed write (SPEC GRANT-04). A reader
// that loaded a snapshot before a write stores its view under the old gen,
// where no later call will use it. Replicas sharing a database call
// Invalidate on a change notification (issue #9).
type cache struct {
	gen     atomic.Uint64
	mu      sync.RWMutex
	keys    map[KeyID]*keyView
	aliases map[string]aliasEntry

	matMu sync.RWMutex
	mats  map[matKey]*material
}

type aliasEntry struct {
	target KeyID
	gen    uint64
}

type matKey struct {
	id      KeyID
	version uint32
}

// Invalidate drops every cached key view and alias. Replicas that share a
// metadata store call it when another node writes KMS state.
func (s *Service) Invalidate() {
	s.c.gen.Add(1)
	s.c.matMu.Lock()
	clear(s.c.mats)
	s.c.matMu.Unlock()
}

// update runs fn in one write transaction and then invalidates the cache.
func (s *Service) update(ctx context.Context, fn func(tx metadata.DocTx) error) error {
	err := s.cfg.Docs.UpdateDocs(ctx, fn)
	s.c.gen.Add(1)
	return err
}

// dropMaterials forgets the unwrapped material of a key (DisableKey,
// ScheduleKeyDeletion, deletion, rotation).
func (s *Service) dropMaterials(id KeyID) {
	s.c.matMu.Lock()
	for k := range s.c.mats {
		if k.id == id {
			delete(s.c.mats, k)
		}
	}
	s.c.matMu.Unlock()
}

// errKeyGone reports a key that does not exist (or whose deletion is due).
var errKeyGone = errors.New("kms: no such key")

// view returns the current view of a key, or errKeyGone.
func (s *Service) view(ctx context.Context, id KeyID) (*keyView, error) {
	g := s.c.gen.Load()
	s.c.mu.RLock()
	v := s.c.keys[id]
	s.c.mu.RUnlock()
	if v != nil && v.gen == g {
		return s.checkDue(ctx, v)
	}
	v, err := s.loadView(ctx, id)
	if err != nil {
		return nil, err
	}
	v.gen = g
	s.c.mu.Lock()
	if s.c.gen.Load() == g {
		if len(s.c.keys) > 100000 {
			clear(s.c.keys)
		}
		s.c.keys[id] = v
	}
	s.c.mu.Unlock()
	return s.checkDue(ctx, v)
}

// checkDue deletes a key whose scheduled deletion date has passed and
// reports it gone: a key pending deletion is deleted when due, whether or
// not the sweeper has run yet.
func (s *Service) checkDue(ctx context.Context, v *keyView) (*keyView, error) {
	if v.rec.State != statePendingDeletion || s.now().Before(v.rec.DeletionDate) {
		return v, nil
	}
	if err := s.deleteKey(ctx, v.rec.ID); err != nil && !errors.Is(err, errKeyGone) {
		return nil, err
	}
	return nil, errKeyGone
}

func (s *Service) loadView(ctx context.Context, id KeyID) (*keyView, error) {
	v := &keyView{}
	err := s.cfg.Docs.ViewDocs(ctx, func(tx metadata.DocTx) error {
		rec, _, err := getDoc[keyRecord](tx, kindKey, string(id))
		if errors.Is(err, metadata.ErrNotFound) {
			return errKeyGone
		}
		if err != nil {
			return err
		}
		v.rec = rec
		if v.mats, err = listDocs[materialRecord](tx, kindMaterial, string(id)+"/"); err != nil {
			return err
		}
		grants, err := listDocs[grantRecord](tx, kindGrant, string(id)+"/")
		if err != nil {
			return err
		}
		for i := range grants {
			v.grants = append(v.grants, &grants[i])
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	v.arn = s.keyARN(id)
	pol, err := policy.Parse([]byte(v.rec.Policy), policy.Resource)
	if err != nil {
		return nil, fmt.Errorf("stored key policy of %s does not parse: %w", id, err)
	}
	v.policy = pol
	v.idx = indexGrants(v.grants)
	return v, nil
}

// resolveAlias returns the key an alias names, or errKeyGone.
func (s *Service) resolveAlias(ctx context.Context, name string) (KeyID, error) {
	g := s.c.gen.Load()
	s.c.mu.RLock()
	e, ok := s.c.aliases[name]
	s.c.mu.RUnlock()
	if ok && e.gen == g {
		return e.target, nil
	}
	var target KeyID
	err := s.cfg.Docs.ViewDocs(ctx, func(tx metadata.DocTx) error {
		a, _, err := getDoc[aliasRecord](tx, kindAlias, name)
		if errors.Is(err, metadata.ErrNotFound) {
			return errKeyGone
		}
		target = a.Target
		return err
	})
	if err != nil {
		return "", err
	}
	s.c.mu.Lock()
	if s.c.gen.Load() == g {
		if len(s.c.aliases) > 100000 {
			clear(s.c.aliases)
		}
		s.c.aliases[name] = aliasEntry{target: target, gen: g}
	}
	s.c.mu.Unlock()
	return target, nil
}

// openMaterial returns the unwrapped material of a version, from the cache
// or unsealed under the root key.
func (s *Service) openMaterial(v *keyView, version uint32) (*material, error) {
	k := matKey{v.rec.ID, version}
	s.c.matMu.RLock()
	m := s.c.mats[k]
	s.c.matMu.RUnlock()
	if m != nil {
		return m, nil
	}
	rec, ok := v.material(version)
	if !ok {
		return nil, errBlob
	}
	raw, err := s.cfg.Root.Unwrap(rec.Sealed, materialContext(v.rec.ID, version))
	if err != nil {
		return nil, fmt.Errorf("key material %s v%d does not unseal under the root key: %w", v.rec.ID, version, err)
	}
	m, err = newMaterial(version, rec.ID, raw)
	clear(raw)
	if err != nil {
		return nil, err
	}
	s.c.matMu.Lock()
	if len(s.c.mats) > 100000 {
		clear(s.c.mats)
	}
	s.c.mats[k] = m
	s.c.matMu.Unlock()
	return m, nil
}

// materialContext is the root-key wrapping context of one material version:
// it names the purpose, the key and the version, so sealed material can
// never be swapped between keys or versions.
func materialContext(id KeyID, version uint32) map[string]string {
	return map[string]string{
		"coffer:purpose": "kms-key-material",
		"kms:key":        string(id),
		"kms:version":    strconv.FormatUint(uint64(version), 10),
	}
}
