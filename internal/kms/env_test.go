package kms

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awskms "github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/cofferhq/coffer/internal/auth"
	"github.com/cofferhq/coffer/internal/auth/sigv4"
	"github.com/cofferhq/coffer/internal/crypto/rootkey"
	"github.com/cofferhq/coffer/internal/iam"
	"github.com/cofferhq/coffer/internal/metadata/sqlite"
)

const (
	testAccount = "123456789012"
	testRegion  = "us-east-1"
	adminKeyID  = "AKIAADMINTESTKEY0001"
	adminSecret = "adminSecretForTestsOnly0123456789abcdefg"
	adminARN    = "arn:aws:iam::" + testAccount + ":user/admin"
	ecrVia      = "ecr.us-east-1.amazonaws.com"
)

// clock is the KMS's injectable clock; SigV4 uses the real one, as the
// clients sign with it.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// env is a real stack: SQLite, the root key, IAM with its bootstrap
// administrator, the KMS service, and an httptest server that verifies
// SigV4 for service "kms" the way the AWS door does, then serves the
// handler.
type env struct {
	t     testing.TB
	store *sqlite.Store
	iam   *iam.Service
	svc   *Service
	clock *clock
	URL   string
	reqN  atomic.Int64

	mu     sync.Mutex
	events []Event
}

type envOpts struct {
	useCap   uint64
	noEvents bool
	// discardEvents installs a hook that drops events (benchmarks: the
	// cost of building them is counted, nothing accumulates).
	discardEvents bool
}

func newEnv(t testing.TB, opts ...envOpts) *env {
	t.Helper()
	var o envOpts
	if len(opts) > 0 {
		o = opts[0]
	}
	store, err := sqlite.Open(t.Context(), sqlite.Config{Path: filepath.Join(t.TempDir(), "meta.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	root, err := rootkey.Generate()
	if err != nil {
		t.Fatal(err)
	}
	idsvc, err := iam.New(iam.Config{AccountID: testAccount, Docs: store, Root: root})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := idsvc.Bootstrap(t.Context(), adminKeyID, adminSecret); err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, store: store, iam: idsvc, clock: &clock{t: time.Now().UTC()}}
	events := e.record
	if o.noEvents {
		events = nil
	}
	if o.discardEvents {
		events = func(context.Context, Event) {}
	}
	e.svc, err = New(Config{AccountID: testAccount, Region: testRegion, Docs: store, Root: root,
		IdentityPolicies: idsvc.IdentityPolicies, Events: events, Now: e.clock.Now, MaterialUseCap: o.useCap})
	if err != nil {
		t.Fatal(err)
	}
	verifier, err := sigv4.New(sigv4.Config{Region: testRegion, Keys: keyStore{idsvc}})
	if err != nil {
		t.Fatal(err)
	}
	h := NewHandler(e.svc)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		info := &auth.Info{RequestID: fmt.Sprintf("req-%04d", e.reqN.Add(1)), Time: e.clock.Now(),
			UserAgent: r.UserAgent(), Principal: auth.Anonymous}
		if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
			info.SourceIP, _ = netip.ParseAddr(host)
		}
		res, err := verifier.Verify(r, "kms")
		if err != nil {
			var se *sigv4.Error
			code := "InternalFailure"
			if errors.As(err, &se) {
				code = "UnrecognizedClientException"
				if errors.Is(se.Err, sigv4.ErrSignatureMismatch) {
					code = "InvalidSignatureException"
				}
			}
			writeError(w, info, &Error{Code: code, Message: err.Error()})
			return
		}
		info.Principal = res.Principal
		h.ServeHTTP(w, r.WithContext(auth.WithInfo(r.Context(), info)))
	}))
	t.Cleanup(srv.Close)
	e.URL = srv.URL
	return e
}

func (e *env) record(_ context.Context, ev Event) {
	e.mu.Lock()
	e.events = append(e.events, ev)
	e.mu.Unlock()
}

// takeEvents returns and forgets the events so far.
func (e *env) takeEvents() []Event {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := e.events
	e.events = nil
	return out
}

// keyStore adapts IAM to the SigV4 verifier, as internal/server does.
type keyStore struct{ iam *iam.Service }

func (k keyStore) Lookup(ctx context.Context, id string) (sigv4.Credentials, error) {
	c, err := k.iam.Lookup(ctx, id)
	if errors.Is(err, iam.ErrUnknownKey) {
		return sigv4.Credentials{}, fmt.Errorf("%w", sigv4.ErrUnknownKey)
	}
	if err != nil {
		return sigv4.Credentials{}, err
	}
	return sigv4.Credentials{AccessKeyID: c.AccessKeyID, SecretAccessKey: c.Secret, SessionToken: c.SessionToken,
		Expires: c.Expires, Principal: c.Principal}, nil
}

// user is an IAM user of the test account with an access key.
type user struct {
	name, arn, keyID, secret string
	principal                auth.Principal
}

// newUser creates an IAM user with the given inline identity policies.
func (e *env) newUser(name string, policies ...string) user {
	e.t.Helper()
	ctx := e.t.Context()
	u, err := e.iam.CreateUser(ctx, name, "/", nil)
	if err != nil {
		e.t.Fatal(err)
	}
	for i, p := range policies {
		if err := e.iam.PutInlinePolicy(ctx, iam.UserEntity(), name, fmt.Sprintf("p%d", i), p); err != nil {
			e.t.Fatal(err)
		}
	}
	k, secret, err := e.iam.CreateAccessKey(ctx, name)
	if err != nil {
		e.t.Fatal(err)
	}
	kc, err := e.iam.Lookup(ctx, k.ID)
	if err != nil {
		e.t.Fatal(err)
	}
	return user{name: name, arn: u.ARN, keyID: k.ID, secret: secret, principal: kc.Principal}
}

func (e *env) admin() user {
	kc, err := e.iam.Lookup(e.t.Context(), adminKeyID)
	if err != nil {
		e.t.Fatal(err)
	}
	return user{name: "admin", arn: adminARN, keyID: adminKeyID, secret: adminSecret, principal: kc.Principal}
}

func (u user) caller() Caller { return Caller{Principal: u.principal} }

// viaECR is u calling through the registry.
func (u user) viaECR() Caller {
	return Caller{Principal: u.principal, ViaService: ecrVia, InvokedBy: "ecr.amazonaws.com"}
}

// sdk returns an aws-sdk-go-v2 KMS client signing as u.
func (e *env) sdk(u user) *awskms.Client {
	return awskms.New(awskms.Options{Region: testRegion, BaseEndpoint: aws.String(e.URL), Retryer: aws.NopRetryer{},
		Credentials: aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
			return aws.Credentials{AccessKeyID: u.keyID, SecretAccessKey: u.secret}, nil
		})})
}

// errCode returns the AWS error code of an SDK or service error.
func errCode(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	type coder interface{ ErrorCode() string }
	var c coder
	if errors.As(err, &c) {
		return c.ErrorCode()
	}
	return "unknown: " + err.Error()
}

func wantCode(t testing.TB, err error, code string) {
	t.Helper()
	if got := errCode(err); got != code {
		t.Fatalf("error = %v (code %q), want %s", err, got, code)
	}
}

func must[T any](t testing.TB) func(v T, err error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}
