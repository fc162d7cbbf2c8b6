package sigv4

import (
	"context"
	"errors"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecr"
	"github.com/aws/aws-sdk-go-v2/service/sts"
)

// These tests drive real clients (aws-sdk-go-v2 service clients, the aws
// CLI v1, boto3) against a server that runs Verify with the real clock.

type verdict struct {
	res Result
	err error
}

// newVerifyingServer answers the minimal valid response of the protocol of
// service when Verify accepts, and AWS's error shape when it does not.
// Every verdict is sent on the returned channel.
func newVerifyingServer(t *testing.T, service string) (string, <-chan verdict) {
	t.Helper()
	keys := newKeyStore()
	temp := keys.keys[tempKeyID]
	temp.Expires = time.Now().Add(time.Hour) // these tests run on the real clock
	keys.keys[tempKeyID] = temp
	v, err := New(Config{Region: testRegion, Keys: keys})
	if err != nil {
		t.Fatal(err)
	}
	verdicts := make(chan verdict, 16)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		res, err := v.Verify(r, service)
		verdicts <- verdict{res, err}
		if err != nil {
			writeError(w, service, err)
			return
		}
		_, _ = io.Copy(io.Discard, r.Body)
		switch service {
		case "sts":
			w.Header().Set("Content-Type", "text/xml")
			fmt.Fprintf(w, `<GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
<GetCallerIdentityResult><Arn>%s</Arn><UserId>%s</UserId><Account>%s</Account></GetCallerIdentityResult>
<ResponseMetadata><RequestId>0d5f0c6e-0000-4000-8000-000000000001</RequestId></ResponseMetadata>
</GetCallerIdentityResponse>`, html.EscapeString(res.Principal.ARN), html.EscapeString(res.Principal.PrincipalID), res.Principal.AccountID)
		case "s3":
			_, _ = io.WriteString(w, "layer bytes")
		default:
			w.Header().Set("Content-Type", "application/x-amz-json-1.1")
			fmt.Fprintf(w, `{"registryId":%q,"replicationConfiguration":{"rules":[]}}`, res.Principal.AccountID)
		}
	}))
	t.Cleanup(srv.Close)
	return srv.URL, verdicts
}

func writeError(w http.ResponseWriter, service string, err error) {
	var e *Error
	msg := "internal error"
	if errors.As(err, &e) {
		msg = e.Message
	}
	queryCode, jsonCode := "SignatureDoesNotMatch", "InvalidSignatureException"
	switch {
	case errors.Is(err, ErrUnknownKey), errors.Is(err, ErrInvalidToken):
		queryCode, jsonCode = "InvalidClientTokenId", "UnrecognizedClientException"
	case errors.Is(err, ErrMissingAuth):
		queryCode, jsonCode = "MissingAuthenticationToken", "MissingAuthenticationTokenException"
	}
	if service == "sts" || service == "s3" {
		w.Header().Set("Content-Type", "text/xml")
		w.WriteHeader(http.StatusForbidden)
		fmt.Fprintf(w, `<ErrorResponse><Error><Type>Sender</Type><Code>%s</Code><Message>%s</Message></Error><RequestId>1</RequestId></ErrorResponse>`,
			queryCode, html.EscapeString(msg))
		return
	}
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.Header().Set("X-Amzn-Errortype", jsonCode)
	w.WriteHeader(http.StatusForbidden)
	fmt.Fprintf(w, `{"__type":%q,"message":%q}`, jsonCode, msg)
}

func nextVerdict(t *testing.T, ch <-chan verdict) verdict {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(30 * time.Second):
		t.Fatal("the server received no request")
		return verdict{}
	}
}

func staticCreds(c aws.Credentials) aws.CredentialsProviderFunc {
	return func(context.Context) (aws.Credentials, error) { return c, nil }
}

func TestSDKClients(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ecrURL, ecrVerdicts := newVerifyingServer(t, "ecr")
	stsURL, stsVerdicts := newVerifyingServer(t, "sts")

	for _, creds := range []aws.Credentials{longTerm(), temporary()} {
		ec := ecr.New(ecr.Options{Region: testRegion, BaseEndpoint: aws.String(ecrURL), Credentials: staticCreds(creds), RetryMaxAttempts: 1})
		out, err := ec.DescribeRegistry(ctx, &ecr.DescribeRegistryInput{})
		if err != nil || aws.ToString(out.RegistryId) != testAccount {
			t.Fatalf("ecr DescribeRegistry: %v", err)
		}
		if v := nextVerdict(t, ecrVerdicts); v.err != nil || v.res.AccessKeyID != creds.AccessKeyID {
			t.Fatalf("ecr verdict %+v", v)
		}

		sc := sts.New(sts.Options{Region: testRegion, BaseEndpoint: aws.String(stsURL), Credentials: staticCreds(creds), RetryMaxAttempts: 1})
		id, err := sc.GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
		if err != nil || aws.ToString(id.Account) != testAccount {
			t.Fatalf("sts GetCallerIdentity: %v", err)
		}
		if v := nextVerdict(t, stsVerdicts); v.err != nil {
			t.Fatalf("sts verdict %+v", v)
		}

		// A presigned GetCallerIdentity, as EKS tokens and Vault use.
		p, err := sts.NewPresignClient(sc).PresignGetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
		if err != nil {
			t.Fatal(err)
		}
		req, _ := http.NewRequestWithContext(ctx, p.Method, p.URL, nil)
		req.Header = p.SignedHeader.Clone()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if v := nextVerdict(t, stsVerdicts); v.err != nil || !v.res.Presigned || resp.StatusCode != 200 {
			t.Fatalf("presigned sts verdict %+v, status %d", v, resp.StatusCode)
		}
	}

	bad := longTerm()
	bad.SecretAccessKey += "x"
	ec := ecr.New(ecr.Options{Region: testRegion, BaseEndpoint: aws.String(ecrURL), Credentials: staticCreds(bad), RetryMaxAttempts: 1})
	if _, err := ec.DescribeRegistry(ctx, &ecr.DescribeRegistryInput{}); err == nil || !strings.Contains(err.Error(), "InvalidSignatureException") {
		t.Fatalf("wrong secret: %v", err)
	}
	if v := nextVerdict(t, ecrVerdicts); !errors.Is(v.err, ErrSignatureMismatch) {
		t.Fatalf("wrong secret verdict %v", v.err)
	}
}

// awsEnv is the environment of a CLI or boto3 run: no AWS_* variable of
// the machine, empty config files, the given credentials.
func awsEnv(t *testing.T, creds aws.Credentials) []string {
	dir := t.TempDir()
	cfg, cred := filepath.Join(dir, "config"), filepath.Join(dir, "credentials")
	for _, f := range []string{cfg, cred} {
		if err := os.WriteFile(f, nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "AWS_") {
			env = append(env, kv)
		}
	}
	env = append(env,
		"AWS_CONFIG_FILE="+cfg, "AWS_SHARED_CREDENTIALS_FILE="+cred,
		"AWS_ACCESS_KEY_ID="+creds.AccessKeyID, "AWS_SECRET_ACCESS_KEY="+creds.SecretAccessKey,
		"AWS_DEFAULT_REGION="+testRegion, "AWS_EC2_METADATA_DISABLED=true", "AWS_MAX_ATTEMPTS=1", "AWS_PAGER=")
	if creds.SessionToken != "" {
		env = append(env, "AWS_SESSION_TOKEN="+creds.SessionToken)
	}
	return env
}

func lookTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s not installed (ENVIRONMENT.md lists it on every machine; CI must have it): %v", name, err)
	}
	return p
}

func run(t *testing.T, env []string, name string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func TestAWSCLI(t *testing.T) {
	t.Parallel()
	awsBin := lookTool(t, "aws")
	bad := longTerm()
	bad.SecretAccessKey = "wrong" + bad.SecretAccessKey

	for _, tc := range []struct {
		name    string
		creds   aws.Credentials
		service string
		args    []string
		want    error
	}{
		{"sts get-caller-identity", longTerm(), "sts", []string{"sts", "get-caller-identity"}, nil},
		{"sts get-caller-identity session token", temporary(), "sts", []string{"sts", "get-caller-identity"}, nil},
		{"ecr describe-registry", longTerm(), "ecr", []string{"ecr", "describe-registry"}, nil},
		{"ecr describe-registry session token", temporary(), "ecr", []string{"ecr", "describe-registry"}, nil},
		{"sts wrong secret", bad, "sts", []string{"sts", "get-caller-identity"}, ErrSignatureMismatch},
		{"ecr wrong secret", bad, "ecr", []string{"ecr", "describe-registry"}, ErrSignatureMismatch},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			url, verdicts := newVerifyingServer(t, tc.service)
			args := append(append([]string(nil), tc.args...), "--endpoint-url", url, "--region", testRegion, "--output", "json")
			out, err := run(t, awsEnv(t, tc.creds), awsBin, args...)
			v := nextVerdict(t, verdicts)
			if tc.want == nil {
				if err != nil || v.err != nil || !strings.Contains(out, testAccount) {
					t.Fatalf("aws %v: %v, verdict %v\n%s", tc.args, err, v.err, out)
				}
				if v.res.AccessKeyID != tc.creds.AccessKeyID {
					t.Fatalf("verdict %+v", v.res)
				}
				return
			}
			if err == nil || !errors.Is(v.err, tc.want) {
				t.Fatalf("aws %v: %v, verdict %v, want %v\n%s", tc.args, err, v.err, tc.want, out)
			}
			if !strings.Contains(out, "SignatureDoesNotMatch") && !strings.Contains(out, "InvalidSignatureException") {
				t.Fatalf("the CLI did not report AWS's error code:\n%s", out)
			}
		})
	}
}

const boto3Script = `
import sys, boto3
from botocore.config import Config
sts = boto3.client("sts", endpoint_url=sys.argv[1], region_name="us-east-1")
print(sts.get_caller_identity()["Account"])
s3 = boto3.client("s3", endpoint_url=sys.argv[2], region_name="us-east-1",
                  config=Config(signature_version="s3v4", s3={"addressing_style": "path"}))
print(s3.generate_presigned_url("get_object", ExpiresIn=300,
      Params={"Bucket": "prod-us-east-1-starport-layer-bucket", "Key": "layers/aes256/a b/\u00fc+x~y"}))
`

func TestBoto3(t *testing.T) {
	t.Parallel()
	py := lookTool(t, "python3")
	stsURL, stsVerdicts := newVerifyingServer(t, "sts")
	s3URL, s3Verdicts := newVerifyingServer(t, "s3")
	out, err := run(t, awsEnv(t, temporary()), py, "-c", boto3Script, stsURL, s3URL)
	if err != nil {
		t.Fatalf("boto3: %v\n%s", err, out)
	}
	if v := nextVerdict(t, stsVerdicts); v.err != nil || v.res.AccessKeyID != tempKeyID {
		t.Fatalf("sts verdict %+v", v)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 || lines[0] != testAccount || !strings.HasPrefix(lines[1], s3URL+"/") {
		t.Fatalf("boto3 output:\n%s", out)
	}
	presigned := lines[1]
	for _, tc := range []struct {
		name string
		url  string
		want error
	}{
		{"as generated", presigned, nil},
		{"other key", strings.Replace(presigned, "a%20b", "a%20c", 1), ErrSignatureMismatch},
	} {
		resp, err := http.Get(tc.url)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		v := nextVerdict(t, s3Verdicts)
		if tc.want == nil && (v.err != nil || !v.res.Presigned || string(body) != "layer bytes") {
			t.Fatalf("%s: verdict %+v, body %q", tc.name, v, body)
		}
		if tc.want != nil && !errors.Is(v.err, tc.want) {
			t.Fatalf("%s: verdict %v, want %v", tc.name, v.err, tc.want)
		}
	}
}
