package kms

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/cofferhq/coffer/internal/auth"
	"github.com/cofferhq/coffer/internal/crypto/rootkey"
	"github.com/cofferhq/coffer/internal/metadata"
	"github.com/cofferhq/coffer/internal/policy"
)

// Config configures a Service.
type Config struct {
	// AccountID and Region are the account and region the keys belong to.
	AccountID string
	Region    string
	// Docs stores keys, material, aliases and grants. Required.
	Docs metadata.DocStore
	// Root seals the key material. Required.
	Root *rootkey.Key
	// IdentityPolicies returns a principal's identity-based policies
	// (internal/iam's Service.IdentityPolicies). Required.
	IdentityPolicies func(ctx context.Context, p auth.Principal) ([]*policy.Policy, error)
	// Events receives one Event per KMS call, successful or not. Optional.
	Events func(ctx context.Context, e Event)
	// Log receives internal failures; nil discards.
	Log *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// MaterialUseCap is how many encryptions one key material version may
	// perform before the key rotates itself; 0 means 2^32, the NIST SP
	// 800-38D bound for AES-GCM with random 96-bit nonces.
	MaterialUseCap uint64
}

// Service is Coffer's built-in KMS. It is safe for concurrent use; *Service
// implements Client (the in-process implementation: no HTTP).
type Service struct {
	cfg       Config
	partition string
	now       func() time.Time
	log       *slog.Logger
	c         cache
	use       usage
	in        interned
	// valRegion and valAccount are condition values shared by every call.
	valRegion, valAccount []string
	rootArn               string // the account root user's ARN
}

// New returns a Service. Every missing setting is reported.
func New(cfg Config) (*Service, error) {
	var errs []error
	if !isAccountID(cfg.AccountID) {
		errs = append(errs, fmt.Errorf("kms: AccountID %q is not a 12-digit account ID", cfg.AccountID))
	}
	if cfg.Region == "" || strings.ContainsAny(cfg.Region, ":/ ") {
		errs = append(errs, fmt.Errorf("kms: Region %q is not a region name", cfg.Region))
	}
	if cfg.Docs == nil {
		errs = append(errs, errors.New("kms: Docs is required"))
	}
	if cfg.Root == nil {
		errs = append(errs, errors.New("kms: Root is required"))
	}
	if cfg.IdentityPolicies == nil {
		errs = append(errs, errors.New("kms: IdentityPolicies is required"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	s := &Service{cfg: cfg, partition: partitionOf(cfg.Region), now: cfg.Now, log: cfg.Log}
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.cfg.MaterialUseCap == 0 {
		s.cfg.MaterialUseCap = 1 << 32
	}
	s.valRegion, s.valAccount = []string{cfg.Region}, []string{cfg.AccountID}
	s.rootArn = "arn:" + s.partition + ":iam::" + cfg.AccountID + ":root"
	s.c.keys = make(map[KeyID]*keyView)
	s.c.aliases = make(map[string]aliasEntry)
	s.c.mats = make(map[matKey]*material)
	s.use.m = make(map[matKey]*useCounter)
	return s, nil
}

func partitionOf(region string) string {
	switch {
	case strings.HasPrefix(region, "us-gov-"):
		return "aws-us-gov"
	case strings.HasPrefix(region, "cn-"):
		return "aws-cn"
	}
	return "aws"
}

// Caller is who makes a KMS call: the authenticated principal and, for a
// call a service makes on the principal's behalf (the registry calling KMS
// for a push or pull), the service. ViaService is the kms:ViaService value,
// e.g. "ecr.us-east-1.amazonaws.com"; InvokedBy is CloudTrail's
// userIdentity.invokedBy, e.g. "ecr.amazonaws.com".
//
// A call through a service is authorized for the principal with
// kms:ViaService set (SPEC KMS-07), and may also use grants whose grantee
// is that service (ViaService or InvokedBy): that is how the registry uses
// the grants it holds on a key (SPEC GRANT-01..04). Retiring a grant is
// done with the principal's own authority, never the service's (SPEC
// PERM-02/03).
type Caller struct {
	Principal  auth.Principal
	ViaService string
	InvokedBy  string
}

// principalName is the caller as AccessDenied messages name it.
func (c Caller) principalName() string {
	if c.Principal.ARN != "" {
		return c.Principal.ARN
	}
	if c.Principal.Type == policy.TypeAWSService && c.InvokedBy != "" {
		return c.InvokedBy
	}
	return "anonymous"
}

// KeyARN returns the ARN of a key ID in this account and region.
func (s *Service) KeyARN(id KeyID) string { return s.keyARN(id) }

func (s *Service) keyARN(id KeyID) string {
	return "arn:" + s.partition + ":kms:" + s.cfg.Region + ":" + s.cfg.AccountID + ":key/" + string(id)
}

func (s *Service) aliasARN(name string) string {
	return "arn:" + s.partition + ":kms:" + s.cfg.Region + ":" + s.cfg.AccountID + ":" + name
}

// resolve turns a KeyId parameter into the key's current view. An alias of
// an AWS managed key that does not exist yet creates the key (SPEC 3.5,
// KMS-02).
func (s *Service) resolve(ctx context.Context, param, v string, kinds refKinds) (*keyView, error) {
	ref, err := s.parseKeyRef(param, v, kinds)
	if err != nil {
		return nil, err
	}
	return s.resolveRef(ctx, ref)
}

func (s *Service) resolveRef(ctx context.Context, ref keyRef) (*keyView, error) {
	id := ref.id
	if ref.alias != "" {
		target, err := s.resolveAlias(ctx, ref.alias)
		if errors.Is(err, errKeyGone) {
			if svc, ok := managedAliasService(ref.alias); ok {
				if target, err = s.ensureManagedKey(ctx, svc); err != nil {
					return nil, err
				}
			}
		}
		if errors.Is(err, errKeyGone) {
			return nil, errorf(codeNotFound, fmt.Sprintf("Alias %s is not found.", s.aliasARN(ref.alias)))
		}
		if err != nil {
			return nil, err
		}
		id = target
	}
	v, err := s.view(ctx, id)
	if errors.Is(err, errKeyGone) {
		return nil, errorf(codeNotFound, fmt.Sprintf("Key '%s' does not exist", s.keyARN(id)))
	}
	return v, err
}

// Key-state requirements of an operation (AWS's key state table, for the
// states Coffer has).
type stateRule int

const (
	anyState       stateRule = iota // DescribeKey, ListGrants, RetireGrant, RevokeGrant, GetKeyPolicy, ...
	notPending                      // allowed Enabled or Disabled (UpdateKeyDescription, tags, EnableKey, DisableKey, ...)
	enabledOnly                     // cryptographic operations, CreateGrant, rotation settings
	pendingOnly                     // CancelKeyDeletion
	notPendingOnly                  // ScheduleKeyDeletion: Enabled or Disabled
)

func checkState(v *keyView, rule stateRule) error {
	st := v.rec.State
	switch rule {
	case enabledOnly:
		switch st {
		case stateDisabled:
			return errorf(codeDisabled, v.arn+" is disabled.")
		case statePendingDeletion:
			return errorf(codeInvalidState, v.arn+" is pending deletion.")
		}
	case notPending, notPendingOnly:
		if st == statePendingDeletion {
			return errorf(codeInvalidState, v.arn+" is pending deletion.")
		}
	case pendingOnly:
		if st != statePendingDeletion {
			return errorf(codeInvalidState, v.arn+" is not pending deletion.")
		}
	}
	return nil
}

// Event is one KMS call, as the audit trail (issue #8) will record it in
// CloudTrail's form: eventSource kms.amazonaws.com, eventName Operation,
// userIdentity from Principal and InvokedBy, resources [KeyARN].
// RequestParameters use CloudTrail's lowerCamel names (keyId,
// encryptionContext, grantId, ...) and never hold plaintext, ciphertext or
// key material (SPEC AUD-01/02).
type Event struct {
	Time       time.Time
	RequestID  string
	Region     string
	AccountID  string
	Operation  string
	Principal  auth.Principal
	InvokedBy  string
	ViaService string
	SourceIP   string
	UserAgent  string
	// KeyARN is the key the call used, "" for calls on no key (ListKeys,
	// GenerateRandom, ...) or a key that could not be resolved.
	KeyARN            string
	ReadOnly          bool
	RequestParameters map[string]any
	ResponseElements  map[string]any
	ErrorCode         string
	ErrorMessage      string
}

// call is one operation in progress: it collects the event.
type call struct {
	s      *Service
	ctx    context.Context
	caller Caller
	ev     Event
	record bool
}

// recorderKey carries a *call to the HTTP handler, which copies the key ARN
// and parameters into the request's auth.Info for the request audit.
type recorderKey struct{}

type recorder struct{ ev *Event }

func (s *Service) begin(ctx context.Context, c Caller, op string, readOnly bool) *call {
	cl := &call{s: s, ctx: ctx, caller: c}
	_, handler := ctx.Value(recorderKey{}).(*recorder)
	cl.record = s.cfg.Events != nil || handler
	if cl.record {
		cl.ev = Event{Time: s.now().UTC(), Region: s.cfg.Region, AccountID: s.cfg.AccountID, Operation: op,
			Principal: c.Principal, InvokedBy: c.InvokedBy, ViaService: c.ViaService, ReadOnly: readOnly,
			RequestParameters: make(map[string]any, 4)}
		if info := auth.FromContext(ctx); info != nil {
			cl.ev.RequestID, cl.ev.UserAgent = info.RequestID, info.UserAgent
			if info.SourceIP.IsValid() {
				cl.ev.SourceIP = info.SourceIP.String()
			}
		}
		if c.InvokedBy != "" {
			cl.ev.SourceIP = c.InvokedBy
		}
	}
	return cl
}

func (cl *call) param(k string, v any) {
	if cl.record {
		cl.ev.RequestParameters[k] = v
	}
}

func (cl *call) response(k string, v any) {
	if cl.record {
		if cl.ev.ResponseElements == nil {
			cl.ev.ResponseElements = map[string]any{}
		}
		cl.ev.ResponseElements[k] = v
	}
}

func (cl *call) key(v *keyView) {
	if cl.record && v != nil {
		cl.ev.KeyARN = v.arn
	}
}

// end finishes the call: it turns err into an *Error, logs internal
// failures and hands the event to the hook. It returns nil or an *Error.
func (cl *call) end(err error) error {
	var e *Error
	if err != nil {
		e = asError(err)
		if e.Status() >= 500 {
			cl.s.log.ErrorContext(cl.ctx, "kms call failed", "operation", cl.ev.Operation, "error", err)
		}
	}
	if cl.record {
		if e != nil {
			cl.ev.ErrorCode, cl.ev.ErrorMessage = e.Code, e.Message
			cl.ev.ResponseElements = nil
		}
		if r, ok := cl.ctx.Value(recorderKey{}).(*recorder); ok {
			r.ev = &cl.ev
		}
		if cl.s.cfg.Events != nil {
			cl.s.cfg.Events(cl.ctx, cl.ev)
		}
	}
	if e == nil {
		return nil
	}
	return e
}

func dryRun(p *bool) bool { return p != nil && *p }

func dryRunError() error {
	return errorf(codeDryRun, "The request would have succeeded, but the DryRun option is set.")
}

// checkGrantTokens validates the GrantTokens of a request (at most 10, each
// a grant token this KMS issued). Grants take effect at once here, so a
// valid token adds nothing to what the stored grants allow.
func checkGrantTokens(tokens []string) error {
	if len(tokens) > 10 {
		return validation("grantTokens", "", "Member must have length less than or equal to 10")
	}
	for _, t := range tokens {
		if _, _, err := parseGrantToken(t); err != nil {
			return err
		}
	}
	return nil
}

// page applies Limit and Marker to a sorted list of n items whose sort
// keys key(i) are unique: it returns the half-open range to return and the
// next marker ("" when done).
func page(n int, key func(int) string, limit *int32, marker *string, def int) (int, int, string, error) {
	lim := def
	if limit != nil {
		if *limit < 1 || *limit > 1000 {
			return 0, 0, "", validation("limit", fmt.Sprint(*limit), "Member must have value between 1 and 1000")
		}
		lim = int(*limit)
	}
	start := 0
	if marker != nil {
		after, err := decodeMarker(*marker)
		if err != nil {
			return 0, 0, "", err
		}
		for start < n && key(start) <= after {
			start++
		}
	}
	end := min(start+lim, n)
	next := ""
	if end < n {
		next = encodeMarker(key(end - 1))
	}
	return start, end, next, nil
}
