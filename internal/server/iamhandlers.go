package server

import (
	"log/slog"
	"net/http"

	"github.com/cofferhq/coffer/internal/authz"
	"github.com/cofferhq/coffer/internal/iam"
	"github.com/cofferhq/coffer/internal/iamapi"
)

// newIAMHandlers returns the IAM and STS Query API handlers.
func newIAMHandlers(svc *iam.Service, decider *authz.Authorizer, log *slog.Logger) (iamH, stsH http.Handler, err error) {
	h, err := iamapi.New(iamapi.Config{IAM: svc, Authz: decider, Trust: decider.Trust, Log: log})
	if err != nil {
		return nil, nil, err
	}
	return http.HandlerFunc(h.ServeIAM), http.HandlerFunc(h.ServeSTS), nil
}
