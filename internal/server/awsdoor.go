package server

import (
	"cmp"
	"encoding/xml"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"

	"github.com/cofferhq/coffer/internal/audit"
	"github.com/cofferhq/coffer/internal/auth"
	"github.com/cofferhq/coffer/internal/auth/sigv4"
	"github.com/cofferhq/coffer/internal/ecrapi"
)

// awsDoor serves the AWS-protocol APIs on POST /: it verifies SigV4 for the
// service the credential scope names, then hands the request to that
// service's handler. Authentication failures answer in the protocol's own
// error shape with AWS's codes.
type awsDoor struct {
	verifier *sigv4.Verifier
	ecr      http.Handler
	iam      http.Handler // Query protocol, SigV4 service "iam"
	sts      http.Handler // Query protocol, SigV4 service "sts"
	kms      http.Handler // JSON protocol, SigV4 service "kms"
	// cloudtrail serves LookupEvents, SigV4 service "cloudtrail".
	cloudtrail http.Handler
	limiter    *auth.FailureLimiter
	log        *slog.Logger
}

// maxAPIBody bounds the body of every AWS-protocol request but ECR's
// UploadLayerPart (ecrapi.MaxLayerPartBody).
const maxAPIBody = 10 << 20

// jsonServices maps X-Amz-Target prefixes to SigV4 service names.
var jsonServices = map[string]string{
	ecrapi.TargetPrefix:          "ecr",
	"TrentService.":              "kms",
	audit.CloudTrailTargetPrefix: "cloudtrail",
	// aws-sdk-go-v2 sends the short form.
	audit.CloudTrailShortTargetPrefix: "cloudtrail",
}

func (d *awsDoor) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	info := auth.FromContext(r.Context())
	target := r.Header.Get("X-Amz-Target")
	jsonProto := target != ""
	service := ""
	if jsonProto {
		for prefix, svc := range jsonServices {
			if strings.HasPrefix(target, prefix) {
				service = svc
				info.EventName = strings.TrimPrefix(target, prefix)
			}
		}
		if service == "" {
			writeJSONError(w, info, http.StatusBadRequest, "UnknownOperationException", "Unknown X-Amz-Target "+quoteTarget(target))
			return
		}
	} else {
		service = scopeService(r)
		if service != "iam" && service != "sts" {
			if service == "" {
				d.authFailed(w, info, false, &sigv4.Error{Err: sigv4.ErrMissingAuth, Message: "Request is missing Authentication Token"})
				return
			}
			writeQueryError(w, info, "sts", http.StatusBadRequest, "InvalidAction", "Coffer serves the Query protocol for the iam and sts services only")
			return
		}
	}
	subjects := []string{"ip:" + info.SourceIP.String(), "key:" + scopeKeyID(r)}
	if d.limiter.Throttled(subjects...) {
		msg := "Rate exceeded: too many failed authentication attempts; retry later"
		if jsonProto {
			writeJSONError(w, info, http.StatusBadRequest, "ThrottlingException", msg)
		} else {
			writeQueryError(w, info, service, http.StatusBadRequest, "Throttling", msg)
		}
		return
	}
	// Bound what is read before the signature is checked: only ECR's
	// UploadLayerPart carries a layer part; every other operation's input
	// is small (the largest, PutImage's manifest, is at most 4 MiB before
	// JSON escaping).
	limit := int64(maxAPIBody)
	if service == "ecr" && info.EventName == "UploadLayerPart" {
		limit = ecrapi.MaxLayerPartBody
	}
	if r.ContentLength > limit {
		d.authFailed(w, info, jsonProto, &sigv4.Error{Err: sigv4.ErrBodyTooLarge,
			Message: fmt.Sprintf("Request body of %d bytes exceeds the %d bytes %s accepts", r.ContentLength, limit, cmp.Or(info.EventName, service))})
		return
	}
	if r.Body != nil && r.Body != http.NoBody { // NoBody means "no body" to the verifier
		r.Body = http.MaxBytesReader(w, r.Body, limit)
	}
	res, err := d.verifier.Verify(r, service)
	if err != nil {
		var se *sigv4.Error
		if errors.As(err, &se) {
			d.limiter.Fail(subjects...)
		}
		d.authFailed(w, info, jsonProto, err)
		return
	}
	info.Principal = res.Principal
	switch service {
	case "ecr":
		d.ecr.ServeHTTP(w, r)
	case "iam":
		d.iam.ServeHTTP(w, r)
	case "sts":
		d.sts.ServeHTTP(w, r)
	case "kms":
		d.kms.ServeHTTP(w, r)
	case "cloudtrail":
		d.cloudtrail.ServeHTTP(w, r)
	default:
		writeJSONError(w, info, http.StatusBadRequest, "UnsupportedOperationException",
			"Coffer does not serve the "+service+" API yet (operation "+info.EventName+")")
	}
}

// authFailed answers a SigV4 failure in the request's protocol.
func (d *awsDoor) authFailed(w http.ResponseWriter, info *auth.Info, jsonProto bool, err error) {
	var se *sigv4.Error
	if !errors.As(err, &se) {
		d.log.Error("sigv4 verification failed", "error", err)
		if jsonProto {
			writeJSONError(w, info, http.StatusInternalServerError, "InternalFailure", "internal server error")
		} else {
			writeQueryError(w, info, "sts", http.StatusInternalServerError, "InternalFailure", "internal server error")
		}
		return
	}
	type code struct {
		status  int
		json    string
		query   string
		qstatus int
	}
	c := code{http.StatusBadRequest, "InvalidSignatureException", "SignatureDoesNotMatch", http.StatusForbidden}
	switch {
	case errors.Is(se.Err, sigv4.ErrMissingAuth):
		c = code{http.StatusForbidden, "MissingAuthenticationTokenException", "MissingAuthenticationToken", http.StatusForbidden}
	case errors.Is(se.Err, sigv4.ErrIncompleteSignature):
		c = code{http.StatusBadRequest, "IncompleteSignatureException", "IncompleteSignature", http.StatusBadRequest}
	case errors.Is(se.Err, sigv4.ErrUnknownKey), errors.Is(se.Err, sigv4.ErrInvalidToken):
		c = code{http.StatusBadRequest, "UnrecognizedClientException", "InvalidClientTokenId", http.StatusForbidden}
	case errors.Is(se.Err, sigv4.ErrExpiredToken):
		c = code{http.StatusBadRequest, "ExpiredTokenException", "ExpiredToken", http.StatusForbidden}
	case errors.Is(se.Err, sigv4.ErrBodyTooLarge):
		c = code{http.StatusRequestEntityTooLarge, "SerializationException", "RequestEntityTooLarge", http.StatusRequestEntityTooLarge}
	}
	d.log.Info("authentication failed", "request_id", info.RequestID, "source_ip", info.SourceIP.String(), "reason", se.Error())
	if jsonProto {
		writeJSONError(w, info, c.status, c.json, se.Message)
	} else {
		writeQueryError(w, info, "sts", c.qstatus, c.query, se.Message)
	}
}

// scopeService returns the service of a request's SigV4 credential scope
// (Authorization header or presigned X-Amz-Credential), or "" if none. The
// verifier checks the scope again; this only routes.
func scopeService(r *http.Request) string {
	if parts := scope(r); parts != nil {
		return parts[3]
	}
	return ""
}

// scopeKeyID returns the access key ID a request claims, for throttling.
func scopeKeyID(r *http.Request) string {
	if parts := scope(r); parts != nil && len(parts[0]) <= 128 {
		return parts[0]
	}
	return ""
}

func scope(r *http.Request) []string {
	cred := ""
	if h := r.Header.Get("Authorization"); strings.HasPrefix(h, "AWS4-HMAC-SHA256 ") {
		if i := strings.Index(h, "Credential="); i >= 0 {
			cred = h[i+len("Credential="):]
			if j := strings.IndexAny(cred, ", "); j >= 0 {
				cred = cred[:j]
			}
		}
	} else {
		cred = r.URL.Query().Get("X-Amz-Credential")
	}
	parts := strings.Split(cred, "/")
	if len(parts) != 5 {
		return nil
	}
	return parts
}

func quoteTarget(s string) string {
	if len(s) > 100 {
		s = s[:100]
	}
	return `"` + strings.Map(func(r rune) rune {
		if r < 0x20 || r > 0x7e {
			return '?'
		}
		return r
	}, s) + `"`
}

func writeJSONError(w http.ResponseWriter, info *auth.Info, status int, typ, msg string) {
	info.ErrorCode, info.ErrorMessage = typ, msg
	w.Header().Set("x-amzn-RequestId", info.RequestID)
	ecrapi.WriteError(w, &ecrapi.Error{Type: typ, Status: status, Message: msg})
}

// writeQueryError writes an AWS Query protocol ErrorResponse.
func writeQueryError(w http.ResponseWriter, info *auth.Info, service string, status int, code, msg string) {
	info.ErrorCode, info.ErrorMessage = code, msg
	ns := "https://sts.amazonaws.com/doc/2011-06-15/"
	if service == "iam" {
		ns = "https://iam.amazonaws.com/doc/2010-05-08/"
	}
	typ := "Sender"
	if status >= 500 {
		typ = "Receiver"
	}
	body, _ := xml.Marshal(struct {
		XMLName   xml.Name `xml:"ErrorResponse"`
		NS        string   `xml:"xmlns,attr"`
		Type      string   `xml:"Error>Type"`
		Code      string   `xml:"Error>Code"`
		Message   string   `xml:"Error>Message"`
		RequestID string   `xml:"RequestId"`
	}{NS: ns, Type: typ, Code: code, Message: msg, RequestID: info.RequestID})
	w.Header().Set("Content-Type", "text/xml")
	w.Header().Set("x-amzn-RequestId", info.RequestID)
	w.WriteHeader(status)
	w.Write(body)
}

const auditUnavailable = "The request was not served because its audit record could not be made durable; retry later"

// awsUnavailable answers a request refused by the audit gate, or failed
// by a backend outage, in its protocol's shape.
func awsUnavailable(w http.ResponseWriter, r *http.Request, info *auth.Info, msg string) {
	if r.Header.Get("X-Amz-Target") != "" {
		w.Header().Set("x-amzn-ErrorType", "ServiceUnavailableException")
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintf(w, `{"__type":"ServiceUnavailableException","message":%q}`, msg)
		return
	}
	writeQueryError(w, info, "sts", http.StatusServiceUnavailable, "ServiceUnavailable", msg)
}

// ociUnavailable is the /v2/ door's answer to a request refused by the
// audit gate or failed by a backend outage.
func ociUnavailable(w http.ResponseWriter, r *http.Request, info *auth.Info, msg string) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(http.StatusServiceUnavailable)
	fmt.Fprintf(w, `{"errors":[{"code":"UNAVAILABLE","message":%q}]}`, msg)
}
