package policy

import (
	"bytes"
	"strconv"
	"strings"
	"testing"
)

// The SPEC appendix A documents, normalised (SPEC 1.A).
const (
	j01 = `{ "Version": "2012-10-17", "Id": "ecr-kms-permissions", "Statement": [ { "Sid": "AllowAccessToRetireTheGrantsAssociatedWithTheKey", "Effect": "Allow", "Action": [ "kms:RetireGrant" ], "Resource": "arn:aws:kms:us-west-2:111122223333:key/b8d9ae76-080c-4043-92EXAMPLE" } ] }`
	j02 = `{ "Version": "2012-10-17", "Id": "ecr-kms-permissions", "Statement": [ { "Sid": "AllowAccessToCreateAndRetireTheGrantsAssociatedWithTheKeyAsWellAsDescribeTheKey", "Effect": "Allow", "Action": [ "kms:CreateGrant", "kms:RetireGrant", "kms:DescribeKey" ], "Resource": "arn:aws:kms:us-west-2:111122223333:key/b8d9ae76-080c-4043-92EXAMPLE" } ] }`
	j03 = `{ "Version": "2012-10-17", "Id": "ecr-key-policy", "Statement": [ { "Sid": "EnableIAMUserPermissions", "Effect": "Allow", "Principal": { "AWS": "arn:aws:iam::111122223333:root" }, "Action": "kms:*", "Resource": "*" } ] }`
	j04 = `{ "Version": "2012-10-17", "Statement": { "Effect": "Allow", "Action": [ "kms:ListKeys", "kms:ListAliases", "kms:DescribeKey" ], "Resource": "*" } }`
	j06 = `{ "Statement": [ { "Sid": "Access-to-specific-bucket-only", "Principal": "*", "Action": [ "s3:GetObject" ], "Effect": "Allow", "Resource": ["arn:aws:s3:::prod-region-starport-layer-bucket/*"] } ] }`
	j07 = `{ "Statement": [{ "Sid": "AllowPull", "Principal": { "AWS": "arn:aws:iam::1234567890:role/role_name" }, "Action": [ "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:GetAuthorizationToken" ], "Effect": "Allow", "Resource": "*" }] }`
	j08 = `{ "Statement": [{ "Sid": "AllowAll", "Principal": "*", "Action": "*", "Effect": "Allow", "Resource": "*" }, { "Sid": "PreventDelete", "Principal": "*", "Action": "ecr:DeleteRepository", "Effect": "Deny", "Resource": "arn:aws:ecr:region:1234567890:repository/repository_name" } ] }`
	j09 = `{ "Statement": [{ "Sid": "AllowAll", "Effect": "Allow", "Principal": "*", "Action": "*", "Resource": "*" }, { "Sid": "PreventDelete", "Effect": "Deny", "Principal": "*", "Action": "ecr:DeleteRepository", "Resource": "arn:aws:ecr:region:1234567890:repository/repository_name" }, { "Sid": "AllowPull", "Effect": "Allow", "Principal": { "AWS": "arn:aws:iam::1234567890:role/role_name" }, "Action": [ "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:GetAuthorizationToken" ], "Resource": "*" } ] }`
)

func TestParseAccepts(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		kind  Kind
		doc   string
		stmts int
	}{
		{"J-01 identity", Identity, j01, 1},
		{"J-02 identity", Identity, j02, 1},
		{"J-03 key policy", Resource, j03, 1},
		{"J-04 single statement object", Identity, j04, 1},
		{"J-06 gateway endpoint policy", Endpoint, j06, 1},
		{"J-07 endpoint policy without Version", Endpoint, j07, 1},
		{"J-08 endpoint policy", Endpoint, j08, 2},
		{"J-09 endpoint policy", Endpoint, j09, 3},
		{"version 2008", Identity, `{"Version":"2008-10-17","Statement":[{"Effect":"Allow","Action":"ecr:*","Resource":"*"}]}`, 1},
		{"endpoint without principal", Endpoint, `{"Statement":{"Effect":"Allow","Action":"*","Resource":"*"}}`, 1},
		{"resource policy without Resource", Resource, `{"Version":"2012-10-17","Statement":[{"Sid":"a","Effect":"Allow","Principal":{"AWS":["111122223333","arn:aws:iam::111122223333:user/ci/bot","arn:aws:iam::111122223333:role/path/r","arn:aws:sts::111122223333:assumed-role/r/s"]},"Action":"ecr:BatchGetImage"}]}`, 1},
		{"service principal list", Resource, `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":["ecr.amazonaws.com","replication.ecr.amazonaws.com"]},"Action":"kms:Decrypt","Resource":"*"}]}`, 1},
		{"NotPrincipal with Deny", Resource, `{"Version":"2012-10-17","Statement":[{"Effect":"Deny","NotPrincipal":{"AWS":"111122223333"},"Action":"*","Resource":"*"}]}`, 1},
		{"numbers and booleans as condition values", Identity, `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"NumericLessThan":{"s3:max-keys":10},"Bool":{"aws:SecureTransport":true},"StringEquals":{"a:b":[1,true,"x"]}}}]}`, 1},
		{"empty Condition", Identity, `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*","Condition":{}}]}`, 1},
		{"every operator form", Identity, `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*","Condition":{
			"ForAllValues:StringEqualsIgnoreCaseIfExists":{"a:b":"x"},"ForAnyValue:StringNotLike":{"a:c":"x*"},
			"DateGreaterThanEquals":{"aws:CurrentTime":["2020-01-01","2020-01-01T00:00:00Z","2020-01-01T00:00:00.5+02:00","20200101T000000Z","1577836800"]},
			"IpAddress":{"aws:SourceIp":["10.0.0.0/8","192.0.2.1","2001:db8::/32","::1"]},
			"ArnLike":{"aws:SourceArn":["arn:aws:ecr:*:111122223333:repository/*","*"]},
			"BinaryEquals":{"a:bin":"QmluYXJ5"},"Null":{"a:n":"true"}}}]}`, 1},
		{"unicode sid and resource", Identity, `{"Version":"2012-10-17","Statement":[{"Sid":"répo","Effect":"Allow","Action":"*","Resource":"arn:aws:s3:::bücket/*"}]}`, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := mustParse(t, tc.kind, tc.doc)
			if got := len(p.Statements()); got != tc.stmts {
				t.Errorf("statements = %d, want %d", got, tc.stmts)
			}
			if !bytes.Equal(p.JSON(), []byte(tc.doc)) {
				t.Error("JSON() is not the document as written")
			}
			if p.Kind() != tc.kind {
				t.Errorf("Kind() = %v", p.Kind())
			}
		})
	}
}

func TestParseMetadata(t *testing.T) {
	t.Parallel()
	p := mustParse(t, Identity, j01)
	if p.Version() != Version2012 || p.ID() != "ecr-kms-permissions" {
		t.Errorf("Version/ID = %q/%q", p.Version(), p.ID())
	}
	s := p.Statements()
	if s[0].Sid() != "AllowAccessToRetireTheGrantsAssociatedWithTheKey" || s[0].Effect() != Allow || s[0].Index() != 0 {
		t.Errorf("statement = %+v", s[0])
	}
	// JSON returns a copy: changing it leaves the policy alone.
	b := p.JSON()
	b[0] = 'X'
	if p.JSON()[0] != '{' {
		t.Error("JSON() shares the policy's buffer")
	}
	// Parse copies its input.
	doc := []byte(j04)
	p4 := mustParse(t, Identity, string(doc))
	doc[0] = 'X'
	if p4.JSON()[0] != '{' {
		t.Error("Parse kept the caller's buffer")
	}
}

func TestParseRejects(t *testing.T) {
	t.Parallel()
	const v = `"Version":"2012-10-17",`
	allow := func(extra string) string {
		return `{` + v + `"Statement":[{"Effect":"Allow","Action":"ecr:*","Resource":"*"` + extra + `}]}`
	}
	cond := func(c string) string { return allow(`,"Condition":` + c) }
	res := func(stmt string) string { return `{` + v + `"Statement":[` + stmt + `]}` }
	tests := []struct {
		name  string
		kind  Kind
		doc   string
		field string
		msg   string // substring of the message
	}{
		// Document level.
		{"not JSON", Identity, `{"Version":`, "", "unexpected end"},
		{"syntax error", Identity, `{"Version" "x"}`, "", "syntax error"},
		{"trailing data", Identity, allow(``) + `{}`, "", "after the policy document"},
		{"invalid UTF-8", Identity, "{\"Version\":\"\xff\"}", "", "UTF-8"},
		{"empty", Identity, "  ", "", "empty"},
		{"array document", Identity, `[]`, "", "JSON object"},
		{"too large", Identity, `{"Id":"` + strings.Repeat("x", MaxSize) + `"}`, "", "larger than"},
		{"too deep", Identity, `{` + v + `"Statement":[{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"StringEquals":{"a:b":[[[["x"]]]]}}}]}`, "Statement[0].Condition.StringEquals.a:b[0][0][0]", "too deep"},
		{"unknown element", Identity, `{` + v + `"Statement":[],"Foo":1}`, "Foo", "unknown element"},
		{"duplicate key", Identity, `{"Version":"2012-10-17","Version":"2012-10-17","Statement":[]}`, "Version", "duplicate key"},
		{"bad version", Identity, `{"Version":"2020-01-01","Statement":[]}`, "Version", `must be "2012-10-17" or "2008-10-17"`},
		{"version not string", Identity, `{"Version":20121017,"Statement":[]}`, "Version", "must be"},
		{"missing version identity", Identity, `{"Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}`, "Version", "missing"},
		{"missing version resource", Resource, `{"Statement":[{"Effect":"Allow","Principal":"*","Action":"*"}]}`, "Version", "missing"},
		{"id not string", Identity, `{` + v + `"Id":1,"Statement":[]}`, "Id", "string"},
		{"missing statement", Identity, `{` + strings.TrimSuffix(v, ",") + `}`, "Statement", "missing"},
		{"empty statement list", Identity, `{` + v + `"Statement":[]}`, "Statement", "at least one"},
		{"statement string", Identity, `{` + v + `"Statement":"x"}`, "Statement", "object or a list"},
		{"statement element not object", Identity, `{` + v + `"Statement":["x"]}`, "Statement[0]", "object"},
		// Statement level.
		{"unknown statement element", Identity, allow(`,"Foo":1`), "Statement[0].Foo", "unknown element"},
		{"case matters in elements", Identity, allow(`,"condition":{}`), "Statement[0].condition", "unknown element"},
		{"duplicate statement element", Identity, allow(`,"Effect":"Deny"`), "Statement[0].Effect", "duplicate key"},
		{"missing effect", Identity, res(`{"Action":"*","Resource":"*"}`), "Statement[0].Effect", "missing"},
		{"bad effect", Identity, res(`{"Effect":"Allow","Action":"*","Resource":"*"},{"Effect":"allow","Action":"*","Resource":"*"}`), "Statement[1].Effect", `must be "Allow" or "Deny"`},
		{"bad effect single object", Identity, `{` + v + `"Statement":{"Effect":"Permit","Action":"*","Resource":"*"}}`, "Statement.Effect", `must be "Allow" or "Deny"`},
		{"sid not string", Identity, allow(`,"Sid":1`), "Statement[0].Sid", "string"},
		{"duplicate sid", Identity, res(`{"Sid":"A","Effect":"Allow","Action":"*","Resource":"*"},{"Sid":"A","Effect":"Deny","Action":"*","Resource":"*"}`), "Statement[1].Sid", "duplicate statement ID"},
		{"action and notaction", Identity, allow(`,"NotAction":"s3:*"`), "Statement[0]", "both Action and NotAction"},
		{"no action", Identity, res(`{"Effect":"Allow","Resource":"*"}`), "Statement[0].Action", "missing"},
		{"action without vendor", Identity, res(`{"Effect":"Allow","Action":"PutImage","Resource":"*"}`), "Statement[0].Action", "prefaced by a vendor"},
		{"action empty name", Identity, res(`{"Effect":"Allow","Action":"ecr:","Resource":"*"}`), "Statement[0].Action", "invalid action"},
		{"action bad character", Identity, res(`{"Effect":"Allow","Action":["ecr:Put Image"],"Resource":"*"}`), "Statement[0].Action[0]", "invalid character"},
		{"action list with number", Identity, res(`{"Effect":"Allow","Action":["ecr:PutImage",1],"Resource":"*"}`), "Statement[0].Action[1]", "must be a string"},
		{"action empty list", Identity, res(`{"Effect":"Allow","Action":[],"Resource":"*"}`), "Statement[0].Action", "empty list"},
		{"action object", Identity, res(`{"Effect":"Allow","Action":{},"Resource":"*"}`), "Statement[0].Action", "string or a list"},
		{"resource not ARN", Identity, res(`{"Effect":"Allow","Action":"*","Resource":"repository/app"}`), "Statement[0].Resource", `must be in ARN format or "*"`},
		{"notresource list bad", Identity, res(`{"Effect":"Allow","Action":"*","NotResource":["arn:aws:s3:::a","b"]}`), "Statement[0].NotResource[1]", "ARN format"},
		{"resource and notresource", Identity, allow(`,"NotResource":"*"`), "Statement[0]", "both Resource and NotResource"},
		{"missing resource identity", Identity, res(`{"Effect":"Allow","Action":"*"}`), "Statement[0].Resource", "missing"},
		{"missing resource endpoint", Endpoint, `{"Statement":[{"Effect":"Allow","Action":"*"}]}`, "Statement[0].Resource", "missing"},
		{"unterminated variable", Identity, res(`{"Effect":"Allow","Action":"*","Resource":"arn:aws:s3:::b/${aws:username"}`), "Statement[0].Resource", "not closed"},
		{"bad variable name", Identity, res(`{"Effect":"Allow","Action":"*","Resource":"arn:aws:s3:::b/${user name}"}`), "Statement[0].Resource", "invalid policy variable"},
		{"bad variable default", Identity, res(`{"Effect":"Allow","Action":"*","Resource":"arn:aws:s3:::b/${aws:username, x}"}`), "Statement[0].Resource", "single quotes"},
		{"too many variables", Identity, res(`{"Effect":"Allow","Action":"*","Resource":"arn:aws:s3:::b/` + strings.Repeat("${a:b}", maxVars+1) + `"}`), "Statement[0].Resource", "too many"},
		// Principals.
		{"principal in identity policy", Identity, allow(`,"Principal":"*"`), "Statement[0].Principal", "must not specify a principal"},
		{"notprincipal in identity policy", Identity, res(`{"Effect":"Deny","NotPrincipal":"*","Action":"*","Resource":"*"}`), "Statement[0].NotPrincipal", "must not specify a principal"},
		{"missing principal in resource policy", Resource, allow(``), "Statement[0].Principal", "missing"},
		{"principal and notprincipal", Resource, res(`{"Effect":"Deny","Principal":"*","NotPrincipal":"*","Action":"*"}`), "Statement[0]", "both Principal and NotPrincipal"},
		{"notprincipal with allow", Resource, res(`{"Effect":"Allow","NotPrincipal":{"AWS":"111122223333"},"Action":"*"}`), "Statement[0].NotPrincipal", `"Effect": "Deny"`},
		{"principal bad string", Resource, res(`{"Effect":"Allow","Principal":"111122223333","Action":"*"}`), "Statement[0].Principal", `must be "*" or an object`},
		{"principal empty object", Resource, res(`{"Effect":"Allow","Principal":{},"Action":"*"}`), "Statement[0].Principal", "at least one"},
		{"federated principal", Resource, res(`{"Effect":"Allow","Principal":{"Federated":"cognito-identity.amazonaws.com"},"Action":"*"}`), "Statement[0].Principal.Federated", "federated principals are not supported"},
		{"canonical user principal", Resource, res(`{"Effect":"Allow","Principal":{"CanonicalUser":"abc"},"Action":"*"}`), "Statement[0].Principal.CanonicalUser", "not supported"},
		{"unknown principal type", Resource, res(`{"Effect":"Allow","Principal":{"aws":"*"},"Action":"*"}`), "Statement[0].Principal.aws", "unknown principal type"},
		{"bad principal ARN", Resource, res(`{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:group/devs"},"Action":"*"}`), "Statement[0].Principal.AWS", "invalid AWS principal"},
		{"principal ARN without account", Resource, res(`{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam:::root"},"Action":"*"}`), "Statement[0].Principal.AWS", "invalid AWS principal"},
		{"partial wildcard principal", Resource, res(`{"Effect":"Allow","Principal":{"AWS":["111122223333","arn:aws:iam::111122223333:role/ci-*"]},"Action":"*"}`), "Statement[0].Principal.AWS[1]", "wildcards are not allowed"},
		{"bad assumed-role ARN", Resource, res(`{"Effect":"Allow","Principal":{"AWS":"arn:aws:sts::111122223333:assumed-role/onlyrole"},"Action":"*"}`), "Statement[0].Principal.AWS", "invalid AWS principal"},
		{"bad service principal", Resource, res(`{"Effect":"Allow","Principal":{"Service":"ECR"},"Action":"*"}`), "Statement[0].Principal.Service", "invalid service principal"},
		// Conditions.
		{"condition not object", Identity, cond(`[]`), "Statement[0].Condition", "must be an object"},
		{"unknown operator", Identity, cond(`{"StringEqual":{"a:b":"x"}}`), "Statement[0].Condition.StringEqual", "unknown condition operator"},
		{"operator case matters", Identity, cond(`{"stringequals":{"a:b":"x"}}`), "Statement[0].Condition.stringequals", "unknown condition operator"},
		{"bad set prefix", Identity, cond(`{"ForSomeValues:StringEquals":{"a:b":"x"}}`), "Statement[0].Condition.ForSomeValues:StringEquals", "unknown condition operator"},
		{"null with IfExists", Identity, cond(`{"NullIfExists":{"a:b":"true"}}`), "Statement[0].Condition.NullIfExists", "Null operator"},
		{"null with set prefix", Identity, cond(`{"ForAnyValue:Null":{"a:b":"true"}}`), "Statement[0].Condition.ForAnyValue:Null", "Null operator"},
		{"operator block not object", Identity, cond(`{"StringEquals":"x"}`), "Statement[0].Condition.StringEquals", "must be an object"},
		{"operator block empty", Identity, cond(`{"StringEquals":{}}`), "Statement[0].Condition.StringEquals", "at least one condition key"},
		{"key without prefix", Identity, cond(`{"StringEquals":{"SourceIp":"x"}}`), "Statement[0].Condition.StringEquals.SourceIp", "invalid condition key"},
		{"null value", Identity, cond(`{"StringEquals":{"a:b":null}}`), "Statement[0].Condition.StringEquals.a:b", "null"},
		{"empty value list", Identity, cond(`{"StringEquals":{"a:b":[]}}`), "Statement[0].Condition.StringEquals.a:b", "empty list"},
		{"object value", Identity, cond(`{"StringEquals":{"a:b":{"c":"d"}}}`), "Statement[0].Condition.StringEquals.a:b", "an object"},
		{"bad CIDR", Identity, cond(`{"IpAddress":{"aws:SourceIp":["10.0.0.0/8","10.0.0.0/33"]}}`), "Statement[0].Condition.IpAddress.aws:SourceIp[1]", "not an IP address or CIDR"},
		{"bad IP", Identity, cond(`{"NotIpAddress":{"aws:SourceIp":"10.0.0.256"}}`), "Statement[0].Condition.NotIpAddress.aws:SourceIp", "not an IP"},
		{"IP with zone", Identity, cond(`{"IpAddress":{"aws:SourceIp":"fe80::1%eth0"}}`), "Statement[0].Condition.IpAddress.aws:SourceIp", "not an IP"},
		{"bad date", Identity, cond(`{"DateLessThan":{"aws:CurrentTime":"2020-13-01T00:00:00Z"}}`), "Statement[0].Condition.DateLessThan.aws:CurrentTime", "not an ISO 8601"},
		{"bad date shape", Identity, cond(`{"DateLessThan":{"aws:CurrentTime":"yesterday"}}`), "Statement[0].Condition.DateLessThan.aws:CurrentTime", "not an ISO 8601"},
		{"bad number", Identity, cond(`{"NumericEquals":{"a:n":"ten"}}`), "Statement[0].Condition.NumericEquals.a:n", "not a number"},
		{"NaN", Identity, cond(`{"NumericEquals":{"a:n":"NaN"}}`), "Statement[0].Condition.NumericEquals.a:n", "not a number"},
		{"hex number", Identity, cond(`{"NumericEquals":{"a:n":"0x10"}}`), "Statement[0].Condition.NumericEquals.a:n", "not a number"},
		{"infinite number", Identity, cond(`{"NumericEquals":{"a:n":"1e999"}}`), "Statement[0].Condition.NumericEquals.a:n", "not a number"},
		{"bad bool", Identity, cond(`{"Bool":{"aws:SecureTransport":"yes"}}`), "Statement[0].Condition.Bool.aws:SecureTransport", `"true" or "false"`},
		{"bad null value", Identity, cond(`{"Null":{"a:b":1}}`), "Statement[0].Condition.Null.a:b", `"true" or "false"`},
		{"bad base64", Identity, cond(`{"BinaryEquals":{"a:b":"***"}}`), "Statement[0].Condition.BinaryEquals.a:b", "base64"},
		{"arn value not ARN", Identity, cond(`{"ArnLike":{"aws:SourceArn":"repository/*"}}`), "Statement[0].Condition.ArnLike.aws:SourceArn", "six colon-separated parts"},
		{"arn value too few parts", Identity, cond(`{"ArnEquals":{"aws:SourceArn":"arn:aws:ecr:*"}}`), "Statement[0].Condition.ArnEquals.aws:SourceArn", "six colon-separated parts"},
		{"arn value wrong scheme", Identity, cond(`{"ArnEquals":{"aws:SourceArn":"urn:aws:ecr:r:1:x"}}`), "Statement[0].Condition.ArnEquals.aws:SourceArn", `begin with "arn:"`},
		{"variable in string condition", Identity, cond(`{"StringEquals":{"a:b":"${oops"}}`), "Statement[0].Condition.StringEquals.a:b", "not closed"},
		{"kind unknown", Kind(0), allow(``), "", "unknown policy kind"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p, err := Parse([]byte(tc.doc), tc.kind)
			if err == nil {
				t.Fatalf("Parse accepted %s", tc.doc)
			}
			if p != nil {
				t.Error("Parse returned a policy with its error")
			}
			pe := asError(t, err)
			if pe.Field != tc.field {
				t.Errorf("Field = %q, want %q (error %q)", pe.Field, tc.field, err)
			}
			if !strings.Contains(pe.Msg, tc.msg) {
				t.Errorf("Msg = %q, want it to contain %q", pe.Msg, tc.msg)
			}
		})
	}
}

func TestErrorText(t *testing.T) {
	t.Parallel()
	_, err := Parse([]byte(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"},{"Effect":"Maybe","Action":"*","Resource":"*"}]}`), Identity)
	if got, want := err.Error(), `Statement[1].Effect: must be "Allow" or "Deny"`; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	if got := (&Error{Msg: "policy document is empty"}).Error(); got != "policy document is empty" {
		t.Errorf("Error() without field = %q", got)
	}
}

func TestVersion2008HasNoVariables(t *testing.T) {
	t.Parallel()
	p := mustParse(t, Identity, `{"Version":"2008-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/${aws:username}/*"}]}`)
	u := user(acct, "alice")
	if e, _ := p.Evaluate(req(u, "s3:GetObject", "arn:aws:s3:::b/alice/x")); e != NoMatch {
		t.Errorf("2008-10-17 substituted a variable: %v", e)
	}
	if e, _ := p.Evaluate(req(u, "s3:GetObject", "arn:aws:s3:::b/${aws:username}/x")); e != Allow {
		t.Errorf("2008-10-17 did not treat ${aws:username} literally: %v", e)
	}
}

func TestParseLargeObjectDuplicate(t *testing.T) {
	t.Parallel()
	var b strings.Builder
	b.WriteString(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"StringEquals":{`)
	for i := 0; i < 5000; i++ {
		b.WriteString(`"a:k` + strconv.Itoa(i) + `":"v",`)
	}
	b.WriteString(`"a:k42":"v"}}}]}`)
	_, err := Parse([]byte(b.String()), Identity)
	if pe := asError(t, err); pe.Field != "Statement[0].Condition.StringEquals.a:k42" || pe.Msg != "duplicate key" {
		t.Errorf("got %v", err)
	}
}

// UsesContext is true exactly when a statement can look up a condition
// key: a Condition (even one on a principal key) or a policy variable in
// Resource or NotResource. "${...}" in a 2008-10-17 document is literal.
func TestUsesContext(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		kind Kind
		doc  string
		want bool
	}{
		{"J-01 identity", Identity, j01, false},
		{"J-09 endpoint policy", Endpoint, j09, false},
		{"resource policy naming principals", Resource, `{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Principal":{"AWS":"arn:aws:iam::111122223333:user/a"},"Action":"ecr:*"}]}`, false},
		{"condition", Identity, `{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Action":"*","Resource":"*","Condition":{"NotIpAddress":{"aws:SourceIp":"10.0.0.0/8"}}}]}`, true},
		{"condition in the second statement", Identity, `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"},{"Effect":"Deny","Action":"*","Resource":"*","Condition":{"Bool":{"aws:SecureTransport":"false"}}}]}`, true},
		{"empty Condition", Identity, `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*","Condition":{}}]}`, false},
		{"variable in Resource", Identity, `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"arn:aws:ecr:${aws:RequestedRegion}:*:repository/*"}]}`, true},
		{"variable in NotResource", Identity, `{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Action":"*","NotResource":"arn:aws:ecr:*:*:repository/${aws:username}/*"}]}`, true},
		{"2008 has no variables", Identity, `{"Version":"2008-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"arn:aws:ecr:*:*:repository/${aws:username}"}]}`, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := mustParse(t, tc.kind, tc.doc).UsesContext(); got != tc.want {
				t.Errorf("UsesContext = %v, want %v", got, tc.want)
			}
		})
	}
}
