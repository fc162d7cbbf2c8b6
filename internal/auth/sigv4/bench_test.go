package sigv4

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"

	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

// benchRequest is an ECR JSON 1.1 call as aws-sdk-go-v2 signs it.
func benchRequest(b *testing.B, presign bool) (*http.Request, []byte) {
	body := []byte(`{"repositoryName":"team/app","imageIds":[{"imageTag":"v1.2.3"}]}`)
	req := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(body))
	req.Header.Set("Content-Type", jsonType)
	req.Header.Set("X-Amz-Target", "AmazonEC2ContainerRegistry_V20150921.BatchGetImage")
	req.Header.Set("Amz-Sdk-Invocation-Id", "3f1f2c1e-7d4a-4b6e-9c55-0a6e3c1d2b9f")
	req.Header.Set("Amz-Sdk-Request", "attempt=1; max=3")
	req.Header.Set("User-Agent", "aws-sdk-go-v2/1.47.7 os/linux lang/go#1.26 api/ecr#1.67.4")
	req.ContentLength = int64(len(body))
	signer := v4.NewSigner()
	if presign {
		req.Method = http.MethodGet
		q := url.Values{"X-Amz-Expires": {"300"}}
		req.URL.RawQuery = q.Encode()
		u, hdr, err := signer.PresignHTTP(context.Background(), longTerm(), req, unsignedPayload, "s3", testRegion, signTime, sdkOptions("s3"))
		if err != nil {
			b.Fatal(err)
		}
		pu, _ := url.Parse(u)
		r := httptest.NewRequest(http.MethodGet, pu.RequestURI(), nil)
		for k, v := range hdr {
			if k != "Host" {
				r.Header[k] = v
			}
		}
		return r, nil
	}
	if err := signer.SignHTTP(context.Background(), longTerm(), req, hashHex(body), "ecr", testRegion, signTime); err != nil {
		b.Fatal(err)
	}
	return req, body
}

func benchVerify(b *testing.B, presign bool) {
	v := newVerifier(b)
	req, body := benchRequest(b, presign)
	service := "ecr"
	if presign {
		service = "s3"
	}
	rd := bytes.NewReader(body)
	rc := io.NopCloser(rd)
	b.ReportAllocs()
	for b.Loop() {
		rd.Reset(body)
		req.Body = rc
		if presign {
			req.Body = http.NoBody
		}
		if _, err := v.Verify(req, service); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerify: header form, small JSON body (the ECR API's shape).
func BenchmarkVerify(b *testing.B) { benchVerify(b, false) }

// BenchmarkVerifyPresigned: an S3-style presigned GET.
func BenchmarkVerifyPresigned(b *testing.B) { benchVerify(b, true) }

// BenchmarkSigningKey is the per-request cost a derived-key cache would
// save.
func BenchmarkSigningKey(b *testing.B) {
	secret := []byte(testSecret)
	b.ReportAllocs()
	var m macer
	for b.Loop() {
		m.signingKey(secret, "20240501", testRegion, "ecr")
	}
}
