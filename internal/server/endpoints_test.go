package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecr"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/smithy-go"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/cofferhq/coffer/internal/authz"
	"github.com/cofferhq/coffer/internal/config"
	"github.com/cofferhq/coffer/internal/endpoint"
	"github.com/cofferhq/coffer/internal/metadata"
	"github.com/cofferhq/coffer/internal/metadata/sqlite"
)

func freePort(t testing.TB, ip string) string {
	t.Helper()
	l, err := net.Listen("tcp", ip+":0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// TestEndpoints runs the real server (Run) with a public listener and three
// endpoints on loopback addresses acting as subnets (issue #7).
func TestEndpoints(t *testing.T) {
	t.Parallel()
	const (
		vpceA = "vpce-0aaaaaaaaaaaaaaa1"
		vpceB = "vpce-0bbbbbbbbbbbbbbb2"
		vpceC = "vpce-0ccccccccccccccc3"
	)
	cfg := endpointTestConfig(t)
	addrA, addrB, addrC := freePort(t, "127.0.0.2"), freePort(t, "127.0.0.4"), freePort(t, "127.0.0.5")
	cfg.Endpoints = []endpoint.Config{
		{ID: vpceA, VPCID: "vpc-a", Listen: []string{addrA}, Services: []string{"ecr.api", "ecr.dkr"},
			DNSNames: []string{"api.ecr.us-east-1.coffer.test"}, AllowedCIDRs: []string{"127.0.0.1/32"}},
		// J-07: only the role may pull, through this endpoint.
		{ID: vpceB, VPCID: "vpc-b", Listen: []string{addrB}, Services: []string{"ecr.api", "ecr.dkr"}, Insecure: true,
			Policy: `{ "Statement": [{ "Sid": "AllowPull", "Principal": { "AWS": "arn:aws:iam::123456789012:role/role_name" }, "Action": [ "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:GetAuthorizationToken" ], "Effect": "Allow", "Resource": "*" }] }`},
		{ID: vpceC, Listen: []string{addrC}, Services: []string{"ecr.dkr"}, Insecure: true},
	}
	runServer(t, cfg)

	caPEM, err := os.ReadFile(filepath.Join(cfg.DataDir, "tls", "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	// A client resolving the endpoint's private DNS name to its address,
	// trusting the generated CA.
	tlsA := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool},
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, addrA)
		},
	}}
	urlA := "https://api.ecr.us-east-1.coffer.test:" + strings.Split(addrA, ":")[1]
	client := func(url string, hc *http.Client) *ecr.Client {
		o := ecr.Options{Region: "us-east-1", BaseEndpoint: aws.String(url),
			Credentials: staticCreds(adminID, adminSecret)}
		if hc != nil {
			o.HTTPClient = hc
		}
		return ecr.New(o)
	}

	t.Run("TLS endpoint with private DNS name and the generated CA", func(t *testing.T) {
		out, err := client(urlA, tlsA).GetAuthorizationToken(context.Background(), &ecr.GetAuthorizationTokenInput{})
		if err != nil {
			t.Fatalf("GetAuthorizationToken through %s: %v", vpceA, err)
		}
		if got := aws.ToString(out.AuthorizationData[0].ProxyEndpoint); got != urlA {
			t.Fatalf("proxyEndpoint = %s, want the endpoint's own name %s", got, urlA)
		}
		tok := loginToken(t, client(urlA, tlsA))
		r, _ := name.ParseReference("api.ecr.us-east-1.coffer.test:" + strings.Split(addrA, ":")[1] + "/vpc/app:v1")
		img, _ := random.Image(1024, 1)
		if err := remote.Write(r, img, remote.WithTransport(tlsA.Transport), remote.WithAuth(&authn.Basic{Username: "AWS", Password: tok})); err != nil {
			t.Fatalf("push through %s: %v", vpceA, err)
		}
	})

	t.Run("a source outside the endpoint's CIDRs gets no HTTP response", func(t *testing.T) {
		d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.3")}}
		hc := &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{
			TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "api.ecr.us-east-1.coffer.test"},
			DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
				return d.DialContext(ctx, network, addrA)
			},
		}}
		resp, err := hc.Get(urlA + "/v2/")
		if err == nil {
			resp.Body.Close()
			t.Fatalf("127.0.0.3 got %s", resp.Status)
		}
	})

	t.Run("a repository policy on aws:SourceVpce allows pulls through one endpoint only", func(t *testing.T) {
		id, secret := createUserVia(t, "http://"+cfg.Listen, "vpcreader", "AmazonEC2ContainerRegistryReadOnly")
		doc := `{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Principal":"*","Action":"ecr:BatchGetImage",
			"Condition":{"StringNotEquals":{"aws:SourceVpce":"` + vpceA + `"}}}]}`
		putDoc(t, cfg, authz.KindRepositoryPolicy, "vpc/app", doc)
		tokA := loginToken(t, ecr.New(ecr.Options{Region: "us-east-1", BaseEndpoint: aws.String(urlA), HTTPClient: tlsA, Credentials: staticCreds(id, secret)}))
		auth := remote.WithAuth(&authn.Basic{Username: "AWS", Password: tokA})
		rA, _ := name.ParseReference("api.ecr.us-east-1.coffer.test:" + strings.Split(addrA, ":")[1] + "/vpc/app:v1")
		if _, err := remote.Image(rA, remote.WithTransport(tlsA.Transport), auth); err != nil {
			t.Fatalf("pull through %s: %v", vpceA, err)
		}
		rPub, _ := name.ParseReference(cfg.Listen+"/vpc/app:v1", name.Insecure)
		if _, err := remote.Image(rPub, auth); statusOf(err) != 403 {
			t.Fatalf("pull through the public listener = %v, want 403", err)
		}
	})

	t.Run("J-07 endpoint policy: only the role pulls through it", func(t *testing.T) {
		_, err := client("http://"+addrB, nil).GetAuthorizationToken(context.Background(), &ecr.GetAuthorizationTokenInput{})
		var ae smithy.APIError
		if !errors.As(err, &ae) || ae.ErrorCode() != "AccessDeniedException" || !strings.Contains(ae.ErrorMessage(), "VPC endpoint policy") {
			t.Fatalf("admin through %s = %v, want the endpoint policy's denial", vpceB, err)
		}
		// The role itself pulls through the endpoint.
		roleECR := ecr.New(ecr.Options{Region: "us-east-1", BaseEndpoint: aws.String("http://" + addrB),
			Credentials: assumeRole(t, "http://"+cfg.Listen, "role_name", "puller")})
		tok := loginToken(t, roleECR)
		rB, _ := name.ParseReference(addrB+"/vpc/app:v1", name.Insecure)
		putDoc(t, cfg, authz.KindRepositoryPolicy, "vpc/app", `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"ecr:BatchGetImage"}]}`)
		if _, err := remote.Image(rB, remote.WithAuth(&authn.Basic{Username: "AWS", Password: tok})); err != nil {
			t.Fatalf("role pull through %s: %v", vpceB, err)
		}
	})

	t.Run("an endpoint serving only ecr.dkr refuses the ECR API", func(t *testing.T) {
		_, err := client("http://"+addrC, nil).GetAuthorizationToken(context.Background(), &ecr.GetAuthorizationTokenInput{})
		if err == nil || !strings.Contains(err.Error(), "403") {
			t.Fatalf("ECR API through %s = %v", vpceC, err)
		}
	})
}

func waitReady(t testing.TB, base string) {
	t.Helper()
	for i := 0; i < 100; i++ {
		resp, err := http.Get(base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s not ready", base)
}

func staticCreds(id, secret string) aws.CredentialsProvider {
	return aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
		return aws.Credentials{AccessKeyID: id, SecretAccessKey: secret}, nil
	})
}

// createUserVia creates a user with a managed policy and an access key
// through the running server's IAM API, as the administrator.
func createUserVia(t *testing.T, url, user, managed string) (string, string) {
	t.Helper()
	ctx := context.Background()
	c := iam.New(iam.Options{Region: "us-east-1", BaseEndpoint: aws.String(url), Credentials: staticCreds(adminID, adminSecret)})
	if _, err := c.CreateUser(ctx, &iam.CreateUserInput{UserName: aws.String(user)}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.AttachUserPolicy(ctx, &iam.AttachUserPolicyInput{UserName: aws.String(user),
		PolicyArn: aws.String("arn:aws:iam::aws:policy/" + managed)}); err != nil {
		t.Fatal(err)
	}
	k, err := c.CreateAccessKey(ctx, &iam.CreateAccessKeyInput{UserName: aws.String(user)})
	if err != nil {
		t.Fatal(err)
	}
	return aws.ToString(k.AccessKey.AccessKeyId), aws.ToString(k.AccessKey.SecretAccessKey)
}

// putDoc writes a document into a running server's store through a second
// connection to its database (repository policies are read per request).
func putDoc(t *testing.T, cfg config.Config, kind, key, doc string) {
	t.Helper()
	store, err := sqlite.Open(context.Background(), sqlite.Config{Path: filepath.Join(cfg.DataDir, "coffer.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	if err := store.UpdateDocs(context.Background(), func(tx metadata.DocTx) error {
		d := metadata.Document{Kind: kind, Key: key, Data: []byte(doc)}
		if old, err := tx.Get(kind, key); err == nil {
			d.Version = old.Version
		}
		_, err := tx.Put(d)
		return err
	}); err != nil {
		t.Fatal(err)
	}
}

func TestPublicListenerNeedsTLS(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		addr     string
		insecure bool
		want     bool
	}{
		{"127.0.0.1:5000", false, false},
		{"[::1]:5000", false, false},
		{"10.0.0.5:443", false, true},
		{"[::]:443", false, true},
		{"0.0.0.0:5000", true, false},
		{"garbage", false, true},
	} {
		if got := publicNeedsTLS(tc.addr, tc.insecure); got != tc.want {
			t.Errorf("publicNeedsTLS(%q, %v) = %v", tc.addr, tc.insecure, got)
		}
	}
}
