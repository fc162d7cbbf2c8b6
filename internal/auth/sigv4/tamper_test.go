package sigv4

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
)

type tamper struct {
	name   string
	mutate func(r *http.Request)
	want   error
}

func runTampers(t *testing.T, v *Verifier, got captured, service string, tampers []tamper) {
	t.Helper()
	if _, err := v.Verify(got.fresh(), service); err != nil {
		t.Fatalf("untampered request rejected: %v", err)
	}
	for _, tc := range tampers {
		t.Run(tc.name, func(t *testing.T) {
			r := got.fresh()
			tc.mutate(r)
			_, err := v.Verify(r, service)
			wantErr(t, err, tc.want, r)
		})
	}
}

// queryTampers changes, drops and adds one query parameter at a time.
// special gives the replacement value and expected error for a parameter;
// any other parameter gets "x" appended and must fail with mismatch.
func queryTampers(raw string, special map[string]tamperValue) []tamper {
	pairs := strings.Split(raw, "&")
	var out []tamper
	for i, pair := range pairs {
		k, val, _ := strings.Cut(pair, "=")
		tv, ok := special[k]
		if !ok {
			tv = tamperValue{value: val + "x", err: ErrSignatureMismatch}
		}
		with := func(p string) string {
			cp := append([]string(nil), pairs...)
			cp[i] = p
			return strings.Join(cp, "&")
		}
		changed, dropped := with(k+"="+tv.value), strings.Join(append(append([]string(nil), pairs[:i]...), pairs[i+1:]...), "&")
		out = append(out, tamper{"query change " + k, func(r *http.Request) { setQuery(r, changed) }, tv.err})
		if tv.dropErr != nil || !ok {
			dropErr := tv.dropErr
			if dropErr == nil {
				dropErr = ErrSignatureMismatch
			}
			out = append(out, tamper{"query drop " + k, func(r *http.Request) { setQuery(r, dropped) }, dropErr})
		}
	}
	out = append(out, tamper{"query add", func(r *http.Request) { setQuery(r, raw+"&zz=1") }, ErrSignatureMismatch})
	return out
}

type tamperValue struct {
	value   string
	err     error
	dropErr error
}

// headerTampers changes and removes each signed header in turn.
func headerTampers(r *http.Request) []tamper {
	var list string
	if authz := r.Header.Get("Authorization"); authz != "" {
		_, list, _ = strings.Cut(authz, "SignedHeaders=")
		list, _, _ = strings.Cut(list, ",")
	} else {
		list = r.URL.Query().Get("X-Amz-SignedHeaders")
	}
	var out []tamper
	for name := range strings.SplitSeq(list, ";") {
		change, drop := ErrSignatureMismatch, ErrSignatureMismatch
		switch name {
		case "x-amz-security-token":
			change, drop = ErrInvalidToken, ErrInvalidToken
		case "x-amz-date":
			drop = ErrIncompleteSignature
		case "content-length":
			// The length of the body read is the one signed: the
			// request is intact, only differently framed.
			drop = nil
		}
		out = append(out, tamper{"header change " + name, func(r *http.Request) {
			switch name {
			case "host":
				r.Host = "evil.example:443"
			case "x-amz-date":
				r.Header.Set("X-Amz-Date", signTime.Add(time.Second).Format(amzDateFormat))
			case "content-length":
				r.Header.Set("Content-Length", "12345")
			default:
				r.Header.Set(name, r.Header.Get(name)+"x")
			}
		}, change})
		if name != "host" {
			out = append(out, tamper{"header drop " + name, func(r *http.Request) {
				r.Header.Del(name)
				if name == "content-length" {
					r.ContentLength = -1
				}
			}, drop})
		}
	}
	return out
}

func TestTamperHeaderForm(t *testing.T) {
	c := newCapturer(t)
	v := newVerifier(t)
	body := []byte(`{"repositoryName":"app","imageIds":[{"imageTag":"v1"}]}`)
	got := signAndSend(t, c, signOpts{service: "ecr", path: "/v2/a/b?x=1&y=two", body: body, creds: temporary(),
		header: map[string]string{"Content-Type": jsonType, "X-Amz-Target": ecrTarget, "X-Extra": "a  b"}})
	authz := got.req.Header.Get("Authorization")
	setAuthz := func(old, new string) func(r *http.Request) {
		return func(r *http.Request) { r.Header.Set("Authorization", strings.Replace(authz, old, new, 1)) }
	}
	sig := signatureOf(got.req)
	flipped := sig[:10] + string("0123456789abcdef"[(strings.IndexByte("0123456789abcdef", sig[10])+1)%16]) + sig[11:]

	tampers := []tamper{
		{"method", func(r *http.Request) { r.Method = http.MethodPut }, ErrSignatureMismatch},
		{"path", func(r *http.Request) { r.RequestURI = strings.Replace(r.RequestURI, "/v2/a/b", "/v2/a/c", 1) }, ErrSignatureMismatch},
		{"path encoding", func(r *http.Request) { r.RequestURI = strings.Replace(r.RequestURI, "/v2/a/b", "/v2/a%2Fb", 1) }, ErrSignatureMismatch},
		{"body byte", func(r *http.Request) { r.Body = bodyOf(strings.Replace(string(body), "v1", "v2", 1)) }, ErrSignatureMismatch},
		{"body longer", func(r *http.Request) { r.Body = bodyOf(string(body) + " ") }, ErrSignatureMismatch},
		{"body empty", func(r *http.Request) { r.Body = http.NoBody }, ErrSignatureMismatch},
		{"unsigned x-amz header", func(r *http.Request) { r.Header.Set("X-Amz-Target", "x"); r.Header.Set("X-Amz-Foo", "1") }, ErrSignatureMismatch},
		{"signature", setAuthz(sig, flipped), ErrSignatureMismatch},
		{"signature short", setAuthz(sig, sig[:63]), ErrSignatureMismatch},
		{"signature upper", setAuthz(sig, strings.ToUpper(sig)), ErrSignatureMismatch},
		{"signature missing", setAuthz("Signature="+sig, "Signature="), ErrIncompleteSignature},
		{"credential key", setAuthz(tempKeyID, "ASIAUNKNOWNEXAMPLE00"), ErrUnknownKey},
		{"credential key malformed", setAuthz(tempKeyID, "AS.IA"), ErrUnknownKey},
		{"credential region", setAuthz("/us-east-1/", "/us-west-2/"), ErrWrongRegion},
		{"credential service", setAuthz("/ecr/", "/kms/"), ErrWrongService},
		{"credential date", setAuthz("/20240501/", "/20240502/"), ErrSignatureMismatch},
		{"credential terminator", setAuthz("aws4_request", "aws4_reques"), ErrIncompleteSignature},
		{"credential parts", setAuthz("/aws4_request", "/aws4_request/x"), ErrIncompleteSignature},
		{"signed headers without host", setAuthz("host;", ""), ErrIncompleteSignature},
		{"signed headers unsorted", setAuthz("content-length;content-type", "content-type;content-length"), ErrIncompleteSignature},
		{"signed headers extra", setAuthz("x-extra", "x-extra;zz"), ErrSignatureMismatch},
		{"algorithm", setAuthz("AWS4-HMAC-SHA256", "AWS4-HMAC-SHA512"), ErrMissingAuth},
		{"no authorization", func(r *http.Request) { r.Header.Del("Authorization") }, ErrMissingAuth},
		{"two authorizations", func(r *http.Request) { r.Header.Add("Authorization", authz) }, ErrIncompleteSignature},
		{"both forms", func(r *http.Request) { setQuery(r, "x=1&y=two&X-Amz-Signature="+sig) }, ErrMissingAuth},
		{"token header repeated", func(r *http.Request) { r.Header.Add("X-Amz-Security-Token", tempToken) }, ErrInvalidToken},
		{"date malformed", func(r *http.Request) { r.Header.Set("X-Amz-Date", "2024-05-01T12:00:00Z") }, ErrIncompleteSignature},
	}
	tampers = append(tampers, queryTampers("x=1&y=two", nil)...)
	tampers = append(tampers, headerTampers(got.req)...)
	runTampers(t, v, got, "ecr", tampers)
}

func TestTamperPresigned(t *testing.T) {
	c := newCapturer(t)
	v := newVerifier(t)
	got := signAndSend(t, c, signOpts{service: "s3", method: "GET", path: "/bucket/layers/a%20b?versionId=3",
		payload: unsignedPayload, presign: true, expires: 900, creds: temporary()})
	raw := got.req.URL.RawQuery
	special := map[string]tamperValue{
		qAlgorithm:     {"AWS4-HMAC-SHA512", ErrIncompleteSignature, ErrIncompleteSignature},
		qCredential:    {strings.Replace(got.req.URL.Query().Get(qCredential), tempKeyID, "ASIAOTHEREXAMPLE0000", 1), ErrUnknownKey, ErrIncompleteSignature},
		qDate:          {signTime.Add(time.Second).Format(amzDateFormat), ErrSignatureMismatch, ErrIncompleteSignature},
		qExpires:       {"901", ErrSignatureMismatch, ErrSignatureMismatch},
		qSignedHeaders: {"host%3Brange", ErrSignatureMismatch, ErrIncompleteSignature},
		qSignature:     {strings.Repeat("0", 64), ErrSignatureMismatch, ErrIncompleteSignature},
		qToken:         {"other", ErrInvalidToken, ErrInvalidToken},
	}
	tampers := []tamper{
		{"method", func(r *http.Request) { r.Method = http.MethodPut }, ErrSignatureMismatch},
		{"path", func(r *http.Request) { r.RequestURI = strings.Replace(r.RequestURI, "a%20b", "a%20c", 1) }, ErrSignatureMismatch},
		{"host", func(r *http.Request) { r.Host = "evil.example" }, ErrSignatureMismatch},
		{"unsigned x-amz header", func(r *http.Request) { r.Header.Set("X-Amz-Security-Token", "x") }, ErrSignatureMismatch},
		{"credential region", func(r *http.Request) { setQuery(r, strings.Replace(raw, "%2Fus-east-1%2F", "%2Feu-west-1%2F", 1)) }, ErrWrongRegion},
		{"credential service", func(r *http.Request) { setQuery(r, strings.Replace(raw, "%2Fs3%2F", "%2Fecr%2F", 1)) }, ErrWrongService},
		{"expires too long", func(r *http.Request) {
			setQuery(r, strings.Replace(raw, "X-Amz-Expires=900", "X-Amz-Expires=604801", 1))
		}, ErrIncompleteSignature},
		{"expires zero", func(r *http.Request) { setQuery(r, strings.Replace(raw, "X-Amz-Expires=900", "X-Amz-Expires=0", 1)) }, ErrIncompleteSignature},
		{"expires negative", func(r *http.Request) { setQuery(r, strings.Replace(raw, "X-Amz-Expires=900", "X-Amz-Expires=-1", 1)) }, ErrIncompleteSignature},
		{"parameter repeated", func(r *http.Request) { setQuery(r, raw+"&X-Amz-Date=20240501T120000Z") }, ErrIncompleteSignature},
		{"malformed escape", func(r *http.Request) { setQuery(r, raw+"&a=%zz") }, ErrSignatureMismatch},
	}
	tampers = append(tampers, queryTampers(raw, special)...)
	runTampers(t, v, got, "s3", tampers)
}

// TestResigned signs with one thing wrong at a time.
func TestResigned(t *testing.T) {
	c := newCapturer(t)
	v := newVerifier(t)
	body := []byte(`{"registryId":"123456789012"}`)
	hdr := map[string]string{"Content-Type": jsonType, "X-Amz-Target": ecrTarget}
	tempNoToken := temporary()
	tempNoToken.SessionToken = ""
	withToken := longTerm()
	withToken.SessionToken = tempToken
	wrongToken := temporary()
	wrongToken.SessionToken = tempToken + "x"
	for _, tc := range []struct {
		name    string
		o       signOpts
		service string
		want    error
	}{
		{"ok", signOpts{}, "ecr", nil},
		{"date past", signOpts{at: testNow.Add(-5*time.Minute - time.Second)}, "ecr", ErrRequestExpired},
		{"date past edge", signOpts{at: testNow.Add(-5 * time.Minute)}, "ecr", nil},
		{"date future", signOpts{at: testNow.Add(5*time.Minute + time.Second)}, "ecr", ErrRequestExpired},
		{"date future edge", signOpts{at: testNow.Add(5 * time.Minute)}, "ecr", nil},
		{"region", signOpts{region: "us-west-2"}, "ecr", ErrWrongRegion},
		{"service", signOpts{service: "kms"}, "ecr", ErrWrongService},
		{"key id", signOpts{creds: aws.Credentials{AccessKeyID: "AKIAUNKNOWN000000000", SecretAccessKey: testSecret}}, "ecr", ErrUnknownKey},
		{"secret", signOpts{creds: aws.Credentials{AccessKeyID: testKeyID, SecretAccessKey: testSecret + "x"}}, "ecr", ErrSignatureMismatch},
		{"token wrong", signOpts{creds: wrongToken}, "ecr", ErrInvalidToken},
		{"token missing", signOpts{creds: tempNoToken}, "ecr", ErrInvalidToken},
		{"token on long-term key", signOpts{creds: withToken}, "ecr", ErrInvalidToken},
		{"token expired", signOpts{creds: aws.Credentials{AccessKeyID: expiredID, SecretAccessKey: tempSecret, SessionToken: tempToken}}, "ecr", ErrExpiredToken},
		{"payload hash", signOpts{payload: hashHex([]byte("other"))}, "ecr", ErrSignatureMismatch},
		{"payload unsigned", signOpts{payload: unsignedPayload}, "ecr", ErrSignatureMismatch},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := tc.o
			if o.service == "" {
				o.service = "ecr"
			}
			o.body, o.header = body, hdr
			got := signAndSend(t, c, o)
			r := got.fresh()
			_, err := v.Verify(r, tc.service)
			wantErr(t, err, tc.want, r)
		})
	}
}

func bodyOf(s string) *readCloser { return &readCloser{strings.NewReader(s)} }

type readCloser struct{ *strings.Reader }

func (readCloser) Close() error { return nil }
