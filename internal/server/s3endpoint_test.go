package server

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecr"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/cofferhq/coffer/internal/endpoint"
)

// GetDownloadUrlForLayer called through an endpoint that does not serve
// presigned downloads names the endpoint of the same VPC that does (the s3
// service, #7, SPEC STO-03), and the layer downloads there; in a VPC
// without one, the URL names the caller's endpoint, which refuses it.
func TestDownloadURLThroughS3Endpoint(t *testing.T) {
	t.Parallel()
	cfg := endpointTestConfig(t)
	addrAPI, addrS3, addrLone := freePort(t, "127.0.0.6"), freePort(t, "127.0.0.7"), freePort(t, "127.0.0.8")
	s3Name := "s3.us-east-1.vpc-d.coffer.test"
	cfg.Endpoints = []endpoint.Config{
		{ID: "vpce-0ddddddddddddddd1", VPCID: "vpc-d", Listen: []string{addrAPI}, Services: []string{"ecr.api"}, Insecure: true},
		{ID: "vpce-0ddddddddddddddd2", VPCID: "vpc-d", Listen: []string{addrS3}, Services: []string{"s3"}, Insecure: true,
			DNSNames: []string{s3Name}},
		{ID: "vpce-0eeeeeeeeeeeeeee1", VPCID: "vpc-e", Listen: []string{addrLone}, Services: []string{"ecr.api"}, Insecure: true},
	}
	runServer(t, cfg)
	ctx := context.Background()

	tok := loginToken(t, ecr.New(ecr.Options{Region: "us-east-1", BaseEndpoint: aws.String("http://" + cfg.Listen), Credentials: staticCreds(adminID, adminSecret)}))
	ref, _ := name.ParseReference(cfg.Listen+"/vpc/layers:v1", name.Insecure)
	img, _ := random.Image(2048, 1)
	if err := remote.Write(ref, img, remote.WithAuth(&authn.Basic{Username: "AWS", Password: tok})); err != nil {
		t.Fatal(err)
	}
	layers, _ := img.Layers()
	digest, _ := layers[0].Digest()

	downloadURL := func(addr string) *url.URL {
		t.Helper()
		out, err := ecr.New(ecr.Options{Region: "us-east-1", BaseEndpoint: aws.String("http://" + addr), Credentials: staticCreds(adminID, adminSecret)}).
			GetDownloadUrlForLayer(ctx, &ecr.GetDownloadUrlForLayerInput{RepositoryName: aws.String("vpc/layers"), LayerDigest: aws.String(digest.String())})
		if err != nil {
			t.Fatalf("GetDownloadUrlForLayer through %s: %v", addr, err)
		}
		u, err := url.Parse(aws.ToString(out.DownloadUrl))
		if err != nil {
			t.Fatal(err)
		}
		return u
	}
	// A client that reaches DNS names through the given address.
	get := func(u *url.URL, addr string) (int, []byte) {
		t.Helper()
		hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
			DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
				return (&net.Dialer{}).DialContext(ctx, network, addr)
			},
		}}
		resp, err := hc.Get(u.String())
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}

	u := downloadURL(addrAPI)
	if want := s3Name + ":" + strings.Split(addrS3, ":")[1]; u.Host != want || u.Scheme != "http" {
		t.Fatalf("download URL through the ecr.api endpoint = %s, want host %s", u, want)
	}
	status, body := get(u, addrS3)
	sum := sha256.Sum256(body)
	if status != 200 || "sha256:"+hex.EncodeToString(sum[:]) != digest.String() {
		t.Fatalf("download through the s3 endpoint = %d, %d bytes", status, len(body))
	}

	u = downloadURL(addrLone)
	if u.Host != addrLone {
		t.Fatalf("download URL in a VPC without an s3 endpoint = %s, want the caller's endpoint %s", u, addrLone)
	}
	if status, body := get(u, addrLone); status != 403 || !strings.Contains(string(body), "AccessDenied") {
		t.Fatalf("download through the ecr.api-only endpoint = %d %s, want 403 AccessDenied", status, body)
	}
}
