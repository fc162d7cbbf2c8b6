package sigv4

import (
	"net/url"
	"strings"
	"time"
)

const (
	algorithm       = "AWS4-HMAC-SHA256"
	terminator      = "aws4_request"
	amzDateFormat   = "20060102T150405Z"
	emptySHA256     = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
	unsignedPayload = "UNSIGNED-PAYLOAD"

	// Bounds on untrusted input.
	maxAuthHeader    = 8 << 10  // Authorization header bytes
	maxCredential    = 512      // Credential / X-Amz-Credential bytes
	maxKeyID         = 128      // AWS's AccessKeyId limit
	maxScopePart     = 64       // region and service names
	maxSignedHeaders = 64       // names in SignedHeaders
	maxHeaderName    = 128      // bytes in one signed header name
	maxQuery         = 64 << 10 // raw query string bytes
	maxQueryParams   = 1024     // parameters in the query string
	maxExpires       = 604800   // X-Amz-Expires, one week
	maxTokenLen      = 8 << 10  // session token bytes
)

// Query parameter names of the presigned form.
const (
	qAlgorithm     = "X-Amz-Algorithm"
	qCredential    = "X-Amz-Credential"
	qDate          = "X-Amz-Date"
	qExpires       = "X-Amz-Expires"
	qSignedHeaders = "X-Amz-SignedHeaders"
	qSignature     = "X-Amz-Signature"
	qToken         = "X-Amz-Security-Token"
)

// signed is what one request claims: who signed it, when, for what scope,
// over which headers, and the signature itself. Every field comes from the
// client and is untrusted until the signature checks.
type signed struct {
	presigned bool
	keyID     string
	date      string // yyyymmdd from the credential scope
	region    string
	service   string
	headers   []string // SignedHeaders, lowercase, strictly ascending
	signature string
	amzDate   string // yyyymmddThhmmssZ as sent
	at        time.Time
	expires   time.Duration // presigned only; 0 when X-Amz-Expires is absent
	token     string
	hasToken  bool
}

// param is one query parameter, decoded and in SigV4 canonical encoding.
type param struct {
	key, value       string // decoded
	encKey, encValue string // canonical encoding
}

// parseQuery splits a raw query string on '&' and decodes each name and
// value as application/x-www-form-urlencoded ('+' is a space), the way
// net/url.URL.Query does: aws-sdk-go-v2 builds the canonical query from
// URL.Query(). Empty segments are skipped, as URL.Query skips them.
// Semicolons are ordinary characters.
func parseQuery(raw string) ([]param, *Error) {
	if raw == "" {
		return nil, nil
	}
	if len(raw) > maxQuery {
		return nil, incomplete("The query string is too long.")
	}
	params := make([]param, 0, min(strings.Count(raw, "&")+1, maxQueryParams))
	for seg := range strings.SplitSeq(raw, "&") {
		if seg == "" {
			continue
		}
		if len(params) == maxQueryParams {
			return nil, incomplete("The query string has too many parameters.")
		}
		k, v, _ := strings.Cut(seg, "=")
		key, err := url.QueryUnescape(k)
		if err != nil {
			return nil, mismatch("malformed query string escape")
		}
		value, err := url.QueryUnescape(v)
		if err != nil {
			return nil, mismatch("malformed query string escape")
		}
		params = append(params, param{key: key, value: value})
	}
	return params, nil
}

// lookupParam returns the value of the only parameter named key, whether
// there was one, and whether the name was repeated.
func lookupParam(params []param, key string) (value string, found, repeated bool) {
	for i := range params {
		if params[i].key == key {
			if found {
				return "", true, true
			}
			value, found = params[i].value, true
		}
	}
	return value, found, false
}

// isPresigned reports whether the query carries presigned-URL parameters.
func isPresigned(params []param) bool {
	for i := range params {
		switch params[i].key {
		case qAlgorithm, qCredential, qSignature:
			return true
		}
	}
	return false
}

// parseAuthorization splits an "AWS4-HMAC-SHA256 Credential=...,
// SignedHeaders=..., Signature=..." header value. The caller has checked
// the algorithm prefix. Missing parts are reported together, in AWS's
// words; dateMissing adds AWS's sentence about the date header.
func parseAuthorization(h string, dateMissing bool) (credential, signedHeaders, signature string, err *Error) {
	if len(h) > maxAuthHeader {
		return "", "", "", incomplete("Authorization header is too long.")
	}
	rest := strings.TrimLeft(h[len(algorithm):], " ")
	var haveCred, haveSH, haveSig bool
	for comp := range strings.SplitSeq(rest, ",") {
		if rest == "" {
			break
		}
		comp = strings.Trim(comp, " ")
		name, value, ok := strings.Cut(comp, "=")
		if !ok {
			return "", "", "", incomplete("Authorization header requires each component to have the form 'name=value'.")
		}
		var dst *string
		var seen *bool
		switch name {
		case "Credential":
			dst, seen = &credential, &haveCred
		case "SignedHeaders":
			dst, seen = &signedHeaders, &haveSH
		case "Signature":
			dst, seen = &signature, &haveSig
		default:
			return "", "", "", incomplete("Authorization header has an unknown component '" + quoteUntrusted(name) + "'.")
		}
		if *seen {
			return "", "", "", incomplete("Authorization header has a repeated component '" + name + "'.")
		}
		*dst, *seen = value, true
	}
	var msg strings.Builder
	if credential == "" {
		msg.WriteString("Authorization header requires 'Credential' parameter. ")
	}
	if signature == "" {
		msg.WriteString("Authorization header requires 'Signature' parameter. ")
	}
	if signedHeaders == "" {
		msg.WriteString("Authorization header requires 'SignedHeaders' parameter. ")
	}
	if dateMissing {
		msg.WriteString("Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header. ")
	}
	if msg.Len() > 0 {
		return "", "", "", incomplete(strings.TrimSuffix(msg.String(), " "))
	}
	return credential, signedHeaders, signature, nil
}

// parseCredential splits "AKID/yyyymmdd/region/service/aws4_request" into
// s. It checks shape and bounds only; Verify compares the scope with the
// request's date, the configured region and the called service.
func parseCredential(cred string, s *signed) *Error {
	if len(cred) > maxCredential {
		return incomplete("Credential is too long.")
	}
	var parts [5]string
	n := 0
	for p := range strings.SplitSeq(cred, "/") {
		if n == len(parts) {
			n++
			break
		}
		parts[n] = p
		n++
	}
	if n != len(parts) {
		return incomplete("Credential must have exactly 5 slash-delimited elements, e.g. keyid/date/region/service/term, got '" + quoteUntrusted(cred) + "'")
	}
	if parts[4] != terminator {
		return incomplete("Credential should be scoped with a valid terminator: 'aws4_request', not '" + quoteUntrusted(parts[4]) + "'. ")
	}
	if !validDate(parts[1]) {
		return incomplete("Credential should be scoped to a valid date in the form yyyymmdd, not '" + quoteUntrusted(parts[1]) + "'. ")
	}
	s.keyID, s.date, s.region, s.service = parts[0], parts[1], parts[2], parts[3]
	return nil
}

func validDate(d string) bool {
	if len(d) != 8 {
		return false
	}
	for i := 0; i < len(d); i++ {
		if d[i] < '0' || d[i] > '9' {
			return false
		}
	}
	return true
}

// validKeyID reports whether id can be an access key ID (AWS: [\w]+, at most
// 128 characters). Anything else is never passed to the KeyStore.
func validKeyID(id string) bool {
	if id == "" || len(id) > maxKeyID {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// validScopeName reports whether a region or service name is plausible
// ([a-z0-9-], bounded); it only keeps junk out of messages and lookups.
func validScopeName(s string) bool {
	if s == "" || len(s) > maxScopePart {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// parseSignedHeaders splits "content-type;host;x-amz-date". Names must be
// lowercase header tokens in strictly ascending byte order (both SDKs sort
// them; AWS computes the canonical headers in that order), and host must
// be among them.
func parseSignedHeaders(list string) ([]string, *Error) {
	if list == "" {
		return nil, incomplete("Authorization header requires 'SignedHeaders' parameter.")
	}
	n := strings.Count(list, ";") + 1
	if n > maxSignedHeaders {
		return nil, incomplete("SignedHeaders lists too many headers.")
	}
	names := make([]string, 0, n)
	hasHost := false
	for name := range strings.SplitSeq(list, ";") {
		if !validHeaderName(name) {
			return nil, incomplete("SignedHeaders must be lowercase header names separated by ';', got '" + quoteUntrusted(name) + "'.")
		}
		if len(names) > 0 && names[len(names)-1] >= name {
			return nil, incomplete("SignedHeaders must be sorted and unique.")
		}
		names = append(names, name)
		if name == "host" {
			hasHost = true
		}
	}
	if !hasHost {
		return nil, incomplete("'Host' must be a 'SignedHeader' in the AWS Authorization.")
	}
	return names, nil
}

// validHeaderName: an RFC 9110 token in lowercase.
func validHeaderName(s string) bool {
	if s == "" || len(s) > maxHeaderName {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// parseAmzDate parses an ISO 8601 basic-format timestamp.
func parseAmzDate(v string) (time.Time, *Error) {
	t, err := time.Parse(amzDateFormat, v)
	if err != nil || len(v) != len(amzDateFormat) {
		return time.Time{}, incomplete("Date must be in ISO-8601 'basic format'. Got '" + quoteUntrusted(v) + "'. See http://en.wikipedia.org/wiki/ISO_8601")
	}
	return t, nil
}

// parsePresigned reads the presigned-URL parameters into s.
func parsePresigned(params []param, s *signed) *Error {
	get := func(key string) (string, bool, *Error) {
		v, found, repeated := lookupParam(params, key)
		if repeated {
			return "", false, incomplete("Query parameter '" + key + "' is repeated.")
		}
		return v, found && v != "", nil
	}
	alg, okAlg, err := get(qAlgorithm)
	if err != nil {
		return err
	}
	cred, okCred, err := get(qCredential)
	if err != nil {
		return err
	}
	date, okDate, err := get(qDate)
	if err != nil {
		return err
	}
	sh, okSH, err := get(qSignedHeaders)
	if err != nil {
		return err
	}
	sig, okSig, err := get(qSignature)
	if err != nil {
		return err
	}
	if !okAlg || !okCred || !okDate || !okSH || !okSig {
		return incomplete(msgPresignQuery)
	}
	if alg != algorithm {
		return incomplete("X-Amz-Algorithm only supports \"AWS4-HMAC-SHA256\"")
	}
	exp, okExp, err := get(qExpires)
	if err != nil {
		return err
	}
	if okExp {
		secs, e := parseExpires(exp)
		if e != nil {
			return e
		}
		s.expires = time.Duration(secs) * time.Second
	}
	tok, found, repeated := lookupParam(params, qToken)
	if repeated {
		return fail(ErrInvalidToken, msgInvalidToken, "repeated X-Amz-Security-Token")
	}
	if e := parseCredential(cred, s); e != nil {
		return e
	}
	if s.headers, err = parseSignedHeaders(sh); err != nil {
		return err
	}
	if s.at, err = parseAmzDate(date); err != nil {
		return err
	}
	s.presigned, s.amzDate, s.signature = true, date, sig
	s.token, s.hasToken = tok, found
	return nil
}

func parseExpires(v string) (int, *Error) {
	if len(v) > 7 {
		return 0, incomplete("X-Amz-Expires must be less than a week (in seconds) that is 604800")
	}
	n := 0
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c < '0' || c > '9' {
			if i == 0 && c == '-' {
				return 0, incomplete("X-Amz-Expires must be non-negative")
			}
			return 0, incomplete("X-Amz-Expires should be a number")
		}
		n = n*10 + int(c-'0')
	}
	switch {
	case n > maxExpires:
		return 0, incomplete("X-Amz-Expires must be less than a week (in seconds) that is 604800")
	case n < 1:
		return 0, incomplete("X-Amz-Expires must be at least 1 second")
	}
	return n, nil
}
