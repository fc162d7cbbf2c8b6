package iamapi

import (
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsiam "github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	ststypes "github.com/aws/aws-sdk-go-v2/service/sts/types"
)

func TestSDKGetCallerIdentity(t *testing.T) {
	t.Parallel()
	e := newEnv(t, allowTrust)
	out := got(e.adminSTS().GetCallerIdentity(t.Context(), &sts.GetCallerIdentityInput{})).must(t)
	if aws.ToString(out.Account) != testAccount || aws.ToString(out.Arn) != adminARN || !strings.HasPrefix(aws.ToString(out.UserId), "AIDA") {
		t.Errorf("GetCallerIdentity = %s %s %s", aws.ToString(out.Account), aws.ToString(out.Arn), aws.ToString(out.UserId))
	}
	if calls := e.authz.take(); len(calls) != 0 {
		t.Errorf("GetCallerIdentity asked the authorizer: %v", calls)
	}
	if info := e.last(); info.Action != "sts:GetCallerIdentity" || info.EventName != "GetCallerIdentity" {
		t.Errorf("audit info = %+v", info)
	}

	// Unknown credentials reach the handler as the anonymous principal.
	_, err := e.stsClient(creds("AKIAUNKNOWNKEY000000", "x", "")).GetCallerIdentity(t.Context(), &sts.GetCallerIdentityInput{})
	wantAPIError(t, err, "MissingAuthenticationToken", 403, "")
}

func TestSDKAssumeRole(t *testing.T) {
	t.Parallel()
	e := newEnv(t, allowTrust)
	ctx := t.Context()
	role := got(e.admin().CreateRole(ctx, &awsiam.CreateRoleInput{RoleName: aws.String("deployer"),
		AssumeRolePolicyDocument: aws.String(trustPolicyJSON), MaxSessionDuration: aws.Int32(7200)})).must(t).Role
	e.authz.take()

	out := got(e.adminSTS().AssumeRole(ctx, &sts.AssumeRoleInput{RoleArn: role.Arn, RoleSessionName: aws.String("ci-42"), DurationSeconds: aws.Int32(1800)})).must(t)
	c := out.Credentials
	if !strings.HasPrefix(aws.ToString(c.AccessKeyId), "ASIA") || aws.ToString(c.SecretAccessKey) == "" || aws.ToString(c.SessionToken) == "" {
		t.Fatalf("credentials = %+v", c)
	}
	if d := time.Until(aws.ToTime(c.Expiration)); d < 29*time.Minute || d > 31*time.Minute {
		t.Errorf("expires in %v, want 30m", d)
	}
	wantARN := "arn:aws:sts::123456789012:assumed-role/deployer/ci-42"
	if aws.ToString(out.AssumedRoleUser.Arn) != wantARN || aws.ToString(out.AssumedRoleUser.AssumedRoleId) != aws.ToString(role.RoleId)+":ci-42" {
		t.Errorf("AssumedRoleUser = %+v", out.AssumedRoleUser)
	}
	if calls := e.authz.take(); len(calls) != 0 {
		t.Errorf("AssumeRole asked the authorizer besides Trust: %v", calls)
	}

	// The session's credentials work and name the session.
	sess := e.stsClient(creds(aws.ToString(c.AccessKeyId), aws.ToString(c.SecretAccessKey), aws.ToString(c.SessionToken)))
	id := got(sess.GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})).must(t)
	if aws.ToString(id.Arn) != wantARN || aws.ToString(id.UserId) != aws.ToString(role.RoleId)+":ci-42" {
		t.Errorf("session identity = %s %s", aws.ToString(id.Arn), aws.ToString(id.UserId))
	}
	// A role session cannot call GetSessionToken, nor GetUser without a name.
	_, err := sess.GetSessionToken(ctx, &sts.GetSessionTokenInput{})
	wantAPIError(t, err, "AccessDenied", 403, "")
	_, err = e.iamClient(creds(aws.ToString(c.AccessKeyId), aws.ToString(c.SecretAccessKey), aws.ToString(c.SessionToken))).GetUser(ctx, &awsiam.GetUserInput{})
	wantAPIError(t, err, "ValidationError", 400, "non-User credentials")

	// Errors.
	_, err = e.adminSTS().AssumeRole(ctx, &sts.AssumeRoleInput{RoleArn: aws.String("arn:aws:iam::123456789012:role/nobody"), RoleSessionName: aws.String("s1")})
	wantAPIError(t, err, "AccessDenied", 403, "is not authorized to perform: sts:AssumeRole on resource: arn:aws:iam::123456789012:role/nobody")
	_, err = e.adminSTS().AssumeRole(ctx, &sts.AssumeRoleInput{RoleArn: role.Arn, RoleSessionName: aws.String("s1"), DurationSeconds: aws.Int32(10000)})
	wantAPIError(t, err, "ValidationError", 400, "MaxSessionDuration")
	_, err = e.adminSTS().AssumeRole(ctx, &sts.AssumeRoleInput{RoleArn: role.Arn, RoleSessionName: aws.String("s1"), DurationSeconds: aws.Int32(60)})
	wantAPIError(t, err, "ValidationError", 400, "durationSeconds")
	_, err = e.adminSTS().AssumeRole(ctx, &sts.AssumeRoleInput{RoleArn: role.Arn, RoleSessionName: aws.String("s1"), ExternalId: aws.String("x")})
	wantAPIError(t, err, "ValidationError", 400, "ExternalId")
	_, err = e.adminSTS().AssumeRole(ctx, &sts.AssumeRoleInput{RoleArn: role.Arn, RoleSessionName: aws.String("s1"),
		PolicyArns: []ststypes.PolicyDescriptorType{{Arn: aws.String("arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryReadOnly")}}})
	wantAPIError(t, err, "ValidationError", 400, "PolicyArns")
	_, err = e.adminSTS().AssumeRole(ctx, &sts.AssumeRoleInput{RoleArn: role.Arn, RoleSessionName: aws.String("bad name")})
	wantAPIError(t, err, "ValidationError", 400, "roleSessionName")
}

func TestSDKAssumeRoleDeniedByTrust(t *testing.T) {
	t.Parallel()
	e := newEnv(t, denyTrust)
	role := got(e.admin().CreateRole(t.Context(), &awsiam.CreateRoleInput{RoleName: aws.String("locked"),
		AssumeRolePolicyDocument: aws.String(trustPolicyJSON)})).must(t).Role
	_, err := e.adminSTS().AssumeRole(t.Context(), &sts.AssumeRoleInput{RoleArn: role.Arn, RoleSessionName: aws.String("s1")})
	wantAPIError(t, err, "AccessDenied", 403,
		"User: "+adminARN+" is not authorized to perform: sts:AssumeRole on resource: arn:aws:iam::123456789012:role/locked")
	if info := e.last(); info.ErrorCode != "AccessDenied" || len(info.Resources) != 1 || info.Resources[0] != aws.ToString(role.Arn) {
		t.Errorf("audit info = %+v", info)
	}
}

func TestSDKGetSessionToken(t *testing.T) {
	t.Parallel()
	e := newEnv(t, allowTrust)
	ctx := t.Context()
	out := got(e.adminSTS().GetSessionToken(ctx, &sts.GetSessionTokenInput{DurationSeconds: aws.Int32(900)})).must(t)
	c := out.Credentials
	if !strings.HasPrefix(aws.ToString(c.AccessKeyId), "ASIA") || aws.ToString(c.SessionToken) == "" {
		t.Fatalf("credentials = %+v", c)
	}
	if d := time.Until(aws.ToTime(c.Expiration)); d < 14*time.Minute || d > 16*time.Minute {
		t.Errorf("expires in %v, want 15m", d)
	}
	sess := e.stsClient(creds(aws.ToString(c.AccessKeyId), aws.ToString(c.SecretAccessKey), aws.ToString(c.SessionToken)))
	if id := got(sess.GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})).must(t); aws.ToString(id.Arn) != adminARN {
		t.Errorf("session identity = %s", aws.ToString(id.Arn))
	}
	_, err := sess.GetSessionToken(ctx, &sts.GetSessionTokenInput{})
	wantAPIError(t, err, "AccessDenied", 403, "Cannot call GetSessionToken with session credentials")
	_, err = e.adminSTS().GetSessionToken(ctx, &sts.GetSessionTokenInput{DurationSeconds: aws.Int32(200000)})
	wantAPIError(t, err, "ValidationError", 400, "durationSeconds")
	_, err = e.adminSTS().GetSessionToken(ctx, &sts.GetSessionTokenInput{SerialNumber: aws.String("arn:aws:iam::123456789012:mfa/admin"), TokenCode: aws.String("123456")})
	wantAPIError(t, err, "ValidationError", 400, "SerialNumber")
	if calls := e.authz.take(); len(calls) != 0 {
		t.Errorf("GetSessionToken asked the authorizer: %v", calls)
	}
}
