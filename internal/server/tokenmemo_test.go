package server

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"hash/maphash"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/cofferhq/coffer/internal/auth"
	"github.com/cofferhq/coffer/internal/auth/token"
	"github.com/cofferhq/coffer/internal/iam"
)

// memoFixture is a token authenticator on a settable clock, and a token of
// alice's valid for token.Lifetime from the clock's start.
type memoFixture struct {
	a      tokenAuthenticator
	now    time.Time
	tok    string
	claims token.Claims
}

func newMemoFixture(t *testing.T) *memoFixture {
	t.Helper()
	key, err := token.NewKey(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	f := &memoFixture{now: time.Unix(1_700_000_000, 0)}
	exists := func(context.Context, auth.Principal) (bool, error) { return true, nil }
	f.a = newTokenAuthenticator(key, func() time.Time { return f.now }, exists)
	f.claims = token.Claims{Type: "IAMUser", ARN: "arn:aws:iam::111122223333:user/alice", AccountID: "111122223333",
		PrincipalID: "AIDAEXAMPLE", UserName: "alice", AccessKeyID: "AKIAEXAMPLE",
		IssuedAt: f.now.Unix(), ExpiresAt: f.now.Add(token.Lifetime).Unix()}
	if f.tok, err = key.Issue(f.claims); err != nil {
		t.Fatal(err)
	}
	return f
}

// authenticate runs the authenticator on a request with this
// Authorization header.
func (f *memoFixture) authenticate(header string) (auth.Principal, error) {
	r, _ := http.NewRequest(http.MethodHead, "http://registry/v2/app/manifests/v1", nil)
	r.Header.Set("Authorization", header)
	return f.a.Authenticate(r)
}

func basic(user, pass string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
}

// A header that verified is remembered and answers alone while its token
// lasts; an altered header, another one at the same index of the memo and
// an expired token are refused, remembered or not.
func TestTokenMemo(t *testing.T) {
	t.Parallel()
	f := newMemoFixture(t)
	good := basic("AWS", f.tok)
	for i := range 2 {
		p, err := f.authenticate(good)
		if err != nil || p.ARN != f.claims.ARN || p.AccessKeyID != f.claims.AccessKeyID || p.Expires.Unix() != f.claims.ExpiresAt {
			t.Fatalf("request %d: %+v, %v", i, p, err)
		}
	}
	if n := len(f.a.memo.m); n != 1 {
		t.Fatalf("%d headers remembered, want 1", n)
	}

	// The same token, altered: each fails verification and is not remembered.
	altered := []string{
		basic("AWS", f.tok[:len(f.tok)-1]+"A"),
		basic("AWS", f.tok+"A"),
		basic("aws", f.tok),
		good[:len(good)-2],
	}
	for _, h := range altered {
		if _, err := f.authenticate(h); !errors.Is(err, auth.ErrUnauthenticated) {
			t.Errorf("altered header accepted: %v", err)
		}
	}
	if n := len(f.a.memo.m); n != 1 {
		t.Fatalf("%d headers remembered after refusals, want 1", n)
	}

	// A header that lands on a remembered entry's index (a hash collision,
	// forced) is compared whole and missed.
	other := basic("AWS", f.tok[:len(f.tok)-1]+"B")
	f.a.memo.m[maphash.String(f.a.memo.seed, other)] = f.a.memo.m[maphash.String(f.a.memo.seed, good)]
	if _, ok := f.a.memo.get(other, f.now); ok {
		t.Fatal("a header was taken for the remembered one at its index")
	}
	if _, err := f.authenticate(other); !errors.Is(err, auth.ErrUnauthenticated) {
		t.Fatalf("colliding header accepted: %v", err)
	}

	// Expiry holds for a remembered token.
	f.now = time.Unix(f.claims.ExpiresAt, 0)
	if _, err := f.authenticate(good); !errors.Is(err, auth.ErrUnauthenticated) || !strings.Contains(err.Error(), "expired") {
		t.Fatalf("expired remembered token: %v", err)
	}
	if _, ok := f.a.memo.get(good, f.now); ok {
		t.Fatal("the memo answers for an expired token")
	}
}

// The memo stays bounded however many tokens pass.
func TestTokenMemoBounded(t *testing.T) {
	t.Parallel()
	m := newTokenMemo()
	for i := range maxTokenMemo + 10 {
		m.put(fmt.Sprintf("Basic %d", i), auth.Principal{ARN: "a"}, 1<<40)
		if n := len(m.m); n > maxTokenMemo {
			t.Fatalf("%d headers remembered, bound %d", n, maxTokenMemo)
		}
	}
	if _, ok := m.get(fmt.Sprintf("Basic %d", maxTokenMemo+9), time.Now()); !ok {
		t.Fatal("the latest header was not remembered")
	}
}

// A remembered token is still authorized per request: a change of the
// user's policies applies to the very next request made with a token
// issued before it, and the user's deletion makes the token name nobody
// (401), even once a user of the same name exists again.
func TestTokenFollowsIdentityChanges(t *testing.T) {
	t.Parallel()
	srv, app := newAuthServer(t)
	ctx := context.Background()
	img, _ := random.Image(1024, 1)
	r := ref(t, srv, "memo/app:v1")
	admin := loginToken(t, ecrClient(srv, adminID, adminSecret, nil))
	if err := remote.Write(r, img, remote.WithAuth(&authn.Basic{Username: "AWS", Password: admin})); err != nil {
		t.Fatal(err)
	}
	id, secret := createUser(t, app, "puller", "AmazonEC2ContainerRegistryReadOnly")
	tok := loginToken(t, ecrClient(srv, id, secret, nil))
	head := func(what string, want int) {
		t.Helper()
		for range 2 { // the second from the memo
			req, _ := http.NewRequest(http.MethodHead, srv.URL+"/v2/memo/app/manifests/v1", nil)
			req.SetBasicAuth("AWS", tok)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != want {
				t.Fatalf("%s: HEAD = %d, want %d", what, resp.StatusCode, want)
			}
		}
	}
	readOnly := "arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryReadOnly"
	head("ReadOnly", http.StatusOK)
	if err := app.iam.DetachPolicy(ctx, iam.UserEntity(), "puller", readOnly); err != nil {
		t.Fatal(err)
	}
	head("policy detached", http.StatusForbidden)
	if err := app.iam.AttachPolicy(ctx, iam.UserEntity(), "puller", readOnly); err != nil {
		t.Fatal(err)
	}
	head("policy attached again", http.StatusOK)
	deny := `{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Action":"ecr:BatchGetImage","Resource":"*"}]}`
	if err := app.iam.PutInlinePolicy(ctx, iam.UserEntity(), "puller", "no-pull", deny); err != nil {
		t.Fatal(err)
	}
	head("inline Deny", http.StatusForbidden)
	if err := app.iam.DeleteInlinePolicy(ctx, iam.UserEntity(), "puller", "no-pull"); err != nil {
		t.Fatal(err)
	}
	head("inline Deny deleted", http.StatusOK)
	if err := app.iam.DetachPolicy(ctx, iam.UserEntity(), "puller", readOnly); err != nil {
		t.Fatal(err)
	}
	if err := app.iam.DeleteAccessKey(ctx, "puller", id); err != nil {
		t.Fatal(err)
	}
	if err := app.iam.DeleteUser(ctx, "puller"); err != nil {
		t.Fatal(err)
	}
	head("user deleted", http.StatusUnauthorized)
	// A user created again under the name is another principal: the old
	// token does not become its.
	createUser(t, app, "puller", "AmazonEC2ContainerRegistryReadOnly")
	head("user created again", http.StatusUnauthorized)
}
