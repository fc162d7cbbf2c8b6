package iamapi

import (
	"context"
	"net/http"
	"time"
)

// stsOps is the STS operation table.
func (h *Handler) stsOps() map[string]op {
	return map[string]op{
		"GetCallerIdentity": {nil, h.getCallerIdentity},
		"AssumeRole":        {[]string{"RoleArn", "RoleSessionName"}, h.assumeRole},
		"GetSessionToken":   {nil, h.getSessionToken},
	}
}

// signedIn rejects the anonymous principal: every STS call needs
// credentials.
func signedIn(c *call) error {
	if p := c.info.Principal; p.Type == "Anonymous" || p.ARN == "" {
		return newError("MissingAuthenticationToken", http.StatusForbidden, "Request is missing Authentication Token")
	}
	return nil
}

type callerIdentityResult struct {
	Arn     string `xml:"Arn"`
	UserID  string `xml:"UserId"`
	Account string `xml:"Account"`
}

// getCallerIdentity needs no permission, as in AWS.
func (h *Handler) getCallerIdentity(_ context.Context, c *call) (any, error) {
	if err := signedIn(c); err != nil {
		return nil, err
	}
	p := c.info.Principal
	account := p.AccountID
	if account == "" {
		account = h.iam.AccountID()
	}
	return callerIdentityResult{Arn: p.ARN, UserID: p.PrincipalID, Account: account}, nil
}

type assumeRoleResult struct {
	Credentials     xmlCredentials     `xml:"Credentials"`
	AssumedRoleUser xmlAssumedRoleUser `xml:"AssumedRoleUser"`
}

type xmlAssumedRoleUser struct {
	AssumedRoleID string `xml:"AssumedRoleId"`
	Arn           string `xml:"Arn"`
}

// assumeRoleUnsupported are AssumeRole parameters Coffer does not honour
// yet. Each one narrows or conditions the session (session policies, tags,
// external ID, MFA, source identity), so ignoring it could hand out more
// than the caller or the role's owner asked for: they are rejected.
var assumeRoleUnsupported = []string{"Policy", "PolicyArns", "Tags", "TransitiveTagKeys", "ExternalId",
	"SerialNumber", "TokenCode", "SourceIdentity", "ProvidedContexts"}

// assumeRole's permission is the Trust callback's decision (trust policy
// and the caller's identity policies); it is not authorized twice.
func (h *Handler) assumeRole(ctx context.Context, c *call) (any, error) {
	if err := signedIn(c); err != nil {
		return nil, err
	}
	for _, p := range assumeRoleUnsupported {
		if c.q.has(p) {
			return nil, unsupported("ValidationError", c.action, p)
		}
	}
	secs, _, err := c.q.int("DurationSeconds", 900, 43200)
	if err != nil {
		return nil, err
	}
	roleARN := c.q.str("RoleArn")
	c.info.Resources = append(c.info.Resources, roleARN)
	creds, err := h.iam.AssumeRole(ctx, c.info.Principal, roleARN, c.q.str("RoleSessionName"), time.Duration(secs)*time.Second, h.trust)
	if err != nil {
		return nil, err
	}
	return assumeRoleResult{Credentials: toCredentials(creds),
		AssumedRoleUser: xmlAssumedRoleUser{AssumedRoleID: creds.Principal.PrincipalID, Arn: creds.Principal.ARN}}, nil
}

type sessionTokenResult struct {
	Credentials xmlCredentials `xml:"Credentials"`
}

// getSessionToken needs no permission beyond being an IAM user with
// long-term credentials (the identity store refuses other callers).
func (h *Handler) getSessionToken(ctx context.Context, c *call) (any, error) {
	if err := signedIn(c); err != nil {
		return nil, err
	}
	if !c.info.Principal.Expires.IsZero() {
		return nil, newError("AccessDenied", http.StatusForbidden, "Cannot call GetSessionToken with session credentials")
	}
	for _, p := range []string{"SerialNumber", "TokenCode"} {
		if c.q.has(p) {
			return nil, unsupported("ValidationError", c.action, p)
		}
	}
	secs, _, err := c.q.int("DurationSeconds", 900, 129600)
	if err != nil {
		return nil, err
	}
	creds, err := h.iam.GetSessionToken(ctx, c.info.Principal, time.Duration(secs)*time.Second)
	if err != nil {
		return nil, err
	}
	return sessionTokenResult{toCredentials(creds)}, nil
}
