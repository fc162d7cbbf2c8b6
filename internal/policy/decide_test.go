package policy

import (
	"slices"
	"testing"
)

const (
	allowAll      = `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}`
	denyPut       = `{"Version":"2012-10-17","Statement":[{"Sid":"NoPush","Effect":"Deny","Action":"ecr:PutImage","Resource":"*"}]}`
	epOnlyPull    = `{"Statement":[{"Effect":"Allow","Action":"ecr:BatchGetImage","Resource":"*"}]}`
	epDenyPut     = `{"Statement":[{"Effect":"Allow","Action":"*","Resource":"*"},{"Sid":"EPNoPush","Effect":"Deny","Action":"ecr:PutImage","Resource":"*"}]}`
	repoAllowUser = `{"Version":"2012-10-17","Statement":[{"Sid":"Alice","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:user/alice"},"Action":"ecr:*"}]}`
	repoAllowAcct = `{"Version":"2012-10-17","Statement":[{"Sid":"Acct","Effect":"Allow","Principal":{"AWS":"111122223333"},"Action":"ecr:*"}]}`
	repoAllowPeer = `{"Version":"2012-10-17","Statement":[{"Sid":"Peer","Effect":"Allow","Principal":{"AWS":"444455556666"},"Action":"ecr:*"}]}`
	repoAllowAny  = `{"Version":"2012-10-17","Statement":[{"Sid":"Public","Effect":"Allow","Principal":"*","Action":"ecr:BatchGetImage"}]}`
	repoDenyPut   = `{"Version":"2012-10-17","Statement":[{"Sid":"RepoNoPush","Effect":"Deny","Principal":"*","Action":"ecr:PutImage"}]}`
)

func TestDecide(t *testing.T) {
	t.Parallel()
	P := func(kind Kind, doc string) *Policy { return mustParse(t, kind, doc) }
	alice := user(acct, "alice")
	peer := user(otherAcct, "carol")
	vpce := func(docs ...string) []Gate {
		g := Gate{Name: "VPC endpoint policy"}
		for _, d := range docs {
			g.Policies = append(g.Policies, P(Endpoint, d))
		}
		return []Gate{g}
	}
	tests := []struct {
		name    string
		who     Principal
		action  string
		in      Input // Request filled in from who and action on repoARN
		allowed bool
		reason  string
		sid     string
	}{
		// Explicit deny wins across policy types.
		{"identity deny beats resource allow", alice, "ecr:PutImage",
			Input{Identity: []*Policy{P(Identity, allowAll), P(Identity, denyPut)}, Resource: []*Policy{P(Resource, repoAllowUser)}},
			false, "with an explicit deny in an identity-based policy", "NoPush"},
		{"resource deny beats identity allow", alice, "ecr:PutImage",
			Input{Identity: []*Policy{P(Identity, allowAll)}, Resource: []*Policy{P(Resource, repoDenyPut)}},
			false, "with an explicit deny in a resource-based policy", "RepoNoPush"},
		{"gate deny beats both allows", alice, "ecr:PutImage",
			Input{Identity: []*Policy{P(Identity, allowAll)}, Resource: []*Policy{P(Resource, repoAllowUser)}, Gates: vpce(epDenyPut)},
			false, "with an explicit deny in a VPC endpoint policy", "EPNoPush"},
		{"gate deny reported before a gate without allow", alice, "ecr:PutImage",
			Input{Identity: []*Policy{P(Identity, allowAll)}, Gates: append(vpce(epOnlyPull), vpce(epDenyPut)...)},
			false, "with an explicit deny in a VPC endpoint policy", "EPNoPush"},
		// Gates.
		{"gate without allow", alice, "ecr:PutImage",
			Input{Identity: []*Policy{P(Identity, allowAll)}, Gates: vpce(epOnlyPull)},
			false, "because no VPC endpoint policy allows the ecr:PutImage action", ""},
		{"gate with no policies", alice, "ecr:PutImage",
			Input{Identity: []*Policy{P(Identity, allowAll)}, Gates: vpce()},
			false, "because no VPC endpoint policy allows the ecr:PutImage action", ""},
		{"gate allows, identity does not", alice, "ecr:BatchGetImage",
			Input{Gates: vpce(epOnlyPull)},
			false, "because no identity-based policy allows the ecr:BatchGetImage action", ""},
		{"gate and identity allow", alice, "ecr:BatchGetImage",
			Input{Identity: []*Policy{P(Identity, allowAll)}, Gates: vpce(epOnlyPull)},
			true, "allowed by an identity-based policy", ""},
		{"default endpoint policy", alice, "ecr:PutImage",
			Input{Identity: []*Policy{P(Identity, allowAll)}, Gates: []Gate{{Name: "VPC endpoint policy", Policies: []*Policy{DefaultEndpointPolicy()}}}},
			true, "allowed by an identity-based policy", ""},
		{"two gates both needed", alice, "ecr:PutImage",
			Input{Identity: []*Policy{P(Identity, allowAll)}, Gates: []Gate{{Name: "VPC endpoint policy", Policies: []*Policy{DefaultEndpointPolicy()}}, {Name: "key policy", Policies: []*Policy{P(Endpoint, epOnlyPull)}}}},
			false, "because no key policy allows the ecr:PutImage action", ""},
		// Same account.
		{"same account identity allow", alice, "ecr:PutImage",
			Input{Identity: []*Policy{P(Identity, allowAll)}},
			true, "allowed by an identity-based policy", ""},
		{"same account resource names the user", alice, "ecr:PutImage",
			Input{Resource: []*Policy{P(Resource, repoAllowUser)}},
			true, "allowed by a resource-based policy", "Alice"},
		{"same account resource names only the account", alice, "ecr:PutImage",
			Input{Resource: []*Policy{P(Resource, repoAllowAcct)}},
			false, "because no identity-based policy allows the ecr:PutImage action", ""},
		{"same account account-level resource plus identity", alice, "ecr:PutImage",
			Input{Identity: []*Policy{P(Identity, allowAll)}, Resource: []*Policy{P(Resource, repoAllowAcct)}},
			true, "allowed by an identity-based policy", ""},
		{"same account nothing", alice, "ecr:PutImage", Input{},
			false, "because no identity-based policy allows the ecr:PutImage action", ""},
		{"empty resource account means own account", alice, "ecr:GetAuthorizationToken",
			Input{ResourceAccount: "-", Identity: []*Policy{P(Identity, allowAll)}},
			true, "allowed by an identity-based policy", ""},
		// Cross account.
		{"cross account identity only", peer, "ecr:PutImage",
			Input{Identity: []*Policy{P(Identity, allowAll)}},
			false, "because no resource-based policy allows the ecr:PutImage action", ""},
		{"cross account resource only", peer, "ecr:PutImage",
			Input{Resource: []*Policy{P(Resource, repoAllowPeer)}},
			false, "because no identity-based policy allows the ecr:PutImage action", ""},
		{"cross account both", peer, "ecr:PutImage",
			Input{Identity: []*Policy{P(Identity, allowAll)}, Resource: []*Policy{P(Resource, repoAllowPeer)}},
			true, "allowed by a resource-based policy", "Peer"},
		{"cross account resource names another account", peer, "ecr:PutImage",
			Input{Identity: []*Policy{P(Identity, allowAll)}, Resource: []*Policy{P(Resource, repoAllowAcct)}},
			false, "because no resource-based policy allows the ecr:PutImage action", ""},
		{"cross account public resource policy", peer, "ecr:BatchGetImage",
			Input{Identity: []*Policy{P(Identity, allowAll)}, Resource: []*Policy{P(Resource, repoAllowAny)}},
			true, "allowed by a resource-based policy", "Public"},
		// Root.
		{"root of the account without policies", rootOf(acct), "ecr:DeleteRepository", Input{},
			true, "allowed as the account root user", ""},
		{"root denied by resource policy", rootOf(acct), "ecr:PutImage",
			Input{Resource: []*Policy{P(Resource, repoDenyPut)}},
			false, "with an explicit deny in a resource-based policy", "RepoNoPush"},
		{"root stopped by a gate", rootOf(acct), "ecr:PutImage",
			Input{Gates: vpce(epOnlyPull)},
			false, "because no VPC endpoint policy allows the ecr:PutImage action", ""},
		{"root of another account needs the resource policy", rootOf(otherAcct), "ecr:PutImage", Input{},
			false, "because no resource-based policy allows the ecr:PutImage action", ""},
		{"root of another account allowed by resource policy", rootOf(otherAcct), "ecr:PutImage",
			Input{Resource: []*Policy{P(Resource, repoAllowPeer)}},
			true, "allowed by a resource-based policy", "Peer"},
		// Anonymous and services.
		{"anonymous public pull", anonymous, "ecr:BatchGetImage",
			Input{Resource: []*Policy{P(Resource, repoAllowAny)}},
			true, "allowed by a resource-based policy", "Public"},
		{"anonymous push", anonymous, "ecr:PutImage",
			Input{Resource: []*Policy{P(Resource, repoAllowAny)}},
			false, "because no resource-based policy allows the ecr:PutImage action", ""},
		{"anonymous not covered by account principal", anonymous, "ecr:PutImage",
			Input{Resource: []*Policy{P(Resource, repoAllowAcct)}},
			false, "because no resource-based policy allows the ecr:PutImage action", ""},
		{"service principal", service("ecr.amazonaws.com"), "ecr:BatchGetImage",
			Input{Resource: []*Policy{P(Resource, `{"Version":"2012-10-17","Statement":[{"Sid":"Svc","Effect":"Allow","Principal":{"Service":"ecr.amazonaws.com"},"Action":"ecr:*"}]}`)}},
			true, "allowed by a resource-based policy", "Svc"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			in := tc.in
			in.Request = req(tc.who, tc.action, repoARN)
			switch in.ResourceAccount {
			case "":
				in.ResourceAccount = acct
			case "-":
				in.ResourceAccount = ""
				in.Request.Resource = "*"
			}
			d := Decide(in)
			if d.Allowed != tc.allowed || d.Reason != tc.reason {
				t.Errorf("Decide = %v %q, want %v %q", d.Allowed, d.Reason, tc.allowed, tc.reason)
			}
			if tc.sid != "" && (d.Statement == nil || d.Statement.Sid() != tc.sid) {
				t.Errorf("Statement = %+v, want Sid %q", d.Statement, tc.sid)
			}
		})
	}
}

func TestDecideNilRequest(t *testing.T) {
	t.Parallel()
	if d := Decide(Input{}); d.Allowed {
		t.Fatal("allowed a nil request")
	}
}

// TestSpecKMS covers SPEC J-01..J-04 with PERM-03/06/07 and KMS-06: the key
// policy is passed as a resource policy and as a gate, so it must allow
// (directly or by delegating to the account, J-03) and IAM then applies.
func TestSpecKMS(t *testing.T) {
	t.Parallel()
	P := func(kind Kind, doc string) *Policy { return mustParse(t, kind, doc) }
	j03p := P(Resource, j03)
	// PERM-06: CreateGrant and DescribeKey granted to alice in the key
	// policy itself, next to the J-03 delegation.
	perm06 := P(Resource, `{"Version":"2012-10-17","Statement":[
		{"Sid":"EnableIAMUserPermissions","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:root"},"Action":"kms:*","Resource":"*"},
		{"Sid":"KeyUsers","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:user/alice"},"Action":["kms:CreateGrant","kms:DescribeKey"],"Resource":"*"}]}`)
	// A key policy that does not delegate to IAM.
	noIAM := P(Resource, `{"Version":"2012-10-17","Statement":[{"Sid":"AdminRole","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:role/admin"},"Action":"kms:*","Resource":"*"}]}`)
	alice := user(acct, "alice")
	tests := []struct {
		name     string
		who      Principal
		action   string
		resource string
		identity []string
		key      *Policy
		allowed  bool
		reason   string
	}{
		{"J-01 retire grant", alice, "kms:RetireGrant", keyARN, []string{j01}, j03p, true, "allowed by an identity-based policy"},
		{"J-01 does not create grants", alice, "kms:CreateGrant", keyARN, []string{j01}, j03p, false, "because no identity-based policy allows the kms:CreateGrant action"},
		{"J-01 only that key", alice, "kms:RetireGrant", "arn:aws:kms:us-west-2:111122223333:key/other", []string{j01}, j03p, false, "because no identity-based policy allows the kms:RetireGrant action"},
		{"J-02 create grant", alice, "kms:CreateGrant", keyARN, []string{j02}, j03p, true, "allowed by an identity-based policy"},
		{"J-02 describe key", alice, "kms:DescribeKey", keyARN, []string{j02}, j03p, true, "allowed by an identity-based policy"},
		{"J-02 retire grant", alice, "kms:RetireGrant", keyARN, []string{j02}, j03p, true, "allowed by an identity-based policy"},
		{"J-02 no decrypt", alice, "kms:Decrypt", keyARN, []string{j02}, j03p, false, "because no identity-based policy allows the kms:Decrypt action"},
		{"J-03 alone does not allow users", alice, "kms:DescribeKey", keyARN, nil, j03p, false, "because no identity-based policy allows the kms:DescribeKey action"},
		{"J-03 allows the root user", rootOf(acct), "kms:ScheduleKeyDeletion", keyARN, nil, j03p, true, "allowed by a resource-based policy"},
		{"J-03 other account", user(otherAcct, "x"), "kms:DescribeKey", keyARN, []string{j02}, j03p, false, "because no key policy allows the kms:DescribeKey action"},
		{"J-04 list keys", alice, "kms:ListKeys", "*", []string{j04}, nil, true, "allowed by an identity-based policy"},
		{"J-04 list aliases", alice, "kms:ListAliases", "*", []string{j04}, nil, true, "allowed by an identity-based policy"},
		{"J-04 no encrypt", alice, "kms:Encrypt", keyARN, []string{j04}, j03p, false, "because no identity-based policy allows the kms:Encrypt action"},
		{"PERM-06 key policy grants create", alice, "kms:CreateGrant", keyARN, []string{j01}, perm06, true, "allowed by a resource-based policy"},
		{"PERM-06 retire still needs IAM", alice, "kms:RetireGrant", keyARN, nil, perm06, false, "because no identity-based policy allows the kms:RetireGrant action"},
		{"key policy without delegation ignores IAM", alice, "kms:RetireGrant", keyARN, []string{j01}, noIAM, false, "because no key policy allows the kms:RetireGrant action"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			in := Input{Request: req(tc.who, tc.action, tc.resource), ResourceAccount: acct}
			for _, d := range tc.identity {
				in.Identity = append(in.Identity, P(Identity, d))
			}
			if tc.key != nil {
				in.Resource = []*Policy{tc.key}
				in.Gates = []Gate{{Name: "key policy", Policies: []*Policy{tc.key}}}
			}
			d := Decide(in)
			if d.Allowed != tc.allowed || d.Reason != tc.reason {
				t.Errorf("Decide = %v %q, want %v %q", d.Allowed, d.Reason, tc.allowed, tc.reason)
			}
		})
	}
}

// TestSpecEndpoints covers J-06..J-09 (SPEC VPCE-21, EPOL-06..08): the
// endpoint policy is a gate; identity policies allow everything so that
// only the gate decides.
func TestSpecEndpoints(t *testing.T) {
	t.Parallel()
	const (
		account = "1234567890"
		blocked = "arn:aws:ecr:region:1234567890:repository/repository_name"
		other   = "arn:aws:ecr:region:1234567890:repository/other"
		layer   = "arn:aws:s3:::prod-region-starport-layer-bucket/sha256:abc"
	)
	role := session(account, "role_name", "puller")
	someone := user(account, "someone")
	full, _ := Managed("AmazonEC2ContainerRegistryFullAccess")
	admin, _ := Managed("AdministratorAccess")
	tests := []struct {
		name     string
		endpoint string
		who      Principal
		action   string
		resource string
		allowed  bool
		reason   string
	}{
		{"J-06 layer download", j06, someone, "s3:GetObject", layer, true, ""},
		{"J-06 other bucket", j06, someone, "s3:GetObject", "arn:aws:s3:::elsewhere/x", false, "because no VPC endpoint policy allows the s3:GetObject action"},
		{"J-06 no upload", j06, someone, "s3:PutObject", layer, false, "because no VPC endpoint policy allows the s3:PutObject action"},
		{"J-07 role logs in", j07, role, "ecr:GetAuthorizationToken", "*", true, ""},
		{"J-07 role pulls manifest", j07, role, "ecr:BatchGetImage", other, true, ""},
		{"J-07 role pulls layer", j07, role, "ecr:GetDownloadUrlForLayer", other, true, ""},
		{"J-07 role cannot push", j07, role, "ecr:PutImage", other, false, "because no VPC endpoint policy allows the ecr:PutImage action"},
		{"J-07 others refused", j07, someone, "ecr:BatchGetImage", other, false, "because no VPC endpoint policy allows the ecr:BatchGetImage action"},
		{"J-07 other session of another role refused", j07, session(account, "other_role", "puller"), "ecr:BatchGetImage", other, false, "because no VPC endpoint policy allows the ecr:BatchGetImage action"},
		{"J-08 delete blocked repository", j08, someone, "ecr:DeleteRepository", blocked, false, "with an explicit deny in a VPC endpoint policy"},
		{"J-08 delete other repository", j08, someone, "ecr:DeleteRepository", other, true, ""},
		{"J-08 push to blocked repository", j08, someone, "ecr:PutImage", blocked, true, ""},
		{"J-09 role pulls", j09, role, "ecr:BatchGetImage", blocked, true, ""},
		{"J-09 others pull too (AllowAll)", j09, someone, "ecr:BatchGetImage", blocked, true, ""},
		{"J-09 role cannot delete blocked repository", j09, role, "ecr:DeleteRepository", blocked, false, "with an explicit deny in a VPC endpoint policy"},
		{"J-09 delete other repository", j09, someone, "ecr:DeleteRepository", other, true, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			d := Decide(Input{
				Request:         req(tc.who, tc.action, tc.resource),
				ResourceAccount: account,
				Identity:        []*Policy{full, admin},
				Gates:           []Gate{{Name: "VPC endpoint policy", Policies: []*Policy{mustParse(t, Endpoint, tc.endpoint)}}},
			})
			if d.Allowed != tc.allowed {
				t.Fatalf("Decide = %v %q, want allowed %v", d.Allowed, d.Reason, tc.allowed)
			}
			if !tc.allowed && d.Reason != tc.reason {
				t.Errorf("Reason = %q, want %q", d.Reason, tc.reason)
			}
		})
	}

	// Combined: J-09 at the endpoint, a repository policy refusing pushes,
	// a role with PowerUser. Everything must agree.
	power, _ := Managed("AmazonEC2ContainerRegistryPowerUser")
	repo := mustParse(t, Resource, repoDenyPut)
	ep := mustParse(t, Endpoint, j09)
	for _, c := range []struct {
		action, resource string
		allowed          bool
		reason           string
	}{
		{"ecr:BatchGetImage", other, true, ""},
		{"ecr:PutImage", other, false, "with an explicit deny in a resource-based policy"},
		{"ecr:DeleteRepository", other, false, "because no identity-based policy allows the ecr:DeleteRepository action"},
		{"ecr:DeleteRepository", blocked, false, "with an explicit deny in a VPC endpoint policy"},
	} {
		d := Decide(Input{
			Request: req(role, c.action, c.resource), ResourceAccount: account,
			Identity: []*Policy{power}, Resource: []*Policy{repo},
			Gates: []Gate{{Name: "VPC endpoint policy", Policies: []*Policy{ep}}},
		})
		if d.Allowed != c.allowed || (!c.allowed && d.Reason != c.reason) {
			t.Errorf("combined %s on %s: %v %q, want %v %q", c.action, c.resource, d.Allowed, d.Reason, c.allowed, c.reason)
		}
	}
}

func TestManagedPolicies(t *testing.T) {
	t.Parallel()
	alice := user(acct, "alice")
	tests := []struct {
		policy, action string
		allowed        bool
	}{
		{"AmazonEC2ContainerRegistryReadOnly", "ecr:BatchGetImage", true},
		{"AmazonEC2ContainerRegistryReadOnly", "ecr:GetAuthorizationToken", true},
		{"AmazonEC2ContainerRegistryReadOnly", "ecr:PutImage", false},
		{"AmazonEC2ContainerRegistryReadOnly", "ecr:InitiateLayerUpload", false},
		{"AmazonEC2ContainerRegistryPowerUser", "ecr:PutImage", true},
		{"AmazonEC2ContainerRegistryPowerUser", "ecr:CompleteLayerUpload", true},
		{"AmazonEC2ContainerRegistryPowerUser", "ecr:DeleteRepository", false},
		{"AmazonEC2ContainerRegistryPowerUser", "ecr:SetRepositoryPolicy", false},
		{"AmazonEC2ContainerRegistryFullAccess", "ecr:DeleteRepository", true},
		{"AmazonEC2ContainerRegistryFullAccess", "ecr:SetRepositoryPolicy", true},
		{"AmazonEC2ContainerRegistryFullAccess", "cloudtrail:LookupEvents", true},
		{"AmazonEC2ContainerRegistryFullAccess", "kms:Decrypt", false},
		{"arn:aws:iam::aws:policy/AdministratorAccess", "kms:Decrypt", true},
	}
	for _, tc := range tests {
		t.Run(tc.policy+" "+tc.action, func(t *testing.T) {
			t.Parallel()
			p, ok := Managed(tc.policy)
			if !ok {
				t.Fatalf("Managed(%q) not found", tc.policy)
			}
			d := Decide(Input{Request: req(alice, tc.action, repoARN), ResourceAccount: acct, Identity: []*Policy{p}})
			if d.Allowed != tc.allowed {
				t.Errorf("Decide = %v %q, want %v", d.Allowed, d.Reason, tc.allowed)
			}
			if !tc.allowed && d.Reason != "because no identity-based policy allows the "+tc.action+" action" {
				t.Errorf("Reason = %q", d.Reason)
			}
		})
	}

	t.Run("FullAccess service-linked role only for replication", func(t *testing.T) {
		t.Parallel()
		p, _ := Managed("AmazonEC2ContainerRegistryFullAccess")
		r := req(alice, "iam:CreateServiceLinkedRole", "arn:aws:iam::111122223333:role/aws-service-role/x", "iam:AWSServiceName", "replication.ecr.amazonaws.com")
		if e, _ := p.Evaluate(r); e != Allow {
			t.Errorf("replication: %v", e)
		}
		r.Context.Set("iam:AWSServiceName", "ec2.amazonaws.com")
		if e, _ := p.Evaluate(r); e != NoMatch {
			t.Errorf("ec2: %v", e)
		}
	})

	t.Run("catalogue", func(t *testing.T) {
		t.Parallel()
		all := ManagedPolicies()
		var names []string
		for _, m := range all {
			names = append(names, m.Name)
			if m.ARN != "arn:aws:iam::aws:policy/"+m.Name {
				t.Errorf("%s: ARN %q", m.Name, m.ARN)
			}
			if m.Policy.Kind() != Identity || m.Policy.Version() != Version2012 {
				t.Errorf("%s: kind %v version %q", m.Name, m.Policy.Kind(), m.Policy.Version())
			}
		}
		want := []string{"AdministratorAccess", "AmazonEC2ContainerRegistryFullAccess", "AmazonEC2ContainerRegistryPowerUser", "AmazonEC2ContainerRegistryReadOnly"}
		if !slices.Equal(names, want) {
			t.Errorf("names = %q, want %q", names, want)
		}
		all[0].Name = "changed"
		if ManagedPolicies()[0].Name == "changed" {
			t.Error("ManagedPolicies returned the shared slice")
		}
		if _, ok := Managed("AmazonS3FullAccess"); ok {
			t.Error("found a policy Coffer does not ship")
		}
	})

	t.Run("ReadOnly actions are SPEC 3.9's", func(t *testing.T) {
		t.Parallel()
		p, _ := Managed("AmazonEC2ContainerRegistryReadOnly")
		var got []string
		for _, a := range p.Statements()[0].actions {
			got = append(got, a.raw)
		}
		want := []string{"ecr:GetAuthorizationToken", "ecr:BatchCheckLayerAvailability", "ecr:GetDownloadUrlForLayer",
			"ecr:GetRepositoryPolicy", "ecr:DescribeRepositories", "ecr:ListImages", "ecr:DescribeImages", "ecr:BatchGetImage",
			"ecr:GetLifecyclePolicy", "ecr:GetLifecyclePolicyPreview", "ecr:ListTagsForResource", "ecr:DescribeImageScanFindings"}
		if !slices.Equal(got, want) {
			t.Errorf("actions = %q", got)
		}
		pu, _ := Managed("AmazonEC2ContainerRegistryPowerUser")
		var pgot []string
		for _, a := range pu.Statements()[0].actions {
			pgot = append(pgot, a.raw)
		}
		if !slices.Equal(pgot, append(want, "ecr:InitiateLayerUpload", "ecr:UploadLayerPart", "ecr:CompleteLayerUpload", "ecr:PutImage")) {
			t.Errorf("PowerUser actions = %q", pgot)
		}
	})
}
