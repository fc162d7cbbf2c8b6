package policy

import "testing"

// bench10 is a 10-statement identity policy in the shape of real ones:
// exact, prefix, suffix and '?' wildcards in Action and Resource, NotAction
// and NotResource, and two conditions (IpAddress, StringEquals) on the
// statement that finally allows.
const bench10 = `{"Version":"2012-10-17","Statement":[
 {"Sid":"S0","Effect":"Allow","Action":["ecr:BatchGetImage","ecr:GetDownloadUrlForLayer"],"Resource":"arn:aws:ecr:us-west-2:111122223333:repository/base/*"},
 {"Sid":"S1","Effect":"Allow","Action":"ecr:Describe*","Resource":"*"},
 {"Sid":"S2","Effect":"Allow","Action":"kms:*","Resource":"arn:aws:kms:us-west-2:111122223333:key/*"},
 {"Sid":"S3","Effect":"Deny","Action":"ecr:Delete*","Resource":"arn:aws:ecr:*:111122223333:repository/prod-*"},
 {"Sid":"S4","Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::prod-*-starport-layer-bucket/*"},
 {"Sid":"S5","Effect":"Deny","NotAction":["ecr:*","kms:*","s3:*","sts:*"],"Resource":"*"},
 {"Sid":"S6","Effect":"Allow","Action":"ecr:List*","Resource":"arn:aws:ecr:us-west-?:111122223333:repository/*"},
 {"Sid":"S7","Effect":"Deny","Action":"ecr:SetRepositoryPolicy","NotResource":"arn:aws:ecr:*:111122223333:repository/sandbox/*"},
 {"Sid":"S8","Effect":"Allow","Action":"ecr:*Image*","Resource":"arn:aws:ecr:*:111122223333:repository/team/*","Condition":{
   "IpAddress":{"aws:SourceIp":["10.0.0.0/8","192.168.0.0/16"]},
   "StringEquals":{"aws:SourceVpce":["vpce-0a1b2c3d4e5f60718","vpce-1a1b2c3d4e5f60718"]}}},
 {"Sid":"S9","Effect":"Allow","Action":"ecr:GetAuthorizationToken","Resource":"*"}]}`

func BenchmarkEvaluate10(b *testing.B) {
	p := mustParse(b, Identity, bench10)
	r := req(session(acct, "ci", "run-1"), "ecr:PutImage", "arn:aws:ecr:us-west-2:111122223333:repository/team/app",
		"aws:SourceIp", "10.20.30.40", "aws:SourceVpce", "vpce-1a1b2c3d4e5f60718", "aws:SecureTransport", "true")
	if e, s := p.Evaluate(r); e != Allow || s.Sid() != "S8" {
		b.Fatalf("Evaluate = %v %+v", e, s)
	}
	b.ReportAllocs()
	for b.Loop() {
		p.Evaluate(r)
	}
}

func BenchmarkDecide(b *testing.B) {
	id := mustParse(b, Identity, bench10)
	power, _ := Managed("AmazonEC2ContainerRegistryPowerUser")
	repo := mustParse(b, Resource, repoAllowAcct)
	ep := mustParse(b, Endpoint, j09)
	in := Input{
		Request: req(session(acct, "ci", "run-1"), "ecr:PutImage", "arn:aws:ecr:us-west-2:111122223333:repository/team/app",
			"aws:SourceIp", "10.20.30.40", "aws:SourceVpce", "vpce-1a1b2c3d4e5f60718"),
		ResourceAccount: acct,
		Identity:        []*Policy{id, power},
		Resource:        []*Policy{repo},
		Gates:           []Gate{{Name: "VPC endpoint policy", Policies: []*Policy{ep}}},
	}
	if d := Decide(in); !d.Allowed {
		b.Fatalf("Decide = %+v", d)
	}
	b.ReportAllocs()
	for b.Loop() {
		Decide(in)
	}
}

func BenchmarkParse(b *testing.B) {
	doc := []byte(bench10)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(doc, Identity); err != nil {
			b.Fatal(err)
		}
	}
}

// TestEvaluateDoesNotAllocate keeps the hot path allocation-free: patterns
// are compiled at Parse, variables resolve into a stack buffer.
func TestEvaluateDoesNotAllocate(t *testing.T) {
	p := mustParse(t, Identity, bench10)
	vars := mustParse(t, Identity, `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ecr:*","Resource":"arn:aws:ecr:*:${aws:PrincipalAccount}:repository/${aws:PrincipalTag/team, 'shared'}/*","Condition":{"ArnLike":{"aws:SourceArn":"arn:aws:ecr:*:${aws:PrincipalAccount}:repository/*"},"DateLessThan":{"aws:CurrentTime":"2100-01-01T00:00:00Z"}}}]}`)
	r := req(session(acct, "ci", "run-1"), "ecr:PutImage", "arn:aws:ecr:us-west-2:111122223333:repository/team/app",
		"aws:SourceIp", "10.20.30.40", "aws:SourceVpce", "vpce-1a1b2c3d4e5f60718", "aws:PrincipalTag/team", "team",
		"aws:SourceArn", repoARN, "aws:CurrentTime", "2026-01-01T00:00:00Z")
	for name, p := range map[string]*Policy{"bench10": p, "variables": vars} {
		if e, _ := p.Evaluate(r); e != Allow {
			t.Fatalf("%s: %v", name, e)
		}
		if n := testing.AllocsPerRun(100, func() { p.Evaluate(r) }); n != 0 {
			t.Errorf("%s: %v allocations per Evaluate", name, n)
		}
	}
}
