package sigv4

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/cofferhq/coffer/internal/auth"
)

// Credentials is what a key lookup yields.
type Credentials struct {
	AccessKeyID string
	// SecretAccessKey is secret: never log it, never put it in an error.
	SecretAccessKey []byte
	// SessionToken is "" for long-term keys; a request made with temporary
	// credentials must present exactly this token.
	SessionToken string
	// Expires is zero for long-term keys.
	Expires   time.Time
	Principal auth.Principal
}

// KeyStore finds the credentials of an access key ID.
type KeyStore interface {
	// Lookup returns an error wrapping ErrUnknownKey when the key is absent
	// or inactive; any other error is an internal failure.
	Lookup(ctx context.Context, accessKeyID string) (Credentials, error)
}

// Config configures a Verifier.
type Config struct {
	// Region is the only region credential scopes may name, e.g. us-east-1.
	Region string
	// Keys resolves access key IDs. Required.
	Keys KeyStore
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// MaxSkew bounds |now - X-Amz-Date|; 0 means 5 minutes.
	MaxSkew time.Duration
	// MaxBody bounds the body read to check its hash; 0 means 16 MiB.
	MaxBody int64
	// SingleEncodedServices sign the path as sent, without a second
	// percent-encoding or dot-segment removal; nil means {"s3"}.
	SingleEncodedServices []string
	// UnsignedPayloadServices accept "X-Amz-Content-Sha256:
	// UNSIGNED-PAYLOAD" in the header form. Presigned URLs always may.
	UnsignedPayloadServices []string
}

// Defaults.
const (
	DefaultMaxSkew = 5 * time.Minute
	DefaultMaxBody = 16 << 20
)

// Verifier checks SigV4 signatures. It is safe for concurrent use.
type Verifier struct {
	region        string
	keys          KeyStore
	now           func() time.Time
	maxSkew       time.Duration
	maxBody       int64
	singleEncoded []string
	unsignedOK    []string
}

// Result describes an authenticated request.
type Result struct {
	Principal   auth.Principal
	AccessKeyID string
	// Presigned is true for the query-string form.
	Presigned    bool
	SignedRegion string
	// UnsignedPayload is true when the signature does not cover the body
	// (a presigned URL, or UNSIGNED-PAYLOAD where allowed): the body is
	// whatever the sender chose.
	UnsignedPayload bool
}

// New validates cfg and returns a Verifier. Every problem is reported.
func New(cfg Config) (*Verifier, error) {
	var errs []error
	if !validScopeName(cfg.Region) {
		errs = append(errs, fmt.Errorf("sigv4: region %q is not a valid region name", cfg.Region))
	}
	if cfg.Keys == nil {
		errs = append(errs, errors.New("sigv4: a KeyStore is required"))
	}
	if cfg.MaxSkew < 0 {
		errs = append(errs, errors.New("sigv4: MaxSkew must not be negative"))
	}
	if cfg.MaxBody < 0 {
		errs = append(errs, errors.New("sigv4: MaxBody must not be negative"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	v := &Verifier{
		region:        cfg.Region,
		keys:          cfg.Keys,
		now:           cfg.Now,
		maxSkew:       cfg.MaxSkew,
		maxBody:       cfg.MaxBody,
		singleEncoded: slices.Clone(cfg.SingleEncodedServices),
		unsignedOK:    slices.Clone(cfg.UnsignedPayloadServices),
	}
	if v.now == nil {
		v.now = time.Now
	}
	if v.maxSkew == 0 {
		v.maxSkew = DefaultMaxSkew
	}
	if v.maxBody == 0 {
		v.maxBody = DefaultMaxBody
	}
	if v.singleEncoded == nil {
		v.singleEncoded = []string{"s3"}
	}
	return v, nil
}

// Verify authenticates r signed for service ("ecr", "kms", "iam", "sts",
// "cloudtrail", "s3"). On success it returns the credentials' principal
// and, where it read the body to hash it, replaces r.Body with an
// equivalent reader. Authentication failures are *Error values wrapping one
// of the sentinels; a KeyStore failure or a broken connection is returned
// wrapped as is.
func (v *Verifier) Verify(r *http.Request, service string) (Result, error) {
	s, params, perr := v.parse(r)
	if perr != nil {
		return Result{}, perr
	}
	if err := v.checkScope(s, service); err != nil {
		return Result{}, err
	}
	now := v.now()
	if err := v.checkTime(s, now); err != nil {
		return Result{}, err
	}
	if name := unsignedAmzHeader(r.Header, s.headers); name != "" {
		return Result{}, fail(ErrSignatureMismatch, "There were headers present in the request which were not signed", "unsigned header "+quoteUntrusted(name))
	}

	creds, lerr := v.keys.Lookup(r.Context(), s.keyID)
	if lerr != nil {
		if errors.Is(lerr, ErrUnknownKey) {
			return Result{}, fail(ErrUnknownKey, msgInvalidToken, "access key "+s.keyID+" not found")
		}
		return Result{}, fmt.Errorf("sigv4: look up access key %s: %w", s.keyID, lerr)
	}
	if creds.AccessKeyID != s.keyID || len(creds.SecretAccessKey) == 0 {
		return Result{}, fail(ErrUnknownKey, msgInvalidToken, "key store returned unusable credentials for "+s.keyID)
	}
	if err := checkToken(s, &creds); err != nil {
		return Result{}, err
	}
	if !creds.Expires.IsZero() && !now.Before(creds.Expires) {
		return Result{}, fail(ErrExpiredToken, msgExpiredToken, "credentials of "+s.keyID+" expired at "+creds.Expires.UTC().Format(amzDateFormat))
	}

	payloads, unsigned, berr := v.payloadHashes(r, s, service)
	if berr != nil {
		return Result{}, berr
	}
	if err := v.checkSignature(r, s, params, service, payloads, creds.SecretAccessKey); err != nil {
		return Result{}, err
	}
	p := creds.Principal
	if p.AccessKeyID == "" {
		p.AccessKeyID = s.keyID
	}
	return Result{Principal: p, AccessKeyID: s.keyID, Presigned: s.presigned, SignedRegion: s.region, UnsignedPayload: unsigned}, nil
}

// Authenticator adapts v to auth.Authenticator for one service.
func (v *Verifier) Authenticator(service string) auth.Authenticator {
	return authenticator{v: v, service: service}
}

type authenticator struct {
	v       *Verifier
	service string
}

func (a authenticator) Authenticate(r *http.Request) (auth.Principal, error) {
	res, err := a.v.Verify(r, a.service)
	return res.Principal, err
}

// parse finds the form of r and reads its claims. Exactly one form must be
// present: an "AWS4-HMAC-SHA256" Authorization header or presigned query
// parameters. An Authorization header of another scheme does not count as
// a form (a client following a redirect to a presigned URL may carry one).
func (v *Verifier) parse(r *http.Request) (*signed, []param, *Error) {
	if r.URL == nil {
		return nil, nil, fail(ErrMissingAuth, msgMissingAuth, "request without a URL")
	}
	params, err := parseQuery(r.URL.RawQuery)
	if err != nil {
		return nil, nil, err
	}
	authz := r.Header["Authorization"]
	header := false
	for _, h := range authz {
		if h == algorithm || strings.HasPrefix(h, algorithm+" ") {
			header = true
		}
	}
	presigned := isPresigned(params)
	switch {
	case header && presigned:
		return nil, nil, fail(ErrMissingAuth, msgBothForms, "both an Authorization header and presigned query parameters")
	case !header && !presigned:
		return nil, nil, fail(ErrMissingAuth, msgMissingAuth, "")
	}
	s := new(signed)
	if presigned {
		if err := parsePresigned(params, s); err != nil {
			return nil, nil, err
		}
		return s, params, nil
	}
	if len(authz) != 1 {
		return nil, nil, incomplete("Request has more than one Authorization header.")
	}
	dates := r.Header["X-Amz-Date"]
	if len(dates) > 1 {
		return nil, nil, incomplete("Request has more than one 'X-Amz-Date' header.")
	}
	cred, sh, sig, err := parseAuthorization(authz[0], len(dates) == 0 || dates[0] == "")
	if err != nil {
		return nil, nil, err
	}
	if err := parseCredential(cred, s); err != nil {
		return nil, nil, err
	}
	if s.headers, err = parseSignedHeaders(sh); err != nil {
		return nil, nil, err
	}
	if s.at, err = parseAmzDate(dates[0]); err != nil {
		return nil, nil, err
	}
	s.amzDate, s.signature = dates[0], sig
	switch toks := r.Header["X-Amz-Security-Token"]; len(toks) {
	case 0:
	case 1:
		s.token, s.hasToken = toks[0], true
	default:
		return nil, nil, fail(ErrInvalidToken, msgInvalidToken, "repeated X-Amz-Security-Token header")
	}
	return s, params, nil
}

// checkScope compares the credential scope with the called service, the
// configured region and the request's own date, in AWS's order.
func (v *Verifier) checkScope(s *signed, service string) *Error {
	if s.service != service {
		return fail(ErrWrongService, "Credential should be scoped to correct service: '"+service+"'. ", "scope service "+quoteUntrusted(s.service))
	}
	if s.region != v.region {
		return fail(ErrWrongRegion, msgWrongRegion, "scope region "+quoteUntrusted(s.region))
	}
	if s.date != s.amzDate[:8] {
		return fail(ErrSignatureMismatch, "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '"+s.date+"' != '"+s.amzDate[:8]+"', from '"+s.amzDate+"'.", "")
	}
	if !validKeyID(s.keyID) {
		return fail(ErrUnknownKey, msgInvalidToken, "malformed access key ID "+quoteUntrusted(s.keyID))
	}
	return nil
}

// checkTime applies MaxSkew to X-Amz-Date and, for presigned URLs,
// X-Amz-Expires.
func (v *Verifier) checkTime(s *signed, now time.Time) *Error {
	now = now.UTC()
	if s.at.After(now.Add(v.maxSkew)) {
		skew := skewText(v.maxSkew)
		if s.presigned {
			return fail(ErrRequestExpired, msgNotYetValid, "X-Amz-Date "+s.amzDate+" is later than now "+now.Format(amzDateFormat)+" + "+skew)
		}
		return fail(ErrRequestExpired, "Signature not yet current: "+s.amzDate+" is still later than "+
			now.Add(v.maxSkew).Format(amzDateFormat)+" ("+now.Format(amzDateFormat)+" + "+skew+")", "")
	}
	if s.presigned && s.expires > 0 {
		if end := s.at.Add(s.expires); now.After(end) {
			return fail(ErrRequestExpired, msgExpiredURL, "presigned URL expired at "+end.Format(amzDateFormat))
		}
		return nil
	}
	if s.at.Before(now.Add(-v.maxSkew)) {
		return fail(ErrRequestExpired, "Signature expired: "+s.amzDate+" is now earlier than "+
			now.Add(-v.maxSkew).Format(amzDateFormat)+" ("+now.Format(amzDateFormat)+" - "+skewText(v.maxSkew)+")", "")
	}
	return nil
}

func skewText(d time.Duration) string {
	if d%time.Minute == 0 {
		return fmt.Sprintf("%d min.", d/time.Minute)
	}
	return fmt.Sprintf("%d sec.", d/time.Second)
}

// checkToken: temporary credentials need exactly their token, long-term
// ones none. The comparison is constant-time.
func checkToken(s *signed, c *Credentials) *Error {
	switch {
	case c.SessionToken == "" && s.hasToken:
		return fail(ErrInvalidToken, msgInvalidToken, "session token presented with long-term key "+s.keyID)
	case c.SessionToken != "" && !s.hasToken:
		return fail(ErrInvalidToken, msgInvalidToken, "no session token presented with temporary key "+s.keyID)
	case c.SessionToken != "" && (len(s.token) > maxTokenLen ||
		subtle.ConstantTimeCompare([]byte(s.token), []byte(c.SessionToken)) != 1):
		return fail(ErrInvalidToken, msgInvalidToken, "session token does not match temporary key "+s.keyID)
	}
	return nil
}

// payloadHashes returns the payload hashes the signer may have used (at
// most two) and whether the body is left unauthenticated.
//
//   - X-Amz-Content-Sha256 present: its value. A hex digest is checked
//     against the body now, never lazily: a handler decoding JSON stops
//     before EOF and would never see a lazy mismatch. UNSIGNED-PAYLOAD only
//     for presigned requests and UnsignedPayloadServices.
//   - presigned, no header: UNSIGNED-PAYLOAD (S3, both SDKs) or, when there
//     is no body at all, the empty hash (botocore SigV4QueryAuth signs the body
//     of non-S3 presigned requests, after moving it into the query).
//   - otherwise: SHA-256 of the body, read up to MaxBody.
func (v *Verifier) payloadHashes(r *http.Request, s *signed, service string) ([]string, bool, error) {
	hdr := r.Header["X-Amz-Content-Sha256"]
	if len(hdr) > 1 {
		return nil, false, mismatch("repeated X-Amz-Content-Sha256 header")
	}
	if len(hdr) == 1 {
		switch h := hdr[0]; {
		case h == unsignedPayload:
			if !s.presigned && !slices.Contains(v.unsignedOK, service) {
				return nil, false, mismatch("UNSIGNED-PAYLOAD is not accepted for " + service)
			}
			return []string{h}, true, nil
		case isLowerHex64(h):
			sum, err := v.hashBody(r)
			if err != nil {
				return nil, false, err
			}
			if sum != h {
				return nil, false, fail(ErrSignatureMismatch, "The provided 'x-amz-content-sha256' header does not match what was computed.", "body hash differs from X-Amz-Content-Sha256")
			}
			return []string{h}, false, nil
		default:
			return nil, false, mismatch("unsupported X-Amz-Content-Sha256 value " + quoteUntrusted(h))
		}
	}
	if s.presigned {
		if r.Body == nil || r.Body == http.NoBody {
			// No body: nothing is left unauthenticated.
			return []string{unsignedPayload, emptySHA256}, false, nil
		}
		return []string{unsignedPayload}, true, nil
	}
	sum, err := v.hashBody(r)
	if err != nil {
		return nil, false, err
	}
	return []string{sum}, false, nil
}

// hashBody reads the whole body (at most MaxBody bytes), replaces r.Body
// with a reader of the same bytes and returns their SHA-256 in hex.
func (v *Verifier) hashBody(r *http.Request) (string, error) {
	if r.Body == nil || r.Body == http.NoBody {
		return emptySHA256, nil
	}
	if r.ContentLength > v.maxBody {
		return "", fail(ErrBodyTooLarge, msgBodyTooLarge, fmt.Sprintf("Content-Length %d exceeds %d", r.ContentLength, v.maxBody))
	}
	size := 512
	if r.ContentLength >= 0 {
		size = int(r.ContentLength) + 1 // room to see EOF without growing
	}
	buf, err := readAtMost(r.Body, make([]byte, 0, size), v.maxBody+1)
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return "", fail(ErrBodyTooLarge, msgBodyTooLarge, err.Error())
		}
		return "", fmt.Errorf("sigv4: read body: %w", err)
	}
	n := int64(len(buf))
	if n > v.maxBody {
		return "", fail(ErrBodyTooLarge, msgBodyTooLarge, fmt.Sprintf("body exceeds %d bytes", v.maxBody))
	}
	_ = r.Body.Close()
	r.Body = io.NopCloser(bytes.NewReader(buf))
	r.ContentLength = n
	sum := sha256.Sum256(buf)
	return hex.EncodeToString(sum[:]), nil
}

// readAtMost appends from r to buf until EOF or until buf holds limit
// bytes.
func readAtMost(r io.Reader, buf []byte, limit int64) ([]byte, error) {
	for int64(len(buf)) < limit {
		if len(buf) == cap(buf) {
			buf = slices.Grow(buf, int(min(int64(cap(buf)), limit-int64(len(buf)))))
		}
		end := min(int64(cap(buf)), limit)
		n, err := r.Read(buf[len(buf):end])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
	return buf, nil
}

func isLowerHex64(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// checkSignature builds the canonical request for every candidate URI and
// payload hash (at most four, usually one) and compares its signature with
// the one sent, in constant time.
func (v *Verifier) checkSignature(r *http.Request, s *signed, params []param, service string, payloads []string, secret []byte) *Error {
	uris, nuris := canonicalURIs(requestPath(r), slices.Contains(v.singleEncoded, service))

	// Everything between the URI and the payload hash is shared.
	mid := make([]byte, 0, 1024)
	mid = append(mid, '\n')
	mid = appendCanonicalQuery(mid, params, s.presigned)
	mid = append(mid, '\n')
	mid, err := appendCanonicalHeaders(mid, r, s.headers)
	if err != nil {
		return err
	}
	mid = append(mid, '\n')
	for i, h := range s.headers {
		if i > 0 {
			mid = append(mid, ';')
		}
		mid = append(mid, h...)
	}
	mid = append(mid, '\n')

	m := macer{buf: make([]byte, 0, 64+len(s.amzDate)+len(s.date)+len(s.region)+len(s.service)+128)}
	defer m.wipe()
	key := m.signingKey(secret, s.date, s.region, s.service)
	defer clear(key[:])

	sts := make([]byte, 0, 160)
	sts = append(sts, algorithm+"\n"...)
	sts = append(sts, s.amzDate...)
	sts = append(sts, '\n')
	sts = append(sts, s.date...)
	sts = append(sts, '/')
	sts = append(sts, s.region...)
	sts = append(sts, '/')
	sts = append(sts, s.service...)
	sts = append(sts, "/"+terminator+"\n"...)
	prefix := len(sts)

	want := []byte(s.signature)
	var creq []byte
	var got [2 * sha256.Size]byte
	ok := 0
	for _, uri := range uris[:nuris] {
		for _, payload := range payloads {
			creq = append(creq[:0], r.Method...)
			creq = append(creq, '\n')
			creq = append(creq, uri...)
			creq = append(creq, mid...)
			creq = append(creq, payload...)
			sum := sha256.Sum256(creq)
			sts = hex.AppendEncode(sts[:prefix], sum[:])
			sig := m.sum(key[:], sts)
			hex.Encode(got[:], sig[:])
			ok |= subtle.ConstantTimeCompare(got[:], want)
		}
	}
	if ok != 1 {
		return mismatch("")
	}
	return nil
}

// macer computes HMAC-SHA256 over short messages without allocating per
// call (crypto/hmac allocates two digests per key, and SigV4 keys change
// four times per request). Its buffer holds key material: wipe it.
type macer struct{ buf []byte }

func (m *macer) sum(key, msg []byte) [sha256.Size]byte {
	const block = 64
	var k0 [block]byte
	if len(key) > block {
		h := sha256.Sum256(key)
		copy(k0[:], h[:])
	} else {
		copy(k0[:], key)
	}
	m.buf = m.buf[:0]
	for _, b := range k0 {
		m.buf = append(m.buf, b^0x36)
	}
	m.buf = append(m.buf, msg...)
	inner := sha256.Sum256(m.buf)
	m.buf = m.buf[:0]
	for _, b := range k0 {
		m.buf = append(m.buf, b^0x5c)
	}
	m.buf = append(m.buf, inner[:]...)
	clear(k0[:])
	return sha256.Sum256(m.buf)
}

func (m *macer) wipe() { clear(m.buf[:cap(m.buf)]) }

// signingKey derives kSigning = HMAC(HMAC(HMAC(HMAC("AWS4"+secret, date),
// region), service), "aws4_request"). It is recomputed per request rather
// than cached: the four HMACs cost well under a microsecond (see
// BenchmarkSigningKey), and a cache would keep secret-equivalent keys in
// memory and need the secret's fingerprint to notice a rotation.
func (m *macer) signingKey(secret []byte, date, region, service string) [sha256.Size]byte {
	k := make([]byte, 0, 4+len(secret))
	k = append(k, "AWS4"...)
	k = append(k, secret...)
	key := m.sum(k, []byte(date))
	clear(k)
	key = m.sum(key[:], []byte(region))
	key = m.sum(key[:], []byte(service))
	return m.sum(key[:], []byte(terminator))
}
