package iamapi

import (
	"bytes"
	"context"
	"encoding/xml"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsiam "github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/cofferhq/coffer/internal/auth"
	"github.com/cofferhq/coffer/internal/crypto/rootkey"
	"github.com/cofferhq/coffer/internal/iam"
	"github.com/cofferhq/coffer/internal/metadata/sqlite"
)

const (
	testAccount     = "123456789012"
	adminKeyID      = "AKIAADMINTESTKEY0001"
	adminSecret     = "adminSecretForTestsOnly0123456789abcdefg"
	adminARN        = "arn:aws:iam::" + testAccount + ":user/admin"
	trustPolicyJSON = `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::123456789012:root"},"Action":"sts:AssumeRole"}]}`
	ecrPolicyJSON   = `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["ecr:BatchGetImage","ecr:GetDownloadUrlForLayer"],"Resource":"arn:aws:ecr:us-east-1:123456789012:repository/app/*"}]}`
)

// fakeAuthz is the decision point of the tests: it allows everything
// except the actions in deny, and records every question.
type fakeAuthz struct {
	mu    sync.Mutex
	deny  map[string]bool
	calls []authzCall
}

type authzCall struct{ principal, action, resource string }

func (f *fakeAuthz) Authorize(_ context.Context, info *auth.Info, action, resource string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, authzCall{info.Principal.ARN, action, resource})
	if f.deny[action] {
		return &auth.DeniedError{Principal: info.Principal.ARN, Action: action, Resource: resource,
			Reason: "because no identity-based policy allows the " + action + " action"}
	}
	return nil
}

func (f *fakeAuthz) setDeny(actions ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.deny = make(map[string]bool)
	for _, a := range actions {
		f.deny[a] = true
	}
}

func (f *fakeAuthz) take() []authzCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.calls
	f.calls = nil
	return c
}

// env is a test server: the handler behind a tiny stand-in for the
// pipeline that trusts the access key ID in the Authorization header
// (signatures are not checked) and resolves it with iam.Service.Lookup.
type env struct {
	t      *testing.T
	svc    *iam.Service
	store  *sqlite.Store
	authz  *fakeAuthz
	iamURL string
	stsURL string
	logs   *lockedBuffer
	reqN   atomic.Int64

	mu       sync.Mutex
	lastInfo *auth.Info
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// allowTrust and denyTrust are the two Trust callbacks of the tests.
func allowTrust(context.Context, auth.Principal, iam.Role) error { return nil }

func denyTrust(_ context.Context, caller auth.Principal, role iam.Role) error {
	return &auth.DeniedError{Principal: caller.ARN, Action: "sts:AssumeRole", Resource: role.ARN}
}

func newEnv(t *testing.T, trust iam.Trust) *env {
	t.Helper()
	store, err := sqlite.Open(t.Context(), sqlite.Config{Path: filepath.Join(t.TempDir(), "meta.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	root, err := rootkey.Generate()
	if err != nil {
		t.Fatal(err)
	}
	svc, err := iam.New(iam.Config{AccountID: testAccount, Docs: store, Root: root})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := svc.Bootstrap(t.Context(), adminKeyID, adminSecret); err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, svc: svc, store: store, authz: &fakeAuthz{}, logs: &lockedBuffer{}}
	h, err := New(Config{IAM: svc, Authz: e.authz, Trust: trust,
		Log: slog.New(slog.NewJSONHandler(e.logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	iamSrv := httptest.NewServer(e.middleware(http.HandlerFunc(h.ServeIAM)))
	stsSrv := httptest.NewServer(e.middleware(http.HandlerFunc(h.ServeSTS)))
	t.Cleanup(iamSrv.Close)
	t.Cleanup(stsSrv.Close)
	e.iamURL, e.stsURL = iamSrv.URL, stsSrv.URL
	t.Cleanup(func() { e.checkLogs() })
	return e
}

var credentialRE = regexp.MustCompile(`Credential=([A-Z0-9]+)/`)

func (e *env) middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		info := &auth.Info{RequestID: fmt.Sprintf("req-%04d", e.reqN.Add(1)), Principal: auth.Anonymous}
		if m := credentialRE.FindStringSubmatch(r.Header.Get("Authorization")); m != nil {
			if kc, err := e.svc.Lookup(r.Context(), m[1]); err == nil {
				info.Principal = kc.Principal
			}
		}
		e.mu.Lock()
		e.lastInfo = info
		e.mu.Unlock()
		next.ServeHTTP(w, r.WithContext(auth.WithInfo(r.Context(), info)))
	})
}

func (e *env) last() *auth.Info {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.lastInfo
}

// checkLogs fails the test if anything secret reached the log.
func (e *env) checkLogs() {
	logs := e.logs.String()
	for _, secret := range []string{adminSecret, "SecretAccessKey", "SessionToken", "PolicyDocument"} {
		if strings.Contains(logs, secret) {
			e.t.Errorf("log contains %q:\n%s", secret, logs)
		}
	}
}

func creds(id, secret, token string) aws.CredentialsProvider {
	return aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
		return aws.Credentials{AccessKeyID: id, SecretAccessKey: secret, SessionToken: token}, nil
	})
}

func (e *env) iamClient(p aws.CredentialsProvider) *awsiam.Client {
	return awsiam.New(awsiam.Options{Region: "us-east-1", BaseEndpoint: aws.String(e.iamURL),
		Credentials: p, Retryer: aws.NopRetryer{}})
}

func (e *env) stsClient(p aws.CredentialsProvider) *sts.Client {
	return sts.New(sts.Options{Region: "us-east-1", BaseEndpoint: aws.String(e.stsURL),
		Credentials: p, Retryer: aws.NopRetryer{}})
}

func (e *env) admin() *awsiam.Client { return e.iamClient(creds(adminKeyID, adminSecret, "")) }

func (e *env) adminSTS() *sts.Client { return e.stsClient(creds(adminKeyID, adminSecret, "")) }

// rawResponse is one raw Query exchange.
type rawResponse struct {
	status int
	header http.Header
	body   []byte
}

// post sends a form as the given access key ("" for anonymous).
func (e *env) post(base, keyID string, form url.Values) rawResponse {
	e.t.Helper()
	return e.send(base, keyID, "application/x-www-form-urlencoded; charset=utf-8", form.Encode())
}

func (e *env) send(base, keyID, contentType, body string) rawResponse {
	e.t.Helper()
	req, err := http.NewRequestWithContext(e.t.Context(), http.MethodPost, base+"/", strings.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Content-Type", contentType)
	if keyID != "" {
		req.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential="+keyID+"/20240102/us-east-1/iam/aws4_request, SignedHeaders=host, Signature=00")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return rawResponse{status: resp.StatusCode, header: resp.Header, body: b}
}

// queryError is a decoded <ErrorResponse>.
type queryError struct {
	XMLName   xml.Name `xml:"ErrorResponse"`
	Xmlns     string   `xml:"xmlns,attr"`
	Type      string   `xml:"Error>Type"`
	Code      string   `xml:"Error>Code"`
	Message   string   `xml:"Error>Message"`
	RequestID string   `xml:"RequestId"`
}

func (r rawResponse) error(t *testing.T) queryError {
	t.Helper()
	var qe queryError
	if err := xml.Unmarshal(r.body, &qe); err != nil {
		t.Fatalf("not an ErrorResponse (%v): %s", err, r.body)
	}
	return qe
}

func form(kv ...string) url.Values {
	v := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		v.Set(kv[i], kv[i+1])
	}
	return v
}
