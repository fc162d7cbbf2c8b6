package kms

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awskms "github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/aws/smithy-go"
)

// Client is how the registry reaches a KMS: shaped like the KMS API, with
// the caller named on every call. *Service (in process, no HTTP) and
// *Remote (any AWS-KMS-compatible endpoint) implement it. Errors are
// *Error either way, so errors.Is(err, kms.ErrNotFound) works behind both.
type Client interface {
	DescribeKey(ctx context.Context, c Caller, in *DescribeKeyInput) (*DescribeKeyOutput, error)
	CreateGrant(ctx context.Context, c Caller, in *CreateGrantInput) (*CreateGrantOutput, error)
	RetireGrant(ctx context.Context, c Caller, in *RetireGrantInput) (*Empty, error)
	GenerateDataKey(ctx context.Context, c Caller, in *GenerateDataKeyInput) (*GenerateDataKeyOutput, error)
	Decrypt(ctx context.Context, c Caller, in *DecryptInput) (*DecryptOutput, error)
	ListGrants(ctx context.Context, c Caller, in *ListGrantsInput) (*ListGrantsOutput, error)
}

var (
	_ Client = (*Service)(nil)
	_ Client = (*Remote)(nil)
)

// RemoteConfig configures a Remote.
type RemoteConfig struct {
	// Endpoint is the KMS endpoint URL, e.g. https://kms.us-east-1.amazonaws.com
	// or a Coffer's. Required.
	Endpoint string
	// Region signs the requests. Required.
	Region string
	// Credentials sign the requests: the registry's own identity at that
	// KMS. Required.
	Credentials aws.CredentialsProvider
	// HTTPClient is optional.
	HTTPClient *http.Client
	// Events, when set, receives one Event per call made through the seam
	// (the remote KMS records its own side).
	Events func(ctx context.Context, e Event)
	// Now is the clock of the events; nil means time.Now.
	Now func() time.Time
}

// Remote is the Client of a remote AWS-KMS-compatible endpoint, through
// aws-sdk-go-v2's kms client. The remote KMS authenticates the registry's
// own credentials, so it authorizes the registry, not the Caller: the
// Caller reaches only the events. (AWS's forward access sessions, which
// carry the user's identity and kms:ViaService to KMS, exist only inside
// AWS.)
type Remote struct {
	c      *awskms.Client
	events func(ctx context.Context, e Event)
	region string
	now    func() time.Time
}

// NewRemote returns a Remote.
func NewRemote(cfg RemoteConfig) (*Remote, error) {
	var errs []error
	if cfg.Endpoint == "" {
		errs = append(errs, errors.New("kms: RemoteConfig.Endpoint is required"))
	}
	if cfg.Region == "" {
		errs = append(errs, errors.New("kms: RemoteConfig.Region is required"))
	}
	if cfg.Credentials == nil {
		errs = append(errs, errors.New("kms: RemoteConfig.Credentials is required"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	opts := awskms.Options{Region: cfg.Region, BaseEndpoint: aws.String(cfg.Endpoint), Credentials: cfg.Credentials}
	if cfg.HTTPClient != nil {
		opts.HTTPClient = cfg.HTTPClient
	}
	r := &Remote{c: awskms.New(opts), events: cfg.Events, region: cfg.Region, now: cfg.Now}
	if r.now == nil {
		r.now = time.Now
	}
	return r, nil
}

// remoteError converts an SDK error to an *Error with the service's code.
func remoteError(err error) error {
	if err == nil {
		return nil
	}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return &Error{Code: ae.ErrorCode(), Message: ae.ErrorMessage(), Err: err}
	}
	return &Error{Code: codeDependencyTimeout, Message: "The KMS endpoint could not be reached.", Err: err}
}

// emit hands a seam call's event to the hook.
func (r *Remote) emit(ctx context.Context, c Caller, op, keyID string, params map[string]any, err error) {
	if r.events == nil {
		return
	}
	ev := Event{Time: r.now().UTC(), Region: r.region, Operation: op, Principal: c.Principal, InvokedBy: c.InvokedBy,
		ViaService: c.ViaService, SourceIP: c.InvokedBy, RequestParameters: params, ReadOnly: op != "CreateGrant" && op != "RetireGrant"}
	if len(keyID) > 4 && keyID[:4] == "arn:" {
		ev.KeyARN = keyID
	}
	var e *Error
	if errors.As(err, &e) {
		ev.ErrorCode, ev.ErrorMessage = e.Code, e.Message
	}
	r.events(ctx, ev)
}

// DescribeKey implements Client.
func (r *Remote) DescribeKey(ctx context.Context, c Caller, in *DescribeKeyInput) (*DescribeKeyOutput, error) {
	out, err := r.c.DescribeKey(ctx, &awskms.DescribeKeyInput{KeyId: aws.String(in.KeyId), GrantTokens: in.GrantTokens})
	err = remoteError(err)
	var res *DescribeKeyOutput
	keyID := in.KeyId
	if err == nil && out.KeyMetadata != nil {
		m := out.KeyMetadata
		km := &KeyMetadata{AWSAccountId: aws.ToString(m.AWSAccountId), KeyId: aws.ToString(m.KeyId), Arn: aws.ToString(m.Arn),
			CreationDate: timePtr(m.CreationDate), Enabled: m.Enabled, Description: aws.ToString(m.Description),
			KeyUsage: string(m.KeyUsage), KeyState: string(m.KeyState), DeletionDate: timePtr(m.DeletionDate),
			Origin: string(m.Origin), KeyManager: string(m.KeyManager), CustomerMasterKeySpec: string(m.KeySpec),
			KeySpec: string(m.KeySpec), MultiRegion: aws.ToBool(m.MultiRegion), PendingDeletionWindowInDays: m.PendingDeletionWindowInDays,
			CurrentKeyMaterialId: aws.ToString(m.CurrentKeyMaterialId)}
		for _, a := range m.EncryptionAlgorithms {
			km.EncryptionAlgorithms = append(km.EncryptionAlgorithms, string(a))
		}
		res, keyID = &DescribeKeyOutput{KeyMetadata: km}, km.Arn
	}
	r.emit(ctx, c, "DescribeKey", keyID, map[string]any{"keyId": in.KeyId}, err)
	return res, err
}

func timePtr(t *time.Time) *Timestamp {
	if t == nil {
		return nil
	}
	return NewTimestamp(*t)
}

// CreateGrant implements Client.
func (r *Remote) CreateGrant(ctx context.Context, c Caller, in *CreateGrantInput) (*CreateGrantOutput, error) {
	req := &awskms.CreateGrantInput{KeyId: aws.String(in.KeyId), GranteePrincipal: aws.String(in.GranteePrincipal),
		GrantTokens: in.GrantTokens, DryRun: in.DryRun}
	if in.RetiringPrincipal != "" {
		req.RetiringPrincipal = aws.String(in.RetiringPrincipal)
	}
	if in.Name != "" {
		req.Name = aws.String(in.Name)
	}
	for _, op := range in.Operations {
		req.Operations = append(req.Operations, types.GrantOperation(op))
	}
	if in.Constraints != nil {
		req.Constraints = &types.GrantConstraints{EncryptionContextSubset: in.Constraints.EncryptionContextSubset,
			EncryptionContextEquals: in.Constraints.EncryptionContextEquals}
	}
	out, err := r.c.CreateGrant(ctx, req)
	err = remoteError(err)
	r.emit(ctx, c, "CreateGrant", in.KeyId, map[string]any{"keyId": in.KeyId, "granteePrincipal": in.GranteePrincipal,
		"retiringPrincipal": in.RetiringPrincipal, "operations": in.Operations, "constraints": in.Constraints}, err)
	if err != nil {
		return nil, err
	}
	return &CreateGrantOutput{GrantToken: aws.ToString(out.GrantToken), GrantId: aws.ToString(out.GrantId)}, nil
}

// RetireGrant implements Client.
func (r *Remote) RetireGrant(ctx context.Context, c Caller, in *RetireGrantInput) (*Empty, error) {
	req := &awskms.RetireGrantInput{DryRun: in.DryRun}
	if in.GrantToken != "" {
		req.GrantToken = aws.String(in.GrantToken)
	}
	if in.KeyId != "" {
		req.KeyId = aws.String(in.KeyId)
	}
	if in.GrantId != "" {
		req.GrantId = aws.String(in.GrantId)
	}
	_, err := r.c.RetireGrant(ctx, req)
	err = remoteError(err)
	r.emit(ctx, c, "RetireGrant", in.KeyId, map[string]any{"keyId": in.KeyId, "grantId": in.GrantId}, err)
	if err != nil {
		return nil, err
	}
	return &Empty{}, nil
}

// GenerateDataKey implements Client.
func (r *Remote) GenerateDataKey(ctx context.Context, c Caller, in *GenerateDataKeyInput) (*GenerateDataKeyOutput, error) {
	req := &awskms.GenerateDataKeyInput{KeyId: aws.String(in.KeyId), EncryptionContext: in.EncryptionContext,
		NumberOfBytes: in.NumberOfBytes, GrantTokens: in.GrantTokens, DryRun: in.DryRun}
	if in.KeySpec != "" {
		req.KeySpec = types.DataKeySpec(in.KeySpec)
	}
	out, err := r.c.GenerateDataKey(ctx, req)
	err = remoteError(err)
	keyID := in.KeyId
	if err == nil {
		keyID = aws.ToString(out.KeyId)
	}
	r.emit(ctx, c, "GenerateDataKey", keyID, map[string]any{"keyId": in.KeyId, "encryptionContext": in.EncryptionContext,
		"keySpec": in.KeySpec}, err)
	if err != nil {
		return nil, err
	}
	return &GenerateDataKeyOutput{CiphertextBlob: out.CiphertextBlob, Plaintext: out.Plaintext, KeyId: aws.ToString(out.KeyId),
		KeyMaterialId: aws.ToString(out.KeyMaterialId)}, nil
}

// Decrypt implements Client.
func (r *Remote) Decrypt(ctx context.Context, c Caller, in *DecryptInput) (*DecryptOutput, error) {
	req := &awskms.DecryptInput{CiphertextBlob: in.CiphertextBlob, EncryptionContext: in.EncryptionContext,
		GrantTokens: in.GrantTokens, DryRun: in.DryRun}
	if in.KeyId != "" {
		req.KeyId = aws.String(in.KeyId)
	}
	if in.EncryptionAlgorithm != "" {
		req.EncryptionAlgorithm = types.EncryptionAlgorithmSpec(in.EncryptionAlgorithm)
	}
	out, err := r.c.Decrypt(ctx, req)
	err = remoteError(err)
	keyID := in.KeyId
	if err == nil {
		keyID = aws.ToString(out.KeyId)
	}
	r.emit(ctx, c, "Decrypt", keyID, map[string]any{"encryptionContext": in.EncryptionContext}, err)
	if err != nil {
		return nil, err
	}
	return &DecryptOutput{KeyId: aws.ToString(out.KeyId), Plaintext: out.Plaintext, EncryptionAlgorithm: string(out.EncryptionAlgorithm),
		KeyMaterialId: aws.ToString(out.KeyMaterialId)}, nil
}

// ListGrants implements Client.
func (r *Remote) ListGrants(ctx context.Context, c Caller, in *ListGrantsInput) (*ListGrantsOutput, error) {
	req := &awskms.ListGrantsInput{KeyId: aws.String(in.KeyId), Limit: in.Limit, Marker: in.Marker}
	if in.GrantId != "" {
		req.GrantId = aws.String(in.GrantId)
	}
	if in.GranteePrincipal != "" {
		req.GranteePrincipal = aws.String(in.GranteePrincipal)
	}
	out, err := r.c.ListGrants(ctx, req)
	err = remoteError(err)
	r.emit(ctx, c, "ListGrants", in.KeyId, map[string]any{"keyId": in.KeyId}, err)
	if err != nil {
		return nil, err
	}
	res := &ListGrantsOutput{Grants: []GrantListEntry{}, NextMarker: aws.ToString(out.NextMarker), Truncated: out.Truncated}
	for _, g := range out.Grants {
		e := GrantListEntry{KeyId: aws.ToString(g.KeyId), GrantId: aws.ToString(g.GrantId), Name: aws.ToString(g.Name),
			CreationDate: timePtr(g.CreationDate), GranteePrincipal: aws.ToString(g.GranteePrincipal),
			RetiringPrincipal: aws.ToString(g.RetiringPrincipal), IssuingAccount: aws.ToString(g.IssuingAccount)}
		for _, op := range g.Operations {
			e.Operations = append(e.Operations, string(op))
		}
		if g.Constraints != nil {
			e.Constraints = &GrantConstraints{EncryptionContextSubset: g.Constraints.EncryptionContextSubset,
				EncryptionContextEquals: g.Constraints.EncryptionContextEquals}
		}
		res.Grants = append(res.Grants, e)
	}
	return res, nil
}
