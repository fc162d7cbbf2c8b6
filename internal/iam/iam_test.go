package iam

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/cofferhq/coffer/internal/auth"
	"github.com/cofferhq/coffer/internal/crypto/rootkey"
	"github.com/cofferhq/coffer/internal/metadata"
	"github.com/cofferhq/coffer/internal/metadata/sqlite"
	"github.com/cofferhq/coffer/internal/policy"
)

func newService(t *testing.T, now func() time.Time) (*Service, metadata.Store) {
	t.Helper()
	store, err := sqlite.Open(context.Background(), sqlite.Config{Path: t.TempDir() + "/coffer.db"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	root, err := rootkey.Generate()
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(Config{AccountID: "111122223333", Docs: store, Root: root, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	return s, store
}

func TestBootstrapOnce(t *testing.T) {
	t.Parallel()
	s, _ := newService(t, nil)
	ctx := context.Background()
	id, secret, created, err := s.Bootstrap(ctx, "", "")
	if err != nil || !created || len(id) != 20 || len(secret) != 40 {
		t.Fatalf("Bootstrap = %q, %d-char secret, %v, %v", id, len(secret), created, err)
	}
	if _, _, created, err := s.Bootstrap(ctx, "", ""); err != nil || created {
		t.Fatalf("second Bootstrap created = %v, %v", created, err)
	}
	c, err := s.Lookup(ctx, id)
	if err != nil || string(c.Secret) != secret || c.Principal.ARN != "arn:aws:iam::111122223333:user/admin" {
		t.Fatalf("Lookup(admin) = %+v, %v", c.Principal, err)
	}
	pols, err := s.IdentityPolicies(ctx, c.Principal)
	if err != nil || len(pols) != 1 {
		t.Fatalf("admin policies = %d, %v", len(pols), err)
	}
}

func TestKeysLifecycleAndLookup(t *testing.T) {
	t.Parallel()
	s, store := newService(t, nil)
	ctx := context.Background()
	if _, err := s.CreateUser(ctx, "alice", "/team/", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateUser(ctx, "alice", "/", nil); !errors.Is(err, ErrEntityExists) {
		t.Fatalf("duplicate user = %v", err)
	}
	k1, secret, err := s.CreateAccessKey(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.CreateAccessKey(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.CreateAccessKey(ctx, "alice"); !errors.Is(err, ErrLimitExceeded) {
		t.Fatalf("third key = %v", err)
	}
	c, err := s.Lookup(ctx, k1.ID)
	if err != nil || string(c.Secret) != secret || c.Principal.ARN != "arn:aws:iam::111122223333:user/team/alice" {
		t.Fatalf("Lookup = %+v, %v", c, err)
	}
	// No document holds a plaintext secret.
	store.ViewDocs(ctx, func(tx metadata.DocTx) error {
		for _, kind := range []string{kindKey, kindUser} {
			docs, _ := tx.List(kind, "")
			for _, d := range docs {
				if bytes.Contains(d.Data, []byte(secret)) {
					t.Errorf("secret stored in plaintext in %s/%s", kind, d.Key)
				}
			}
		}
		return nil
	})
	if err := s.UpdateAccessKey(ctx, "alice", k1.ID, "Inactive"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Lookup(ctx, k1.ID); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("Lookup(inactive) = %v", err)
	}
	if err := s.DeleteUser(ctx, "alice"); !errors.Is(err, ErrDeleteConflict) {
		t.Fatalf("DeleteUser with keys = %v", err)
	}
	keys, _ := s.ListAccessKeys(ctx, "alice")
	for _, k := range keys {
		if len(k.Secret) != 0 {
			t.Fatal("ListAccessKeys returned a secret")
		}
		if err := s.DeleteAccessKey(ctx, "alice", k.ID); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.DeleteUser(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Lookup(ctx, "AKIANOSUCHKEY0000000"); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("Lookup(unknown) = %v", err)
	}
}

func TestIdentityPoliciesFollowWrites(t *testing.T) {
	t.Parallel()
	s, _ := newService(t, nil)
	ctx := context.Background()
	u, _ := s.CreateUser(ctx, "bob", "/", nil)
	p := auth.Principal{Type: "IAMUser", ARN: u.ARN, AccountID: "111122223333", UserName: "bob", PrincipalID: u.ID}
	count := func() int {
		t.Helper()
		pols, err := s.IdentityPolicies(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		return len(pols)
	}
	if n := count(); n != 0 {
		t.Fatalf("new user has %d policies", n)
	}
	if err := s.AttachPolicy(ctx, UserEntity(), "bob", "arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryReadOnly"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateGroup(ctx, "devs", "/"); err != nil {
		t.Fatal(err)
	}
	doc := `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ecr:PutImage","Resource":"*"}]}`
	if err := s.PutInlinePolicy(ctx, GroupEntity(), "devs", "push", doc); err != nil {
		t.Fatal(err)
	}
	if err := s.AddUserToGroup(ctx, "devs", "bob"); err != nil {
		t.Fatal(err)
	}
	if n := count(); n != 2 { // cached answers must follow every write
		t.Fatalf("after attach + group: %d policies, want 2", n)
	}
	if err := s.PutInlinePolicy(ctx, UserEntity(), "bob", "bad", `{"Version":"2012-10-17","Statement":[{"Effect":"Maybe"}]}`); !errors.Is(err, ErrMalformedPolicy) {
		t.Fatalf("malformed inline policy = %v", err)
	}
	if err := s.RemoveUserFromGroup(ctx, "devs", "bob"); err != nil {
		t.Fatal(err)
	}
	if n := count(); n != 1 {
		t.Fatalf("after leaving the group: %d policies, want 1", n)
	}
	// A deleted principal has no policies, whatever a token still says.
	gone := auth.Principal{Type: "IAMUser", ARN: "arn:aws:iam::111122223333:user/ghost", UserName: "ghost", PrincipalID: "AIDAGHOST"}
	if pols, err := s.IdentityPolicies(ctx, gone); err != nil || len(pols) != 0 {
		t.Fatalf("deleted user policies = %d, %v", len(pols), err)
	}
	if ok, err := s.Exists(ctx, gone); err != nil || ok {
		t.Fatalf("Exists(deleted user) = %v, %v", ok, err)
	}
}

// TestRecreatedUserIsAnother: a user deleted and created again under its
// name is another principal (another ID). What an old token names gets
// neither the new user's policies nor its existence, while the new user
// (from the same cache) gets both.
func TestRecreatedUserIsAnother(t *testing.T) {
	t.Parallel()
	s, _ := newService(t, nil)
	ctx := context.Background()
	old, err := s.CreateUser(ctx, "carol", "/", nil)
	if err != nil {
		t.Fatal(err)
	}
	oldP := auth.Principal{Type: "IAMUser", ARN: old.ARN, AccountID: "111122223333", UserName: "carol", PrincipalID: old.ID}
	if ok, err := s.Exists(ctx, oldP); err != nil || !ok {
		t.Fatalf("Exists(carol) = %v, %v", ok, err)
	}
	if err := s.DeleteUser(ctx, "carol"); err != nil {
		t.Fatal(err)
	}
	again, err := s.CreateUser(ctx, "carol", "/", nil)
	if err != nil {
		t.Fatal(err)
	}
	if again.ID == old.ID || again.ARN != old.ARN {
		t.Fatalf("recreated user: ID %s (old %s), ARN %s (old %s)", again.ID, old.ID, again.ARN, old.ARN)
	}
	if err := s.AttachPolicy(ctx, UserEntity(), "carol", "arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryPowerUser"); err != nil {
		t.Fatal(err)
	}
	newP := oldP
	newP.PrincipalID = again.ID
	for i := 0; i < 2; i++ { // the second time from the cache, in both orders
		if pols, err := s.IdentityPolicies(ctx, newP); err != nil || len(pols) != 1 {
			t.Fatalf("new carol: %d policies, %v; want 1", len(pols), err)
		}
		if pols, err := s.IdentityPolicies(ctx, oldP); err != nil || len(pols) != 0 {
			t.Fatalf("old carol's token: %d policies, %v; want none", len(pols), err)
		}
		if ok, err := s.Exists(ctx, oldP); err != nil || ok {
			t.Fatalf("Exists(old carol) = %v, %v; want false", ok, err)
		}
		if ok, err := s.Exists(ctx, newP); err != nil || !ok {
			t.Fatalf("Exists(new carol) = %v, %v; want true", ok, err)
		}
	}
}

func TestAssumeRoleSessions(t *testing.T) {
	t.Parallel()
	now := time.Unix(1_700_000_000, 0)
	s, _ := newService(t, func() time.Time { return now })
	ctx := context.Background()
	trust := `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:root"},"Action":"sts:AssumeRole"}]}`
	role, err := s.CreateRole(ctx, "builder", "/", trust, "", 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	caller := auth.Principal{Type: "IAMUser", ARN: "arn:aws:iam::111122223333:user/ci", AccountID: "111122223333", UserName: "ci"}
	allow := func(context.Context, auth.Principal, Role) error { return nil }
	deny := func(context.Context, auth.Principal, Role) error { return ErrAccessDeniedTrust }
	if _, err := s.AssumeRole(ctx, caller, role.ARN, "s1", 0, deny); !errors.Is(err, ErrAccessDeniedTrust) {
		t.Fatalf("denied trust = %v", err)
	}
	if _, err := s.AssumeRole(ctx, caller, role.ARN, "s1", 2*time.Hour, allow); !errors.Is(err, ErrValidation) {
		t.Fatalf("duration over MaxSessionDuration = %v", err)
	}
	creds, err := s.AssumeRole(ctx, caller, role.ARN, "s1", 0, allow)
	if err != nil {
		t.Fatal(err)
	}
	c, err := s.Lookup(ctx, creds.AccessKeyID)
	if err != nil || c.SessionToken != creds.SessionToken || c.Principal.ARN != "arn:aws:sts::111122223333:assumed-role/builder/s1" ||
		c.Principal.RoleARN != role.ARN || !c.Expires.Equal(now.Add(time.Hour)) {
		t.Fatalf("session Lookup = %+v, %v", c.Principal, err)
	}
	if err := s.AttachPolicy(ctx, RoleEntity(), "builder", "arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryPowerUser"); err != nil {
		t.Fatal(err)
	}
	pols, err := s.IdentityPolicies(ctx, c.Principal)
	if err != nil || len(pols) != 1 {
		t.Fatalf("session policies = %d, %v", len(pols), err)
	}
	if pols[0].Kind() != policy.Identity {
		t.Fatalf("session policy kind = %v", pols[0].Kind())
	}
	// The role deleted and created again under its name is another role:
	// the session is not its, and it gets nothing of it.
	if err := s.DetachPolicy(ctx, RoleEntity(), "builder", "arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryPowerUser"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteRole(ctx, "builder"); err != nil {
		t.Fatal(err)
	}
	again, err := s.CreateRole(ctx, "builder", "/", trust, "", 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.AttachPolicy(ctx, RoleEntity(), "builder", "arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryPowerUser"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Lookup(ctx, creds.AccessKeyID); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("Lookup(session of a role created again) = %v, want ErrUnknownKey", err)
	}
	if pols, err := s.IdentityPolicies(ctx, c.Principal); err != nil || len(pols) != 0 {
		t.Fatalf("old session's policies from the new role = %d, %v; want none", len(pols), err)
	}
	if again.ID == role.ID {
		t.Fatalf("the role created again has the old ID %s", role.ID)
	}
	now = now.Add(2 * time.Hour)
	if n, err := s.ExpireSessions(ctx); err != nil || n != 1 {
		t.Fatalf("ExpireSessions = %d, %v", n, err)
	}
	if _, err := s.Lookup(ctx, creds.AccessKeyID); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("Lookup(expired, deleted session) = %v", err)
	}
}
