package authz_test

import (
	"errors"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/cofferhq/coffer/internal/auth"
	"github.com/cofferhq/coffer/internal/authz"
	"github.com/cofferhq/coffer/internal/crypto/rootkey"
	"github.com/cofferhq/coffer/internal/iam"
	"github.com/cofferhq/coffer/internal/metadata"
	"github.com/cofferhq/coffer/internal/metadata/cache"
	"github.com/cofferhq/coffer/internal/metadata/sqlite"
)

const (
	account = "123456789012"
	region  = "us-east-1"
	repoARN = "arn:aws:ecr:" + region + ":" + account + ":repository/app"
)

type fixture struct {
	inner *sqlite.Store
	store *cache.Store
	authz *authz.Authorizer
	ids   *iam.Service
	info  *auth.Info // alice, allowed ecr:* by her identity policy
}

// newFixture builds the decision point over a cached store, as the server
// does, with caches of the given TTL, and a repository "app".
func newFixture(t testing.TB, ttl time.Duration) *fixture {
	t.Helper()
	ctx := t.Context()
	inner, err := sqlite.Open(ctx, sqlite.Config{Path: filepath.Join(t.TempDir(), "coffer.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { inner.Close() })
	store := cache.New(inner, cache.Config{TTL: ttl})
	root, err := rootkey.Generate()
	if err != nil {
		t.Fatal(err)
	}
	ids, err := iam.New(iam.Config{AccountID: account, Docs: store, Root: root, Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	a, err := authz.New(authz.Config{IAM: ids, Docs: store, AccountID: account, Region: region,
		Generation: store.Generation, CacheTTL: ttl})
	if err != nil {
		t.Fatal(err)
	}
	u, err := ids.CreateUser(ctx, "alice", "/", nil)
	if err != nil {
		t.Fatal(err)
	}
	allowAll := `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ecr:*","Resource":"*"}]}`
	if err := ids.PutInlinePolicy(ctx, iam.UserEntity(), "alice", "all", allowAll); err != nil {
		t.Fatal(err)
	}
	if err := store.CreateRepository(ctx, metadata.Repository{ID: "id-app", Name: "app", Domain: "aes256",
		EncryptionType: metadata.EncryptionAES256, TagMutability: metadata.TagMutable, CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	p := auth.Principal{Type: "IAMUser", ARN: u.ARN, AccountID: account, PrincipalID: u.ID, UserName: u.Name}
	return &fixture{inner: inner, store: store, authz: a, ids: ids, info: &auth.Info{Principal: p, Time: time.Now()}}
}

func (f *fixture) allowed(t *testing.T) bool {
	t.Helper()
	err := f.authz.Authorize(t.Context(), f.info, "ecr:BatchGetImage", repoARN)
	var denied *auth.DeniedError
	if err != nil && !errors.As(err, &denied) {
		t.Fatalf("Authorize: %v", err)
	}
	return err == nil
}

func (f *fixture) denyAlice() []byte {
	return []byte(`{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Principal":{"AWS":"` + f.info.Principal.ARN + `"},"Action":"ecr:*"}]}`)
}

// putDoc writes (data != nil) or deletes a document of the repository the
// way internal/ecrapi does: through the store's UpdateRepositoryDocs, or
// UpdateDocs for the registry policy.
func putDoc(t *testing.T, s metadata.Store, kind, key string, data []byte) {
	t.Helper()
	write := func(tx metadata.DocTx) error {
		if data == nil {
			return tx.Delete(kind, key)
		}
		old, err := tx.Get(kind, key)
		if err != nil && !errors.Is(err, metadata.ErrNotFound) {
			return err
		}
		_, err = tx.Put(metadata.Document{Kind: kind, Key: key, Data: data, Version: old.Version})
		return err
	}
	var err error
	if kind == authz.KindRegistryPolicy {
		err = s.UpdateDocs(t.Context(), write)
	} else {
		err = s.UpdateRepositoryDocs(t.Context(), key, func(_ metadata.Repository, tx metadata.DocTx) error { return write(tx) })
	}
	if err != nil {
		t.Fatal(err)
	}
}

// A change of the repository policy, the registry policy or the
// repository's tags made through the cached store is honoured at the very
// next Authorize (SPEC POL-01: resource policies decide; ECR applies a
// policy change at once), although the cache would keep an entry for an
// hour.
func TestCachedPoliciesFollowWrites(t *testing.T) {
	t.Parallel()
	f := newFixture(t, time.Hour)
	step := func(what string, want bool) {
		t.Helper()
		if got := f.allowed(t); got != want {
			t.Fatalf("after %s: allowed = %v, want %v", what, got, want)
		}
		if got := f.allowed(t); got != want { // now from the cache
			t.Fatalf("after %s, cached: allowed = %v, want %v", what, got, want)
		}
	}
	step("start", true)
	putDoc(t, f.store, authz.KindRepositoryPolicy, "app", f.denyAlice())
	step("SetRepositoryPolicy deny", false)
	putDoc(t, f.store, authz.KindRepositoryPolicy, "app", nil)
	step("DeleteRepositoryPolicy", true)
	putDoc(t, f.store, authz.KindRegistryPolicy, "registry", f.denyAlice())
	step("PutRegistryPolicy deny", false)
	putDoc(t, f.store, authz.KindRegistryPolicy, "registry", nil)
	step("DeleteRegistryPolicy", true)

	// An identity policy that denies classified repositories, then the tag.
	deny := `{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Action":"ecr:*","Resource":"*",
		"Condition":{"StringEquals":{"aws:ResourceTag/classified":"yes"}}}]}`
	if err := f.ids.PutInlinePolicy(t.Context(), iam.UserEntity(), "alice", "no-classified", deny); err != nil {
		t.Fatal(err)
	}
	step("identity deny on a tag", true)
	putDoc(t, f.store, authz.KindRepositoryTags, "app", []byte(`[{"Key":"classified","Value":"yes"}]`))
	step("TagResource classified=yes", false)
	putDoc(t, f.store, authz.KindRepositoryTags, "app", []byte(`[]`))
	step("UntagResource", true)
}

// The cache is really used: a policy written behind the cached store's
// back (another process) is not seen until the TTL runs out, and then is.
func TestCachedPoliciesExpire(t *testing.T) {
	t.Parallel()
	const ttl = 100 * time.Millisecond
	f := newFixture(t, ttl)
	if !f.allowed(t) {
		t.Fatal("denied at start")
	}
	putDoc(t, f.inner, authz.KindRepositoryPolicy, "app", f.denyAlice())
	start := time.Now()
	stale := f.allowed(t)
	if time.Since(start) < ttl && !stale {
		t.Error("a write behind the cache was seen within the TTL: the cache is not used")
	}
	time.Sleep(ttl)
	if f.allowed(t) {
		t.Error("a write behind the cache was not seen after the TTL")
	}
}

// Without Generation or CacheTTL nothing is cached: a write behind the
// store's back is seen at once.
func TestUncached(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 0)
	if !f.allowed(t) {
		t.Fatal("denied at start")
	}
	putDoc(t, f.inner, authz.KindRepositoryPolicy, "app", f.denyAlice())
	if f.allowed(t) {
		t.Error("TTL 0: a stale decision")
	}
}
