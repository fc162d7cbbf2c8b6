package sigv4

import (
	"bytes"
	"strings"
	"testing"
)

const (
	jsonType  = "application/x-amz-json-1.1"
	formType  = "application/x-www-form-urlencoded; charset=utf-8"
	ecrTarget = "AmazonEC2ContainerRegistry_V20150921.DescribeRepositories"
)

// oracleCases are requests signed by aws-sdk-go-v2's signer, the oracle:
// Verify must accept every one of them.
func oracleCases() []struct {
	name string
	o    signOpts
} {
	large := bytes.Repeat([]byte(`{"layerPartBlob":"QUJD"}`), 1<<16) // 1.5 MiB
	jsonHdr := map[string]string{"Content-Type": jsonType, "X-Amz-Target": ecrTarget}
	return []struct {
		name string
		o    signOpts
	}{
		{"ecr json", signOpts{service: "ecr", body: []byte(`{"repositoryNames":["app"]}`), header: jsonHdr}},
		{"ecr json temporary", signOpts{service: "ecr", body: []byte(`{}`), header: jsonHdr, creds: temporary()}},
		{"ecr large body", signOpts{service: "ecr", body: large, header: jsonHdr}},
		{"ecr empty body", signOpts{service: "ecr", header: jsonHdr}},
		{"kms json", signOpts{service: "kms", body: []byte(`{"KeyId":"alias/x","Plaintext":"aGk="}`),
			header: map[string]string{"Content-Type": jsonType, "X-Amz-Target": "TrentService.Encrypt"}}},
		{"sts query form", signOpts{service: "sts", body: []byte("Action=GetCallerIdentity&Version=2011-06-15"),
			header: map[string]string{"Content-Type": formType}}},
		{"iam query form temporary", signOpts{service: "iam", body: []byte("Action=ListUsers&Version=2010-05-08&MaxItems=10"),
			header: map[string]string{"Content-Type": formType}, creds: temporary()}},
		{"cloudtrail json", signOpts{service: "cloudtrail", body: []byte(`{}`),
			header: map[string]string{"Content-Type": jsonType, "X-Amz-Target": "com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101.LookupEvents"}}},
		{"iam get with query", signOpts{service: "iam", method: "GET", path: "/?Action=ListUsers&Version=2010-05-08"}},
		{"path v2", signOpts{service: "ecr", method: "GET", path: "/v2/a/b/manifests/latest"}},
		{"path space", signOpts{service: "ecr", method: "GET", path: "/a%20b/c%20d"}},
		{"path unicode", signOpts{service: "kms", method: "GET", path: "/%C3%BCn%C3%AF/%E2%82%AC"}},
		{"path encoded slash", signOpts{service: "ecr", method: "GET", path: "/a%2Fb/c"}},
		{"path reserved", signOpts{service: "sts", method: "GET", path: "/a!$&'()*+,;=:@/b"}},
		{"path dot segments", signOpts{service: "ecr", method: "GET", path: "/a/./b/../c//d/"}},
		{"query repeated keys", signOpts{service: "ecr", method: "GET", path: "/?b=2&a=3&a=1&a=2"}},
		{"query empty values", signOpts{service: "ecr", method: "GET", path: "/?empty=&flag&x=1"}},
		{"query reserved", signOpts{service: "sts", method: "GET", path: "/?k=%2F%3D%26%3F%23%25&sp=a+b&t=~_-.&u=%C3%BC"}},
		{"query slash vs dash", signOpts{service: "iam", method: "GET", path: "/?v=a-b&v=a%2Fb"}},
		{"header spaces and repeats", signOpts{service: "ecr", body: []byte(`{}`),
			header: map[string]string{"Content-Type": jsonType, "X-Amz-Target": ecrTarget, "X-Custom": "  a   b  c  "}}},
		{"s3 get", signOpts{service: "s3", method: "GET", path: "/bucket/key%20with%20space/%C3%BC",
			header: map[string]string{"X-Amz-Content-Sha256": emptySHA256}}},
		{"s3 put", signOpts{service: "s3", method: "PUT", path: "/bucket/a/b", body: []byte("blob"),
			header: map[string]string{"X-Amz-Content-Sha256": hashHex([]byte("blob")), "Content-Type": "application/octet-stream"}}},
		{"s3 dot segments single encoded", signOpts{service: "s3", method: "GET", path: "/bucket/a/../b//c",
			header: map[string]string{"X-Amz-Content-Sha256": emptySHA256}}},
		{"presign s3", signOpts{service: "s3", method: "GET", path: "/prod-us-east-1-starport-layer-bucket/layers/aes256/x%20y",
			payload: unsignedPayload, presign: true, expires: 900}},
		{"presign s3 temporary", signOpts{service: "s3", method: "GET", path: "/b/k?versionId=3&response-content-type=application%2Fjson",
			payload: unsignedPayload, presign: true, expires: 60, creds: temporary()}},
		{"presign sts no expires", signOpts{service: "sts", method: "GET", path: "/?Action=GetCallerIdentity&Version=2011-06-15",
			presign: true}},
		{"presign sts header kept", signOpts{service: "sts", method: "GET", path: "/?Action=GetCallerIdentity&Version=2011-06-15",
			presign: true, expires: 60, header: map[string]string{"X-K8s-Aws-Id": "cluster"}}},
		{"presign ecr max expires", signOpts{service: "ecr", method: "GET", path: "/v2/", payload: unsignedPayload,
			presign: true, expires: 604800}},
	}
}

func TestOracleAccepts(t *testing.T) {
	c := newCapturer(t)
	v := newVerifier(t)
	for _, tc := range oracleCases() {
		t.Run(tc.name, func(t *testing.T) {
			got := signAndSend(t, c, tc.o)
			r := got.fresh()
			res, err := v.Verify(r, tc.o.service)
			if err != nil {
				t.Fatalf("Verify: %v\nAuthorization: %s\nURI: %s", err, r.Header.Get("Authorization"), r.RequestURI)
			}
			o := tc.o.withDefaults()
			if res.AccessKeyID != o.creds.AccessKeyID || res.Principal.AccountID != testAccount ||
				res.Principal.AccessKeyID != o.creds.AccessKeyID || res.Presigned != o.presign || res.SignedRegion != testRegion {
				t.Fatalf("Result = %+v", res)
			}
			if res.UnsignedPayload != (o.payload == unsignedPayload && got.body != nil) {
				t.Fatalf("UnsignedPayload = %v", res.UnsignedPayload)
			}
			// The body Verify read is handed on intact.
			if b := readAll(t, r.Body); !bytes.Equal(b, got.body) {
				t.Fatalf("body after Verify: %d bytes, want %d", len(b), len(got.body))
			}
		})
	}
}

// TestOracleEquivalentEncodings: the wire form of the query may differ
// from the canonical one (order, hex case, '+' for a space, unreserved
// characters escaped); the verifier canonicalizes, as AWS does.
func TestOracleEquivalentEncodings(t *testing.T) {
	c := newCapturer(t)
	v := newVerifier(t)
	got := signAndSend(t, c, signOpts{service: "iam", method: "GET", path: "/?b=x%2Fy&a=b%20c&t=~"})
	for _, raw := range []string{
		"b=x%2Fy&a=b%20c&t=~",
		"t=%7E&b=x%2fy&a=b+c",
		"a=b%20c&&b=x%2Fy&t=~&",
		"%61=b%20c&b=x/y&t=~",
	} {
		r := got.fresh()
		r.URL.RawQuery = raw
		r.RequestURI = "/?" + raw
		if _, err := v.Verify(r, "iam"); err != nil {
			t.Errorf("query %q: %v", raw, err)
		}
	}
}

func TestUnsignedPayloadOption(t *testing.T) {
	c := newCapturer(t)
	got := signAndSend(t, c, signOpts{service: "s3", method: "PUT", path: "/b/k", body: []byte("anything"),
		payload: unsignedPayload, header: map[string]string{"X-Amz-Content-Sha256": unsignedPayload}})
	_, err := newVerifier(t).Verify(got.fresh(), "s3")
	wantErr(t, err, ErrSignatureMismatch, got.req)
	res, err := newVerifier(t, func(c *Config) { c.UnsignedPayloadServices = []string{"s3"} }).Verify(got.fresh(), "s3")
	if err != nil || !res.UnsignedPayload {
		t.Fatalf("Verify = %+v, %v", res, err)
	}
}

// TestSingleEncodedOption: a service signed like S3 verifies only when
// configured as single-encoded, and S3 stops verifying when it is not.
func TestSingleEncodedOption(t *testing.T) {
	c := newCapturer(t)
	got := signAndSend(t, c, signOpts{service: "s3", method: "GET", path: "/b/a%20b",
		header: map[string]string{"X-Amz-Content-Sha256": emptySHA256}})
	_, err := newVerifier(t, func(c *Config) { c.SingleEncodedServices = []string{} }).Verify(got.fresh(), "s3")
	wantErr(t, err, ErrSignatureMismatch, got.req)
}

func TestRequestsCarryTheirToken(t *testing.T) {
	c := newCapturer(t)
	got := signAndSend(t, c, signOpts{service: "sts", creds: temporary(), body: []byte("Action=GetCallerIdentity&Version=2011-06-15"),
		header: map[string]string{"Content-Type": formType}})
	if got.req.Header.Get("X-Amz-Security-Token") != tempToken || !strings.Contains(got.req.Header.Get("Authorization"), "x-amz-security-token") {
		t.Fatal("the SDK did not sign the session token header")
	}
}
