package policy

import (
	"strconv"
	"testing"
)

// condDoc is an identity policy allowing everything under one condition.
func condDoc(op, key, values string) string {
	return `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*","Condition":{` +
		strconv.Quote(op) + `:{` + strconv.Quote(key) + `:` + values + `}}}]}`
}

// missing marks a context key that is absent from the request.
var missing []string

func TestConditionOperators(t *testing.T) {
	t.Parallel()
	const (
		k    = "ecr:ResourceTag/env"
		date = `"2020-01-01T00:00:00Z"`
	)
	tests := []struct {
		name   string
		op     string
		values string   // JSON
		ctx    []string // nil: key absent
		want   bool
	}{
		// String.
		{"StringEquals match", "StringEquals", `"prod"`, []string{"prod"}, true},
		{"StringEquals case-sensitive", "StringEquals", `"prod"`, []string{"Prod"}, false},
		{"StringEquals values ORed", "StringEquals", `["dev","prod"]`, []string{"prod"}, true},
		{"StringEquals missing key", "StringEquals", `"prod"`, missing, false},
		{"StringEquals star is literal", "StringEquals", `"*"`, []string{"prod"}, false},
		{"StringEquals literal star", "StringEquals", `"*"`, []string{"*"}, true},
		{"StringEquals number value", "StringEquals", `10`, []string{"10"}, true},
		{"StringEquals bool value", "StringEquals", `true`, []string{"true"}, true},
		{"StringEqualsIfExists missing", "StringEqualsIfExists", `"prod"`, missing, true},
		{"StringEqualsIfExists mismatch", "StringEqualsIfExists", `"prod"`, []string{"dev"}, false},
		{"StringNotEquals differs", "StringNotEquals", `"prod"`, []string{"dev"}, true},
		{"StringNotEquals equal", "StringNotEquals", `"prod"`, []string{"prod"}, false},
		{"StringNotEquals none of the values", "StringNotEquals", `["prod","dev"]`, []string{"dev"}, false},
		{"StringNotEquals missing key is true", "StringNotEquals", `"prod"`, missing, true},
		{"StringNotEqualsIfExists missing", "StringNotEqualsIfExists", `"prod"`, missing, true},
		{"StringEqualsIgnoreCase match", "StringEqualsIgnoreCase", `"PROD"`, []string{"prod"}, true},
		{"StringEqualsIgnoreCase unicode fold", "StringEqualsIgnoreCase", `"ÉTÉ"`, []string{"été"}, true},
		{"StringEqualsIgnoreCase differs", "StringEqualsIgnoreCase", `"PROD"`, []string{"dev"}, false},
		{"StringEqualsIgnoreCase missing", "StringEqualsIgnoreCase", `"PROD"`, missing, false},
		{"StringNotEqualsIgnoreCase equal", "StringNotEqualsIgnoreCase", `"PROD"`, []string{"prod"}, false},
		{"StringNotEqualsIgnoreCase differs", "StringNotEqualsIgnoreCase", `"PROD"`, []string{"dev"}, true},
		{"StringNotEqualsIgnoreCase missing", "StringNotEqualsIgnoreCase", `"PROD"`, missing, true},
		{"StringLike star", "StringLike", `"team-*"`, []string{"team-a"}, true},
		{"StringLike question", "StringLike", `"te?m"`, []string{"team"}, true},
		{"StringLike case-sensitive", "StringLike", `"team-*"`, []string{"Team-a"}, false},
		{"StringLike no match", "StringLike", `"team-*"`, []string{"ops"}, false},
		{"StringLike missing", "StringLike", `"*"`, missing, false},
		{"StringLikeIfExists missing", "StringLikeIfExists", `"x*"`, missing, true},
		{"StringNotLike no match", "StringNotLike", `"team-*"`, []string{"ops"}, true},
		{"StringNotLike match", "StringNotLike", `"team-*"`, []string{"team-a"}, false},
		{"StringNotLike missing", "StringNotLike", `"team-*"`, missing, true},
		// Numeric.
		{"NumericEquals", "NumericEquals", `10`, []string{"10"}, true},
		{"NumericEquals decimal form", "NumericEquals", `"10"`, []string{"10.0"}, true},
		{"NumericEquals differs", "NumericEquals", `10`, []string{"11"}, false},
		{"NumericEquals not a number", "NumericEquals", `10`, []string{"ten"}, false},
		{"NumericEquals missing", "NumericEquals", `10`, missing, false},
		{"NumericNotEquals differs", "NumericNotEquals", `10`, []string{"11"}, true},
		{"NumericNotEquals equal", "NumericNotEquals", `10`, []string{"10"}, false},
		{"NumericNotEquals missing", "NumericNotEquals", `10`, missing, true},
		{"NumericLessThan below", "NumericLessThan", `10`, []string{"9.5"}, true},
		{"NumericLessThan equal", "NumericLessThan", `10`, []string{"10"}, false},
		{"NumericLessThanEquals equal", "NumericLessThanEquals", `10`, []string{"10"}, true},
		{"NumericLessThanEquals above", "NumericLessThanEquals", `10`, []string{"11"}, false},
		{"NumericGreaterThan above", "NumericGreaterThan", `10`, []string{"11"}, true},
		{"NumericGreaterThan equal", "NumericGreaterThan", `10`, []string{"10"}, false},
		{"NumericGreaterThanEquals equal", "NumericGreaterThanEquals", `-1.5`, []string{"-1.5"}, true},
		{"NumericGreaterThanEquals below", "NumericGreaterThanEquals", `10`, []string{"9"}, false},
		{"NumericLessThanIfExists missing", "NumericLessThanIfExists", `10`, missing, true},
		{"NumericLessThan missing", "NumericLessThan", `10`, missing, false},
		// Date.
		{"DateEquals epoch", "DateEquals", date, []string{"1577836800"}, true},
		{"DateEquals other zone", "DateEquals", date, []string{"2020-01-01T01:00:00+01:00"}, true},
		{"DateEquals basic format", "DateEquals", date, []string{"20200101T000000Z"}, true},
		{"DateEquals date only", "DateEquals", `"2020-01-01"`, []string{"2020-01-01T00:00:00Z"}, true},
		{"DateEquals differs", "DateEquals", date, []string{"2020-01-01T00:00:01Z"}, false},
		{"DateEquals not a date", "DateEquals", date, []string{"soon"}, false},
		{"DateNotEquals differs", "DateNotEquals", date, []string{"2021-01-01T00:00:00Z"}, true},
		{"DateNotEquals equal", "DateNotEquals", date, []string{"2020-01-01T00:00:00Z"}, false},
		{"DateNotEquals missing", "DateNotEquals", date, missing, true},
		{"DateLessThan before", "DateLessThan", date, []string{"2019-12-31T23:59:59Z"}, true},
		{"DateLessThan equal", "DateLessThan", date, []string{"2020-01-01T00:00:00Z"}, false},
		{"DateLessThan fraction", "DateLessThan", date, []string{"2019-12-31T23:59:59.999Z"}, true},
		{"DateLessThanEquals equal", "DateLessThanEquals", date, []string{"1577836800"}, true},
		{"DateGreaterThan after", "DateGreaterThan", date, []string{"2020-01-02"}, true},
		{"DateGreaterThan before", "DateGreaterThan", date, []string{"2019-01-02"}, false},
		{"DateGreaterThanEquals equal", "DateGreaterThanEquals", `1577836800`, []string{"2020-01-01T00:00:00Z"}, true},
		{"DateGreaterThanEquals before", "DateGreaterThanEquals", date, []string{"2019-12-31T23:59:59Z"}, false},
		{"DateGreaterThan missing", "DateGreaterThan", date, missing, false},
		{"DateGreaterThanIfExists missing", "DateGreaterThanIfExists", date, missing, true},
		// Bool.
		{"Bool true", "Bool", `"true"`, []string{"true"}, true},
		{"Bool JSON true", "Bool", `true`, []string{"true"}, true},
		{"Bool case-insensitive", "Bool", `"True"`, []string{"TRUE"}, true},
		{"Bool false vs true", "Bool", `"false"`, []string{"true"}, false},
		{"Bool not a bool", "Bool", `"true"`, []string{"yes"}, false},
		{"Bool missing", "Bool", `"false"`, missing, false},
		{"BoolIfExists missing", "BoolIfExists", `"false"`, missing, true},
		// Binary.
		{"BinaryEquals", "BinaryEquals", `"QmluYXJ5"`, []string{"QmluYXJ5"}, true},
		{"BinaryEquals differs", "BinaryEquals", `"QmluYXJ5"`, []string{"QmluYXJy"}, false},
		{"BinaryEquals not base64", "BinaryEquals", `"QmluYXJ5"`, []string{"!!"}, false},
		{"BinaryEquals missing", "BinaryEquals", `"QmluYXJ5"`, missing, false},
		{"BinaryEqualsIfExists missing", "BinaryEqualsIfExists", `"QmluYXJ5"`, missing, true},
		// IP.
		{"IpAddress in CIDR", "IpAddress", `"10.0.0.0/8"`, []string{"10.1.2.3"}, true},
		{"IpAddress outside", "IpAddress", `"10.0.0.0/8"`, []string{"11.0.0.1"}, false},
		{"IpAddress bare IP", "IpAddress", `"192.0.2.1"`, []string{"192.0.2.1"}, true},
		{"IpAddress bare IP other", "IpAddress", `"192.0.2.1"`, []string{"192.0.2.2"}, false},
		{"IpAddress host bits masked", "IpAddress", `"10.9.9.9/8"`, []string{"10.1.2.3"}, true},
		{"IpAddress IPv6", "IpAddress", `"2001:db8::/32"`, []string{"2001:db8::1"}, true},
		{"IpAddress IPv6 outside", "IpAddress", `"2001:db8::/32"`, []string{"2001:db9::1"}, false},
		{"IpAddress IPv4-mapped caller", "IpAddress", `"10.0.0.0/8"`, []string{"::ffff:10.1.2.3"}, true},
		{"IpAddress v6 caller v4 block", "IpAddress", `"10.0.0.0/8"`, []string{"2001:db8::1"}, false},
		{"IpAddress list ORed", "IpAddress", `["192.0.2.0/24","203.0.113.0/24"]`, []string{"203.0.113.9"}, true},
		{"IpAddress unparsable caller", "IpAddress", `"10.0.0.0/8"`, []string{"10.1.2"}, false},
		{"IpAddress missing", "IpAddress", `"10.0.0.0/8"`, missing, false},
		{"IpAddressIfExists missing", "IpAddressIfExists", `"10.0.0.0/8"`, missing, true},
		{"NotIpAddress outside", "NotIpAddress", `"10.0.0.0/8"`, []string{"11.0.0.1"}, true},
		{"NotIpAddress inside", "NotIpAddress", `"10.0.0.0/8"`, []string{"10.0.0.1"}, false},
		{"NotIpAddress missing", "NotIpAddress", `"10.0.0.0/8"`, missing, true},
		// ARN.
		{"ArnLike wildcard region", "ArnLike", `"arn:aws:ecr:*:111122223333:repository/*"`, []string{repoARN}, true},
		{"ArnLike other account", "ArnLike", `"arn:aws:ecr:*:444455556666:repository/*"`, []string{repoARN}, false},
		{"ArnLike partial component", "ArnLike", `"arn:aws:ecr:us-*:111122223333:repository/ap?"`, []string{repoARN}, true},
		{"ArnLike component does not spill", "ArnLike", `"arn:*:ecr:us-west-2:111122223333:x"`, []string{"arn:aws:foo:ecr:us-west-2:111122223333:x"}, false},
		{"ArnLike resource with colons", "ArnLike", `"arn:aws:logs:us-west-2:1:log-group:g:*"`, []string{"arn:aws:logs:us-west-2:1:log-group:g:log-stream:s"}, true},
		{"ArnLike not an ARN", "ArnLike", `"arn:aws:ecr:*:*:*"`, []string{"repository/app"}, false},
		{"ArnLike star value", "ArnLike", `"*"`, []string{"anything"}, true},
		{"ArnLike case-sensitive", "ArnLike", `"arn:aws:ecr:*:111122223333:repository/APP"`, []string{repoARN}, false},
		{"ArnEquals exact", "ArnEquals", strconv.Quote(repoARN), []string{repoARN}, true},
		{"ArnEquals wildcard like ArnLike", "ArnEquals", `"arn:aws:ecr:us-west-2:111122223333:repository/*"`, []string{repoARN}, true},
		{"ArnEquals missing", "ArnEquals", strconv.Quote(repoARN), missing, false},
		{"ArnEqualsIfExists missing", "ArnEqualsIfExists", strconv.Quote(repoARN), missing, true},
		{"ArnNotEquals other", "ArnNotEquals", strconv.Quote(repoARN), []string{keyARN}, true},
		{"ArnNotEquals same", "ArnNotEquals", strconv.Quote(repoARN), []string{repoARN}, false},
		{"ArnNotLike other", "ArnNotLike", `"arn:aws:ecr:*:*:repository/*"`, []string{keyARN}, true},
		{"ArnNotLike match", "ArnNotLike", `"arn:aws:ecr:*:*:repository/*"`, []string{repoARN}, false},
		{"ArnNotLike missing", "ArnNotLike", `"arn:aws:ecr:*:*:repository/*"`, missing, true},
		// Null.
		{"Null true key absent", "Null", `"true"`, missing, true},
		{"Null true key present", "Null", `"true"`, []string{"x"}, false},
		{"Null false key present", "Null", `false`, []string{"x"}, true},
		{"Null false key absent", "Null", `"false"`, missing, false},
		{"Null true key empty", "Null", `"true"`, []string{}, true},
		// Set operators.
		{"ForAnyValue one matches", "ForAnyValue:StringEquals", `["a","b"]`, []string{"c", "b"}, true},
		{"ForAnyValue none matches", "ForAnyValue:StringEquals", `["a","b"]`, []string{"c", "d"}, false},
		{"ForAnyValue missing", "ForAnyValue:StringEquals", `["a"]`, missing, false},
		{"ForAnyValue empty", "ForAnyValue:StringEquals", `["a"]`, []string{}, false},
		{"ForAnyValue IfExists missing", "ForAnyValue:StringEqualsIfExists", `["a"]`, missing, true},
		{"ForAnyValue negated", "ForAnyValue:StringNotEquals", `["a"]`, []string{"a", "b"}, true},
		{"ForAnyValue negated all equal", "ForAnyValue:StringNotEquals", `["a"]`, []string{"a"}, false},
		{"ForAnyValue StringLike", "ForAnyValue:StringLike", `["team-*"]`, []string{"ops", "team-x"}, true},
		{"ForAllValues all match", "ForAllValues:StringEquals", `["a","b"]`, []string{"a", "b"}, true},
		{"ForAllValues one outside", "ForAllValues:StringEquals", `["a","b"]`, []string{"a", "c"}, false},
		{"ForAllValues missing is true", "ForAllValues:StringEquals", `["a"]`, missing, true},
		{"ForAllValues empty is true", "ForAllValues:StringEquals", `["a"]`, []string{}, true},
		{"ForAllValues StringLike", "ForAllValues:StringLike", `["team-*"]`, []string{"team-a", "team-b"}, true},
		{"ForAllValues negated", "ForAllValues:StringNotEquals", `["a"]`, []string{"b", "c"}, true},
		{"ForAllValues negated one equal", "ForAllValues:StringNotEquals", `["a"]`, []string{"a", "b"}, false},
		{"ForAllValues numeric", "ForAllValues:NumericLessThan", `10`, []string{"1", "2"}, true},
		{"ForAllValues IpAddress", "ForAllValues:IpAddress", `"10.0.0.0/8"`, []string{"10.0.0.1", "192.0.2.1"}, false},
		{"ForAnyValue ArnLike", "ForAnyValue:ArnLike", `"arn:aws:ecr:*:*:repository/*"`, []string{keyARN, repoARN}, true},
		// A multivalued key without a set operator.
		{"multivalued StringEquals", "StringEquals", `"a"`, []string{"b", "a"}, true},
		{"multivalued StringNotEquals", "StringNotEquals", `"a"`, []string{"b", "a"}, false},
		{"empty values StringEquals", "StringEquals", `"a"`, []string{}, false},
		{"empty values StringNotEquals", "StringNotEquals", `"a"`, []string{}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := mustParse(t, Identity, condDoc(tc.op, k, tc.values))
			r := req(user(acct, "alice"), "ecr:PutImage", repoARN)
			if tc.ctx != nil {
				r.Context.Set(k, tc.ctx...)
			}
			got, _ := p.Evaluate(r)
			if (got == Allow) != tc.want {
				t.Errorf("%s %s with %q: got %v, want condition %v", tc.op, tc.values, tc.ctx, got, tc.want)
			}
		})
	}
}

func TestConditionBlocks(t *testing.T) {
	t.Parallel()
	doc := `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*","Condition":{
		"IpAddress":{"aws:SourceIP":"10.0.0.0/8"},
		"StringEquals":{"aws:SourceVpce":["vpce-1","vpce-2"],"aws:PrincipalTag/team":"a"}}}]}`
	p := mustParse(t, Identity, doc)
	u := user(acct, "alice")
	tests := []struct {
		name string
		ctx  Context
		want Effect
	}{
		{"all hold", NewContext(map[string][]string{"AWS:SourceIp": {"10.0.0.1"}, "aws:SOURCEVPCE": {"vpce-2"}, "aws:PrincipalTag/team": {"a"}}), Allow},
		{"operators ANDed", NewContext(map[string][]string{"aws:SourceIp": {"11.0.0.1"}, "aws:SourceVpce": {"vpce-2"}, "aws:PrincipalTag/team": {"a"}}), NoMatch},
		{"keys ANDed", NewContext(map[string][]string{"aws:SourceIp": {"10.0.0.1"}, "aws:SourceVpce": {"vpce-2"}, "aws:PrincipalTag/team": {"b"}}), NoMatch},
		{"one key missing", NewContext(map[string][]string{"aws:SourceIp": {"10.0.0.1"}, "aws:SourceVpce": {"vpce-1"}}), NoMatch},
		{"map literal with mixed-case keys", Context{"AWS:SourceIp": {"10.0.0.1"}, "aws:SourceVpce": {"vpce-1"}, "aws:principaltag/TEAM": {"a"}}, Allow},
		{"nil context", nil, NoMatch},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := &Request{Principal: u, Action: "ecr:PutImage", Resource: repoARN, Context: tc.ctx}
			if got, _ := p.Evaluate(r); got != tc.want {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestContextHelpers(t *testing.T) {
	t.Parallel()
	c := NewContext(map[string][]string{"aws:SourceIp": {"10.0.0.1"}, "AWS:SOURCEIP": {"10.0.0.2"}})
	if v, _ := c.Get("aws:sourceip"); len(v) != 2 {
		t.Errorf("NewContext did not merge keys differing in case: %q", v)
	}
	c.Set("Kms:ViaService", "ecr.us-west-2.amazonaws.com")
	if _, ok := c["kms:viaservice"]; !ok {
		t.Error("Set did not lower-case the key")
	}
	c.Add("kms:VIASERVICE", "x")
	if v, ok := c.Get("KMS:ViaService"); !ok || len(v) != 2 {
		t.Errorf("Get = %q, %v", v, ok)
	}
	if _, ok := c.Get("aws:nope"); ok {
		t.Error("Get found a missing key")
	}
}
