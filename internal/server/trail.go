package server

import (
	"context"
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
	"github.com/cofferhq/coffer/internal/registry"
)

// openTrail opens the durable audit trail in <data>/audit with its signing
// key, sealed under the root key.
func openTrail(cfg config.Config, accountID string, root *rootkey.Key, log *slog.Logger) (*audit.Store, error) {
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
		SigningKey: key, RetentionDays: cfg.AuditRetentionDays, Sinks: sinks, Log: log.With("log", "audit")})
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
