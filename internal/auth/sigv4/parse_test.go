package sigv4

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/cofferhq/coffer/internal/auth"
)

func TestNewReportsEveryProblem(t *testing.T) {
	_, err := New(Config{Region: "US East", MaxSkew: -1, MaxBody: -1})
	if err == nil {
		t.Fatal("New accepted a broken config")
	}
	for _, want := range []string{"region", "KeyStore", "MaxSkew", "MaxBody"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %s", err, want)
		}
	}
	v, err := New(Config{Region: testRegion, Keys: newKeyStore()})
	if err != nil || v.maxSkew != DefaultMaxSkew || v.maxBody != DefaultMaxBody || v.now == nil {
		t.Fatalf("defaults: %+v, %v", v, err)
	}
}

// TestRemoveDotSegments against botocore.utils.normalize_url_path.
func TestRemoveDotSegments(t *testing.T) {
	for in, want := range map[string]string{
		"/": "/", "": "/", "/a/b": "/a/b", "/a//b": "/a/b", "/a/./b": "/a/b", "/a/../b": "/b",
		"/../a": "/a", "/a/b/": "/a/b/", "/a/b/..": "/a", "/a/b/../": "/a/", "//": "/", "/./": "/",
		"a/b": "a/b", "/a/.../b": "/a/.../b", "/%2E%2E/a": "/%2E%2E/a",
	} {
		if got := removeDotSegments(in); got != want {
			t.Errorf("removeDotSegments(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestCanonicalURIs(t *testing.T) {
	for _, tc := range []struct {
		path   string
		single bool
		want   []string
	}{
		{"/", false, []string{"/"}},
		{"/a%20b/~c", false, []string{"/a%2520b/~c"}},
		{"/a%20b", true, []string{"/a%20b"}},
		{"/a/../b", true, []string{"/a/../b"}},
		{"/a/../b%2F", false, []string{"/a/../b%252F", "/b%252F"}},
		{"/a!*", false, []string{"/a%21%2A"}},
	} {
		uris, n := canonicalURIs(tc.path, tc.single)
		if got := uris[:n]; strings.Join(got, " ") != strings.Join(tc.want, " ") {
			t.Errorf("canonicalURIs(%q, %v) = %q, want %q", tc.path, tc.single, uris[:n], tc.want)
		}
	}
}

func TestParseAuthorization(t *testing.T) {
	const good = "AWS4-HMAC-SHA256 Credential=AKID/20240501/us-east-1/ecr/aws4_request, SignedHeaders=host;x-amz-date, Signature=abc"
	for _, tc := range []struct {
		name, header string
		noDate       bool
		msg          string // "" means accepted
	}{
		{"sdk form", good, false, ""},
		{"no spaces", strings.ReplaceAll(good, ", ", ","), false, ""},
		{"extra spaces", strings.ReplaceAll(good, ", ", " ,  "), false, ""},
		{"nothing", "AWS4-HMAC-SHA256", false, "Authorization header requires 'Credential' parameter. Authorization header requires 'Signature' parameter. Authorization header requires 'SignedHeaders' parameter."},
		{"nothing no date", "AWS4-HMAC-SHA256 ", true, "Authorization header requires 'Credential' parameter. Authorization header requires 'Signature' parameter. Authorization header requires 'SignedHeaders' parameter. Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header."},
		{"no signature", strings.Replace(good, ", Signature=abc", "", 1), false, "Authorization header requires 'Signature' parameter."},
		{"repeated", good + ", Signature=abc", false, "Authorization header has a repeated component 'Signature'."},
		{"unknown", good + ", Foo=bar", false, "Authorization header has an unknown component 'Foo'."},
		{"no equals", good + ", junk", false, "Authorization header requires each component to have the form 'name=value'."},
		{"too long", good + strings.Repeat(" ", maxAuthHeader), false, "Authorization header is too long."},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, _, err := parseAuthorization(tc.header, tc.noDate)
			switch {
			case tc.msg == "" && err != nil:
				t.Fatalf("rejected: %v", err)
			case tc.msg != "" && (err == nil || err.Message != tc.msg || !errors.Is(err, ErrIncompleteSignature)):
				t.Fatalf("got %v, want message %q", err, tc.msg)
			}
		})
	}
}

func TestParseSignedHeaders(t *testing.T) {
	for list, ok := range map[string]bool{
		"host": true, "content-type;host;x-amz-date": true, "a;b;host": true,
		"": false, "x-amz-date": false, "host;content-type": false, "host;host": false, "Host": false,
		"host;": false, ";host": false, "host;x amz": false, "host;x:y": false,
		strings.Repeat("a;", maxSignedHeaders) + "host": false,
		"host;" + strings.Repeat("x", maxHeaderName+1):  false,
	} {
		if _, err := parseSignedHeaders(list); (err == nil) != ok {
			t.Errorf("parseSignedHeaders(%q) = %v, want ok=%v", list, err, ok)
		}
	}
}

func TestParseCredential(t *testing.T) {
	for cred, msg := range map[string]string{
		"AKID/20240501/us-east-1/ecr/aws4_request":   "",
		"AKID/20240501/us-east-1/ecr":                "Credential must have exactly 5 slash-delimited elements, e.g. keyid/date/region/service/term, got 'AKID/20240501/us-east-1/ecr'",
		"AKID/20240501/us-east-1/ecr/aws4_request/x": "Credential must have exactly 5 slash-delimited elements",
		"AKID/20240501/us-east-1/ecr/aws4":           "Credential should be scoped with a valid terminator: 'aws4_request', not 'aws4'. ",
		"AKID/2024051/us-east-1/ecr/aws4_request":    "Credential should be scoped to a valid date",
		strings.Repeat("A", maxCredential+1):         "Credential is too long.",
	} {
		var s signed
		err := parseCredential(cred, &s)
		if msg == "" {
			if err != nil || s.keyID != "AKID" || s.date != "20240501" || s.region != "us-east-1" || s.service != "ecr" {
				t.Errorf("parseCredential(%q) = %v, %+v", cred, err, s)
			}
			continue
		}
		if err == nil || !strings.HasPrefix(err.Message, msg) {
			t.Errorf("parseCredential(%q) = %v, want %q", cred, err, msg)
		}
	}
}

func TestQuoteUntrusted(t *testing.T) {
	if got := quoteUntrusted("a'b<\n>" + strings.Repeat("x", 100)); got != "a?b???"+strings.Repeat("x", 58)+"..." {
		t.Fatalf("quoteUntrusted = %q", got)
	}
}

// TestPublicMessages pins AWS's wording for each failure.
func TestPublicMessages(t *testing.T) {
	c := newCapturer(t)
	v := newVerifier(t)
	got := signAndSend(t, c, signOpts{service: "ecr", body: []byte(`{}`)})
	authz := got.req.Header.Get("Authorization")
	for _, tc := range []struct {
		name   string
		mutate func(*http.Request)
		want   error
		msg    string
	}{
		{"missing", func(r *http.Request) { r.Header.Del("Authorization") }, ErrMissingAuth, "Request is missing Authentication Token"},
		{"unknown key", func(r *http.Request) {
			r.Header.Set("Authorization", strings.Replace(authz, testKeyID, "AKIAOTHER", 1))
		}, ErrUnknownKey,
			"The security token included in the request is invalid."},
		{"token on long-term key", func(r *http.Request) {
			r.Header.Set("X-Amz-Security-Token", "t")
			r.Header.Set("Authorization", strings.Replace(authz, "x-amz-date", "x-amz-date;x-amz-security-token", 1))
		}, ErrInvalidToken,
			"The security token included in the request is invalid."},
		{"mismatch", func(r *http.Request) { r.Method = "PUT" }, ErrSignatureMismatch,
			"The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details."},
		{"region", func(r *http.Request) {
			r.Header.Set("Authorization", strings.Replace(authz, "/us-east-1/", "/eu-west-1/", 1))
		}, ErrWrongRegion,
			"Credential should be scoped to a valid region. "},
		{"service", func(r *http.Request) { r.Header.Set("Authorization", strings.Replace(authz, "/ecr/", "/sts/", 1)) }, ErrWrongService,
			"Credential should be scoped to correct service: 'ecr'. "},
		{"date", func(r *http.Request) {
			r.Header.Set("Authorization", strings.Replace(authz, "/20240501/", "/20240430/", 1))
		}, ErrSignatureMismatch,
			"Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '20240430' != '20240501', from '20240501T120000Z'."},
		{"content sha", func(r *http.Request) { r.Header.Set("X-Amz-Content-Sha256", emptySHA256) }, ErrSignatureMismatch,
			"The provided 'x-amz-content-sha256' header does not match what was computed."},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := got.fresh()
			tc.mutate(r)
			if tc.name == "content sha" {
				// Sign it in, so only the body check can fail.
				r.Header.Set("Authorization", strings.Replace(authz, "x-amz-date", "x-amz-content-sha256;x-amz-date", 1))
			}
			_, err := v.Verify(r, "ecr")
			wantErr(t, err, tc.want, r)
			var e *Error
			if errors.As(err, &e); e.Message != tc.msg {
				t.Fatalf("message %q, want %q", e.Message, tc.msg)
			}
		})
	}
}

func TestBodyLimits(t *testing.T) {
	c := newCapturer(t)
	body := []byte(strings.Repeat("x", 100))
	got := signAndSend(t, c, signOpts{service: "ecr", body: body})
	small := newVerifier(t, func(c *Config) { c.MaxBody = 99 })
	exact := newVerifier(t, func(c *Config) { c.MaxBody = 100 })

	r := got.fresh()
	_, err := small.Verify(r, "ecr")
	wantErr(t, err, ErrBodyTooLarge, r)

	r = got.fresh()
	r.ContentLength = -1 // chunked: the limit is found while reading
	r.Header.Del("Content-Length")
	_, err = small.Verify(r, "ecr")
	wantErr(t, err, ErrBodyTooLarge, r)

	r = got.fresh()
	r.Body = http.MaxBytesReader(httptest.NewRecorder(), r.Body, 10)
	_, err = exact.Verify(r, "ecr")
	wantErr(t, err, ErrBodyTooLarge, r)

	if _, err := exact.Verify(got.fresh(), "ecr"); err != nil {
		t.Fatal(err)
	}
}

type failingStore struct{}

func (failingStore) Lookup(context.Context, string) (Credentials, error) {
	return Credentials{}, errors.New("database is down")
}

func TestKeyStoreFailureIsNotAnAuthFailure(t *testing.T) {
	c := newCapturer(t)
	got := signAndSend(t, c, signOpts{service: "ecr", body: []byte(`{}`)})
	v := newVerifier(t, func(c *Config) { c.Keys = failingStore{} })
	_, err := v.Verify(got.fresh(), "ecr")
	var e *Error
	if err == nil || errors.As(err, &e) || errors.Is(err, auth.ErrUnauthenticated) || !strings.Contains(err.Error(), "database is down") {
		t.Fatalf("Verify = %v", err)
	}
}

// TestForeignAuthorization: a non-SigV4 Authorization header is no SigV4
// form: alone it is missing authentication; beside a presigned URL it is
// ignored (a client may carry it across a redirect).
func TestForeignAuthorization(t *testing.T) {
	c := newCapturer(t)
	v := newVerifier(t)
	got := signAndSend(t, c, signOpts{service: "s3", method: "GET", path: "/b/k", payload: unsignedPayload, presign: true, expires: 60})
	r := got.fresh()
	r.Header.Set("Authorization", "Bearer abc")
	if _, err := v.Verify(r, "s3"); err != nil {
		t.Fatal(err)
	}
	r = got.fresh()
	setQuery(r, "")
	r.Header.Set("Authorization", "Bearer abc")
	_, err := v.Verify(r, "s3")
	wantErr(t, err, ErrMissingAuth, r)
}

func TestUnsupportedPayloadHash(t *testing.T) {
	c := newCapturer(t)
	got := signAndSend(t, c, signOpts{service: "s3", method: "PUT", path: "/b/k", body: []byte("x"),
		payload: "STREAMING-AWS4-HMAC-SHA256-PAYLOAD", header: map[string]string{"X-Amz-Content-Sha256": "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"}})
	r := got.fresh()
	_, err := newVerifier(t).Verify(r, "s3")
	wantErr(t, err, ErrSignatureMismatch, r)
}

func TestAuthenticatorAdapter(t *testing.T) {
	c := newCapturer(t)
	got := signAndSend(t, c, signOpts{service: "ecr", body: []byte(`{}`)})
	a := newVerifier(t).Authenticator("ecr")
	p, err := a.Authenticate(got.fresh())
	if err != nil || p.UserName != "alice" || p.AccessKeyID != testKeyID {
		t.Fatalf("Authenticate = %+v, %v", p, err)
	}
	if _, err := newVerifier(t).Authenticator("kms").Authenticate(got.fresh()); !errors.Is(err, auth.ErrUnauthenticated) {
		t.Fatalf("Authenticate for another service = %v", err)
	}
}

// TestLookupOnlyAfterCheapChecks: a malformed, mis-scoped or stale request
// never reaches the KeyStore.
func TestLookupOnlyAfterCheapChecks(t *testing.T) {
	c := newCapturer(t)
	got := signAndSend(t, c, signOpts{service: "ecr", body: []byte(`{}`)})
	keys := newKeyStore()
	v := newVerifier(t, func(c *Config) { c.Keys = keys; c.Now = func() time.Time { return signTime.Add(time.Hour) } })
	if _, err := v.Verify(got.fresh(), "ecr"); !errors.Is(err, ErrRequestExpired) {
		t.Fatal(err)
	}
	if _, err := v.Verify(got.fresh(), "kms"); !errors.Is(err, ErrWrongService) {
		t.Fatal(err)
	}
	if keys.calls != 0 {
		t.Fatalf("KeyStore called %d times", keys.calls)
	}
}

// TestMacer: the allocation-free HMAC equals crypto/hmac, for keys
// shorter and longer than a block.
func TestMacer(t *testing.T) {
	var m macer
	for _, n := range []int{0, 1, 32, 63, 64, 65, 200} {
		key := bytes.Repeat([]byte{byte(n)}, n)
		for _, msg := range []string{"", "20240501", strings.Repeat("m", 300)} {
			want := hmac.New(sha256.New, key)
			want.Write([]byte(msg))
			if got := m.sum(key, []byte(msg)); !bytes.Equal(got[:], want.Sum(nil)) {
				t.Fatalf("key %d bytes, msg %d bytes: HMAC differs", n, len(msg))
			}
		}
	}
	m.wipe()
	if bytes.Count(m.buf[:cap(m.buf)], []byte{0}) != cap(m.buf) {
		t.Fatal("wipe left key material")
	}
}

func TestIsSigned(t *testing.T) {
	names := []string{"content-type", "host", "x-amz-date", "x-amz-security-token", "x-amz-target"}
	for k, want := range map[string]bool{
		"X-Amz-Date": true, "x-amz-target": true, "X-AMZ-SECURITY-TOKEN": true, "Host": true, "Content-Type": true,
		"X-Amz-Foo": false, "X-Amz-Dat": false, "X-Amz-Datex": false, "": false, strings.Repeat("x", 200): false,
	} {
		if got := isSigned(names, k); got != want {
			t.Errorf("isSigned(%q) = %v", k, got)
		}
	}
}
