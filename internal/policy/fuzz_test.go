package policy

import (
	"bytes"
	"errors"
	"testing"
)

func FuzzParse(f *testing.F) {
	for _, d := range []string{j01, j02, j03, j04, j06, j07, j08, j09, allowAll, denyPut, repoAllowUser, repoAllowAny,
		`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"arn:aws:s3:::b/${aws:username, 'x''y'}/${*}","Condition":{"ForAnyValue:StringLikeIfExists":{"a:b":["${a:c}*",1,true]},"IpAddress":{"aws:SourceIp":"10.0.0.0/8"},"DateLessThan":{"aws:CurrentTime":"2030-01-01T00:00:00Z"},"ArnLike":{"aws:SourceArn":"arn:aws:ecr:*:${aws:PrincipalAccount}:repository/*"},"Null":{"x:y":"false"}}}]}`,
		`{"Version":"2012-10-17","Statement":{"Effect":"Deny","NotPrincipal":{"AWS":["111122223333","arn:aws:sts::111122223333:assumed-role/r/s"],"Service":"ecr.amazonaws.com"},"NotAction":"ecr:Get*","NotResource":"arn:aws:ecr:*:*:repository/a?"}}`,
	} {
		for _, k := range []Kind{Identity, Resource, Endpoint} {
			f.Add([]byte(d), uint8(k))
		}
	}
	reqs := []*Request{
		req(user(acct, "alice"), "ecr:PutImage", repoARN, "aws:SourceIp", "10.0.0.1", "a:b", "xyz"),
		req(session(acct, "r", "s"), "kms:Decrypt", keyARN, "aws:CurrentTime", "2025-01-01T00:00:00Z"),
		req(anonymous, "s3:GetObject", "arn:aws:s3:::b/alice/*"),
		req(service("ecr.amazonaws.com"), "ecr:GetAuthorizationToken", "*"),
	}
	f.Fuzz(func(t *testing.T, doc []byte, k uint8) {
		kind := Kind(k%3 + 1)
		p, err := Parse(doc, kind)
		if err != nil {
			var pe *Error
			if !errors.As(err, &pe) || !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v is not a *policy.Error wrapping ErrMalformed", err)
			}
			return
		}
		if !bytes.Equal(p.JSON(), doc) {
			t.Fatal("JSON() differs from the document")
		}
		q, err := Parse(p.JSON(), kind)
		if err != nil {
			t.Fatalf("re-parse of JSON(): %v", err)
		}
		for _, r := range reqs {
			e1, s1 := p.Evaluate(r)
			e2, s2 := q.Evaluate(r)
			if e1 != e2 || (s1 == nil) != (s2 == nil) || (s1 != nil && s1.Index() != s2.Index()) {
				t.Fatalf("re-parsed policy decides differently: %v/%v", e1, e2)
			}
			Decide(Input{Request: r, Identity: []*Policy{p}, Resource: []*Policy{p}, Gates: []Gate{{Name: "g", Policies: []*Policy{q}}}})
		}
	})
}
