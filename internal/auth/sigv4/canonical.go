package sigv4

import (
	"net/http"
	"net/textproto"
	"slices"
	"strconv"
	"strings"
)

// requestPath returns the path exactly as the client sent it, still
// percent-encoded: that is what both SDKs sign (aws-sdk-go-v2 signs
// URL.EscapedPath() or URL.Opaque and sends the same bytes; botocore signs
// the path of the URL it sends). RequestURI is the wire form on a server;
// URL.EscapedPath is the fallback for requests built in process.
func requestPath(r *http.Request) string {
	if ru := r.RequestURI; ru != "" && ru[0] == '/' {
		if i := strings.IndexByte(ru, '?'); i >= 0 {
			ru = ru[:i]
		}
		return ru
	}
	var p string
	if op := r.URL.Opaque; op != "" {
		// "//host/path" form, as aws-sdk-go-v2's GetURIPath reads it.
		op, _, _ = strings.Cut(op, "?")
		op = strings.TrimPrefix(op, "//")
		if i := strings.IndexByte(op, '/'); i >= 0 {
			p = op[i:]
		}
	} else {
		p = r.URL.EscapedPath()
	}
	if p == "" {
		p = "/"
	}
	return p
}

// canonicalURIs returns the canonical URI candidates for path (one, or two
// when the SDKs disagree):
//
//   - single-encoded services (S3): the path as sent, neither normalized
//     nor escaped again (aws-sdk-go-v2 DisableURIPathEscaping; botocore
//     S3SigV4Auth._normalize_url_path returns the path unchanged);
//   - all others: the already-encoded path is percent-encoded again, every
//     byte but the unreserved ones (letters, digits, "-._~") and '/'
//     (smithy-go httpbinding.EscapePath(path, false); botocore
//     quote(path, safe='/~')). botocore first removes dot segments and
//     empty segments (botocore.utils.remove_dot_segments) while
//     aws-sdk-go-v2 does not, so a path with "//", "/./" or "/../" yields
//     both forms.
func canonicalURIs(path string, singleEncoded bool) (uris [2]string, n int) {
	if singleEncoded {
		return [2]string{path}, 1
	}
	a := escapePath(path)
	norm := removeDotSegments(path)
	if norm == path {
		return [2]string{a}, 1
	}
	if b := escapePath(norm); b != a {
		return [2]string{a, b}, 2
	}
	return [2]string{a}, 1
}

func isUnreserved(c byte) bool {
	return c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' ||
		c == '-' || c == '.' || c == '_' || c == '~'
}

const upperHex = "0123456789ABCDEF"

// escapePath percent-encodes every byte but unreserved ones and '/'.
func escapePath(p string) string {
	n := 0
	for i := 0; i < len(p); i++ {
		if !isUnreserved(p[i]) && p[i] != '/' {
			n++
		}
	}
	if n == 0 {
		return p
	}
	b := make([]byte, 0, len(p)+2*n)
	for i := 0; i < len(p); i++ {
		c := p[i]
		if isUnreserved(c) || c == '/' {
			b = append(b, c)
		} else {
			b = append(b, '%', upperHex[c>>4], upperHex[c&15])
		}
	}
	return string(b)
}

// encodeComponent is SigV4's URI encoding of a query name or value: every
// byte but unreserved ones as %XX, uppercase hex, a space as %20
// (aws-sdk-go-v2 encodeQueryComponent; botocore quote(safe='-_.~')).
func encodeComponent(s string) string {
	n := 0
	for i := 0; i < len(s); i++ {
		if !isUnreserved(s[i]) {
			n++
		}
	}
	if n == 0 {
		return s
	}
	b := make([]byte, 0, len(s)+2*n)
	for i := 0; i < len(s); i++ {
		c := s[i]
		if isUnreserved(c) {
			b = append(b, c)
		} else {
			b = append(b, '%', upperHex[c>>4], upperHex[c&15])
		}
	}
	return string(b)
}

// removeDotSegments is botocore.utils.remove_dot_segments: RFC 3986 5.2.4
// plus the removal of empty segments.
func removeDotSegments(p string) string {
	if p == "" {
		return "/"
	}
	if !strings.Contains(p, "//") && !strings.Contains(p, "/.") && !strings.HasPrefix(p, ".") {
		return p
	}
	out := make([]string, 0, strings.Count(p, "/")+1)
	for seg := range strings.SplitSeq(p, "/") {
		switch seg {
		case "", ".":
		case "..":
			if len(out) > 0 {
				out = out[:len(out)-1]
			}
		default:
			out = append(out, seg)
		}
	}
	var b strings.Builder
	if p[0] == '/' {
		b.WriteByte('/')
	}
	b.WriteString(strings.Join(out, "/"))
	if p[len(p)-1] == '/' && len(out) > 0 {
		b.WriteByte('/')
	}
	return b.String()
}

// appendCanonicalQuery appends the canonical query string: every parameter
// (but X-Amz-Signature when presigned) encoded, then sorted by encoded name
// and, for repeated names, by encoded value. Sorting follows encoding, as
// the spec and aws-sdk-go-v2's EncodeQuery say.
func appendCanonicalQuery(dst []byte, params []param, presigned bool) []byte {
	if len(params) == 0 {
		return dst
	}
	ps := make([]*param, 0, len(params))
	for i := range params {
		p := &params[i]
		if presigned && p.key == qSignature {
			continue
		}
		p.encKey, p.encValue = encodeComponent(p.key), encodeComponent(p.value)
		ps = append(ps, p)
	}
	slices.SortFunc(ps, func(a, b *param) int {
		if c := strings.Compare(a.encKey, b.encKey); c != 0 {
			return c
		}
		return strings.Compare(a.encValue, b.encValue)
	})
	for i, p := range ps {
		if i > 0 {
			dst = append(dst, '&')
		}
		dst = append(dst, p.encKey...)
		dst = append(dst, '=')
		dst = append(dst, p.encValue...)
	}
	return dst
}

// appendCanonicalHeaders appends "name:value\n" for each signed header.
// Values of a repeated header are joined with ','; each value has runs of
// spaces collapsed and is then trimmed (aws-sdk-go-v2 StripExcessSpaces then
// strings.TrimSpace; botocore collapses all whitespace, which differs only
// for tabs inside a value). host is r.Host, the Host header as sent.
// content-length falls back to r.ContentLength for requests whose header
// map lacks it. A signed header the request does not carry is a mismatch.
func appendCanonicalHeaders(dst []byte, r *http.Request, names []string) ([]byte, *Error) {
	for _, name := range names {
		dst = append(dst, name...)
		dst = append(dst, ':')
		var values []string
		switch name {
		case "host":
			host := r.Host
			if host == "" {
				host = r.URL.Host
			}
			values = []string{host}
		default:
			values = headerValues(r.Header, name)
			if len(values) == 0 && name == "content-length" && r.ContentLength >= 0 {
				values = []string{strconv.FormatInt(r.ContentLength, 10)}
			}
		}
		if len(values) == 0 {
			return nil, mismatch("signed header " + name + " is not in the request")
		}
		for i, v := range values {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = append(dst, strings.TrimSpace(stripExcessSpaces(v))...)
		}
		dst = append(dst, '\n')
	}
	return dst, nil
}

// headerValues is h[textproto.CanonicalMIMEHeaderKey(name)] for a
// lowercase token name, without allocating the canonical key.
func headerValues(h http.Header, name string) []string {
	var buf [maxHeaderName]byte
	if len(name) > len(buf) {
		return h[textproto.CanonicalMIMEHeaderKey(name)]
	}
	upper := true
	for i := 0; i < len(name); i++ {
		c := name[i]
		if upper && c >= 'a' && c <= 'z' {
			c -= 'a' - 'A'
		}
		buf[i] = c
		upper = c == '-'
	}
	return h[string(buf[:len(name)])]
}

// stripExcessSpaces trims spaces at both ends and collapses inner runs of
// spaces to one, like aws-sdk-go-v2's internal StripExcessSpaces.
func stripExcessSpaces(s string) string {
	s = strings.Trim(s, " ")
	if !strings.Contains(s, "  ") {
		return s
	}
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if s[i] == ' ' && i > 0 && s[i-1] == ' ' {
			continue
		}
		b = append(b, s[i])
	}
	return string(b)
}

// unsignedAmzHeader returns the name of an x-amz-* header in the request
// that is not signed, or "". S3 rejects such requests ("There were headers
// present in the request which were not signed"); here it keeps a replayed
// request from changing X-Amz-Target or a token unnoticed. x-amzn-*
// (X-Amzn-Trace-Id, which aws-sdk-go-v2 never signs) is not x-amz-*.
func unsignedAmzHeader(h http.Header, names []string) string {
	for k := range h {
		if len(k) < 6 || !strings.EqualFold(k[:6], "x-amz-") {
			continue
		}
		if !isSigned(names, k) {
			return k
		}
	}
	return ""
}

// isSigned reports whether the header name k, in any case, is in names
// (lowercase, sorted), by binary search.
func isSigned(names []string, k string) bool {
	if len(k) > maxHeaderName {
		return false
	}
	var buf [maxHeaderName]byte
	b := buf[:len(k)]
	for i := 0; i < len(k); i++ {
		c := k[i]
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		b[i] = c
	}
	lo, hi := 0, len(names)
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		switch c := compareBytes(names[mid], b); {
		case c == 0:
			return true
		case c < 0:
			lo = mid + 1
		default:
			hi = mid
		}
	}
	return false
}

func compareBytes(s string, b []byte) int {
	for i := 0; i < len(s) && i < len(b); i++ {
		if s[i] != b[i] {
			if s[i] < b[i] {
				return -1
			}
			return 1
		}
	}
	return len(s) - len(b)
}
