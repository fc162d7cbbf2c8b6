package sigv4

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

// FuzzParseAuthorization: arbitrary Authorization values never panic, fail
// only with ErrIncompleteSignature, and what they yield stays in bounds.
func FuzzParseAuthorization(f *testing.F) {
	f.Add("AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20240501/us-east-1/ecr/aws4_request, SignedHeaders=content-type;host;x-amz-date;x-amz-target, Signature=" + strings.Repeat("ab", 32))
	f.Add("AWS4-HMAC-SHA256 Credential=a/b/c/d/e,SignedHeaders=host,Signature=")
	f.Add("AWS4-HMAC-SHA256 ,,,=,")
	f.Add("AWS4-HMAC-SHA256 Credential=////, SignedHeaders=;;;;, Signature=x")
	f.Fuzz(func(t *testing.T, h string) {
		if !strings.HasPrefix(h, algorithm) {
			h = algorithm + " " + h
		}
		cred, sh, sig, err := parseAuthorization(h, false)
		if err != nil {
			if !errors.Is(err, ErrIncompleteSignature) || err.Message == "" {
				t.Fatalf("bad error %v", err)
			}
			return
		}
		if !strings.Contains(h, cred) || !strings.Contains(h, sh) || !strings.Contains(h, sig) {
			t.Fatal("parts are not substrings of the header")
		}
		var s signed
		if err := parseCredential(cred, &s); err == nil {
			if cred != s.keyID+"/"+s.date+"/"+s.region+"/"+s.service+"/"+terminator {
				t.Fatalf("credential %q does not round-trip", cred)
			}
		} else if !errors.Is(err, ErrIncompleteSignature) {
			t.Fatal(err)
		}
		names, err := parseSignedHeaders(sh)
		if err != nil {
			return
		}
		if len(names) > maxSignedHeaders || strings.Join(names, ";") != sh {
			t.Fatalf("signed headers %q -> %q", sh, names)
		}
	})
}

// fuzzSeed is a request signed by the SDK, split into the fields
// FuzzVerify varies.
func fuzzSeed(f *testing.F, service, target string, body []byte, presign bool) (method, path, query, authz, date, token, sha string) {
	req := httptest.NewRequest(http.MethodPost, target, bytes.NewReader(body))
	signer := v4.NewSigner()
	if presign {
		q := req.URL.Query()
		q.Set("X-Amz-Expires", "300")
		req.URL.RawQuery = q.Encode()
		u, _, err := signer.PresignHTTP(context.Background(), temporary(), req, unsignedPayload, service, testRegion, signTime, sdkOptions(service))
		if err != nil {
			f.Fatal(err)
		}
		pu, _ := url.Parse(u)
		return req.Method, pu.EscapedPath(), pu.RawQuery, "", "", "", ""
	}
	if err := signer.SignHTTP(context.Background(), temporary(), req, hashHex(body), service, testRegion, signTime, sdkOptions(service)); err != nil {
		f.Fatal(err)
	}
	return req.Method, req.URL.EscapedPath(), req.URL.RawQuery, req.Header.Get("Authorization"),
		req.Header.Get("X-Amz-Date"), req.Header.Get("X-Amz-Security-Token"), req.Header.Get("X-Amz-Content-Sha256")
}

// FuzzVerify: arbitrary methods, paths, query strings, header values and
// bodies never panic Verify, and every failure is an *Error with a public
// message that leaks no secret.
func FuzzVerify(f *testing.F) {
	body := []byte(`{"repositoryName":"app"}`)
	m, p, q, a, d, tok, sha := fuzzSeed(f, "ecr", "/v2/a%20b/?x=1&y=", body, false)
	f.Add(m, p, q, a, d, tok, sha, body)
	m, p, q, a, d, tok, sha = fuzzSeed(f, "ecr", "/v2/x/blobs/sha256:ab?a=b", nil, true)
	f.Add(m, p, q, a, d, tok, sha, []byte(nil))
	f.Add("GET", "/", "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=a%2Fb&X-Amz-Expires=99999999", "", "", "", "", []byte("x"))
	f.Add("POST", "/a/../b//c", "%zz=1&&=&;", "AWS4-HMAC-SHA256 Credential=x", "20240501T120000Z", "", "UNSIGNED-PAYLOAD", []byte("{}"))
	v := newVerifier(f)
	f.Fuzz(func(t *testing.T, method, path, query, authz, date, token, sha string, body []byte) {
		if len(body) > 1<<16 {
			body = body[:1<<16]
		}
		r := &http.Request{
			Method: method,
			URL:    &url.URL{Path: path, RawQuery: query},
			Host:   "example.com",
			Header: http.Header{},
			Body:   io.NopCloser(bytes.NewReader(body)),
		}
		if strings.HasPrefix(path, "/") {
			r.RequestURI = path
			if query != "" {
				r.RequestURI += "?" + query
			}
		}
		r.ContentLength = int64(len(body))
		for k, v := range map[string]string{"Authorization": authz, "X-Amz-Date": date, "X-Amz-Security-Token": token, "X-Amz-Content-Sha256": sha} {
			if v != "" {
				r.Header.Set(k, v)
			}
		}
		r.Header.Set("Content-Type", "application/x-amz-json-1.1")
		res, err := v.Verify(r, "ecr")
		if err == nil {
			if res.AccessKeyID == "" {
				t.Fatal("accepted without a key")
			}
			return
		}
		var e *Error
		if !errors.As(err, &e) || e.Message == "" {
			t.Fatalf("failure is not an *Error: %v", err)
		}
		msg := err.Error()
		if strings.Contains(msg, tempSecret) || strings.Contains(msg, testSecret) || (len(tempToken) > 0 && strings.Contains(msg, tempToken)) {
			t.Fatalf("message leaks a secret: %q", msg)
		}
	})
}
