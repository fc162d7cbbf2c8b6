package iamapi

import (
	"bytes"
	"cmp"
	"compress/gzip"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// botocoreModel is the part of a botocore service-2.json these tests read.
type botocoreModel struct {
	Metadata struct {
		APIVersion   string `json:"apiVersion"`
		XMLNamespace string `json:"xmlNamespace"`
		Protocol     string `json:"protocol"`
	} `json:"metadata"`
	Operations map[string]struct {
		Input  *struct{ Shape string } `json:"input"`
		Output *struct {
			Shape         string `json:"shape"`
			ResultWrapper string `json:"resultWrapper"`
		} `json:"output"`
	} `json:"operations"`
	Shapes map[string]modelShape `json:"shapes"`
}

type modelShape struct {
	Type      string               `json:"type"`
	Required  []string             `json:"required"`
	Members   map[string]memberRef `json:"members"`
	Member    *memberRef           `json:"member"`
	Flattened bool                 `json:"flattened"`
	Enum      []string             `json:"enum"`
	Exception bool                 `json:"exception"`
	Error     *struct {
		Code           string `json:"code"`
		HTTPStatusCode int    `json:"httpStatusCode"`
	} `json:"error"`
}

type memberRef struct {
	Shape        string `json:"shape"`
	LocationName string `json:"locationName"`
}

// loadModel reads data/<service>/<version>/service-2.json(.gz) of the
// installed botocore. botocore is installed on every machine that runs
// these tests, so its absence is a failure, not a skip.
func loadModel(t *testing.T, service, version string) *botocoreModel {
	t.Helper()
	out, err := exec.CommandContext(t.Context(), "python3", "-c", "import botocore,os;print(os.path.dirname(botocore.__file__))").Output()
	if err != nil {
		t.Fatalf("cannot locate botocore with python3 (it must be installed): %v", err)
	}
	dir := filepath.Join(strings.TrimSpace(string(out)), "data", service, version)
	var data []byte
	if f, err := os.Open(filepath.Join(dir, "service-2.json.gz")); err == nil {
		defer f.Close()
		zr, err := gzip.NewReader(f)
		if err != nil {
			t.Fatal(err)
		}
		data, err = io.ReadAll(zr)
		if err != nil {
			t.Fatal(err)
		}
	} else if data, err = os.ReadFile(filepath.Join(dir, "service-2.json")); err != nil {
		t.Fatalf("no botocore model for %s %s: %v", service, version, err)
	}
	var m botocoreModel
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	return &m
}

func testHandler(t *testing.T) *Handler {
	e := newEnv(t, allowTrust)
	h, err := New(Config{IAM: e.svc, Authz: e.authz, Trust: allowTrust})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// TestModelOperations: the action lists are the models' operations, every
// implemented operation is in the model with its required members, and
// the version and namespace are the model's.
func TestModelOperations(t *testing.T) {
	t.Parallel()
	h := testHandler(t)
	for _, svc := range []*service{h.iamS, h.stsS} {
		t.Run(svc.name, func(t *testing.T) {
			m := loadModel(t, svc.name, svc.version)
			if m.Metadata.Protocol != "query" || m.Metadata.APIVersion != svc.version || m.Metadata.XMLNamespace != svc.ns {
				t.Errorf("metadata = %+v", m.Metadata)
			}
			if got, want := slices.Sorted(maps.Keys(svc.model)), slices.Sorted(maps.Keys(m.Operations)); !slices.Equal(got, want) {
				t.Errorf("action list differs from the model:\n got %v\nwant %v", got, want)
			}
			for name, o := range svc.ops {
				mo, ok := m.Operations[name]
				if !ok {
					t.Errorf("%s is not in the model", name)
					continue
				}
				var want []string
				if mo.Input != nil {
					want = slices.Clone(m.Shapes[mo.Input.Shape].Required)
					for _, member := range o.required {
						if _, ok := m.Shapes[mo.Input.Shape].Members[member]; !ok {
							t.Errorf("%s: %s is not an input member", name, member)
						}
					}
				}
				slices.Sort(want)
				if got := slices.Sorted(slices.Values(o.required)); !slices.Equal(got, want) {
					t.Errorf("%s required = %v, model says %v", name, got, want)
				}
			}
		})
	}
}

// TestModelErrorCodes: every code this package answers with that the
// model defines carries the model's HTTP status.
func TestModelErrorCodes(t *testing.T) {
	t.Parallel()
	h := testHandler(t)
	emitted := map[string]int{"InvalidInput": 400, "NoSuchEntity": 404, "LimitExceeded": 409, "ServiceFailure": 500}
	for _, s := range sentinels {
		emitted[s.code] = s.status
	}
	// Common Query errors that the models do not list.
	common := []string{"ValidationError", "AccessDenied", "InvalidAction", "MissingAction", "MissingAuthenticationToken",
		"ExpiredToken", "RequestEntityTooLarge", "MethodNotAllowed"}
	m := loadModel(t, "iam", h.iamS.version)
	byCode := make(map[string]int)
	for _, sh := range m.Shapes {
		if sh.Exception && sh.Error != nil {
			byCode[sh.Error.Code] = sh.Error.HTTPStatusCode
		}
	}
	for code, status := range emitted {
		if slices.Contains(common, code) {
			continue
		}
		want, ok := byCode[code]
		if !ok {
			t.Errorf("%s is neither in the IAM model nor a common error", code)
		} else if want != status {
			t.Errorf("%s: status %d, model says %d", code, status, want)
		}
	}
}

// step is one request of the conformance script. Values may name earlier
// captures as {name}; save captures the text of the first element named
// by the value into the key.
type step struct {
	svc  string
	kv   []string
	save map[string]string
}

// TestModelResponses drives every implemented operation to success once
// and holds each response against the model's output shape: element
// names, required members, list wrapping, scalar formats.
func TestModelResponses(t *testing.T) {
	t.Parallel()
	e := newEnv(t, allowTrust)
	h := testHandler(t)
	models := map[string]*botocoreModel{"iam": loadModel(t, "iam", "2010-05-08"), "sts": loadModel(t, "sts", "2011-06-15")}
	const readOnly = "arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryReadOnly"
	const role = "arn:aws:iam::123456789012:role/t/r1"
	tags := []string{"Tags.member.1.Key", "k", "Tags.member.1.Value", "v"}
	script := []step{
		{"iam", append([]string{"Action", "CreateUser", "UserName", "u1", "Path", "/t/"}, tags...), nil},
		{"iam", []string{"Action", "GetUser", "UserName", "u1"}, nil},
		{"iam", []string{"Action", "GetUser"}, nil},
		{"iam", []string{"Action", "ListUsers", "MaxItems", "1"}, nil},
		{"iam", []string{"Action", "CreateAccessKey", "UserName", "u1"}, map[string]string{"key": "AccessKeyId"}},
		{"iam", []string{"Action", "ListAccessKeys", "UserName", "u1"}, nil},
		{"iam", []string{"Action", "UpdateAccessKey", "UserName", "u1", "AccessKeyId", "{key}", "Status", "Inactive"}, nil},
		{"iam", []string{"Action", "PutUserPolicy", "UserName", "u1", "PolicyName", "p", "PolicyDocument", ecrPolicyJSON}, nil},
		{"iam", []string{"Action", "GetUserPolicy", "UserName", "u1", "PolicyName", "p"}, nil},
		{"iam", []string{"Action", "ListUserPolicies", "UserName", "u1"}, nil},
		{"iam", []string{"Action", "CreatePolicy", "PolicyName", "mp", "Path", "/t/", "PolicyDocument", ecrPolicyJSON, "Description", "d"}, map[string]string{"parn": "Arn"}},
		{"iam", []string{"Action", "GetPolicy", "PolicyArn", "{parn}"}, nil},
		{"iam", []string{"Action", "GetPolicy", "PolicyArn", readOnly}, nil},
		{"iam", []string{"Action", "GetPolicyVersion", "PolicyArn", "{parn}", "VersionId", "v1"}, nil},
		{"iam", []string{"Action", "GetPolicyVersion", "PolicyArn", readOnly, "VersionId", "v1"}, nil},
		{"iam", []string{"Action", "AttachUserPolicy", "UserName", "u1", "PolicyArn", "{parn}"}, nil},
		{"iam", []string{"Action", "ListAttachedUserPolicies", "UserName", "u1"}, nil},
		{"iam", []string{"Action", "CreateGroup", "GroupName", "g1", "Path", "/t/"}, nil},
		{"iam", []string{"Action", "AddUserToGroup", "GroupName", "g1", "UserName", "u1"}, nil},
		{"iam", []string{"Action", "GetGroup", "GroupName", "g1"}, nil},
		{"iam", []string{"Action", "PutGroupPolicy", "GroupName", "g1", "PolicyName", "p", "PolicyDocument", ecrPolicyJSON}, nil},
		{"iam", []string{"Action", "GetGroupPolicy", "GroupName", "g1", "PolicyName", "p"}, nil},
		{"iam", []string{"Action", "ListGroupPolicies", "GroupName", "g1"}, nil},
		{"iam", []string{"Action", "AttachGroupPolicy", "GroupName", "g1", "PolicyArn", readOnly}, nil},
		{"iam", []string{"Action", "ListAttachedGroupPolicies", "GroupName", "g1"}, nil},
		{"iam", []string{"Action", "DetachGroupPolicy", "GroupName", "g1", "PolicyArn", readOnly}, nil},
		{"iam", []string{"Action", "DeleteGroupPolicy", "GroupName", "g1", "PolicyName", "p"}, nil},
		{"iam", []string{"Action", "RemoveUserFromGroup", "GroupName", "g1", "UserName", "u1"}, nil},
		{"iam", append([]string{"Action", "CreateRole", "RoleName", "r1", "Path", "/t/", "AssumeRolePolicyDocument", trustPolicyJSON,
			"Description", "d", "MaxSessionDuration", "7200"}, tags...), nil},
		{"iam", []string{"Action", "GetRole", "RoleName", "r1"}, nil},
		{"iam", []string{"Action", "PutRolePolicy", "RoleName", "r1", "PolicyName", "p", "PolicyDocument", ecrPolicyJSON}, nil},
		{"iam", []string{"Action", "GetRolePolicy", "RoleName", "r1", "PolicyName", "p"}, nil},
		{"iam", []string{"Action", "ListRolePolicies", "RoleName", "r1"}, nil},
		{"iam", []string{"Action", "AttachRolePolicy", "RoleName", "r1", "PolicyArn", readOnly}, nil},
		{"iam", []string{"Action", "ListAttachedRolePolicies", "RoleName", "r1"}, nil},
		{"iam", []string{"Action", "ListPolicies", "MaxItems", "2"}, nil},
		{"iam", []string{"Action", "ListPolicies", "Scope", "Local", "OnlyAttached", "true"}, nil},
		{"sts", []string{"Action", "GetCallerIdentity"}, nil},
		{"sts", []string{"Action", "GetSessionToken", "DurationSeconds", "900"}, nil},
		{"sts", []string{"Action", "AssumeRole", "RoleArn", role, "RoleSessionName", "s1", "DurationSeconds", "900"}, nil},
		{"iam", []string{"Action", "DetachRolePolicy", "RoleName", "r1", "PolicyArn", readOnly}, nil},
		{"iam", []string{"Action", "DeleteRolePolicy", "RoleName", "r1", "PolicyName", "p"}, nil},
		{"iam", []string{"Action", "DeleteRole", "RoleName", "r1"}, nil},
		{"iam", []string{"Action", "DetachUserPolicy", "UserName", "u1", "PolicyArn", "{parn}"}, nil},
		{"iam", []string{"Action", "DeleteUserPolicy", "UserName", "u1", "PolicyName", "p"}, nil},
		{"iam", []string{"Action", "DeleteAccessKey", "UserName", "u1", "AccessKeyId", "{key}"}, nil},
		{"iam", []string{"Action", "DeletePolicy", "PolicyArn", "{parn}"}, nil},
		{"iam", []string{"Action", "DeleteUser", "UserName", "u1"}, nil},
	}
	vars := map[string]string{}
	done := map[string]map[string]bool{"iam": {}, "sts": {}}
	for i, s := range script {
		f := form(s.kv...)
		for k, v := range f {
			for name, val := range vars {
				v[0] = strings.ReplaceAll(v[0], "{"+name+"}", val)
			}
			f[k] = v
		}
		base, svc := e.iamURL, h.iamS
		if s.svc == "sts" {
			base, svc = e.stsURL, h.stsS
		}
		f.Set("Version", svc.version)
		action := f.Get("Action")
		resp := e.post(base, adminKeyID, f)
		if resp.status != 200 {
			t.Fatalf("step %d %s: %d %s", i, action, resp.status, resp.body)
		}
		root, err := parseTree(resp.body)
		if err != nil {
			t.Fatalf("step %d %s: %v", i, action, err)
		}
		for _, p := range checkResponse(models[s.svc], action, root, resp.header.Get("x-amzn-RequestId")) {
			t.Errorf("%s: %s", action, p)
		}
		for name, elem := range s.save {
			if n := root.find(elem); n != nil {
				vars[name] = n.text
			}
		}
		done[s.svc][action] = true
	}
	for _, svc := range []*service{h.iamS, h.stsS} {
		for name := range svc.ops {
			if !done[svc.name][name] {
				t.Errorf("%s %s is not exercised by the script", svc.name, name)
			}
		}
	}

	// Error documents.
	for _, kv := range [][]string{
		{"Action", "GetUser", "UserName", "nobody"},
		{"Action", "CreateUser"},
		{"Action", "ListRoles"},
	} {
		f := form(kv...)
		f.Set("Version", "2010-05-08")
		resp := e.post(e.iamURL, adminKeyID, f)
		root, err := parseTree(resp.body)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range checkErrorResponse(models["iam"], root, resp.header.Get("x-amzn-RequestId")) {
			t.Errorf("%s error: %s", kv[1], p)
		}
	}
}

// xnode is a parsed XML element.
type xnode struct {
	name xml.Name
	kids []*xnode
	text string
}

func (n *xnode) find(local string) *xnode {
	if n.name.Local == local {
		return n
	}
	for _, k := range n.kids {
		if f := k.find(local); f != nil {
			return f
		}
	}
	return nil
}

func parseTree(b []byte) (*xnode, error) {
	dec := xml.NewDecoder(bytes.NewReader(b))
	var stack []*xnode
	var root *xnode
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			n := &xnode{name: tok.Name}
			if len(stack) > 0 {
				top := stack[len(stack)-1]
				top.kids = append(top.kids, n)
			} else if root == nil {
				root = n
			}
			stack = append(stack, n)
		case xml.EndElement:
			stack = stack[:len(stack)-1]
		case xml.CharData:
			if len(stack) > 0 {
				stack[len(stack)-1].text += string(tok)
			}
		}
	}
	if root == nil {
		return nil, errors.New("empty document")
	}
	return root, nil
}

var isoRE = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$`)

func checkResponse(m *botocoreModel, action string, root *xnode, requestID string) []string {
	var problems []string
	bad := func(f string, args ...any) { problems = append(problems, fmt.Sprintf(f, args...)) }
	if root.name.Local != action+"Response" || root.name.Space != m.Metadata.XMLNamespace {
		bad("root element %v", root.name)
	}
	o := m.Operations[action]
	var want []string
	if o.Output != nil {
		want = append(want, o.Output.ResultWrapper)
	}
	want = append(want, "ResponseMetadata")
	var got []string
	for _, k := range root.kids {
		got = append(got, k.name.Local)
	}
	if !slices.Equal(got, want) {
		bad("root children %v, want %v", got, want)
		return problems
	}
	if o.Output != nil {
		checkShape(m, root.kids[0], o.Output.Shape, o.Output.ResultWrapper, bad)
	}
	meta := root.kids[len(root.kids)-1]
	if len(meta.kids) != 1 || meta.kids[0].name.Local != "RequestId" || meta.kids[0].text != requestID || requestID == "" {
		bad("ResponseMetadata does not carry the request ID %q", requestID)
	}
	return problems
}

func checkShape(m *botocoreModel, n *xnode, shapeName, path string, bad func(string, ...any)) {
	sh, ok := m.Shapes[shapeName]
	if !ok {
		bad("%s: unknown shape %s", path, shapeName)
		return
	}
	if sh.Type != "structure" && sh.Type != "list" && len(n.kids) > 0 {
		bad("%s: scalar %s has child elements", path, sh.Type)
	}
	switch sh.Type {
	case "structure":
		if strings.TrimSpace(n.text) != "" {
			bad("%s: text in a structure", path)
		}
		seen := map[string]bool{}
		for _, k := range n.kids {
			member := ""
			for name, ref := range sh.Members {
				if cmp.Or(ref.LocationName, name) == k.name.Local {
					member = name
				}
			}
			if member == "" {
				bad("%s: %s is not a member of %s", path, k.name.Local, shapeName)
				continue
			}
			if seen[member] {
				bad("%s: %s twice", path, member)
			}
			seen[member] = true
			checkShape(m, k, sh.Members[member].Shape, path+"."+member, bad)
		}
		for _, r := range sh.Required {
			if !seen[r] {
				bad("%s: required member %s missing", path, r)
			}
		}
	case "list":
		if sh.Flattened {
			bad("%s: flattened lists are not expected", path)
		}
		for i, k := range n.kids {
			if k.name.Local != cmp.Or(sh.Member.LocationName, "member") {
				bad("%s: list item <%s>", path, k.name.Local)
			}
			checkShape(m, k, sh.Member.Shape, path+"["+strconv.Itoa(i)+"]", bad)
		}
	case "boolean":
		if n.text != "true" && n.text != "false" {
			bad("%s: boolean %q", path, n.text)
		}
	case "integer", "long":
		if _, err := strconv.ParseInt(n.text, 10, 64); err != nil {
			bad("%s: integer %q", path, n.text)
		}
	case "timestamp":
		if _, err := time.Parse(time.RFC3339, n.text); err != nil || !isoRE.MatchString(n.text) {
			bad("%s: timestamp %q is not ISO 8601 UTC", path, n.text)
		}
	case "string":
		if len(sh.Enum) > 0 && !slices.Contains(sh.Enum, n.text) {
			bad("%s: %q not in %v", path, n.text, sh.Enum)
		}
	default:
		bad("%s: unexpected shape type %s", path, sh.Type)
	}
}

func checkErrorResponse(m *botocoreModel, root *xnode, requestID string) []string {
	var problems []string
	bad := func(f string, args ...any) { problems = append(problems, fmt.Sprintf(f, args...)) }
	if root.name.Local != "ErrorResponse" || root.name.Space != m.Metadata.XMLNamespace || len(root.kids) != 2 {
		bad("root %v with %d children", root.name, len(root.kids))
		return problems
	}
	errNode, id := root.kids[0], root.kids[1]
	if errNode.name.Local != "Error" || id.name.Local != "RequestId" || id.text != requestID || requestID == "" {
		bad("children %s %s (request ID %q)", errNode.name.Local, id.name.Local, id.text)
	}
	var names []string
	for _, k := range errNode.kids {
		names = append(names, k.name.Local)
		if k.text == "" {
			bad("empty %s", k.name.Local)
		}
	}
	if !slices.Equal(names, []string{"Type", "Code", "Message"}) {
		bad("Error children %v", names)
	}
	return problems
}
