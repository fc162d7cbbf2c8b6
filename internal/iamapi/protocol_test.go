package iamapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsiam "github.com/aws/aws-sdk-go-v2/service/iam"

	"github.com/cofferhq/coffer/internal/auth"
	"github.com/cofferhq/coffer/internal/iam"
)

func TestAuthorizationResources(t *testing.T) {
	t.Parallel()
	e := newEnv(t, allowTrust)
	ctx := t.Context()
	c := e.admin()
	got(c.CreateUser(ctx, &awsiam.CreateUserInput{UserName: aws.String("alice"), Path: aws.String("/eng/")})).must(t)
	got(c.CreateGroup(ctx, &awsiam.CreateGroupInput{GroupName: aws.String("devs"), Path: aws.String("/g/")})).must(t)
	got(c.CreateRole(ctx, &awsiam.CreateRoleInput{RoleName: aws.String("r"), Path: aws.String("/ci/"), AssumeRolePolicyDocument: aws.String(trustPolicyJSON)})).must(t)
	pol := got(c.CreatePolicy(ctx, &awsiam.CreatePolicyInput{PolicyName: aws.String("p"), PolicyDocument: aws.String(ecrPolicyJSON)})).must(t).Policy
	e.authz.take()

	const acct = "arn:aws:iam::123456789012:"
	tests := []struct {
		form     []string
		resource string
	}{
		{[]string{"Action", "CreateUser", "UserName", "bob", "Path", "/ops/"}, acct + "user/ops/bob"},
		{[]string{"Action", "GetUser", "UserName", "alice"}, acct + "user/eng/alice"},
		{[]string{"Action", "GetUser"}, adminARN},
		{[]string{"Action", "GetUser", "UserName", "ghost"}, acct + "user/ghost"},
		{[]string{"Action", "ListUsers"}, acct + "user/"},
		{[]string{"Action", "ListUsers", "PathPrefix", "/eng/"}, acct + "user/eng/"},
		{[]string{"Action", "ListAccessKeys", "UserName", "alice"}, acct + "user/eng/alice"},
		{[]string{"Action", "PutUserPolicy", "UserName", "alice", "PolicyName", "x", "PolicyDocument", ecrPolicyJSON}, acct + "user/eng/alice"},
		{[]string{"Action", "AttachUserPolicy", "UserName", "alice", "PolicyArn", aws.ToString(pol.Arn)}, acct + "user/eng/alice"},
		{[]string{"Action", "GetGroup", "GroupName", "devs"}, acct + "group/g/devs"},
		{[]string{"Action", "AddUserToGroup", "GroupName", "devs", "UserName", "alice"}, acct + "group/g/devs"},
		{[]string{"Action", "CreateGroup", "GroupName", "ops"}, acct + "group/ops"},
		{[]string{"Action", "AttachGroupPolicy", "GroupName", "devs", "PolicyArn", aws.ToString(pol.Arn)}, acct + "group/g/devs"},
		{[]string{"Action", "GetRole", "RoleName", "r"}, acct + "role/ci/r"},
		{[]string{"Action", "PutRolePolicy", "RoleName", "r", "PolicyName", "x", "PolicyDocument", ecrPolicyJSON}, acct + "role/ci/r"},
		{[]string{"Action", "CreatePolicy", "PolicyName", "q", "Path", "/t/", "PolicyDocument", ecrPolicyJSON}, acct + "policy/t/q"},
		{[]string{"Action", "GetPolicy", "PolicyArn", "arn:aws:iam::aws:policy/AdministratorAccess"}, "arn:aws:iam::aws:policy/AdministratorAccess"},
		{[]string{"Action", "ListPolicies"}, acct + "policy/"},
	}
	for _, tc := range tests {
		t.Run(tc.form[1], func(t *testing.T) {
			f := form(tc.form...)
			f.Set("Version", "2010-05-08")
			resp := e.post(e.iamURL, adminKeyID, f)
			if resp.status != 200 && resp.status != 404 {
				t.Fatalf("status %d: %s", resp.status, resp.body)
			}
			want := []authzCall{{adminARN, "iam:" + tc.form[1], tc.resource}}
			if got := e.authz.take(); !slices.Equal(got, want) {
				t.Errorf("authorizer asked %v, want %v", got, want)
			}
			if info := e.last(); info.Action != "iam:"+tc.form[1] || !slices.Equal(info.Resources, []string{tc.resource}) {
				t.Errorf("audit info = %+v", info)
			}
		})
	}
}

func TestDeniedByAuthorizer(t *testing.T) {
	t.Parallel()
	e := newEnv(t, allowTrust)
	ctx := t.Context()
	e.authz.setDeny("iam:CreateUser", "iam:GetUser")
	_, err := e.admin().CreateUser(ctx, &awsiam.CreateUserInput{UserName: aws.String("bob")})
	wantAPIError(t, err, "AccessDenied", 403, "User: "+adminARN+" is not authorized to perform: iam:CreateUser on resource: arn:aws:iam::123456789012:user/bob because no identity-based policy allows the iam:CreateUser action")
	if _, err := e.svc.GetUser(ctx, "bob"); !errors.Is(err, iam.ErrNoSuchEntity) {
		t.Errorf("denied CreateUser created the user: %v", err)
	}
	// Denial comes before existence.
	_, err = e.admin().GetUser(ctx, &awsiam.GetUserInput{UserName: aws.String("ghost")})
	wantAPIError(t, err, "AccessDenied", 403, "arn:aws:iam::123456789012:user/ghost")
	if info := e.last(); info.ErrorCode != "AccessDenied" || !strings.Contains(info.ErrorMessage, "iam:GetUser") {
		t.Errorf("audit info = %+v", info)
	}
	e.authz.setDeny()
	got(e.admin().CreateUser(ctx, &awsiam.CreateUserInput{UserName: aws.String("bob")})).must(t)
}

func TestUnknownActions(t *testing.T) {
	t.Parallel()
	e := newEnv(t, allowTrust)
	tests := []struct {
		name, base, action, version, msg string
	}{
		{"iam in model", e.iamURL, "CreateLoginProfile", "2010-05-08", "Coffer does not implement the IAM action CreateLoginProfile yet"},
		{"iam not in model", e.iamURL, "MakeCoffee", "2010-05-08", "Could not find operation MakeCoffee for version 2010-05-08"},
		{"iam wrong version", e.iamURL, "CreateUser", "2011-06-15", "Could not find operation CreateUser for version 2011-06-15"},
		{"iam no version", e.iamURL, "CreateUser", "", "Could not find operation CreateUser for version NO_VERSION_SPECIFIED"},
		{"sts in model", e.stsURL, "AssumeRoleWithWebIdentity", "2011-06-15", "Coffer does not implement the STS action AssumeRoleWithWebIdentity yet"},
		{"sts iam action", e.stsURL, "CreateUser", "2011-06-15", "Could not find operation CreateUser for version 2011-06-15"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := form("Action", tc.action, "UserName", "x")
			if tc.version != "" {
				f.Set("Version", tc.version)
			}
			resp := e.post(tc.base, adminKeyID, f)
			qe := resp.error(t)
			if resp.status != 400 || qe.Code != "InvalidAction" || qe.Message != tc.msg || qe.Type != "Sender" {
				t.Errorf("got %d %+v, want 400 InvalidAction %q", resp.status, qe, tc.msg)
			}
		})
	}
	if _, err := e.svc.GetUser(t.Context(), "x"); err == nil {
		t.Error("an InvalidAction request created a user")
	}
	// Through the SDK: an operation Coffer lacks fails clearly, never succeeds.
	_, err := e.admin().ListRoles(t.Context(), &awsiam.ListRolesInput{})
	wantAPIError(t, err, "InvalidAction", 400, "Coffer does not implement the IAM action ListRoles yet")
	if calls := e.authz.take(); len(calls) != 0 {
		t.Errorf("unimplemented actions reached the authorizer: %v", calls)
	}
}

func TestProtocolErrors(t *testing.T) {
	t.Parallel()
	e := newEnv(t, allowTrust)
	const ns = "https://iam.amazonaws.com/doc/2010-05-08/"
	tests := []struct {
		name        string
		contentType string
		body        string
		status      int
		code, msg   string
	}{
		{"no action", "application/x-www-form-urlencoded", "Version=2010-05-08", 400, "MissingAction", "Action"},
		{"not a form", "application/json", `{"Action":"ListUsers"}`, 400, "MissingAction", "Action"},
		{"missing required", "application/x-www-form-urlencoded", "Action=CreateUser&Version=2010-05-08", 400, "ValidationError",
			"1 validation error detected: Value null at 'userName' failed to satisfy constraint: Member must not be null"},
		{"duplicate", "application/x-www-form-urlencoded", "Action=CreateUser&Version=2010-05-08&UserName=a&UserName=b", 400, "ValidationError", "more than once"},
		{"bad encoding", "application/x-www-form-urlencoded", "Action=CreateUser&Version=2010-05-08&UserName=%zz", 400, "ValidationError", "form encoding"},
		{"bad list index", "application/x-www-form-urlencoded", "Action=CreateUser&Version=2010-05-08&UserName=a&Tags.member.0.Key=k&Tags.member.0.Value=v", 400, "ValidationError", "list index"},
		{"unknown struct field", "application/x-www-form-urlencoded", "Action=CreateUser&Version=2010-05-08&UserName=a&Tags.member.1.Colour=k", 400, "ValidationError", "Colour"},
		{"duplicate tags", "application/x-www-form-urlencoded", "Action=CreateUser&Version=2010-05-08&UserName=a&Tags.member.1.Key=k&Tags.member.1.Value=v&Tags.member.2.Key=K&Tags.member.2.Value=v", 400, "InvalidInput", "Duplicate tag keys"},
		{"bad MaxItems", "application/x-www-form-urlencoded", "Action=ListUsers&Version=2010-05-08&MaxItems=0", 400, "ValidationError", "maxItems"},
		{"bad bool", "application/x-www-form-urlencoded", "Action=ListPolicies&Version=2010-05-08&OnlyAttached=maybe", 400, "ValidationError", "onlyAttached"},
		{"bad path", "application/x-www-form-urlencoded", "Action=CreateUser&Version=2010-05-08&UserName=a&Path=eng", 400, "ValidationError", "path"},
		{"bad path prefix", "application/x-www-form-urlencoded", "Action=ListUsers&Version=2010-05-08&PathPrefix=eng/", 400, "ValidationError", "pathPrefix"},
		{"bad scope", "application/x-www-form-urlencoded", "Action=ListPolicies&Version=2010-05-08&Scope=Mine", 400, "ValidationError", "scope"},
		{"too large", "application/x-www-form-urlencoded", "Action=ListUsers&Version=2010-05-08&Pad=" + strings.Repeat("a", maxBody), 413, "RequestEntityTooLarge", "65536"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp := e.send(e.iamURL, adminKeyID, tc.contentType, tc.body)
			qe := resp.error(t)
			if resp.status != tc.status || qe.Code != tc.code || !strings.Contains(qe.Message, tc.msg) {
				t.Errorf("got %d %s %q, want %d %s ~%q", resp.status, qe.Code, qe.Message, tc.status, tc.code, tc.msg)
			}
			if qe.Xmlns != ns || qe.RequestID == "" || qe.RequestID != resp.header.Get("x-amzn-RequestId") || resp.header.Get("Content-Type") != "text/xml" {
				t.Errorf("envelope: xmlns %q request ID %q header %q content type %q", qe.Xmlns, qe.RequestID, resp.header.Get("x-amzn-RequestId"), resp.header.Get("Content-Type"))
			}
		})
	}

	t.Run("GET", func(t *testing.T) {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, e.iamURL+"/?Action=ListUsers&Version=2010-05-08", nil)
		req.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential="+adminKeyID+"/20240102/us-east-1/iam/aws4_request")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("GET status %d", resp.StatusCode)
		}
	})
	t.Run("PUT", func(t *testing.T) {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodPut, e.iamURL+"/?Action=ListUsers&Version=2010-05-08", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 405 {
			t.Errorf("PUT status %d", resp.StatusCode)
		}
	})
}

// TestInternalFailure: an unexpected error is a 500 without its cause;
// the cause goes to the log.
func TestInternalFailure(t *testing.T) {
	t.Parallel()
	e := newEnv(t, allowTrust)
	if err := e.store.Close(); err != nil {
		t.Fatal(err)
	}
	_, err := e.admin().ListUsers(t.Context(), &awsiam.ListUsersInput{})
	wantAPIError(t, err, "ServiceFailure", 500, iamFailureMessage)
	if !strings.Contains(e.logs.String(), `"request_id"`) || !strings.Contains(e.logs.String(), "closed") {
		t.Errorf("log lacks the cause: %s", e.logs.String())
	}
}

func TestHandlerDirect(t *testing.T) {
	t.Parallel()
	e := newEnv(t, allowTrust)
	later := func() time.Time { return time.Now().Add(48 * time.Hour) }
	h, err := New(Config{IAM: e.svc, Authz: e.authz, Trust: allowTrust, Now: later})
	if err != nil {
		t.Fatal(err)
	}
	serve := func(serveFn http.HandlerFunc, info *auth.Info, body string) (*httptest.ResponseRecorder, queryError) {
		r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(body))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if info != nil {
			r = r.WithContext(auth.WithInfo(r.Context(), info))
		}
		w := httptest.NewRecorder()
		serveFn(w, r)
		var qe queryError
		if w.Code != 200 {
			qe = rawResponse{body: w.Body.Bytes()}.error(t)
		}
		return w, qe
	}

	t.Run("expired session", func(t *testing.T) {
		info := &auth.Info{RequestID: "r1", Principal: auth.Principal{Type: "AssumedRole", ARN: "arn:aws:sts::123456789012:assumed-role/r/s",
			Expires: time.Now().Add(time.Hour)}}
		w, qe := serve(h.ServeSTS, info, "Action=GetCallerIdentity&Version=2011-06-15")
		if w.Code != 403 || qe.Code != "ExpiredToken" || qe.Xmlns != "https://sts.amazonaws.com/doc/2011-06-15/" {
			t.Errorf("got %d %+v", w.Code, qe)
		}
	})
	t.Run("no auth.Info", func(t *testing.T) {
		w, qe := serve(h.ServeIAM, nil, "Action=ListUsers&Version=2010-05-08")
		if w.Code != 500 || qe.Code != "ServiceFailure" || qe.Type != "Receiver" || strings.Contains(qe.Message, "pipeline") {
			t.Errorf("got %d %+v", w.Code, qe)
		}
	})
	t.Run("sts internal failure", func(t *testing.T) {
		failing := func(context.Context, auth.Principal, iam.Role) error { return fmt.Errorf("evaluator exploded") }
		h2, err := New(Config{IAM: e.svc, Authz: e.authz, Trust: failing})
		if err != nil {
			t.Fatal(err)
		}
		got(e.admin().CreateRole(t.Context(), &awsiam.CreateRoleInput{RoleName: aws.String("r"), AssumeRolePolicyDocument: aws.String(trustPolicyJSON)})).must(t)
		info := &auth.Info{RequestID: "r2", Principal: auth.Principal{Type: "IAMUser", ARN: adminARN, UserName: "admin"}}
		w, qe := serve(h2.ServeSTS, info, "Action=AssumeRole&Version=2011-06-15&RoleArn=arn:aws:iam::123456789012:role/r&RoleSessionName=s1")
		if w.Code != 500 || qe.Code != "InternalFailure" || strings.Contains(qe.Message, "exploded") || qe.RequestID != "r2" {
			t.Errorf("got %d %+v", w.Code, qe)
		}
	})
	t.Run("config", func(t *testing.T) {
		_, err := New(Config{})
		if err == nil || !strings.Contains(err.Error(), "IAM") || !strings.Contains(err.Error(), "Authz") || !strings.Contains(err.Error(), "Trust") {
			t.Errorf("New(Config{}) = %v, want every missing field named", err)
		}
	})
}

func TestErrorTable(t *testing.T) {
	t.Parallel()
	svc := &service{name: "iam"}
	tests := []struct {
		err    error
		code   string
		status int
		msg    string
	}{
		{fmt.Errorf("%w: The user with name x cannot be found.", iam.ErrNoSuchEntity), "NoSuchEntity", 404, "The user with name x cannot be found."},
		{fmt.Errorf("wrapped: %w", fmt.Errorf("%w: User with name x already exists.", iam.ErrEntityExists)), "EntityAlreadyExists", 409, "User with name x already exists."},
		{fmt.Errorf("%w: must delete first", iam.ErrDeleteConflict), "DeleteConflict", 409, "must delete first"},
		{fmt.Errorf("%w: quota", iam.ErrLimitExceeded), "LimitExceeded", 409, "quota"},
		{fmt.Errorf("%w: bad json", iam.ErrMalformedPolicy), "MalformedPolicyDocument", 400, "bad json"},
		{fmt.Errorf("%w: bad", iam.ErrInvalidInput), "InvalidInput", 400, "bad"},
		{fmt.Errorf("%w: bad", iam.ErrValidation), "ValidationError", 400, "bad"},
		{fmt.Errorf("%w: aws managed", iam.ErrUnmodifiable), "UnmodifiableEntity", 400, "aws managed"},
		{fmt.Errorf("%w: no", iam.ErrAccessDeniedTrust), "AccessDenied", 403, "no"},
		{iam.ErrNoSuchEntity, "NoSuchEntity", 404, "NoSuchEntity"},
		{&auth.DeniedError{Principal: "p", Action: "iam:GetUser", Resource: "r"}, "AccessDenied", 403, "User: p is not authorized to perform: iam:GetUser on resource: r"},
		{errors.New("disk on fire"), "ServiceFailure", 500, iamFailureMessage},
	}
	for _, tc := range tests {
		t.Run(tc.code, func(t *testing.T) {
			e, _ := toAPIError(tc.err, svc)
			if e.code != tc.code || e.status != tc.status || e.msg != tc.msg {
				t.Errorf("toAPIError(%v) = %s %d %q, want %s %d %q", tc.err, e.code, e.status, e.msg, tc.code, tc.status, tc.msg)
			}
		})
	}
	if e, internal := toAPIError(errors.New("x"), &service{name: "sts"}); e.code != "InternalFailure" || e.status != 500 || !internal {
		t.Errorf("sts internal = %+v", e)
	}
}
