package server

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecr"
	ecrtypes "github.com/aws/aws-sdk-go-v2/service/ecr/types"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/cofferhq/coffer/internal/endpoint"
)

// The appendix-A endpoint policies J-08 and J-09 as SPEC normalises them,
// with the placeholders "region" and "1234567890" replaced by the test
// server's region and account.
const (
	policyJ08 = `{ "Statement": [{ "Sid": "AllowAll", "Principal": "*", "Action": "*", "Effect": "Allow", "Resource": "*" }, { "Sid": "PreventDelete", "Principal": "*", "Action": "ecr:DeleteRepository", "Effect": "Deny", "Resource": "arn:aws:ecr:us-east-1:123456789012:repository/repository_name" } ] }`
	policyJ09 = `{ "Statement": [{ "Sid": "AllowAll", "Effect": "Allow", "Principal": "*", "Action": "*", "Resource": "*" }, { "Sid": "PreventDelete", "Effect": "Deny", "Principal": "*", "Action": "ecr:DeleteRepository", "Resource": "arn:aws:ecr:us-east-1:123456789012:repository/repository_name" }, { "Sid": "AllowPull", "Effect": "Allow", "Principal": { "AWS": "arn:aws:iam::123456789012:role/role_name" }, "Action": [ "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:GetAuthorizationToken" ], "Resource": "*" } ] }`
)

// assumeRole creates role (trusting the administrator, with the read-only
// managed policy) through the server at url and returns a session's
// credentials.
func assumeRole(t *testing.T, url, role, session string) aws.CredentialsProvider {
	t.Helper()
	ctx := context.Background()
	ic := iam.New(iam.Options{Region: "us-east-1", BaseEndpoint: aws.String(url), Credentials: staticCreds(adminID, adminSecret)})
	trust := `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::123456789012:user/admin"},"Action":"sts:AssumeRole"}]}`
	if _, err := ic.CreateRole(ctx, &iam.CreateRoleInput{RoleName: aws.String(role), AssumeRolePolicyDocument: aws.String(trust)}); err != nil {
		t.Fatal(err)
	}
	if _, err := ic.AttachRolePolicy(ctx, &iam.AttachRolePolicyInput{RoleName: aws.String(role),
		PolicyArn: aws.String("arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryReadOnly")}); err != nil {
		t.Fatal(err)
	}
	sc := sts.New(sts.Options{Region: "us-east-1", BaseEndpoint: aws.String(url), Credentials: staticCreds(adminID, adminSecret)})
	out, err := sc.AssumeRole(ctx, &sts.AssumeRoleInput{RoleArn: aws.String("arn:aws:iam::123456789012:role/" + role), RoleSessionName: aws.String(session)})
	if err != nil {
		t.Fatal(err)
	}
	cr := out.Credentials
	return aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
		return aws.Credentials{AccessKeyID: aws.ToString(cr.AccessKeyId), SecretAccessKey: aws.ToString(cr.SecretAccessKey),
			SessionToken: aws.ToString(cr.SessionToken)}, nil
	})
}

// TestEndpointPoliciesJ08J09 runs the real server with one endpoint per
// policy and drives it with SigV4-signed ECR calls and docker-style pushes
// and pulls (SPEC EPOL-07, EPOL-08): DeleteRepository on repository_name
// through the endpoint is refused with AWS's AccessDeniedException, every
// other call (other repositories' deletion, pushes, the role's pulls) goes
// through, and the same deletion through a listener without the policy
// succeeds.
func TestEndpointPoliciesJ08J09(t *testing.T) {
	t.Parallel()
	cfg := endpointTestConfig(t)
	addr08, addr09 := freePort(t, "127.0.0.1"), freePort(t, "127.0.0.1")
	cfg.Endpoints = []endpoint.Config{
		{ID: "vpce-0888888888888888a", VPCID: "vpc-j08", Listen: []string{addr08}, Services: []string{"ecr.api", "ecr.dkr"}, Insecure: true, Policy: policyJ08},
		{ID: "vpce-0999999999999999b", VPCID: "vpc-j09", Listen: []string{addr09}, Services: []string{"ecr.api", "ecr.dkr"}, Insecure: true, Policy: policyJ09},
	}
	runServer(t, cfg)
	pub := "http://" + cfg.Listen
	admin := staticCreds(adminID, adminSecret)
	role := assumeRole(t, pub, "role_name", "puller")
	ctx := context.Background()
	const (
		protected = "repository_name"
		arn       = "arn:aws:ecr:us-east-1:123456789012:repository/" + protected
		adminARN  = "arn:aws:iam::123456789012:user/admin"
		roleARN   = "arn:aws:sts::123456789012:assumed-role/role_name/puller"
	)

	for _, tc := range []struct{ name, addr, other string }{
		{"J-08", addr08, "other08"},
		{"J-09", addr09, "other09"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := &reposRecorder{}
			viaEP := func(creds aws.CredentialsProvider) *ecr.Client {
				return ecr.New(ecr.Options{Region: "us-east-1", BaseEndpoint: aws.String("http://" + tc.addr), Credentials: creds,
					HTTPClient: rec.client(), RetryMaxAttempts: 1})
			}
			for _, repo := range []string{protected, tc.other} {
				if _, err := viaEP(admin).CreateRepository(ctx, &ecr.CreateRepositoryInput{RepositoryName: aws.String(repo)}); err != nil {
					t.Fatalf("CreateRepository %s through the endpoint (AllowAll): %v", repo, err)
				}
			}
			img, _ := random.Image(512, 1)
			ref, _ := name.ParseReference(tc.addr+"/"+protected+":v1", name.Insecure)
			adminTok := loginToken(t, viaEP(admin))
			if err := remote.Write(ref, img, remote.WithAuth(&authn.Basic{Username: "AWS", Password: adminTok})); err != nil {
				t.Fatalf("admin push through the endpoint (AllowAll): %v", err)
			}
			roleTok := loginToken(t, viaEP(role))
			if _, err := remote.Image(ref, remote.WithAuth(&authn.Basic{Username: "AWS", Password: roleTok})); err != nil {
				t.Fatalf("role pull through the endpoint: %v", err)
			}

			// PreventDelete: AWS's exact error, for any principal.
			for _, who := range []struct {
				creds aws.CredentialsProvider
				arn   string
			}{{admin, adminARN}, {role, roleARN}} {
				_, err := viaEP(who.creds).DeleteRepository(ctx, &ecr.DeleteRepositoryInput{RepositoryName: aws.String(protected), Force: true})
				want := "User: " + who.arn + " is not authorized to perform: ecr:DeleteRepository on resource: " + arn +
					" with an explicit deny in a VPC endpoint policy"
				if code, msg := apiError(err); code != "AccessDeniedException" || msg != want {
					t.Fatalf("DeleteRepository %s as %s = %v\nwant AccessDeniedException: %s", protected, who.arn, err, want)
				}
				x := rec.exchanges[len(rec.exchanges)-1]
				var body map[string]any
				if err := json.Unmarshal(x.body, &body); err != nil || x.status != http.StatusBadRequest || len(body) != 2 ||
					body["__type"] != "AccessDeniedException" || body["message"] != want {
					t.Fatalf("raw answer = %d %s; want 400 {\"__type\":\"AccessDeniedException\",\"message\":...}", x.status, x.body)
				}
			}
			// Only DeleteRepository on that one repository is denied.
			if _, err := viaEP(admin).BatchDeleteImage(ctx, &ecr.BatchDeleteImageInput{RepositoryName: aws.String(protected),
				ImageIds: []ecrtypes.ImageIdentifier{{ImageTag: aws.String("nope")}}}); err != nil {
				t.Fatalf("BatchDeleteImage through the endpoint: %v", err)
			}
			if _, err := viaEP(admin).DeleteRepository(ctx, &ecr.DeleteRepositoryInput{RepositoryName: aws.String(tc.other)}); err != nil {
				t.Fatalf("DeleteRepository %s through the endpoint: %v", tc.other, err)
			}
			// The gate is the endpoint's: the public listener lets it through.
			if _, err := ecrVia(pub, nil, admin).DeleteRepository(ctx, &ecr.DeleteRepositoryInput{RepositoryName: aws.String(protected), Force: true}); err != nil {
				t.Fatalf("DeleteRepository %s through the public listener: %v", protected, err)
			}
		})
	}
}
