package policy

import (
	"strconv"
	"testing"
)

func TestActionAndResourceMatching(t *testing.T) {
	t.Parallel()
	other := "arn:aws:ecr:us-west-2:111122223333:repository/other"
	tests := []struct {
		name     string
		stmt     string // one identity statement
		action   string
		resource string
		want     Effect
	}{
		{"action star", `"Effect":"Allow","Action":"*","Resource":"*"`, "kms:Decrypt", keyARN, Allow},
		{"service star", `"Effect":"Allow","Action":"ecr:*","Resource":"*"`, "ecr:PutImage", repoARN, Allow},
		{"service star other service", `"Effect":"Allow","Action":"ecr:*","Resource":"*"`, "kms:Decrypt", keyARN, NoMatch},
		{"prefix star", `"Effect":"Allow","Action":"ecr:Batch*","Resource":"*"`, "ecr:BatchGetImage", repoARN, Allow},
		{"suffix star", `"Effect":"Allow","Action":"ecr:*Image","Resource":"*"`, "ecr:PutImage", repoARN, Allow},
		{"question mark", `"Effect":"Allow","Action":"ecr:?utImage","Resource":"*"`, "ecr:PutImage", repoARN, Allow},
		{"wildcard service", `"Effect":"Allow","Action":"*:PutImage","Resource":"*"`, "ecr:PutImage", repoARN, Allow},
		{"action case-insensitive", `"Effect":"Allow","Action":"ECR:putimage","Resource":"*"`, "ecr:PutImage", repoARN, Allow},
		{"request action case-insensitive", `"Effect":"Allow","Action":"ecr:PutImage","Resource":"*"`, "ECR:PUTIMAGE", repoARN, Allow},
		{"action list", `"Effect":"Allow","Action":["ecr:BatchGetImage","ecr:PutImage"],"Resource":"*"`, "ecr:PutImage", repoARN, Allow},
		{"action list miss", `"Effect":"Allow","Action":["ecr:BatchGetImage","ecr:PutImage"],"Resource":"*"`, "ecr:DeleteRepository", repoARN, NoMatch},
		{"NotAction allows the rest", `"Effect":"Allow","NotAction":"ecr:Delete*","Resource":"*"`, "ecr:PutImage", repoARN, Allow},
		{"NotAction excludes", `"Effect":"Allow","NotAction":"ecr:Delete*","Resource":"*"`, "ecr:DeleteRepository", repoARN, NoMatch},
		{"NotAction deny", `"Effect":"Deny","NotAction":["ecr:BatchGetImage","ecr:GetDownloadUrlForLayer"],"Resource":"*"`, "ecr:PutImage", repoARN, Deny},
		{"NotAction deny spares listed", `"Effect":"Deny","NotAction":["ecr:BatchGetImage"],"Resource":"*"`, "ecr:BatchGetImage", repoARN, NoMatch},
		{"resource exact", `"Effect":"Allow","Action":"*","Resource":"` + repoARN + `"`, "ecr:PutImage", repoARN, Allow},
		{"resource exact other", `"Effect":"Allow","Action":"*","Resource":"` + repoARN + `"`, "ecr:PutImage", other, NoMatch},
		{"resource case-sensitive", `"Effect":"Allow","Action":"*","Resource":"arn:aws:ecr:us-west-2:111122223333:repository/App"`, "ecr:PutImage", repoARN, NoMatch},
		{"resource trailing star", `"Effect":"Allow","Action":"*","Resource":"arn:aws:ecr:us-west-2:111122223333:repository/*"`, "ecr:PutImage", other, Allow},
		{"resource star spans slash", `"Effect":"Allow","Action":"*","Resource":"arn:aws:ecr:*:111122223333:repository/team/*"`, "ecr:PutImage", "arn:aws:ecr:eu-west-1:111122223333:repository/team/a/b", Allow},
		{"resource star segment crosses colons", `"Effect":"Allow","Action":"*","Resource":"arn:aws:ecr:*"`, "ecr:PutImage", repoARN, Allow},
		{"resource question", `"Effect":"Allow","Action":"*","Resource":"arn:aws:ecr:us-west-?:111122223333:repository/app"`, "ecr:PutImage", repoARN, Allow},
		{"resource list", `"Effect":"Allow","Action":"*","Resource":["` + keyARN + `","` + repoARN + `"]`, "ecr:PutImage", repoARN, Allow},
		{"resource star matches no-resource actions", `"Effect":"Allow","Action":"*","Resource":"*"`, "ecr:GetAuthorizationToken", "*", Allow},
		{"ARN pattern does not match star", `"Effect":"Allow","Action":"*","Resource":"arn:aws:ecr:*:*:repository/*"`, "ecr:GetAuthorizationToken", "*", NoMatch},
		{"NotResource allows the rest", `"Effect":"Allow","Action":"*","NotResource":"` + repoARN + `"`, "ecr:PutImage", other, Allow},
		{"NotResource excludes", `"Effect":"Allow","Action":"*","NotResource":"` + repoARN + `"`, "ecr:PutImage", repoARN, NoMatch},
		{"NotResource star excludes all", `"Effect":"Deny","Action":"*","NotResource":"*"`, "ecr:PutImage", repoARN, NoMatch},
		{"NotResource deny outside", `"Effect":"Deny","Action":"ecr:*","NotResource":"arn:aws:ecr:*:111122223333:repository/team/*"`, "ecr:PutImage", repoARN, Deny},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := mustParse(t, Identity, `{"Version":"2012-10-17","Statement":[{`+tc.stmt+`}]}`)
			got, s := p.Evaluate(req(user(acct, "alice"), tc.action, tc.resource))
			if got != tc.want {
				t.Errorf("got %v, want %v", got, tc.want)
			}
			if (s != nil) != (got != NoMatch) {
				t.Errorf("statement %v with effect %v", s, got)
			}
		})
	}
}

func TestDenyWinsWithinPolicy(t *testing.T) {
	t.Parallel()
	p := mustParse(t, Identity, `{"Version":"2012-10-17","Statement":[
		{"Sid":"All","Effect":"Allow","Action":"*","Resource":"*"},
		{"Sid":"NoDelete","Effect":"Deny","Action":"ecr:Delete*","Resource":"*"},
		{"Sid":"Again","Effect":"Allow","Action":"ecr:DeleteRepository","Resource":"*"}]}`)
	e, s := p.Evaluate(req(user(acct, "alice"), "ecr:DeleteRepository", repoARN))
	if e != Deny || s.Sid() != "NoDelete" || s.Index() != 1 {
		t.Errorf("got %v %+v, want Deny by NoDelete", e, s)
	}
	e, s = p.Evaluate(req(user(acct, "alice"), "ecr:PutImage", repoARN))
	if e != Allow || s.Sid() != "All" {
		t.Errorf("got %v %+v, want Allow by All", e, s)
	}
}

func TestPrincipalMatching(t *testing.T) {
	t.Parallel()
	alice, bob := user(acct, "alice"), user(acct, "bob")
	ci := session(acct, "ci", "run-1")
	ciOther := session(acct, "ci", "run-2")
	deploy := session(acct, "deploy", "run-1")
	root, otherRoot := rootOf(acct), rootOf(otherAcct)
	eve := user(otherAcct, "alice")
	ecr := service("ecr.amazonaws.com")
	tests := []struct {
		name      string
		principal string // JSON
		who       Principal
		want      bool
		direct    bool
	}{
		{"star user", `"*"`, alice, true, true},
		{"star anonymous", `"*"`, anonymous, true, true},
		{"star service", `"*"`, ecr, true, true},
		{"AWS star anonymous", `{"AWS":"*"}`, anonymous, true, true},
		{"account ID user", `{"AWS":"111122223333"}`, alice, true, false},
		{"account ID session", `{"AWS":"111122223333"}`, ci, true, false},
		{"account ID root", `{"AWS":"111122223333"}`, root, true, true},
		{"account ID other account", `{"AWS":"111122223333"}`, eve, false, false},
		{"account ID other root", `{"AWS":"111122223333"}`, otherRoot, false, false},
		{"account ID anonymous", `{"AWS":"111122223333"}`, anonymous, false, false},
		{"account ID service", `{"AWS":"111122223333"}`, ecr, false, false},
		{"root ARN user", `{"AWS":"arn:aws:iam::111122223333:root"}`, bob, true, false},
		{"root ARN root", `{"AWS":"arn:aws:iam::111122223333:root"}`, root, true, true},
		{"short account ID", `{"AWS":"1234567890"}`, user("1234567890", "x"), true, false},
		{"role ARN session", `{"AWS":"arn:aws:iam::111122223333:role/ci"}`, ci, true, true},
		{"role ARN other session", `{"AWS":"arn:aws:iam::111122223333:role/ci"}`, ciOther, true, true},
		{"role ARN other role", `{"AWS":"arn:aws:iam::111122223333:role/ci"}`, deploy, false, false},
		{"role ARN user", `{"AWS":"arn:aws:iam::111122223333:role/alice"}`, alice, false, false},
		{"user ARN user", `{"AWS":"arn:aws:iam::111122223333:user/alice"}`, alice, true, true},
		{"user ARN other user", `{"AWS":"arn:aws:iam::111122223333:user/alice"}`, bob, false, false},
		{"user ARN same name other account", `{"AWS":"arn:aws:iam::111122223333:user/alice"}`, eve, false, false},
		{"session ARN", `{"AWS":"arn:aws:sts::111122223333:assumed-role/ci/run-1"}`, ci, true, true},
		{"session ARN other session", `{"AWS":"arn:aws:sts::111122223333:assumed-role/ci/run-1"}`, ciOther, false, false},
		{"service", `{"Service":"ecr.amazonaws.com"}`, ecr, true, true},
		{"service other", `{"Service":"kms.amazonaws.com"}`, ecr, false, true},
		{"service not a user", `{"Service":"ecr.amazonaws.com"}`, alice, false, false},
		{"list mixes types", `{"AWS":["arn:aws:iam::111122223333:user/bob"],"Service":"ecr.amazonaws.com"}`, ecr, true, true},
		{"unknown type is anonymous", `{"AWS":"111122223333"}`, Principal{Type: "FederatedUser", Account: acct}, false, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := mustParse(t, Resource, `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":`+tc.principal+`,"Action":"ecr:*"}]}`)
			e, _, direct := p.eval(req(tc.who, "ecr:BatchGetImage", repoARN))
			if (e == Allow) != tc.want {
				t.Fatalf("got %v, want match %v", e, tc.want)
			}
			if tc.want && direct != tc.direct {
				t.Errorf("direct = %v, want %v", direct, tc.direct)
			}
		})
	}
}

func TestNotPrincipal(t *testing.T) {
	t.Parallel()
	alice, bob := user(acct, "alice"), user(acct, "bob")
	ci := session(acct, "ci", "run-1")
	tests := []struct {
		name   string
		not    string
		who    Principal
		denied bool
	}{
		{"user and account listed: spared", `{"AWS":["arn:aws:iam::111122223333:user/alice","111122223333"]}`, alice, false},
		{"user and account listed: others denied", `{"AWS":["arn:aws:iam::111122223333:user/alice","111122223333"]}`, bob, true},
		{"user and account listed: root spared", `{"AWS":["arn:aws:iam::111122223333:user/alice","111122223333"]}`, rootOf(acct), false},
		{"user and account listed: other account denied", `{"AWS":["arn:aws:iam::111122223333:user/alice","111122223333"]}`, user(otherAcct, "alice"), true},
		{"user and account listed: anonymous denied", `{"AWS":["arn:aws:iam::111122223333:user/alice","111122223333"]}`, anonymous, true},
		{"user and account listed: service denied", `{"AWS":["arn:aws:iam::111122223333:user/alice","111122223333"]}`, service("ecr.amazonaws.com"), true},
		{"user without account: still denied", `{"AWS":"arn:aws:iam::111122223333:user/alice"}`, alice, true},
		{"account only: users denied", `{"AWS":"111122223333"}`, alice, true},
		{"account only: root spared", `{"AWS":"arn:aws:iam::111122223333:root"}`, rootOf(acct), false},
		{"role and account: session spared", `{"AWS":["arn:aws:iam::111122223333:role/ci","111122223333"]}`, ci, false},
		{"session and account: session spared", `{"AWS":["arn:aws:sts::111122223333:assumed-role/ci/run-1","111122223333"]}`, ci, false},
		{"role without account: session denied", `{"AWS":"arn:aws:iam::111122223333:role/ci"}`, ci, true},
		{"service listed: spared", `{"Service":"ecr.amazonaws.com"}`, service("ecr.amazonaws.com"), false},
		{"star: nobody denied", `"*"`, anonymous, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := mustParse(t, Resource, `{"Version":"2012-10-17","Statement":[{"Effect":"Deny","NotPrincipal":`+tc.not+`,"Action":"ecr:*"}]}`)
			e, _ := p.Evaluate(req(tc.who, "ecr:BatchGetImage", repoARN))
			if (e == Deny) != tc.denied {
				t.Errorf("got %v, want denied %v", e, tc.denied)
			}
		})
	}
}

func TestPolicyVariables(t *testing.T) {
	t.Parallel()
	alice := user(acct, "alice")
	ci := session(acct, "ci", "run-1")
	resDoc := func(effect, elem, resource string) string {
		return `{"Version":"2012-10-17","Statement":[{"Effect":"` + effect + `","Action":"*","` + elem + `":` + strconv.Quote(resource) + `}]}`
	}
	condDocV := func(op, key, value string) string {
		return `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"` + op + `":{"` + key + `":` + strconv.Quote(value) + `}}}]}`
	}
	tests := []struct {
		name     string
		doc      string
		who      Principal
		resource string
		ctx      []string // key, value pairs
		want     Effect
	}{
		{"username in resource", resDoc("Allow", "Resource", "arn:aws:s3:::home/${aws:username}/*"), alice, "arn:aws:s3:::home/alice/f", nil, Allow},
		{"username other home", resDoc("Allow", "Resource", "arn:aws:s3:::home/${aws:username}/*"), alice, "arn:aws:s3:::home/bob/f", nil, NoMatch},
		{"username key case-insensitive", resDoc("Allow", "Resource", "arn:aws:s3:::home/${AWS:UserName}/*"), alice, "arn:aws:s3:::home/alice/f", nil, Allow},
		{"username missing for a session", resDoc("Allow", "Resource", "arn:aws:s3:::home/${aws:username}/*"), ci, "arn:aws:s3:::home/ci/f", nil, NoMatch},
		{"username missing: NotResource deny applies", resDoc("Deny", "NotResource", "arn:aws:s3:::home/${aws:username}/*"), ci, "arn:aws:s3:::home/ci/f", nil, Deny},
		{"username cannot be overridden by context", resDoc("Allow", "Resource", "arn:aws:s3:::home/${aws:username}/*"), alice, "arn:aws:s3:::home/bob/f", []string{"aws:username", "bob"}, NoMatch},
		{"PrincipalAccount in resource", resDoc("Allow", "Resource", "arn:aws:ecr:*:${aws:PrincipalAccount}:repository/*"), alice, repoARN, nil, Allow},
		{"PrincipalAccount other account", resDoc("Allow", "Resource", "arn:aws:ecr:*:${aws:PrincipalAccount}:repository/*"), user(otherAcct, "x"), repoARN, nil, NoMatch},
		{"context key in resource", resDoc("Allow", "Resource", "arn:aws:ecr:*:*:repository/${aws:PrincipalTag/team}/*"), alice, "arn:aws:ecr:us-west-2:111122223333:repository/web/app", []string{"aws:PrincipalTag/team", "web"}, Allow},
		{"multivalued context key is missing", resDoc("Allow", "Resource", "arn:aws:ecr:*:*:repository/${aws:PrincipalTag/team}/*"), alice, "arn:aws:ecr:us-west-2:111122223333:repository/web/app", []string{"aws:PrincipalTag/team", "web", "aws:PrincipalTag/team", "ops"}, NoMatch},
		{"default value", resDoc("Allow", "Resource", "arn:aws:ecr:*:*:repository/${aws:PrincipalTag/team, 'shared'}/*"), alice, "arn:aws:ecr:us-west-2:111122223333:repository/shared/app", nil, Allow},
		{"default value with quote", resDoc("Allow", "Resource", "arn:aws:s3:::b/${a:b, 'it''s'}"), alice, "arn:aws:s3:::b/it's", nil, Allow},
		{"escape star is literal", resDoc("Allow", "Resource", "arn:aws:s3:::b/${*}"), alice, "arn:aws:s3:::b/x", nil, NoMatch},
		{"escape star matches star", resDoc("Allow", "Resource", "arn:aws:s3:::b/${*}"), alice, "arn:aws:s3:::b/*", nil, Allow},
		{"escape question is literal", resDoc("Allow", "Resource", "arn:aws:s3:::b/a${?}"), alice, "arn:aws:s3:::b/ab", nil, NoMatch},
		{"escape question matches question", resDoc("Allow", "Resource", "arn:aws:s3:::b/a${?}"), alice, "arn:aws:s3:::b/a?", nil, Allow},
		{"escape dollar", resDoc("Allow", "Resource", "arn:aws:s3:::b/${$}{x}"), alice, "arn:aws:s3:::b/${x}", nil, Allow},
		{"variable value is not a wildcard", resDoc("Allow", "Resource", "arn:aws:s3:::b/${a:team}"), alice, "arn:aws:s3:::b/web", []string{"a:team", "*"}, NoMatch},
		{"userid in StringEquals", condDocV("StringEquals", "a:owner", "${aws:userid}"), alice, repoARN, []string{"a:owner", "AIDAEXAMPLEalice"}, Allow},
		{"userid mismatch", condDocV("StringEquals", "a:owner", "${aws:userid}"), alice, repoARN, []string{"a:owner", "AIDAEXAMPLEbob"}, NoMatch},
		{"variable in StringLike", condDocV("StringLike", "ecr:ResourceTag/owner", "${aws:username}-*"), alice, repoARN, []string{"ecr:ResourceTag/owner", "alice-ci"}, Allow},
		{"variable in StringEqualsIgnoreCase", condDocV("StringEqualsIgnoreCase", "a:o", "${aws:username}"), alice, repoARN, []string{"a:o", "ALICE"}, Allow},
		{"missing variable StringEqualsIgnoreCase", condDocV("StringEqualsIgnoreCase", "a:o", "${aws:username}"), ci, repoARN, []string{"a:o", ""}, NoMatch},
		{"missing variable StringNotEquals", condDocV("StringNotEquals", "a:o", "${aws:username}"), ci, repoARN, []string{"a:o", "x"}, Allow},
		{"variable in ArnLike", condDocV("ArnLike", "aws:SourceArn", "arn:aws:ecr:*:${aws:PrincipalAccount}:repository/*"), alice, repoARN, []string{"aws:SourceArn", repoARN}, Allow},
		{"PrincipalArn of session is the role", condDocV("ArnEquals", "aws:PrincipalArn", "arn:aws:iam::111122223333:role/ci"), ci, repoARN, nil, Allow},
		{"PrincipalType", condDocV("StringEquals", "aws:PrincipalType", "AssumedRole"), ci, repoARN, nil, Allow},
		{"PrincipalType of root", condDocV("StringEquals", "aws:PrincipalType", "Account"), rootOf(acct), repoARN, nil, Allow},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := mustParse(t, Identity, tc.doc)
			got, _ := p.Evaluate(req(tc.who, "s3:GetObject", tc.resource, tc.ctx...))
			if got != tc.want {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}
