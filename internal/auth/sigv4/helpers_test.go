package sigv4

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"

	"github.com/cofferhq/coffer/internal/auth"
)

const (
	testRegion  = "us-east-1"
	testKeyID   = "AKIAIOSFODNN7EXAMPLE"
	testSecret  = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
	tempKeyID   = "ASIAIOSFODNN7EXAMPLE"
	tempSecret  = "je7MtGbClwBF/2Zp9Utk/h3yCo8nvbEXAMPLEKEY"
	tempToken   = "FQoGZXIvYXdzEXAMPLE//////////wEaDEXAMPLEtokenAQ=="
	expiredID   = "ASIAEXPIREDEXAMPLE00"
	testAccount = "123456789012"
)

// signTime is when the tests sign; testNow is the verifier's clock.
var (
	signTime = time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	testNow  = signTime.Add(time.Minute)
)

// keyStore is a fake KeyStore.
type keyStore struct {
	mu    sync.Mutex
	keys  map[string]Credentials
	calls int
}

func (k *keyStore) Lookup(_ context.Context, id string) (Credentials, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.calls++
	c, ok := k.keys[id]
	if !ok {
		return Credentials{}, fmt.Errorf("key %s: %w", id, ErrUnknownKey)
	}
	return c, nil
}

func newKeyStore() *keyStore {
	return &keyStore{keys: map[string]Credentials{
		testKeyID: {
			AccessKeyID: testKeyID, SecretAccessKey: []byte(testSecret),
			Principal: auth.Principal{Type: "IAMUser", ARN: "arn:aws:iam::" + testAccount + ":user/alice",
				AccountID: testAccount, PrincipalID: "AIDAALICE", UserName: "alice"},
		},
		tempKeyID: {
			AccessKeyID: tempKeyID, SecretAccessKey: []byte(tempSecret), SessionToken: tempToken,
			Expires: signTime.Add(time.Hour),
			Principal: auth.Principal{Type: "AssumedRole", ARN: "arn:aws:sts::" + testAccount + ":assumed-role/builder/ci",
				AccountID: testAccount, PrincipalID: "AROABUILDER:ci"},
		},
		expiredID: {
			AccessKeyID: expiredID, SecretAccessKey: []byte(tempSecret), SessionToken: tempToken,
			Expires:   signTime.Add(30 * time.Second),
			Principal: auth.Principal{Type: "AssumedRole", AccountID: testAccount},
		},
	}}
}

func newVerifier(t testing.TB, mod ...func(*Config)) *Verifier {
	t.Helper()
	cfg := Config{Region: testRegion, Keys: newKeyStore(), Now: func() time.Time { return testNow }}
	for _, m := range mod {
		m(&cfg)
	}
	v, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func longTerm() aws.Credentials {
	return aws.Credentials{AccessKeyID: testKeyID, SecretAccessKey: testSecret}
}

func temporary() aws.Credentials {
	return aws.Credentials{AccessKeyID: tempKeyID, SecretAccessKey: tempSecret, SessionToken: tempToken}
}

func hashHex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// captured is a request as a server received it, with its body kept so
// that it can be replayed into Verify any number of times.
type captured struct {
	req  *http.Request
	body []byte
}

// fresh returns a copy of the received request with its own body reader
// and header map, for Verify or for tampering.
func (c captured) fresh() *http.Request {
	r := c.req.Clone(context.Background())
	r.RequestURI = c.req.RequestURI
	if c.body == nil {
		r.Body = http.NoBody
	} else {
		r.Body = io.NopCloser(bytes.NewReader(c.body))
	}
	return r
}

// capturer is an httptest server that records what it receives.
type capturer struct {
	srv *httptest.Server
	ch  chan captured
}

func newCapturer(t testing.TB) *capturer {
	c := &capturer{ch: make(chan captured, 1)}
	c.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		if r.ContentLength == 0 && len(body) == 0 {
			body = nil
		}
		c.ch <- captured{req: r.Clone(context.Background()), body: body}
	}))
	t.Cleanup(c.srv.Close)
	return c
}

// send sends r and returns the request as the server saw it.
func (c *capturer) send(t testing.TB, r *http.Request) captured {
	t.Helper()
	resp, err := c.srv.Client().Do(r)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	select {
	case got := <-c.ch:
		return got
	case <-time.After(10 * time.Second):
		t.Fatal("server received nothing")
		return captured{}
	}
}

// signOpts is one request for the aws-sdk-go-v2 signer to sign.
type signOpts struct {
	service string
	method  string
	path    string // appended to the server URL; may hold a query
	body    []byte
	header  map[string]string
	creds   aws.Credentials
	region  string
	at      time.Time
	payload string // payload hash; "" means the SHA-256 of body
	presign bool
	expires int // X-Amz-Expires for presign; 0 leaves it out
}

func (o signOpts) withDefaults() signOpts {
	if o.method == "" {
		o.method = http.MethodPost
	}
	if o.path == "" {
		o.path = "/"
	}
	if o.creds.AccessKeyID == "" {
		o.creds = longTerm()
	}
	if o.region == "" {
		o.region = testRegion
	}
	if o.at.IsZero() {
		o.at = signTime
	}
	if o.payload == "" {
		o.payload = hashHex(o.body)
	}
	return o
}

func sdkOptions(service string) func(*v4.SignerOptions) {
	return func(so *v4.SignerOptions) {
		so.DisableURIPathEscaping = service == "s3"
	}
}

// signAndSend signs a request with aws-sdk-go-v2's signer (SignHTTP or
// PresignHTTP), sends it to c and returns what the server received.
func signAndSend(t testing.TB, c *capturer, o signOpts) captured {
	t.Helper()
	o = o.withDefaults()
	var body io.Reader
	if o.body != nil {
		body = bytes.NewReader(o.body)
	}
	req, err := http.NewRequest(o.method, c.srv.URL+o.path, body)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range o.header {
		req.Header.Set(k, v)
	}
	signer := v4.NewSigner()
	if !o.presign {
		if err := signer.SignHTTP(context.Background(), o.creds, req, o.payload, o.service, o.region, o.at, sdkOptions(o.service)); err != nil {
			t.Fatal(err)
		}
		return c.send(t, req)
	}
	if o.expires > 0 {
		q := req.URL.Query()
		q.Set("X-Amz-Expires", fmt.Sprint(o.expires))
		req.URL.RawQuery = q.Encode()
	}
	u, hdr, err := signer.PresignHTTP(context.Background(), o.creds, req, o.payload, o.service, o.region, o.at, sdkOptions(o.service))
	if err != nil {
		t.Fatal(err)
	}
	preq, err := http.NewRequest(o.method, u, body)
	if err != nil {
		t.Fatal(err)
	}
	for k, vs := range hdr {
		if !strings.EqualFold(k, "Host") {
			preq.Header[k] = vs
		}
	}
	return c.send(t, preq)
}

// wantErr checks that err wraps sentinel (nil: no error), and that the
// message leaks no secret, signature or token.
func wantErr(t testing.TB, err, sentinel error, r *http.Request) {
	t.Helper()
	if sentinel == nil {
		if err != nil {
			t.Fatalf("Verify: %v", err)
		}
		return
	}
	if !errors.Is(err, sentinel) {
		t.Fatalf("Verify error = %v, want %v", err, sentinel)
	}
	noLeak(t, err, r)
}

func noLeak(t testing.TB, err error, r *http.Request) {
	t.Helper()
	msg := err.Error()
	for _, secret := range []string{testSecret, tempSecret, tempToken} {
		if strings.Contains(msg, secret) {
			t.Fatalf("error leaks a secret: %q", msg)
		}
	}
	if sig := signatureOf(r); len(sig) >= 16 && strings.Contains(msg, sig) {
		t.Fatalf("error leaks the signature: %q", msg)
	}
	var e *Error
	if !errors.As(err, &e) || e.Message == "" {
		t.Fatalf("error %v is not an *Error with a public message", err)
	}
	if !errors.Is(err, auth.ErrUnauthenticated) {
		t.Fatalf("error %v does not wrap auth.ErrUnauthenticated", err)
	}
}

func signatureOf(r *http.Request) string {
	if r == nil {
		return ""
	}
	if _, sig, ok := strings.Cut(r.Header.Get("Authorization"), "Signature="); ok {
		return sig
	}
	return r.URL.Query().Get("X-Amz-Signature")
}

func readAll(t testing.TB, r io.Reader) []byte {
	t.Helper()
	if r == nil {
		return nil
	}
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) == 0 {
		return nil
	}
	return b
}

// setQuery replaces the raw query of a received request.
func setQuery(r *http.Request, raw string) {
	r.URL.RawQuery = raw
	path, _, _ := strings.Cut(r.RequestURI, "?")
	if raw != "" {
		path += "?" + raw
	}
	r.RequestURI = path
}
