package iamapi

import (
	"encoding/json"
	"errors"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	awsiam "github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/iam/types"
	"github.com/aws/smithy-go"
)

// wantAPIError checks the SDK saw the Query error code, HTTP status and,
// when msg is not empty, a message containing msg.
func wantAPIError(t *testing.T, err error, code string, status int, msg string) {
	t.Helper()
	var apiErr smithy.APIError
	if !errors.As(err, &apiErr) {
		t.Fatalf("want %s, got %v", code, err)
	}
	if apiErr.ErrorCode() != code {
		t.Errorf("code = %q, want %q (%v)", apiErr.ErrorCode(), code, err)
	}
	if msg != "" && !strings.Contains(apiErr.ErrorMessage(), msg) {
		t.Errorf("message = %q, want it to contain %q", apiErr.ErrorMessage(), msg)
	}
	var respErr *awshttp.ResponseError
	if !errors.As(err, &respErr) {
		t.Fatalf("no HTTP response in %v", err)
	}
	if respErr.HTTPStatusCode() != status {
		t.Errorf("status = %d, want %d", respErr.HTTPStatusCode(), status)
	}
	if respErr.ServiceRequestID() == "" {
		t.Error("no request ID")
	}
}

// result carries a call's two results so that got(f()).must(t) can fail
// the test on an error.
type result[T any] struct {
	v   T
	err error
}

func got[T any](v T, err error) result[T] { return result[T]{v, err} }

func (r result[T]) must(t *testing.T) T {
	t.Helper()
	if r.err != nil {
		t.Fatal(r.err)
	}
	return r.v
}

func decodeDoc(t *testing.T, enc string) map[string]any {
	t.Helper()
	s, err := url.QueryUnescape(enc)
	if err != nil {
		t.Fatalf("document is not URL-encoded: %v", err)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		t.Fatalf("document %q: %v", s, err)
	}
	return m
}

func TestSDKUserLifecycle(t *testing.T) {
	t.Parallel()
	e := newEnv(t, allowTrust)
	c := e.admin()
	ctx := t.Context()

	// Create, with a path and tags.
	cu := got(c.CreateUser(ctx, &awsiam.CreateUserInput{UserName: aws.String("alice"), Path: aws.String("/eng/"),
		Tags: []types.Tag{{Key: aws.String("team"), Value: aws.String("blue")}}})).must(t)
	if got := aws.ToString(cu.User.Arn); got != "arn:aws:iam::123456789012:user/eng/alice" {
		t.Errorf("Arn = %s", got)
	}
	if !strings.HasPrefix(aws.ToString(cu.User.UserId), "AIDA") || cu.User.CreateDate == nil || len(cu.User.Tags) != 1 {
		t.Errorf("user = %+v", cu.User)
	}
	_, err := c.CreateUser(ctx, &awsiam.CreateUserInput{UserName: aws.String("alice")})
	wantAPIError(t, err, "EntityAlreadyExists", 409, "alice")
	var exists *types.EntityAlreadyExistsException
	if !errors.As(err, &exists) {
		t.Errorf("SDK did not type the error: %T", err)
	}
	_, err = c.CreateUser(ctx, &awsiam.CreateUserInput{UserName: aws.String("bad/name")})
	wantAPIError(t, err, "ValidationError", 400, "userName")

	gu := got(c.GetUser(ctx, &awsiam.GetUserInput{UserName: aws.String("alice")})).must(t)
	if aws.ToString(gu.User.Path) != "/eng/" || gu.User.Tags[0].Value == nil {
		t.Errorf("GetUser = %+v", gu.User)
	}
	me := got(c.GetUser(ctx, &awsiam.GetUserInput{})).must(t)
	if aws.ToString(me.User.Arn) != adminARN {
		t.Errorf("GetUser() = %s, want the caller", aws.ToString(me.User.Arn))
	}
	lu := got(c.ListUsers(ctx, &awsiam.ListUsersInput{})).must(t)
	var names []string
	for _, u := range lu.Users {
		names = append(names, aws.ToString(u.UserName))
	}
	if !slices.Equal(names, []string{"admin", "alice"}) || lu.IsTruncated {
		t.Errorf("ListUsers = %v", names)
	}
	if lu := got(c.ListUsers(ctx, &awsiam.ListUsersInput{PathPrefix: aws.String("/eng/")})).must(t); len(lu.Users) != 1 {
		t.Errorf("ListUsers(/eng/) = %d users", len(lu.Users))
	}

	// Access keys: two at most.
	k1 := got(c.CreateAccessKey(ctx, &awsiam.CreateAccessKeyInput{UserName: aws.String("alice")})).must(t).AccessKey
	k2 := got(c.CreateAccessKey(ctx, &awsiam.CreateAccessKeyInput{UserName: aws.String("alice")})).must(t).AccessKey
	if !strings.HasPrefix(aws.ToString(k1.AccessKeyId), "AKIA") || len(aws.ToString(k1.SecretAccessKey)) != 40 || k1.Status != types.StatusTypeActive {
		t.Errorf("key = %+v", k1)
	}
	_, err = c.CreateAccessKey(ctx, &awsiam.CreateAccessKeyInput{UserName: aws.String("alice")})
	wantAPIError(t, err, "LimitExceeded", 409, "AccessKeysPerUser")
	lk := got(c.ListAccessKeys(ctx, &awsiam.ListAccessKeysInput{UserName: aws.String("alice")})).must(t)
	if len(lk.AccessKeyMetadata) != 2 {
		t.Fatalf("ListAccessKeys = %+v", lk.AccessKeyMetadata)
	}
	got(c.UpdateAccessKey(ctx, &awsiam.UpdateAccessKeyInput{UserName: aws.String("alice"), AccessKeyId: k2.AccessKeyId, Status: types.StatusTypeInactive})).must(t)
	_, err = c.UpdateAccessKey(ctx, &awsiam.UpdateAccessKeyInput{UserName: aws.String("alice"), AccessKeyId: k2.AccessKeyId, Status: "Sleeping"})
	wantAPIError(t, err, "ValidationError", 400, "")
	_, err = c.UpdateAccessKey(ctx, &awsiam.UpdateAccessKeyInput{UserName: aws.String("alice"), AccessKeyId: aws.String("AKIANOSUCHKEY0000000"), Status: types.StatusTypeActive})
	wantAPIError(t, err, "NoSuchEntity", 404, "AKIANOSUCHKEY0000000")
	for _, k := range got(c.ListAccessKeys(ctx, &awsiam.ListAccessKeysInput{UserName: aws.String("alice")})).must(t).AccessKeyMetadata {
		want := types.StatusTypeActive
		if aws.ToString(k.AccessKeyId) == aws.ToString(k2.AccessKeyId) {
			want = types.StatusTypeInactive
		}
		if k.Status != want {
			t.Errorf("key %s status %s, want %s", aws.ToString(k.AccessKeyId), k.Status, want)
		}
	}

	// Alice's own key: GetUser and ListAccessKeys without UserName act on her.
	alice := e.iamClient(creds(aws.ToString(k1.AccessKeyId), aws.ToString(k1.SecretAccessKey), ""))
	if got := got(alice.GetUser(ctx, &awsiam.GetUserInput{})).must(t).User; aws.ToString(got.UserName) != "alice" {
		t.Errorf("alice's GetUser() = %s", aws.ToString(got.UserName))
	}
	if got := got(alice.ListAccessKeys(ctx, &awsiam.ListAccessKeysInput{})).must(t); len(got.AccessKeyMetadata) != 2 {
		t.Errorf("alice's ListAccessKeys() = %d keys", len(got.AccessKeyMetadata))
	}

	// Inline policy.
	got(c.PutUserPolicy(ctx, &awsiam.PutUserPolicyInput{UserName: aws.String("alice"), PolicyName: aws.String("pull"), PolicyDocument: aws.String(ecrPolicyJSON)})).must(t)
	gp := got(c.GetUserPolicy(ctx, &awsiam.GetUserPolicyInput{UserName: aws.String("alice"), PolicyName: aws.String("pull")})).must(t)
	if strings.ContainsAny(aws.ToString(gp.PolicyDocument), "{\" ") {
		t.Errorf("PolicyDocument not URL-encoded: %s", aws.ToString(gp.PolicyDocument))
	}
	if doc := decodeDoc(t, aws.ToString(gp.PolicyDocument)); doc["Version"] != "2012-10-17" {
		t.Errorf("document = %v", doc)
	}
	_, err = c.PutUserPolicy(ctx, &awsiam.PutUserPolicyInput{UserName: aws.String("alice"), PolicyName: aws.String("bad"), PolicyDocument: aws.String(`{"Statement":"nope"}`)})
	wantAPIError(t, err, "MalformedPolicyDocument", 400, "")
	_, err = c.GetUserPolicy(ctx, &awsiam.GetUserPolicyInput{UserName: aws.String("alice"), PolicyName: aws.String("nope")})
	wantAPIError(t, err, "NoSuchEntity", 404, "nope")
	if lp := got(c.ListUserPolicies(ctx, &awsiam.ListUserPoliciesInput{UserName: aws.String("alice")})).must(t); !slices.Equal(lp.PolicyNames, []string{"pull"}) {
		t.Errorf("ListUserPolicies = %v", lp.PolicyNames)
	}

	// Attached policies: AWS managed and customer managed.
	readOnly := "arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryReadOnly"
	cp := got(c.CreatePolicy(ctx, &awsiam.CreatePolicyInput{PolicyName: aws.String("pull-app"), PolicyDocument: aws.String(ecrPolicyJSON)})).must(t).Policy
	for _, arn := range []string{readOnly, aws.ToString(cp.Arn)} {
		got(c.AttachUserPolicy(ctx, &awsiam.AttachUserPolicyInput{UserName: aws.String("alice"), PolicyArn: aws.String(arn)})).must(t)
	}
	_, err = c.AttachUserPolicy(ctx, &awsiam.AttachUserPolicyInput{UserName: aws.String("alice"), PolicyArn: aws.String("arn:aws:iam::aws:policy/NoSuchPolicy")})
	wantAPIError(t, err, "NoSuchEntity", 404, "NoSuchPolicy")
	_, err = c.AttachUserPolicy(ctx, &awsiam.AttachUserPolicyInput{UserName: aws.String("alice"), PolicyArn: aws.String("not-an-arn")})
	wantAPIError(t, err, "InvalidInput", 400, "not-an-arn")
	la := got(c.ListAttachedUserPolicies(ctx, &awsiam.ListAttachedUserPoliciesInput{UserName: aws.String("alice")})).must(t)
	if len(la.AttachedPolicies) != 2 {
		t.Errorf("ListAttachedUserPolicies = %+v", la.AttachedPolicies)
	}

	// Groups.
	g := got(c.CreateGroup(ctx, &awsiam.CreateGroupInput{GroupName: aws.String("devs")})).must(t).Group
	if aws.ToString(g.Arn) != "arn:aws:iam::123456789012:group/devs" || !strings.HasPrefix(aws.ToString(g.GroupId), "AGPA") {
		t.Errorf("group = %+v", g)
	}
	got(c.AddUserToGroup(ctx, &awsiam.AddUserToGroupInput{GroupName: aws.String("devs"), UserName: aws.String("alice")})).must(t)
	gg := got(c.GetGroup(ctx, &awsiam.GetGroupInput{GroupName: aws.String("devs")})).must(t)
	if len(gg.Users) != 1 || aws.ToString(gg.Users[0].UserName) != "alice" {
		t.Errorf("GetGroup users = %+v", gg.Users)
	}
	got(c.PutGroupPolicy(ctx, &awsiam.PutGroupPolicyInput{GroupName: aws.String("devs"), PolicyName: aws.String("pull"), PolicyDocument: aws.String(ecrPolicyJSON)})).must(t)
	got(c.AttachGroupPolicy(ctx, &awsiam.AttachGroupPolicyInput{GroupName: aws.String("devs"), PolicyArn: aws.String(readOnly)})).must(t)
	_, err = c.AddUserToGroup(ctx, &awsiam.AddUserToGroupInput{GroupName: aws.String("nogroup"), UserName: aws.String("alice")})
	wantAPIError(t, err, "NoSuchEntity", 404, "nogroup")

	// The user cannot go while it has keys, policies and groups.
	_, err = c.DeleteUser(ctx, &awsiam.DeleteUserInput{UserName: aws.String("alice")})
	wantAPIError(t, err, "DeleteConflict", 409, "must delete")
	var conflict *types.DeleteConflictException
	if !errors.As(err, &conflict) {
		t.Errorf("SDK did not type the error: %T", err)
	}
	for _, k := range []*string{k1.AccessKeyId, k2.AccessKeyId} {
		got(c.DeleteAccessKey(ctx, &awsiam.DeleteAccessKeyInput{UserName: aws.String("alice"), AccessKeyId: k})).must(t)
	}
	for _, arn := range []string{readOnly, aws.ToString(cp.Arn)} {
		got(c.DetachUserPolicy(ctx, &awsiam.DetachUserPolicyInput{UserName: aws.String("alice"), PolicyArn: aws.String(arn)})).must(t)
	}
	got(c.DeleteUserPolicy(ctx, &awsiam.DeleteUserPolicyInput{UserName: aws.String("alice"), PolicyName: aws.String("pull")})).must(t)
	got(c.RemoveUserFromGroup(ctx, &awsiam.RemoveUserFromGroupInput{GroupName: aws.String("devs"), UserName: aws.String("alice")})).must(t)
	got(c.DeleteUser(ctx, &awsiam.DeleteUserInput{UserName: aws.String("alice")})).must(t)
	_, err = c.GetUser(ctx, &awsiam.GetUserInput{UserName: aws.String("alice")})
	wantAPIError(t, err, "NoSuchEntity", 404, "The user with name alice cannot be found.")
	var nse *types.NoSuchEntityException
	if !errors.As(err, &nse) {
		t.Errorf("SDK did not type the error: %T", err)
	}
}

func TestSDKRoles(t *testing.T) {
	t.Parallel()
	e := newEnv(t, allowTrust)
	c := e.admin()
	ctx := t.Context()

	r := got(c.CreateRole(ctx, &awsiam.CreateRoleInput{RoleName: aws.String("puller"), Path: aws.String("/ci/"),
		AssumeRolePolicyDocument: aws.String(trustPolicyJSON), Description: aws.String("CI pulls"), MaxSessionDuration: aws.Int32(7200),
		Tags: []types.Tag{{Key: aws.String("env"), Value: aws.String("ci")}}})).must(t).Role
	if aws.ToString(r.Arn) != "arn:aws:iam::123456789012:role/ci/puller" || !strings.HasPrefix(aws.ToString(r.RoleId), "AROA") ||
		aws.ToInt32(r.MaxSessionDuration) != 7200 || aws.ToString(r.Description) != "CI pulls" || len(r.Tags) != 1 {
		t.Errorf("role = %+v", r)
	}
	_, err := c.CreateRole(ctx, &awsiam.CreateRoleInput{RoleName: aws.String("puller"), AssumeRolePolicyDocument: aws.String(trustPolicyJSON)})
	wantAPIError(t, err, "EntityAlreadyExists", 409, "")
	_, err = c.CreateRole(ctx, &awsiam.CreateRoleInput{RoleName: aws.String("bad"), AssumeRolePolicyDocument: aws.String(`{"Version":"2012-10-17"`)})
	wantAPIError(t, err, "MalformedPolicyDocument", 400, "")
	_, err = c.CreateRole(ctx, &awsiam.CreateRoleInput{RoleName: aws.String("short"), AssumeRolePolicyDocument: aws.String(trustPolicyJSON), MaxSessionDuration: aws.Int32(60)})
	wantAPIError(t, err, "ValidationError", 400, "maxSessionDuration")
	_, err = c.CreateRole(ctx, &awsiam.CreateRoleInput{RoleName: aws.String("bounded"), AssumeRolePolicyDocument: aws.String(trustPolicyJSON), PermissionsBoundary: aws.String("arn:aws:iam::aws:policy/AdministratorAccess")})
	wantAPIError(t, err, "InvalidInput", 400, "PermissionsBoundary")

	gr := got(c.GetRole(ctx, &awsiam.GetRoleInput{RoleName: aws.String("puller")})).must(t).Role
	if doc := decodeDoc(t, aws.ToString(gr.AssumeRolePolicyDocument)); doc["Statement"] == nil {
		t.Errorf("trust document = %v", doc)
	}
	got(c.PutRolePolicy(ctx, &awsiam.PutRolePolicyInput{RoleName: aws.String("puller"), PolicyName: aws.String("pull"), PolicyDocument: aws.String(ecrPolicyJSON)})).must(t)
	got(c.AttachRolePolicy(ctx, &awsiam.AttachRolePolicyInput{RoleName: aws.String("puller"), PolicyArn: aws.String("arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryPowerUser")})).must(t)
	if got := got(c.GetRolePolicy(ctx, &awsiam.GetRolePolicyInput{RoleName: aws.String("puller"), PolicyName: aws.String("pull")})).must(t); aws.ToString(got.RoleName) != "puller" {
		t.Errorf("GetRolePolicy = %+v", got)
	}
	_, err = c.DeleteRole(ctx, &awsiam.DeleteRoleInput{RoleName: aws.String("puller")})
	wantAPIError(t, err, "DeleteConflict", 409, "")
	got(c.DeleteRolePolicy(ctx, &awsiam.DeleteRolePolicyInput{RoleName: aws.String("puller"), PolicyName: aws.String("pull")})).must(t)
	got(c.DetachRolePolicy(ctx, &awsiam.DetachRolePolicyInput{RoleName: aws.String("puller"), PolicyArn: aws.String("arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryPowerUser")})).must(t)
	got(c.DeleteRole(ctx, &awsiam.DeleteRoleInput{RoleName: aws.String("puller")})).must(t)
	_, err = c.GetRole(ctx, &awsiam.GetRoleInput{RoleName: aws.String("puller")})
	wantAPIError(t, err, "NoSuchEntity", 404, "puller")
}

func TestSDKManagedPolicies(t *testing.T) {
	t.Parallel()
	e := newEnv(t, allowTrust)
	c := e.admin()
	ctx := t.Context()

	p := got(c.CreatePolicy(ctx, &awsiam.CreatePolicyInput{PolicyName: aws.String("pull-app"), Path: aws.String("/team/"),
		PolicyDocument: aws.String(ecrPolicyJSON), Description: aws.String("pull app/*")})).must(t).Policy
	arn := aws.ToString(p.Arn)
	if arn != "arn:aws:iam::123456789012:policy/team/pull-app" || aws.ToString(p.DefaultVersionId) != "v1" || !p.IsAttachable {
		t.Errorf("policy = %+v", p)
	}
	_, err := c.CreatePolicy(ctx, &awsiam.CreatePolicyInput{PolicyName: aws.String("pull-app"), PolicyDocument: aws.String(ecrPolicyJSON)})
	wantAPIError(t, err, "EntityAlreadyExists", 409, "pull-app")
	_, err = c.CreatePolicy(ctx, &awsiam.CreatePolicyInput{PolicyName: aws.String("huge"), PolicyDocument: aws.String(strings.Repeat(" ", 7000) + ecrPolicyJSON)})
	wantAPIError(t, err, "LimitExceeded", 409, "")
	_, err = c.CreatePolicy(ctx, &awsiam.CreatePolicyInput{PolicyName: aws.String("tagged"), PolicyDocument: aws.String(ecrPolicyJSON),
		Tags: []types.Tag{{Key: aws.String("k"), Value: aws.String("v")}}})
	wantAPIError(t, err, "InvalidInput", 400, "Tags")

	gp := got(c.GetPolicy(ctx, &awsiam.GetPolicyInput{PolicyArn: aws.String(arn)})).must(t).Policy
	if aws.ToString(gp.Description) != "pull app/*" || aws.ToInt32(gp.AttachmentCount) != 0 {
		t.Errorf("GetPolicy = %+v", gp)
	}
	v := got(c.GetPolicyVersion(ctx, &awsiam.GetPolicyVersionInput{PolicyArn: aws.String(arn), VersionId: aws.String("v1")})).must(t).PolicyVersion
	if !v.IsDefaultVersion || aws.ToString(v.VersionId) != "v1" || decodeDoc(t, aws.ToString(v.Document))["Statement"] == nil {
		t.Errorf("GetPolicyVersion = %+v", v)
	}
	_, err = c.GetPolicyVersion(ctx, &awsiam.GetPolicyVersionInput{PolicyArn: aws.String(arn), VersionId: aws.String("v2")})
	wantAPIError(t, err, "NoSuchEntity", 404, "v2")
	awsV := got(c.GetPolicyVersion(ctx, &awsiam.GetPolicyVersionInput{PolicyArn: aws.String("arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryReadOnly"), VersionId: aws.String("v1")})).must(t).PolicyVersion
	if !strings.Contains(decodeDocString(t, aws.ToString(awsV.Document)), "ecr:BatchGetImage") {
		t.Errorf("AWS managed document = %s", aws.ToString(awsV.Document))
	}

	// Attached policies cannot be deleted; AWS managed ones never.
	got(c.CreateGroup(ctx, &awsiam.CreateGroupInput{GroupName: aws.String("g")})).must(t)
	got(c.AttachGroupPolicy(ctx, &awsiam.AttachGroupPolicyInput{GroupName: aws.String("g"), PolicyArn: aws.String(arn)})).must(t)
	if gp := got(c.GetPolicy(ctx, &awsiam.GetPolicyInput{PolicyArn: aws.String(arn)})).must(t).Policy; aws.ToInt32(gp.AttachmentCount) != 1 {
		t.Errorf("AttachmentCount = %d", aws.ToInt32(gp.AttachmentCount))
	}
	_, err = c.DeletePolicy(ctx, &awsiam.DeletePolicyInput{PolicyArn: aws.String(arn)})
	wantAPIError(t, err, "DeleteConflict", 409, "")
	_, err = c.DeletePolicy(ctx, &awsiam.DeletePolicyInput{PolicyArn: aws.String("arn:aws:iam::aws:policy/AdministratorAccess")})
	wantAPIError(t, err, "UnmodifiableEntity", 400, "AdministratorAccess")

	// ListPolicies: scopes, OnlyAttached, and paging one at a time.
	list := func(in *awsiam.ListPoliciesInput) []string {
		var arns []string
		pg := awsiam.NewListPoliciesPaginator(c, in)
		for pg.HasMorePages() {
			out := got(pg.NextPage(ctx)).must(t)
			if len(out.Policies) > int(aws.ToInt32(in.MaxItems)) && in.MaxItems != nil {
				t.Errorf("page of %d > MaxItems", len(out.Policies))
			}
			for _, p := range out.Policies {
				arns = append(arns, aws.ToString(p.Arn))
			}
		}
		return arns
	}
	all := list(&awsiam.ListPoliciesInput{})
	paged := list(&awsiam.ListPoliciesInput{MaxItems: aws.Int32(1)})
	if len(all) < 5 || !slices.Equal(all, paged) {
		t.Errorf("ListPolicies = %v, paged one by one = %v", all, paged)
	}
	first := got(c.ListPolicies(ctx, &awsiam.ListPoliciesInput{MaxItems: aws.Int32(2)})).must(t)
	if !first.IsTruncated || aws.ToString(first.Marker) == "" || len(first.Policies) != 2 {
		t.Errorf("first page = truncated %v marker %q, %d policies", first.IsTruncated, aws.ToString(first.Marker), len(first.Policies))
	}
	if local := list(&awsiam.ListPoliciesInput{Scope: types.PolicyScopeTypeLocal}); !slices.Equal(local, []string{arn}) {
		t.Errorf("Scope=Local: %v", local)
	}
	awsOnly := list(&awsiam.ListPoliciesInput{Scope: types.PolicyScopeTypeAws})
	if len(awsOnly) != len(all)-1 || !slices.Contains(awsOnly, "arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryReadOnly") {
		t.Errorf("Scope=AWS: %v", awsOnly)
	}
	// admin has AdministratorAccess; the group has pull-app.
	if attached := list(&awsiam.ListPoliciesInput{OnlyAttached: true}); len(attached) != 2 {
		t.Errorf("OnlyAttached: %v", attached)
	}
	if team := list(&awsiam.ListPoliciesInput{PathPrefix: aws.String("/team/")}); !slices.Equal(team, []string{arn}) {
		t.Errorf("PathPrefix=/team/: %v", team)
	}
	_, err = c.ListPolicies(ctx, &awsiam.ListPoliciesInput{Marker: aws.String("!!not base64!!")})
	wantAPIError(t, err, "ValidationError", 400, "Marker")

	got(c.DetachGroupPolicy(ctx, &awsiam.DetachGroupPolicyInput{GroupName: aws.String("g"), PolicyArn: aws.String(arn)})).must(t)
	got(c.DeletePolicy(ctx, &awsiam.DeletePolicyInput{PolicyArn: aws.String(arn)})).must(t)
	_, err = c.GetPolicy(ctx, &awsiam.GetPolicyInput{PolicyArn: aws.String(arn)})
	wantAPIError(t, err, "NoSuchEntity", 404, arn)
}

func decodeDocString(t *testing.T, enc string) string {
	t.Helper()
	s, err := url.QueryUnescape(enc)
	if err != nil {
		t.Fatal(err)
	}
	return s
}
