package policy

import (
	"errors"
	"testing"
)

const (
	acct      = "111122223333"
	otherAcct = "444455556666"
	repoARN   = "arn:aws:ecr:us-west-2:111122223333:repository/app"
	keyARN    = "arn:aws:kms:us-west-2:111122223333:key/b8d9ae76-080c-4043-92EXAMPLE"
)

func mustParse(t testing.TB, kind Kind, doc string) *Policy {
	t.Helper()
	p, err := Parse([]byte(doc), kind)
	if err != nil {
		t.Fatalf("Parse(%s): %v\n%s", kind, err, doc)
	}
	return p
}

func user(account, name string) Principal {
	return Principal{
		Type:    TypeIAMUser,
		Account: account,
		ARN:     "arn:aws:iam::" + account + ":user/" + name,
		ID:      "AIDAEXAMPLE" + name,
	}
}

func session(account, role, name string) Principal {
	return Principal{
		Type:    TypeAssumedRole,
		Account: account,
		ARN:     "arn:aws:sts::" + account + ":assumed-role/" + role + "/" + name,
		RoleARN: "arn:aws:iam::" + account + ":role/" + role,
		ID:      "AROAEXAMPLE:" + name,
	}
}

func rootOf(account string) Principal {
	return Principal{Type: TypeRoot, Account: account, ARN: "arn:aws:iam::" + account + ":root", ID: account}
}

func service(name string) Principal { return Principal{Type: TypeAWSService, Service: name} }

var anonymous = Principal{Type: TypeAnonymous}

func req(p Principal, action, resource string, kv ...string) *Request {
	r := &Request{Principal: p, Action: action, Resource: resource, Context: Context{}}
	for i := 0; i+1 < len(kv); i += 2 {
		r.Context.Add(kv[i], kv[i+1])
	}
	return r
}

func asError(t *testing.T, err error) *Error {
	t.Helper()
	var pe *Error
	if !errors.As(err, &pe) {
		t.Fatalf("error %v (%T) is not a *policy.Error", err, err)
	}
	if !errors.Is(err, ErrMalformed) {
		t.Fatalf("error %v does not wrap ErrMalformed", err)
	}
	return pe
}
