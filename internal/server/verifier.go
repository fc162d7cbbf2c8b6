package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/cofferhq/coffer/internal/config"
	"github.com/cofferhq/coffer/internal/crypto/rootkey"
	"github.com/cofferhq/coffer/internal/iam"
	"github.com/cofferhq/coffer/internal/kms"
	"github.com/cofferhq/coffer/internal/metadata"
	"github.com/cofferhq/coffer/internal/registry"
	"github.com/cofferhq/coffer/internal/storage"
)

// newRegistry is the data-plane service over store and driver with the
// deployment's keys: the service root key for AES256 repositories, the
// built-in KMS through the repositories' grants for KMS and KMS_DSSE ones
// (issue #6).
func newRegistry(cfg config.Config, accountID string, store metadata.Store, driver storage.Driver, root *rootkey.Key, kmsSvc *kms.Service, log *slog.Logger) (*registry.Registry, error) {
	quotas, err := cfg.QuotaRules() // docs/quotas.md
	if err != nil {
		return nil, fmt.Errorf("quotas: %w", err)
	}
	return registry.New(registry.Config{
		Quotas: quotas.For,
		Region: cfg.Region, AccountID: accountID, Store: store, Driver: driver,
		Keys: registry.EncryptionKeys{
			AES256: registry.RootKeys{Root: root},
			KMS:    registry.KMSKeys{Client: kmsSvc, Region: cfg.Region, AccountID: accountID},
		},
		Root: root, CreateOnPush: cfg.CreateOnPush, Log: log,
	})
}

// OpenVerifier returns the registry over an existing deployment's store and
// driver (OpenExisting), able to read and authenticate its objects, for
// coffer fsck. It loads the root key (never generates one) and checks it
// against the store; it opens no audit trail and no listener, so it runs
// beside a live server. The KMS calls it makes for KMS repositories are not
// in the audit trail. cfg.Region must be the server's: it is part of every
// object's identity.
func OpenVerifier(ctx context.Context, cfg config.Config, store metadata.Store, driver storage.Driver, log *slog.Logger) (*registry.Registry, error) {
	root, err := loadRootKey(cfg, true, log)
	if err != nil {
		return nil, err
	}
	check, err := store.GetSetting(ctx, settingRootKeyCheck)
	if errors.Is(err, metadata.ErrNotFound) {
		return nil, errors.New("the metadata store has no root key check; has a server started on it?")
	}
	if err != nil {
		return nil, fmt.Errorf("root key check: %w", err)
	}
	if !root.Matches(check) {
		return nil, errors.New("the root key does not match the one this deployment was created with (supply the original key)")
	}
	accountID, err := store.GetSetting(ctx, settingAccountID)
	if err != nil {
		return nil, fmt.Errorf("account ID: %w", err)
	}
	idsvc, err := iam.New(iam.Config{AccountID: accountID, Docs: store, Root: root, Log: log})
	if err != nil {
		return nil, err
	}
	kmsSvc, err := kms.New(kms.Config{AccountID: accountID, Region: cfg.Region, Docs: store, Root: root,
		IdentityPolicies: idsvc.IdentityPolicies, Log: log})
	if err != nil {
		return nil, err
	}
	return newRegistry(cfg, accountID, store, driver, root, kmsSvc, log)
}
