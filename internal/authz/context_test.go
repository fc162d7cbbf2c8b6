package authz_test

import (
	"net/netip"
	"testing"
	"time"

	"github.com/cofferhq/coffer/internal/authz"
	"github.com/cofferhq/coffer/internal/iam"
)

// Authorize builds the request context only for decisions whose policies
// can read it (policy.Policy.UsesContext). A policy that needs it, written
// in place of one that does not, gets it at the very next decision: a
// condition in an identity or a repository policy, or a policy variable
// that names a request key.
func TestContextWhenPoliciesNeedIt(t *testing.T) {
	t.Parallel()
	f := newFixture(t, time.Hour)
	f.info.SourceIP = netip.MustParseAddr("127.0.0.1")
	ctx := t.Context()
	step := func(what string, want bool) {
		t.Helper()
		for range 2 { // the second from the caches
			if got := f.allowed(t); got != want {
				t.Fatalf("%s: allowed = %v, want %v", what, got, want)
			}
		}
	}
	step("allow-all identity policy", true)

	onlyTen := `{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Action":"ecr:*","Resource":"*",
		"Condition":{"NotIpAddress":{"aws:SourceIp":"10.0.0.0/8"}}}]}`
	if err := f.ids.PutInlinePolicy(ctx, iam.UserEntity(), "alice", "only-ten", onlyTen); err != nil {
		t.Fatal(err)
	}
	step("identity Deny outside 10.0.0.0/8, from 127.0.0.1", false)
	f.info.SourceIP = netip.MustParseAddr("10.1.2.3")
	step("identity Deny outside 10.0.0.0/8, from 10.1.2.3", true)
	if err := f.ids.DeleteInlinePolicy(ctx, iam.UserEntity(), "alice", "only-ten"); err != nil {
		t.Fatal(err)
	}

	notTen := []byte(`{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Principal":"*","Action":"ecr:*",
		"Condition":{"IpAddress":{"aws:SourceIp":"10.0.0.0/8"}}}]}`)
	putDoc(t, f.store, authz.KindRepositoryPolicy, "app", notTen)
	step("repository Deny inside 10.0.0.0/8, from 10.1.2.3", false)
	f.info.SourceIP = netip.MustParseAddr("127.0.0.1")
	step("repository Deny inside 10.0.0.0/8, from 127.0.0.1", true)
	putDoc(t, f.store, authz.KindRepositoryPolicy, "app", nil)

	// The identity policy itself, rewritten to allow through a variable
	// whose value only the request context holds (aws:RequestedRegion).
	byRegion := `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ecr:*",
		"Resource":"arn:aws:ecr:${aws:RequestedRegion}:` + account + `:repository/app"}]}`
	if err := f.ids.PutInlinePolicy(ctx, iam.UserEntity(), "alice", "all", byRegion); err != nil {
		t.Fatal(err)
	}
	step("Allow on a Resource with ${aws:RequestedRegion}", true)
	otherRegion := `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ecr:*",
		"Resource":"arn:aws:ecr:${aws:RequestedRegion}:` + account + `:repository/other"}]}`
	if err := f.ids.PutInlinePolicy(ctx, iam.UserEntity(), "alice", "all", otherRegion); err != nil {
		t.Fatal(err)
	}
	step("Allow on another repository with ${aws:RequestedRegion}", false)
}
