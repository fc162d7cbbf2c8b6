// Package auth holds the request-scoped security context every door fills
// in, and the two seams of the request pipeline: the Authenticator that
// turns a request into a Principal, and the Authorizer (the decision point)
// that allows or denies an action on a resource.
//
// Until identity and access land (issue #3) the only implementations are
// Anonymous and AllowAll, which the server uses only on loopback or with
// --insecure-allow-anonymous.
package auth

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"time"
)

// ErrUnauthenticated reports a request without acceptable credentials.
var ErrUnauthenticated = errors.New("auth: authentication required")

// Principal is the authenticated caller.
type Principal struct {
	// Type is the CloudTrail userIdentity type: IAMUser, AssumedRole, Root,
	// AWSService or Anonymous.
	Type        string
	ARN         string
	AccountID   string
	PrincipalID string
	UserName    string
	AccessKeyID string
	// RoleARN and SessionName identify an assumed-role session: policies
	// that name the role match its sessions.
	RoleARN     string
	SessionName string
	// Expires is when temporary credentials (and tokens minted from them)
	// stop working; zero for long-term credentials.
	Expires time.Time
}

// Anonymous is the principal of an unauthenticated request.
var Anonymous = Principal{Type: "Anonymous", PrincipalID: "anonymous"}

// Info is the security context of one request: who, what, from where. The
// pipeline creates it, handlers fill in Action and Resources, and the audit
// hook reads it after the handler.
type Info struct {
	RequestID       string
	Time            time.Time
	SourceIP        netip.Addr
	SecureTransport bool
	UserAgent       string
	Principal       Principal
	// Action in ECR terms, e.g. "ecr:PutImage"; EventName is the CloudTrail
	// event name (the action without its service prefix).
	Action    string
	EventName string
	// Resources are the ARNs the request touches.
	Resources []string
	// Params are non-secret request parameters for the audit record.
	Params map[string]any
	// ResponseElements are non-secret response fields for the audit
	// record (CloudTrail's responseElements); nil records null.
	ResponseElements map[string]any
	// InvokedBy names the AWS service that made the call on the
	// principal's behalf, e.g. "ecr.amazonaws.com" for the KMS calls ECR
	// makes for a push; "" when the principal called directly.
	InvokedBy string
	// EventType is the audit record's eventType; "" means AwsApiCall.
	// "AwsServiceEvent" marks an event the service produced on its own
	// (a lifecycle expiry, an audit-retention deletion), described by
	// ServiceEventDetails.
	EventType           string
	ServiceEventDetails map[string]any
	// TLSVersion and TLSCipherSuite describe the client's TLS connection
	// (crypto/tls VersionName and CipherSuiteName; "" without TLS), and
	// Host is the Host header the client sent: the audit record's
	// tlsDetails.
	TLSVersion     string
	TLSCipherSuite string
	Host           string
	// RequestTags are the tags a tagging request asks to set
	// (aws:RequestTag/<key>, aws:TagKeys); RequestTagKeys the keys an
	// untag request removes (aws:TagKeys only).
	RequestTags    map[string]string
	RequestTagKeys []string
	// EndpointID and VPCID name the network endpoint the request arrived
	// through ("" for the public listener): aws:SourceVpce, aws:SourceVpc
	// and the audit record's vpcEndpointId.
	EndpointID string
	VPCID      string
	// ErrorCode and ErrorMessage are the protocol error the request ended
	// with, set by the door's error writer; empty on success.
	ErrorCode    string
	ErrorMessage string
}

type infoKey struct{}

// WithInfo returns ctx carrying info.
func WithInfo(ctx context.Context, info *Info) context.Context {
	return context.WithValue(ctx, infoKey{}, info)
}

// FromContext returns the request's Info, or nil outside a request.
func FromContext(ctx context.Context) *Info {
	info, _ := ctx.Value(infoKey{}).(*Info)
	return info
}

// Authenticator identifies the caller of an HTTP request.
type Authenticator interface {
	// Authenticate returns the principal, or an error wrapping
	// ErrUnauthenticated when credentials are missing or invalid.
	Authenticate(r *http.Request) (Principal, error)
}

// Authorizer is the decision point: it allows or denies one action on one
// resource for the principal in info.
type Authorizer interface {
	// Authorize returns nil to allow, or a *DeniedError.
	Authorize(ctx context.Context, info *Info, action, resource string) error
}

// DeniedError is an explicit or implicit deny, with AWS's message.
type DeniedError struct {
	Principal string
	Action    string
	Resource  string
	Reason    string // e.g. "because no identity-based policy allows the ecr:PutImage action"
}

func (e *DeniedError) Error() string {
	who := e.Principal
	if who == "" {
		who = "anonymous"
	}
	msg := fmt.Sprintf("User: %s is not authorized to perform: %s on resource: %s", who, e.Action, e.Resource)
	if e.Reason != "" {
		msg += " " + e.Reason
	}
	return msg
}

// AnonymousAuthenticator accepts every request as Anonymous. It exists only
// for the insecure, loopback-only mode that precedes identity and access.
type AnonymousAuthenticator struct{}

// Authenticate implements Authenticator.
func (AnonymousAuthenticator) Authenticate(*http.Request) (Principal, error) {
	return Anonymous, nil
}

// AllowAll allows every action. It exists only for the insecure,
// loopback-only mode that precedes identity and access.
type AllowAll struct{}

// Authorize implements Authorizer.
func (AllowAll) Authorize(context.Context, *Info, string, string) error { return nil }
