package server

import (
	"context"
	"encoding/base64"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ecr"
	"github.com/aws/smithy-go"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/cofferhq/coffer/internal/authz"
	"github.com/cofferhq/coffer/internal/config"
	"github.com/cofferhq/coffer/internal/iam"
	"github.com/cofferhq/coffer/internal/metadata"
)

const (
	adminID     = "AKIAADMINEXAMPLE0001"
	adminSecret = "admin-secret-for-tests-0123456789abcdef"
)

// newAuthServer starts Coffer with identity on (no anonymous access) and a
// known administrator key.
func newAuthServer(t testing.TB) (*httptest.Server, *App) {
	t.Helper()
	cfg := config.Defaults()
	cfg.DataDir = t.TempDir()
	cfg.CreateOnPush = true
	cfg.AdminAccessKeyID, cfg.AdminSecretAccessKey = adminID, adminSecret
	return startApp(t, cfg, slog.New(slog.DiscardHandler))
}

func ecrClient(srv *httptest.Server, id, secret string, hc *http.Client) *ecr.Client {
	opts := ecr.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(srv.URL),
		Credentials:  credentials.NewStaticCredentialsProvider(id, secret, ""),
	}
	if hc != nil {
		opts.HTTPClient = hc
	}
	return ecr.New(opts)
}

// loginToken is `aws ecr get-login-password`: the password half of the
// decoded authorization token.
func loginToken(t testing.TB, c *ecr.Client) string {
	t.Helper()
	out, err := c.GetAuthorizationToken(context.Background(), &ecr.GetAuthorizationTokenInput{})
	if err != nil {
		t.Fatalf("GetAuthorizationToken: %v", err)
	}
	raw, err := base64.StdEncoding.DecodeString(aws.ToString(out.AuthorizationData[0].AuthorizationToken))
	if err != nil {
		t.Fatal(err)
	}
	user, pass, ok := strings.Cut(string(raw), ":")
	if !ok || user != "AWS" {
		t.Fatalf("token decodes to %q", raw)
	}
	return pass
}

func statusOf(err error) int {
	var te *transport.Error
	if errors.As(err, &te) {
		return te.StatusCode
	}
	return 0
}

// createUser makes an IAM user with managed policies and returns its key.
func createUser(t testing.TB, app *App, name string, policies ...string) (string, string) {
	t.Helper()
	ctx := context.Background()
	if _, err := app.iam.CreateUser(ctx, name, "/", nil); err != nil {
		t.Fatal(err)
	}
	for _, p := range policies {
		if err := app.iam.AttachPolicy(ctx, iam.UserEntity(), name, "arn:aws:iam::aws:policy/"+p); err != nil {
			t.Fatal(err)
		}
	}
	k, secret, err := app.iam.CreateAccessKey(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	return k.ID, secret
}

func TestIdentityEndToEnd(t *testing.T) {
	t.Parallel()
	srv, app := newAuthServer(t)
	img, _ := random.Image(2048, 2)
	r := ref(t, srv, "secure/app:v1")

	t.Run("anonymous is refused with a Basic challenge", func(t *testing.T) {
		resp, err := http.Get(srv.URL + "/v2/")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 401 || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Basic realm=") {
			t.Fatalf("GET /v2/ = %d %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
		}
		if err := remote.Write(r, img); statusOf(err) != 401 {
			t.Fatalf("anonymous push = %v", err)
		}
	})

	admin := loginToken(t, ecrClient(srv, adminID, adminSecret, nil))
	adminAuth := remote.WithAuth(&authn.Basic{Username: "AWS", Password: admin})
	if err := remote.Write(r, img, adminAuth); err != nil {
		t.Fatalf("admin push: %v", err)
	}

	t.Run("altered token is refused", func(t *testing.T) {
		bad := admin[:len(admin)-4] + "AAAA"
		if _, err := remote.Image(r, remote.WithAuth(&authn.Basic{Username: "AWS", Password: bad})); statusOf(err) != 401 {
			t.Fatalf("pull with altered token = %v", err)
		}
	})

	t.Run("ReadOnly pulls but cannot push", func(t *testing.T) {
		id, secret := createUser(t, app, "reader", "AmazonEC2ContainerRegistryReadOnly")
		tok := loginToken(t, ecrClient(srv, id, secret, nil))
		auth := remote.WithAuth(&authn.Basic{Username: "AWS", Password: tok})
		if _, err := remote.Image(r, auth); err != nil {
			t.Fatalf("reader pull: %v", err)
		}
		other, _ := random.Image(1024, 1)
		err := remote.Write(ref(t, srv, "secure/app:v2"), other, auth)
		if statusOf(err) != 403 || !strings.Contains(err.Error(), "is not authorized to perform: ecr:") {
			t.Fatalf("reader push = %v", err)
		}
	})

	t.Run("PowerUser pushes; a repository policy Deny beats its Allow", func(t *testing.T) {
		id, secret := createUser(t, app, "pusher", "AmazonEC2ContainerRegistryPowerUser")
		tok := loginToken(t, ecrClient(srv, id, secret, nil))
		auth := remote.WithAuth(&authn.Basic{Username: "AWS", Password: tok})
		other, _ := random.Image(1024, 1)
		if err := remote.Write(ref(t, srv, "secure/app:v3"), other, auth); err != nil {
			t.Fatalf("power user push: %v", err)
		}
		deny := `{"Version":"2012-10-17","Statement":[{"Sid":"NoPusher","Effect":"Deny","Principal":{"AWS":"arn:aws:iam::` +
			app.accountID + `:user/pusher"},"Action":"ecr:*"}]}`
		if err := app.store.UpdateDocs(context.Background(), func(tx metadata.DocTx) error {
			_, err := tx.Put(metadata.Document{Kind: authz.KindRepositoryPolicy, Key: "secure/app", Data: []byte(deny)})
			return err
		}); err != nil {
			t.Fatal(err)
		}
		_, err := remote.Image(r, auth)
		if statusOf(err) != 403 || !strings.Contains(err.Error(), "explicit deny in a resource-based policy") {
			t.Fatalf("pull under repository Deny = %v", err)
		}
		if _, err := remote.Image(r, adminAuth); err != nil {
			t.Fatalf("admin pull: %v", err)
		}
	})

	t.Run("aws:SourceIp allows one loopback address and denies another", func(t *testing.T) {
		ctx := context.Background()
		id, secret := createUser(t, app, "fromip", "AmazonEC2ContainerRegistryReadOnly")
		deny := `{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Action":"ecr:*","Resource":"*",
			"Condition":{"NotIpAddress":{"aws:SourceIp":"127.0.0.1/32"}}}]}`
		if err := app.iam.PutInlinePolicy(ctx, iam.UserEntity(), "fromip", "only-127-0-0-1", deny); err != nil {
			t.Fatal(err)
		}
		from := func(ip string) *http.Client {
			d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
			return &http.Client{Transport: &http.Transport{DialContext: d.DialContext}}
		}
		tok := loginToken(t, ecrClient(srv, id, secret, from("127.0.0.1")))
		auth := remote.WithAuth(&authn.Basic{Username: "AWS", Password: tok})
		if _, err := remote.Image(r, auth, remote.WithTransport(from("127.0.0.1").Transport)); err != nil {
			t.Fatalf("pull from 127.0.0.1: %v", err)
		}
		_, err := remote.Image(r, auth, remote.WithTransport(from("127.0.0.2").Transport))
		if statusOf(err) != 403 {
			t.Fatalf("pull from 127.0.0.2 = %v", err)
		}
		_, err = ecrClient(srv, id, secret, from("127.0.0.2")).GetAuthorizationToken(ctx, &ecr.GetAuthorizationTokenInput{})
		var ae smithy.APIError
		if !errors.As(err, &ae) || ae.ErrorCode() != "AccessDeniedException" {
			t.Fatalf("GetAuthorizationToken from 127.0.0.2 = %v", err)
		}
	})

	t.Run("repeated failures are throttled per address, not for others", func(t *testing.T) {
		from := func(ip string) *http.Client {
			d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
			return &http.Client{Transport: &http.Transport{DialContext: d.DialContext}}
		}
		bad := from("127.0.0.9")
		last := 0
		for i := 0; i < 25; i++ {
			req, _ := http.NewRequest("GET", srv.URL+"/v2/secure/app/manifests/v1", nil)
			req.SetBasicAuth("AWS", "cf1.garbage.garbage")
			resp, err := bad.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			last = resp.StatusCode
		}
		if last != 429 {
			t.Fatalf("after 25 bad logins from 127.0.0.9: %d, want 429", last)
		}
		if _, err := remote.Image(r, adminAuth, remote.WithTransport(from("127.0.0.10").Transport)); err != nil {
			t.Fatalf("another address was locked out: %v", err)
		}
	})

	t.Run("SigV4 failures get AWS error types", func(t *testing.T) {
		ctx := context.Background()
		for _, tc := range []struct {
			name, id, secret, region, want string
		}{
			{"unknown key", "AKIANOSUCHKEY0000000", "x", "us-east-1", "UnrecognizedClientException"},
			{"wrong secret", adminID, "wrong", "us-east-1", "InvalidSignatureException"},
			{"wrong region", adminID, adminSecret, "eu-west-1", "InvalidSignatureException"},
		} {
			c := ecr.New(ecr.Options{Region: tc.region, BaseEndpoint: aws.String(srv.URL),
				Credentials: credentials.NewStaticCredentialsProvider(tc.id, tc.secret, "")})
			_, err := c.GetAuthorizationToken(ctx, &ecr.GetAuthorizationTokenInput{})
			var ae smithy.APIError
			if !errors.As(err, &ae) || ae.ErrorCode() != tc.want {
				t.Errorf("%s: err = %v, want %s", tc.name, err, tc.want)
			}
		}
		resp, err := http.Post(srv.URL+"/", "application/x-amz-json-1.1", strings.NewReader("{}"))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 403 || !strings.Contains(string(body), "MissingAuthenticationToken") {
			t.Fatalf("unsigned POST / = %d %s", resp.StatusCode, body)
		}
	})
}
