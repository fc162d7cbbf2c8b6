package iamapi

import (
	"encoding/xml"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"
)

func TestQueryLists(t *testing.T) {
	t.Parallel()
	q, err := parseQuery("Names.member.2=b&Names.member.1=a&Names.member.10=c" +
		"&Tags.member.1.Key=k1&Tags.member.1.Value=&Tags.member.2.Key=k2&Tags.member.2.Value=v2" +
		"&Empty=&PolicyArns.member.1.arn=arn%3Ax")
	if err != nil {
		t.Fatal(err)
	}
	names, err := q.list("Names")
	if err != nil || !slices.Equal(names, []string{"a", "b", "c"}) {
		t.Errorf("list = %v, %v", names, err)
	}
	if empty, err := q.list("Empty"); err != nil || len(empty) != 0 {
		t.Errorf("empty list = %v, %v", empty, err)
	}
	tags, err := q.tags("Tags")
	if err != nil || !maps.Equal(tags, map[string]string{"k1": "", "k2": "v2"}) {
		t.Errorf("tags = %v, %v", tags, err)
	}
	arns, err := q.structs("PolicyArns", "arn")
	if err != nil || len(arns) != 1 || arns[0]["arn"] != "arn:x" {
		t.Errorf("structs = %v, %v", arns, err)
	}
	if !q.has("PolicyArns") || q.has("Policy") || !q.has("Empty") {
		t.Error("has")
	}
	if _, err := q.structs("Names", "x"); err == nil {
		t.Error("a scalar list decoded as structures")
	}
	if _, err := q.list("Tags"); err == nil {
		t.Error("a structure list decoded as scalars")
	}
}

func TestQueryErrors(t *testing.T) {
	t.Parallel()
	tests := []struct{ name, raw, want string }{
		{"zero index", "L.member.0=a", "list index"},
		{"leading zero", "L.member.01=a", "list index"},
		{"plus", "L.member.+1=a", "list index"},
		{"huge index", "L.member.1001=a", "list index"},
		{"not a number", "L.member.x=a", "list index"},
		{"not member", "L.item.1=a", "not recognized"},
		{"scalar with value", "L=a", "must be a list"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			q, err := parseQuery(tc.raw)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := q.list("L"); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("list(%q) = %v, want %q", tc.raw, err, tc.want)
			}
		})
	}
	var many strings.Builder
	for i := 1; i <= maxTags+1; i++ {
		many.WriteString("&T.member." + strconv.Itoa(i) + ".Key=k" + strconv.Itoa(i) + "&T.member." + strconv.Itoa(i) + ".Value=v")
	}
	q, _ := parseQuery(many.String()[1:])
	if _, err := q.tags("T"); err == nil || !strings.Contains(err.Error(), "LimitExceeded") {
		t.Errorf("51 tags: %v", err)
	}
	q, _ = parseQuery("T.member.1.Key=k")
	if _, err := q.tags("T"); err == nil {
		t.Error("a tag without Value was accepted")
	}
	q, _ = parseQuery("T.member.1.Key=" + strings.Repeat("k", 129) + "&T.member.1.Value=v")
	if _, err := q.tags("T"); err == nil {
		t.Error("a 129-character tag key was accepted")
	}
}

func TestPaginate(t *testing.T) {
	t.Parallel()
	items := []string{"d", "a", "c", "b", "e"}
	var all []string
	after := ""
	for range 10 {
		page, marker, more := paginate(slices.Clone(items), func(s string) string { return s }, after, 2)
		all = append(all, page...)
		if !more {
			break
		}
		q, _ := parseQuery("Marker=" + marker)
		var err error
		if after, _, err = q.pageParams(); err != nil {
			t.Fatal(err)
		}
	}
	if !slices.Equal(all, []string{"a", "b", "c", "d", "e"}) {
		t.Errorf("pages = %v", all)
	}
	// A marker whose key is gone still continues after it.
	page, _, _ := paginate([]string{"a", "c"}, func(s string) string { return s }, "b", 10)
	if !slices.Equal(page, []string{"c"}) {
		t.Errorf("after a vanished key: %v", page)
	}
}

func TestEncodeResponseEscapes(t *testing.T) {
	t.Parallel()
	body, err := encodeResponse("ns", "GetUser", "id<&>", userResult{xmlUser{UserName: "a<b>&\"c"}})
	if err != nil {
		t.Fatal(err)
	}
	var v struct {
		Name string `xml:"GetUserResult>User>UserName"`
		ID   string `xml:"ResponseMetadata>RequestId"`
	}
	if err := xml.Unmarshal(body, &v); err != nil || v.Name != "a<b>&\"c" || v.ID != "id<&>" {
		t.Errorf("round trip = %+v, %v\n%s", v, err, body)
	}
	if got := urlEncode(`{"a": "b+c/d"}`); got != "%7B%22a%22%3A%20%22b%2Bc%2Fd%22%7D" {
		t.Errorf("urlEncode = %s", got)
	}
}

// FuzzQueryDecode: the form, list, structure, tag and paging decoders
// never panic on arbitrary input, and a request through the handler's
// reader either decodes or fails with a Query error.
func FuzzQueryDecode(f *testing.F) {
	for _, s := range []string{
		"Action=CreateUser&Version=2010-05-08&UserName=a&Tags.member.1.Key=k&Tags.member.1.Value=v",
		"Tags.member.1.Key=k&Tags.member.1000.Value=v&Tags=",
		"L.member.1=a&L.member.2=b&L=",
		"PolicyArns.member.1.arn=x&Marker=YQ&MaxItems=5&OnlyAttached=true",
		"a=%zz&b", "L.member.=1", "L.member.1.=x", "T.member.1..Key=k", "=&=&", "Marker=%FF%FE",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(raw))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		q, err := readQuery(httptest.NewRecorder(), r)
		if err != nil {
			if _, ok := err.(*apiError); !ok {
				t.Fatalf("readQuery error %T is not a Query error", err)
			}
			return
		}
		for _, name := range []string{"L", "Tags", "T", "PolicyArns", "Names", ""} {
			_, _ = q.list(name)
			_, _ = q.structs(name, "Key", "Value", "arn")
			_, _ = q.tags(name)
			_ = q.has(name)
		}
		_, _, _ = q.int("MaxItems", 1, 1000)
		_, _ = q.bool("OnlyAttached")
		_ = q.required("Action", "UserName")
		_ = auditParams(q)
		if after, maxItems, err := q.pageParams(); err == nil {
			page, _, _ := paginate([]string{"a", "b", "c"}, func(s string) string { return s }, after, maxItems)
			if len(page) > maxItems {
				t.Fatalf("page of %d > %d", len(page), maxItems)
			}
		}
		for k := range q.v {
			_ = printable(k)
		}
	})
}
