package server

import (
	"context"
	"encoding/json"
	"encoding/xml"
	"net/http"
	"net/netip"

	"github.com/cofferhq/coffer/internal/auth"
	"github.com/cofferhq/coffer/internal/config"
	"github.com/cofferhq/coffer/internal/endpoint"
)

// The source address of a request (aws:SourceIp, the audit record's
// sourceIPAddress, the endpoint's allowed CIDRs) is resolved per listener:
// the TCP peer, or, from a trusted proxy, the client its PROXY header
// (already in RemoteAddr, see endpoint/proxy.go) or X-Forwarded-For names.

type clientKey struct{}

// withClient returns ctx carrying the resolved source address.
func withClient(ctx context.Context, a netip.Addr) context.Context {
	return context.WithValue(ctx, clientKey{}, a)
}

// clientFrom returns the source address the listener resolved, if it did.
func clientFrom(ctx context.Context) (netip.Addr, bool) {
	a, ok := ctx.Value(clientKey{}).(netip.Addr)
	return a, ok
}

// resolveClient puts the request's source address in its context when the
// listener has trusted proxies (otherwise the pipeline takes the peer).
func resolveClient(e *endpoint.Endpoint, r *http.Request) context.Context {
	ctx := r.Context()
	if len(e.TrustedProxies) == 0 {
		return ctx
	}
	return withClient(ctx, e.ClientAddr(remoteIP(r.RemoteAddr), r.Header.Values("X-Forwarded-For")))
}

// sourceRefusedMessage is the message of a request whose source, as a
// trusted proxy named it, is outside the endpoint's allowed CIDRs.
func sourceRefusedMessage(ep *endpoint.Endpoint, a netip.Addr) string {
	return "Source IP " + a.String() + " is not allowed to reach VPC endpoint " + ep.ID
}

// ociDenied is the /v2/ door's 403.
func ociDenied(w http.ResponseWriter, _ *http.Request, info *auth.Info, msg string) {
	info.ErrorCode, info.ErrorMessage = "DENIED", msg
	body, _ := json.Marshal(map[string]any{"errors": []map[string]string{{"code": "DENIED", "message": msg}}})
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(http.StatusForbidden)
	w.Write(body)
}

// awsDenied is the AWS door's 403 in the request's protocol: JSON
// AccessDeniedException, or a Query AccessDenied.
func awsDenied(w http.ResponseWriter, r *http.Request, info *auth.Info, msg string) {
	if r.Header.Get("X-Amz-Target") != "" {
		writeJSONError(w, info, http.StatusForbidden, "AccessDeniedException", msg)
		return
	}
	writeQueryError(w, info, scopeService(r), http.StatusForbidden, "AccessDenied", msg)
}

// s3Denied is the presigned layer download's 403, S3's XML error.
func s3Denied(w http.ResponseWriter, r *http.Request, info *auth.Info, msg string) {
	info.ErrorCode, info.ErrorMessage = "AccessDenied", msg
	body, _ := xml.Marshal(struct {
		XMLName   xml.Name `xml:"Error"`
		Code      string   `xml:"Code"`
		Message   string   `xml:"Message"`
		RequestID string   `xml:"RequestId"`
	}{Code: "AccessDenied", Message: msg, RequestID: info.RequestID})
	w.Header().Set("Content-Type", "application/xml")
	w.WriteHeader(http.StatusForbidden)
	if r.Method != http.MethodHead {
		w.Write([]byte(xml.Header))
		w.Write(body)
	}
}

// publicEndpoint is the default listener: every service, any source, the
// global trusted proxies.
func publicEndpoint(cfg config.Config) *endpoint.Endpoint {
	tp, _ := cfg.TrustedProxyPrefixes() // Open validated the configuration
	return &endpoint.Endpoint{Public: true, TrustedProxies: tp}
}

// opsPaths are the routes outside the doors (and so outside wrap's
// checks).
var opsPaths = map[string]bool{"/healthz": true, "/readyz": true, "/metrics": true}

// refusedOutsideDoors answers a plain 403 to a request for an ops route
// through an endpoint whose source, as a trusted proxy named it, is outside
// the endpoint's allowed CIDRs; the doors refuse such requests themselves,
// in their own format and audited.
func refusedOutsideDoors(w http.ResponseWriter, r *http.Request) bool {
	ep := endpoint.For(r.Context())
	if ep == nil || !opsPaths[r.URL.Path] {
		return false
	}
	a, ok := clientFrom(r.Context())
	if !ok || ep.AllowsSource(a) {
		return false
	}
	http.Error(w, sourceRefusedMessage(ep, a), http.StatusForbidden)
	return true
}
