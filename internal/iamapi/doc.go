// Package iamapi serves Coffer's IAM and STS APIs in AWS's Query protocol,
// so that `aws iam|sts ... --endpoint-url` and the AWS SDKs' iam and sts
// clients work against Coffer. The identity store behind it is
// internal/iam.
//
// What it trusts: the request pipeline in front of it has verified SigV4
// (service "iam" or "sts") and put an auth.Info with the caller's Principal
// and the request ID in the request context. What it guarantees: every IAM
// operation is decided by the Authorizer before it touches the store; a
// secret access key leaves only in CreateAccessKey, AssumeRole and
// GetSessionToken responses; request forms and responses are never
// logged; an action it does not implement fails with InvalidAction naming
// it, never with a fake success; a parameter it cannot honour (session
// policies, MFA, permissions boundaries, ...) is rejected, not ignored.
//
// # Wire format
//
// Request: POST / with an application/x-www-form-urlencoded body of at most
// 64 KiB (or GET with the same parameters in the URL), each parameter once:
//
//	Action=CreateUser&Version=2010-05-08&UserName=alice
//	  &Tags.member.1.Key=team&Tags.member.1.Value=blue
//
// Lists are Name.member.N (N from 1), lists of structures
// Name.member.N.Field, as botocore serializes them. IAM's Version is
// 2010-05-08, STS's 2011-06-15.
//
// Response (HTTP 200, Content-Type text/xml, header x-amzn-RequestId):
//
//	<CreateUserResponse xmlns="https://iam.amazonaws.com/doc/2010-05-08/">
//	  <CreateUserResult>
//	    <User><Path>/</Path><UserName>alice</UserName>...</User>
//	  </CreateUserResult>
//	  <ResponseMetadata><RequestId>...</RequestId></ResponseMetadata>
//	</CreateUserResponse>
//
// Lists are <Name><member>...</member></Name>; timestamps ISO 8601 UTC
// (2024-01-02T03:04:05Z); policy documents URL-encoded, as AWS returns
// them. Operations without output carry only ResponseMetadata. STS uses
// the namespace https://sts.amazonaws.com/doc/2011-06-15/.
//
// Errors:
//
//	<ErrorResponse xmlns="...">
//	  <Error><Type>Sender</Type><Code>NoSuchEntity</Code><Message>...</Message></Error>
//	  <RequestId>...</RequestId>
//	</ErrorResponse>
//
// with the HTTP status of the model's error shape (errors.go has the
// table); Type is Receiver for 5xx. An unexpected failure is ServiceFailure
// (IAM) or InternalFailure (STS), 500, and its cause goes only to the log.
//
// # Authorization
//
// Each IAM operation asks the Authorizer for iam:<Action> on the resource
// AWS uses: the user, group or role ARN (with the entity's path when it
// exists, so the decision comes before NoSuchEntity), the policy ARN for
// managed-policy operations, and for ListUsers and ListPolicies the path
// prefix (arn:aws:iam::<account>:user/ and ...:policy/ by default, as AWS
// names them in AccessDenied messages). Attach/Detach are authorized on the
// user, group or role, AddUserToGroup and RemoveUserFromGroup on the group.
// STS: GetCallerIdentity needs no permission; AssumeRole is decided by the
// Trust callback alone; GetSessionToken only requires an IAM user.
package iamapi
