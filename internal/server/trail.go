package server

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/cofferhq/coffer/internal/audit"
	"github.com/cofferhq/coffer/internal/auth"
	"github.com/cofferhq/coffer/internal/config"
	"github.com/cofferhq/coffer/internal/crypto/rootkey"
	"github.com/cofferhq/coffer/internal/kms"
	"github.com/cofferhq/coffer/internal/lifecycle/runner"
	"github.com/cofferhq/coffer/internal/metadata"
	"github.com/cofferhq/coffer/internal/metadata/postgres"
	"github.com/cofferhq/coffer/internal/registry"
	"github.com/cofferhq/coffer/internal/storage"
)

// openTrail opens the durable audit trail in <data>/audit with its signing
// key, sealed under the root key. shared, when set, also makes it part of
// the replicas' shared trail (sharedTrail).
func openTrail(cfg config.Config, accountID string, root *rootkey.Key, shared *audit.SharedConfig, log *slog.Logger) (*audit.Store, error) {
	ec := map[string]string{"coffer:secret": "audit_signing_key"}
	key, err := audit.LoadOrCreateSigningKey(audit.SigningKeyPath(cfg.DataDir),
		func(b []byte) ([]byte, error) { return root.Wrap(b, ec) },
		func(b []byte) ([]byte, error) { return root.Unwrap(b, ec) })
	if err != nil {
		return nil, err
	}
	var sinks []audit.Sink
	if cfg.AuditWebhookURL != "" {
		s, err := audit.NewWebhookSink(audit.WebhookConfig{URL: cfg.AuditWebhookURL})
		if err != nil {
			return nil, err
		}
		sinks = append(sinks, s)
	}
	if cfg.AuditSyslogAddr != "" {
		s, err := audit.NewSyslogSink(audit.SyslogConfig{Addr: cfg.AuditSyslogAddr})
		if err != nil {
			return nil, err
		}
		sinks = append(sinks, s)
	}
	return audit.NewStore(audit.Config{Dir: audit.Dir(cfg.DataDir), Region: cfg.Region, AccountID: accountID,
		SigningKey: key, DigestInterval: cfg.AuditDigestInterval, RetentionDays: cfg.AuditRetentionDays, Sinks: sinks, Shared: shared, Log: log.With("log", "audit")})
}

// settingSharedAuditKey holds the shared trail's signing key, sealed
// under the root key: every replica signs with it when it leads.
const (
	settingSharedAuditKey = "audit_shared_signing_key"
	settingSharedAuditPub = "audit_shared_public_key"
)

// sharedTrail returns the configuration of the replicas' shared audit
// trail when the metadata store is PostgreSQL (several replicas may
// share it), nil otherwise: the log files go to the blob store (under
// audit/), their books and the digest chain's head to the database.
func sharedTrail(ctx context.Context, pg *postgres.Store, store metadata.Store, driver storage.Driver, root *rootkey.Key, replica string) (*audit.SharedConfig, error) {
	if pg == nil {
		return nil, nil
	}
	key, err := SharedAuditKey(ctx, store, root)
	if err != nil {
		return nil, err
	}
	return &audit.SharedConfig{Objects: driver, Registry: SharedAuditRegistry(pg), Replica: replica, SigningKey: key}, nil
}

// SharedAuditKey returns the shared trail's signing key, generated once
// and kept sealed under the root key in the metadata store.
func SharedAuditKey(ctx context.Context, store metadata.Store, root *rootkey.Key) (ed25519.PrivateKey, error) {
	seed, err := sealedSecret(ctx, store, root, settingSharedAuditKey, "shared audit key")
	if err != nil {
		return nil, err
	}
	if len(seed) != ed25519.SeedSize {
		return nil, errors.New("shared audit key: does not open under the root key")
	}
	key := ed25519.NewKeyFromSeed(seed)
	// The public half in the clear, for `coffer audit public-key --shared`.
	pub := base64.StdEncoding.EncodeToString(key.Public().(ed25519.PublicKey))
	storedPub, err := store.PutSettingIfAbsent(ctx, settingSharedAuditPub, pub)
	if err != nil {
		return nil, fmt.Errorf("shared audit key: %w", err)
	}
	if storedPub != pub {
		return nil, errors.New("shared audit key: the stored public key is not the signing key's")
	}
	return key, nil
}

// SharedAuditPublicKey returns the shared trail's public key, as the
// first replica stored it.
func SharedAuditPublicKey(ctx context.Context, store metadata.Store) (ed25519.PublicKey, error) {
	v, err := store.GetSetting(ctx, settingSharedAuditPub)
	if errors.Is(err, metadata.ErrNotFound) {
		return nil, errors.New("no shared audit trail yet: a server on this PostgreSQL database creates it on first start")
	}
	if err != nil {
		return nil, err
	}
	b, err := base64.StdEncoding.DecodeString(v)
	if err != nil || len(b) != ed25519.PublicKeySize {
		return nil, errors.New("the stored shared audit public key is malformed")
	}
	return ed25519.PublicKey(b), nil
}

// VerifySharedTrail verifies the replicas' shared audit trail of the
// deployment cfg names (PostgreSQL + its blob store) with pub.
func VerifySharedTrail(ctx context.Context, cfg config.Config, pub ed25519.PublicKey, from, to time.Time, log *slog.Logger) (*audit.Report, error) {
	if !cfg.UsesPostgres() {
		return nil, errors.New("the shared audit trail belongs to replicas on PostgreSQL: set metadata_dsn (a single node's trail is <data>/audit; verify it without --shared)")
	}
	store, driver, err := OpenExisting(ctx, cfg, log)
	if err != nil {
		return nil, err
	}
	defer store.Close()
	pg, ok := store.(*postgres.Store)
	if !ok {
		return nil, fmt.Errorf("the metadata store is %T, not PostgreSQL", store)
	}
	return audit.VerifyShared(ctx, driver, SharedAuditRegistry(pg), pub, from, to)
}

// SharedAuditRegistry is the shared trail's books in PostgreSQL, as the
// audit package wants them.
func SharedAuditRegistry(pg *postgres.Store) audit.SharedRegistry { return auditRegistry{pg} }

type auditRegistry struct{ pg *postgres.Store }

func (r auditRegistry) RegisterAuditFile(ctx context.Context, f audit.SharedFile) error {
	return r.pg.RegisterAuditFile(ctx, postgres.AuditFile{Object: f.Object, SHA256: f.SHA256, Oldest: f.Oldest,
		Newest: f.Newest, Events: int64(f.Events), Replica: f.Replica})
}

func (r auditRegistry) AuditHead(ctx context.Context) (audit.SharedHead, error) {
	h, err := r.pg.AuditHead(ctx)
	return sharedHead(h), err
}

func (r auditRegistry) PendingAuditFiles(ctx context.Context) ([]audit.SharedFile, error) {
	fs, err := r.pg.PendingAuditFiles(ctx)
	if err != nil {
		return nil, err
	}
	return sharedFiles(fs), nil
}

func sharedFiles(fs []postgres.AuditFile) []audit.SharedFile {
	files := make([]audit.SharedFile, len(fs))
	for i, f := range fs {
		files[i] = audit.SharedFile{Object: f.Object, SHA256: f.SHA256, Oldest: f.Oldest, Newest: f.Newest,
			Events: int(f.Events), Replica: f.Replica}
	}
	return files
}

func (r auditRegistry) DigestAuditFiles(ctx context.Context, limit int, fn func(audit.SharedHead, []audit.SharedFile) (audit.SharedHead, error)) error {
	return r.pg.DigestAuditFiles(ctx, limit, func(h postgres.AuditHead, fs []postgres.AuditFile) (postgres.AuditHead, error) {
		next, err := fn(sharedHead(h), sharedFiles(fs))
		if err != nil {
			return postgres.AuditHead{}, err
		}
		return postgres.AuditHead{Object: next.Object, SHA256: next.SHA256, Signature: next.Signature, End: next.End.Unix()}, nil
	})
}

func sharedHead(h postgres.AuditHead) audit.SharedHead {
	if h.Object == "" {
		return audit.SharedHead{}
	}
	return audit.SharedHead{Object: h.Object, SHA256: h.SHA256, Signature: h.Signature, End: time.Unix(h.End, 0).UTC()}
}

// serviceKMSEvents records the KMS calls Coffer makes on a user's behalf
// (InvokedBy set, SPEC AUD-01/02) as their own audit events, with the
// encryption context; calls that arrive through the KMS API are recorded
// by the request pipeline already.
func serviceKMSEvents(trail *audit.Store, log *slog.Logger) func(context.Context, kms.Event) {
	return func(ctx context.Context, e kms.Event) {
		if e.InvokedBy == "" {
			return
		}
		src, _ := netip.ParseAddr(e.SourceIP)
		info := &auth.Info{
			RequestID: e.RequestID, Time: e.Time, SourceIP: src, UserAgent: e.UserAgent,
			Principal: e.Principal, Action: "kms:" + e.Operation, EventName: e.Operation,
			Params: e.RequestParameters, ResponseElements: e.ResponseElements, InvokedBy: e.InvokedBy,
			ErrorCode: e.ErrorCode, ErrorMessage: e.ErrorMessage,
		}
		if e.KeyARN != "" {
			info.Resources = []string{e.KeyARN}
		}
		status := 200
		if e.ErrorCode != "" {
			status = 400
		}
		if err := trail.Record(ctx, info, audit.Outcome{Status: status, ErrorCode: e.ErrorCode, ErrorMessage: e.ErrorMessage}); err != nil {
			log.ErrorContext(ctx, "audit record of a service KMS call failed", "operation", e.Operation, "error", err)
		}
	}
}

// lifecycleExpiries records every image a lifecycle policy expired as its
// own audit event, as ECR does: a PolicyExecutionEvent of type
// AwsServiceEvent made by the ECR service.
func lifecycleExpiries(trail *audit.Store, reg *registry.Registry, accountID string, log *slog.Logger) func(context.Context, metadata.Repository, runner.Candidate) {
	return func(ctx context.Context, repo metadata.Repository, c runner.Candidate) {
		info := expiryInfo(accountID, reg.RepositoryARN(repo.Name), repo, c)
		if err := trail.Record(ctx, info, audit.Outcome{Status: 200}); err != nil {
			log.ErrorContext(ctx, "audit record of a lifecycle expiry failed", "repository", repo.Name, "digest", c.Image.Digest, "error", err)
		}
	}
}

// expiryInfo is the PolicyExecutionEvent of one image a lifecycle policy
// expired, made by the ECR service.
func expiryInfo(accountID, repoARN string, repo metadata.Repository, c runner.Candidate) *auth.Info {
	return &auth.Info{
		Time:      time.Now().UTC(),
		Principal: auth.Principal{Type: "AWSService", PrincipalID: "ecr.amazonaws.com", AccountID: accountID},
		Action:    "ecr:PolicyExecutionEvent", EventName: "PolicyExecutionEvent", EventType: "AwsServiceEvent",
		InvokedBy: "ecr.amazonaws.com",
		Resources: []string{repoARN},
		ServiceEventDetails: map[string]any{
			"repositoryName": repo.Name, "imageDigest": c.Image.Digest, "imageTags": c.Image.Tags,
			"rulePriority": c.RulePriority, "actionType": "EXPIRE",
		},
	}
}

// SpoolExpiries returns a lifecycle runner's OnExpire for an admin command
// beside the server (`coffer lifecycle run`): each expiry's
// PolicyExecutionEvent goes to the trail's spool, which the server (now,
// or at its next start) appends to the trail. It needs the account ID the
// deployment was created with. failed counts the events that could not be
// spooled (the command reports them and fails).
func SpoolExpiries(ctx context.Context, cfg config.Config, store metadata.Store, log *slog.Logger) (onExpire func(context.Context, metadata.Repository, runner.Candidate), failed *atomic.Int64, err error) {
	accountID, err := store.GetSetting(ctx, settingAccountID)
	if err != nil {
		return nil, nil, fmt.Errorf("account ID: %w", err)
	}
	dir := audit.Dir(cfg.DataDir)
	failed = new(atomic.Int64)
	return func(ctx context.Context, repo metadata.Repository, c runner.Candidate) {
		arn := registry.RepositoryARN(cfg.Region, accountID, repo.Name)
		ev := audit.NewEvent(expiryInfo(accountID, arn, repo, c), audit.Outcome{Status: 200}, cfg.Region, accountID, time.Now())
		if err := audit.Spool(dir, ev); err != nil {
			failed.Add(1)
			log.ErrorContext(ctx, "audit record of a lifecycle expiry could not be spooled", "repository", repo.Name, "digest", c.Image.Digest, "error", err)
		}
	}, failed, nil
}
