package ecrapi

import (
	"encoding/base64"
	"net/http"

	"github.com/cofferhq/coffer/internal/auth"
	"github.com/cofferhq/coffer/internal/auth/token"
)

var tokenOps = map[string]op{
	"GetAuthorizationToken": (*Handler).getAuthorizationToken,
}

type authorizationData struct {
	AuthorizationToken string  `json:"authorizationToken"`
	ExpiresAt          float64 `json:"expiresAt"`
	ProxyEndpoint      string  `json:"proxyEndpoint"`
}

// getAuthorizationToken returns base64("AWS:" + token) valid for 12 hours,
// or until the caller's temporary credentials expire if sooner (SPEC
// SEC-13, USE-03).
func (h *Handler) getAuthorizationToken(r *http.Request, info *auth.Info, body []byte) (any, error) {
	var in struct {
		RegistryIDs []string `json:"registryIds"`
	}
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	if err := h.cfg.Authz.Authorize(r.Context(), info, "ecr:GetAuthorizationToken", "*"); err != nil {
		return nil, err
	}
	now := h.now()
	exp := now.Add(token.Lifetime)
	p := info.Principal
	if !p.Expires.IsZero() && p.Expires.Before(exp) {
		exp = p.Expires
	}
	tok, err := h.cfg.Tokens.Issue(token.Claims{
		Type: p.Type, ARN: p.ARN, AccountID: p.AccountID, PrincipalID: p.PrincipalID, UserName: p.UserName,
		RoleARN: p.RoleARN, SessionName: p.SessionName, AccessKeyID: p.AccessKeyID,
		IssuedAt: now.Unix(), ExpiresAt: exp.Unix(),
	})
	if err != nil {
		return nil, err
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return map[string]any{"authorizationData": []authorizationData{{
		AuthorizationToken: base64.StdEncoding.EncodeToString([]byte("AWS:" + tok)),
		ExpiresAt:          float64(exp.UnixMilli()) / 1000,
		ProxyEndpoint:      scheme + "://" + r.Host,
	}}}, nil
}
