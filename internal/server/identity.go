package server

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/cofferhq/coffer/internal/auth"
	"github.com/cofferhq/coffer/internal/auth/sigv4"
	"github.com/cofferhq/coffer/internal/auth/token"
	"github.com/cofferhq/coffer/internal/crypto/rootkey"
	"github.com/cofferhq/coffer/internal/iam"
	"github.com/cofferhq/coffer/internal/metadata"
)

const settingTokenKey = "token_signing_key"

// tokenKey returns the registry-token signing key, generated once and kept
// sealed under the root key in the metadata store.
func tokenKey(ctx context.Context, store metadata.Store, root *rootkey.Key) (*token.Key, error) {
	key, err := sealedSecret(ctx, store, root, settingTokenKey, "token key")
	if err != nil {
		return nil, err
	}
	return token.NewKey(key)
}

// sealedSecret returns the 32-byte secret kept under setting, sealed under
// the root key (bound to the setting's name): the first process to ask
// generates and stores it, every later one (every replica sharing the
// metadata) reads the same. what names it in errors.
func sealedSecret(ctx context.Context, store metadata.Store, root *rootkey.Key, setting, what string) ([]byte, error) {
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return nil, err
	}
	ec := map[string]string{"coffer:secret": setting}
	sealed, err := root.Wrap(secret, ec)
	if err != nil {
		return nil, err
	}
	stored, err := store.PutSettingIfAbsent(ctx, setting, base64.StdEncoding.EncodeToString(sealed))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	raw, err := base64.StdEncoding.DecodeString(stored)
	if err != nil {
		return nil, fmt.Errorf("%s: stored value is not base64", what)
	}
	key, err := root.Unwrap(raw, ec)
	if err != nil {
		return nil, fmt.Errorf("%s: does not open under the root key", what)
	}
	return key, nil
}

// bootstrapAdmin creates the administrator on first start. A generated key
// is printed once to out and written, 0600, to <data>/admin-credentials in
// the AWS shared-credentials format.
func bootstrapAdmin(ctx context.Context, svc *iam.Service, cfg configView, out io.Writer, log *slog.Logger) error {
	id, secret, created, err := svc.Bootstrap(ctx, cfg.adminKeyID, cfg.adminSecret)
	if err != nil || !created {
		return err
	}
	if cfg.adminKeyID != "" {
		log.Info("created the administrator user from COFFER_ADMIN_ACCESS_KEY_ID", "user", "admin", "access_key_id", id)
		return nil
	}
	path := filepath.Join(cfg.dataDir, "admin-credentials")
	content := fmt.Sprintf("[default]\naws_access_key_id = %s\naws_secret_access_key = %s\n", id, secret)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("write administrator credentials: %w", err)
	}
	if _, err := f.WriteString(content); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	fmt.Fprintf(out, "coffer: created the administrator user \"admin\" (shown once; also written to %s):\n"+
		"  aws_access_key_id     = %s\n  aws_secret_access_key = %s\n", path, id, secret)
	log.Info("created the administrator user", "user", "admin", "access_key_id", id, "credentials_file", path)
	return nil
}

type configView struct {
	dataDir, adminKeyID, adminSecret string
}

// keyStore adapts the IAM service to the SigV4 verifier.
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

// tokenAuthenticator authenticates /v2/ requests: HTTP Basic with user AWS
// and a registry token as the password, what docker login stores.
type tokenAuthenticator struct {
	key  *token.Key
	now  func() time.Time
	memo *tokenMemo // headers that verified
	// exists reports whether the token's principal still exists
	// (iam.Service.Exists): a token outlives a deleted user or role, and
	// one deleted and created again under its name is someone else.
	exists func(context.Context, auth.Principal) (bool, error)
}

// newTokenAuthenticator returns the authenticator of tokens signed with
// key whose principals exist, with an empty memo.
func newTokenAuthenticator(key *token.Key, now func() time.Time, exists func(context.Context, auth.Principal) (bool, error)) tokenAuthenticator {
	return tokenAuthenticator{key: key, now: now, memo: newTokenMemo(), exists: exists}
}

func (a tokenAuthenticator) Authenticate(r *http.Request) (auth.Principal, error) {
	p, err := a.verify(r)
	if err != nil {
		return auth.Principal{}, err
	}
	ok, err := a.exists(r.Context(), p)
	if err != nil {
		return auth.Principal{}, fmt.Errorf("token principal: %w", err)
	}
	if !ok {
		return auth.Principal{}, fmt.Errorf("%w: the token's principal no longer exists", auth.ErrUnauthenticated)
	}
	return p, nil
}

// verify returns the principal the request's token names, from the memo
// when the same header verified before.
func (a tokenAuthenticator) verify(r *http.Request) (auth.Principal, error) {
	header, now := r.Header.Get("Authorization"), a.now()
	if p, ok := a.memo.get(header, now); ok {
		return p, nil
	}
	user, pass, ok := r.BasicAuth()
	if !ok {
		return auth.Principal{}, fmt.Errorf("%w: no credentials", auth.ErrUnauthenticated)
	}
	if user != "AWS" {
		return auth.Principal{}, fmt.Errorf("%w: the user name must be AWS", auth.ErrUnauthenticated)
	}
	c, err := a.key.Verify(strings.TrimSpace(pass), now)
	if err != nil {
		return auth.Principal{}, fmt.Errorf("%w: %v", auth.ErrUnauthenticated, err)
	}
	p := auth.Principal{Type: c.Type, ARN: c.ARN, AccountID: c.AccountID, PrincipalID: c.PrincipalID,
		UserName: c.UserName, AccessKeyID: c.AccessKeyID, RoleARN: c.RoleARN, SessionName: c.SessionName,
		Expires: time.Unix(c.ExpiresAt, 0)}
	a.memo.put(header, p, c.ExpiresAt)
	return p, nil
}

// anonymousOrToken serves --insecure-allow-anonymous: requests without
// credentials are anonymous (and allowed everything by allowAnonymous);
// requests with a token are authenticated as usual.
type anonymousOrToken struct{ tokens tokenAuthenticator }

func (a anonymousOrToken) Authenticate(r *http.Request) (auth.Principal, error) {
	if r.Header.Get("Authorization") == "" {
		return auth.Anonymous, nil
	}
	return a.tokens.Authenticate(r)
}

// allowAnonymous lets anonymous requests do anything (the loopback-only
// insecure mode) and sends everyone else to the real decision point.
type allowAnonymous struct{ next auth.Authorizer }

func (a allowAnonymous) Authorize(ctx context.Context, info *auth.Info, action, resource string) error {
	if info.Principal.Type == auth.Anonymous.Type {
		return nil
	}
	return a.next.Authorize(ctx, info, action, resource)
}
