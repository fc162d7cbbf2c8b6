package kms

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/cofferhq/coffer/internal/auth"
)

// botocoreModel is the part of a botocore service-2.json these tests read.
type botocoreModel struct {
	Metadata struct {
		Protocol     string `json:"protocol"`
		TargetPrefix string `json:"targetPrefix"`
		JSONVersion  string `json:"jsonVersion"`
	} `json:"metadata"`
	Operations map[string]struct {
		Input  *struct{ Shape string }  `json:"input"`
		Output *struct{ Shape string }  `json:"output"`
		Errors []struct{ Shape string } `json:"errors"`
	} `json:"operations"`
	Shapes map[string]modelShape `json:"shapes"`
}

type modelShape struct {
	Type      string                            `json:"type"`
	Required  []string                          `json:"required"`
	Members   map[string]struct{ Shape string } `json:"members"`
	Member    *struct{ Shape string }           `json:"member"`
	Key       *struct{ Shape string }           `json:"key"`
	Value     *struct{ Shape string }           `json:"value"`
	Enum      []string                          `json:"enum"`
	Exception bool                              `json:"exception"`
	Min       *float64                          `json:"min"`
	Max       *float64                          `json:"max"`
}

// loadModel reads botocore's kms/2014-11-01 model. botocore is installed
// on every machine that runs these tests: its absence fails, never skips.
func loadModel(t *testing.T) *botocoreModel {
	t.Helper()
	out, err := exec.CommandContext(t.Context(), "python3", "-c", "import botocore,os;print(os.path.dirname(botocore.__file__))").Output()
	if err != nil {
		t.Fatalf("cannot locate botocore with python3 (it must be installed): %v", err)
	}
	dir := filepath.Join(strings.TrimSpace(string(out)), "data", "kms", "2014-11-01")
	var data []byte
	if f, err := os.Open(filepath.Join(dir, "service-2.json.gz")); err == nil {
		defer f.Close()
		zr, err := gzip.NewReader(f)
		if err != nil {
			t.Fatal(err)
		}
		if data, err = io.ReadAll(zr); err != nil {
			t.Fatal(err)
		}
	} else if data, err = os.ReadFile(filepath.Join(dir, "service-2.json")); err != nil {
		t.Fatalf("no botocore model for kms: %v", err)
	}
	var m botocoreModel
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	return &m
}

// inputTypes maps each implemented operation to its request type.
var inputTypes = map[string]any{
	"CreateKey": CreateKeyInput{}, "DescribeKey": DescribeKeyInput{}, "ListKeys": ListKeysInput{},
	"UpdateKeyDescription": UpdateKeyDescriptionInput{}, "EnableKey": KeyIDInput{}, "DisableKey": KeyIDInput{},
	"ScheduleKeyDeletion": ScheduleKeyDeletionInput{}, "CancelKeyDeletion": KeyIDInput{}, "GetKeyPolicy": GetKeyPolicyInput{},
	"PutKeyPolicy": PutKeyPolicyInput{}, "ListKeyPolicies": ListKeyPoliciesInput{}, "TagResource": TagResourceInput{},
	"UntagResource": UntagResourceInput{}, "ListResourceTags": ListResourceTagsInput{}, "CreateAlias": AliasInput{},
	"UpdateAlias": AliasInput{}, "DeleteAlias": DeleteAliasInput{}, "ListAliases": ListAliasesInput{}, "Encrypt": EncryptInput{},
	"Decrypt": DecryptInput{}, "ReEncrypt": ReEncryptInput{}, "GenerateDataKey": GenerateDataKeyInput{},
	"GenerateDataKeyWithoutPlaintext": gdkwpInput{}, "GenerateRandom": GenerateRandomInput{}, "CreateGrant": CreateGrantInput{},
	"ListGrants": ListGrantsInput{}, "ListRetirableGrants": ListRetirableGrantsInput{}, "RetireGrant": RetireGrantInput{},
	"RevokeGrant": RevokeGrantInput{}, "EnableKeyRotation": EnableKeyRotationInput{}, "DisableKeyRotation": KeyIDInput{},
	"GetKeyRotationStatus": KeyIDInput{}, "RotateKeyOnDemand": KeyIDInput{}, "ListKeyRotations": ListKeyRotationsInput{},
}

func jsonFields(t reflect.Type) []string {
	var out []string
	for i := range t.NumField() {
		name := t.Field(i).Name
		if tag := t.Field(i).Tag.Get("json"); tag != "" && !strings.HasPrefix(tag, ",") {
			name = strings.Split(tag, ",")[0]
		}
		out = append(out, name)
	}
	slices.Sort(out)
	return out
}

// TestModelOperations: the operation list is the model's, every implemented
// operation is in it, and each request type has exactly the model's input
// members (so strict decoding refuses only what the model does not have).
func TestModelOperations(t *testing.T) {
	t.Parallel()
	m := loadModel(t)
	if m.Metadata.Protocol != "json" || m.Metadata.TargetPrefix+"." != TargetPrefix || m.Metadata.JSONVersion != "1.1" {
		t.Errorf("metadata = %+v", m.Metadata)
	}
	if got, want := slices.Sorted(slices.Values(modelOperations)), slices.Sorted(maps.Keys(m.Operations)); !slices.Equal(got, want) {
		t.Errorf("operation list differs from the model:\n got %v\nwant %v", got, want)
	}
	if got, want := slices.Sorted(maps.Keys(operations)), slices.Sorted(maps.Keys(inputTypes)); !slices.Equal(got, want) {
		t.Errorf("inputTypes does not cover the operations:\n got %v\nwant %v", want, got)
	}
	for name, in := range inputTypes {
		op, ok := m.Operations[name]
		if !ok {
			t.Errorf("%s is not in the model", name)
			continue
		}
		shape := m.Shapes[op.Input.Shape]
		if got, want := jsonFields(reflect.TypeOf(in)), slices.Sorted(maps.Keys(shape.Members)); !slices.Equal(got, want) {
			t.Errorf("%s input members:\n got %v\nwant %v", name, got, want)
		}
	}
}

// checkShape validates a decoded JSON value against a model shape: only
// modelled members, required members present, the right JSON types, enum
// values and string/blob/integer constraints.
func checkShape(t *testing.T, m *botocoreModel, shapeName, path string, v any) {
	t.Helper()
	s, ok := m.Shapes[shapeName]
	if !ok {
		t.Errorf("%s: unknown shape %s", path, shapeName)
		return
	}
	switch s.Type {
	case "structure":
		obj, ok := v.(map[string]any)
		if !ok {
			t.Errorf("%s: %T, want an object (%s)", path, v, shapeName)
			return
		}
		for k, mv := range obj {
			mem, ok := s.Members[k]
			if !ok {
				t.Errorf("%s.%s: not a member of %s", path, k, shapeName)
				continue
			}
			checkShape(t, m, mem.Shape, path+"."+k, mv)
		}
		for _, r := range s.Required {
			if _, ok := obj[r]; !ok {
				t.Errorf("%s: required member %s missing", path, r)
			}
		}
	case "list":
		arr, ok := v.([]any)
		if !ok {
			t.Errorf("%s: %T, want a list", path, v)
			return
		}
		for i, e := range arr {
			checkShape(t, m, s.Member.Shape, fmt.Sprintf("%s[%d]", path, i), e)
		}
	case "map":
		obj, ok := v.(map[string]any)
		if !ok {
			t.Errorf("%s: %T, want a map", path, v)
			return
		}
		for k, e := range obj {
			checkShape(t, m, s.Value.Shape, path+"["+k+"]", e)
		}
	case "string":
		str, ok := v.(string)
		if !ok {
			t.Errorf("%s: %T, want a string", path, v)
			return
		}
		if len(s.Enum) > 0 && !slices.Contains(s.Enum, str) {
			t.Errorf("%s: %q is not in %v", path, str, s.Enum)
		}
		if (s.Min != nil && float64(len(str)) < *s.Min) || (s.Max != nil && float64(len(str)) > *s.Max) {
			t.Errorf("%s: length %d outside [%v, %v]", path, len(str), s.Min, s.Max)
		}
	case "blob":
		str, ok := v.(string)
		if !ok {
			t.Errorf("%s: %T, want base64", path, v)
			return
		}
		b, err := base64.StdEncoding.DecodeString(str)
		if err != nil {
			t.Errorf("%s: not base64: %v", path, err)
		}
		if s.Max != nil && float64(len(b)) > *s.Max {
			t.Errorf("%s: %d bytes, more than %v", path, len(b), *s.Max)
		}
	case "timestamp", "integer", "long":
		n, ok := v.(float64)
		if !ok {
			t.Errorf("%s: %T, want a number", path, v)
			return
		}
		if s.Type != "timestamp" && ((s.Min != nil && n < *s.Min) || (s.Max != nil && n > *s.Max)) {
			t.Errorf("%s: %v outside [%v, %v]", path, n, s.Min, s.Max)
		}
	case "boolean":
		if _, ok := v.(bool); !ok {
			t.Errorf("%s: %T, want a boolean", path, v)
		}
	default:
		t.Errorf("%s: unhandled shape type %s", path, s.Type)
	}
}

// TestModelResponses drives every implemented operation through the
// handler and checks each response body against the model's output shape,
// and each error's __type against the model's exceptions.
func TestModelResponses(t *testing.T) {
	t.Parallel()
	m := loadModel(t)
	e := newEnv(t)
	h := NewHandler(e.svc)
	admin := e.admin()
	covered := map[string]bool{}
	call := func(op string, body any) map[string]any {
		t.Helper()
		b, _ := json.Marshal(body)
		req := httptest.NewRequestWithContext(t.Context(), http.MethodPost, "/", bytes.NewReader(b))
		req.Header.Set("X-Amz-Target", TargetPrefix+op)
		req = req.WithContext(auth.WithInfo(req.Context(), &auth.Info{RequestID: "r", Principal: admin.principal}))
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		var out map[string]any
		if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
			t.Fatalf("%s: response is not a JSON object: %v\n%s", op, err, rec.Body)
		}
		if rec.Code != http.StatusOK {
			typ, _ := out["__type"].(string)
			if s, ok := m.Shapes[typ]; !ok || !s.Exception {
				if !slices.Contains([]string{codeAccessDenied, codeValidation, codeSerialization, codeUnknownOperation}, typ) {
					t.Errorf("%s: error type %q is not a model exception", op, typ)
				}
			}
			if rec.Header().Get("x-amzn-ErrorType") != typ || out["message"] == nil || len(out) != 2 {
				t.Errorf("%s: error response %v headers %v", op, out, rec.Header())
			}
			t.Fatalf("%s failed: %v", op, out)
		}
		if ct := rec.Header().Get("Content-Type"); ct != "application/x-amz-json-1.1" {
			t.Errorf("%s: Content-Type %q", op, ct)
		}
		covered[op] = true
		if o := m.Operations[op].Output; o != nil {
			checkShape(t, m, o.Shape, op, out)
		} else if len(out) != 0 {
			t.Errorf("%s: the model has no output, got %v", op, out)
		}
		return out
	}
	str := func(m map[string]any, path ...string) string {
		var v any = m
		for _, p := range path {
			v = v.(map[string]any)[p]
		}
		return v.(string)
	}

	key := call("CreateKey", map[string]any{"Description": "d", "Tags": []map[string]string{{"TagKey": "a", "TagValue": "b"}}})
	id := str(key, "KeyMetadata", "KeyId")
	key2 := str(call("CreateKey", map[string]any{}), "KeyMetadata", "Arn")
	call("DescribeKey", map[string]any{"KeyId": id})
	call("ListKeys", map[string]any{"Limit": 1})
	call("UpdateKeyDescription", map[string]any{"KeyId": id, "Description": "e"})
	call("CreateAlias", map[string]any{"AliasName": "alias/model", "TargetKeyId": id})
	call("UpdateAlias", map[string]any{"AliasName": "alias/model", "TargetKeyId": key2})
	call("ListAliases", map[string]any{"Limit": 10})
	call("DeleteAlias", map[string]any{"AliasName": "alias/model"})
	ec := map[string]string{"aws:ecr:arn": repoARN}
	enc := call("Encrypt", map[string]any{"KeyId": id, "Plaintext": base64.StdEncoding.EncodeToString([]byte("x")), "EncryptionContext": ec})
	call("Decrypt", map[string]any{"CiphertextBlob": enc["CiphertextBlob"], "EncryptionContext": ec})
	call("ReEncrypt", map[string]any{"CiphertextBlob": enc["CiphertextBlob"], "SourceEncryptionContext": ec, "DestinationKeyId": key2})
	call("GenerateDataKey", map[string]any{"KeyId": id, "KeySpec": "AES_256"})
	call("GenerateDataKeyWithoutPlaintext", map[string]any{"KeyId": id, "NumberOfBytes": 16})
	call("GenerateRandom", map[string]any{"NumberOfBytes": 8})
	g := call("CreateGrant", map[string]any{"KeyId": id, "GranteePrincipal": "arn:aws:iam::123456789012:user/x",
		"RetiringPrincipal": adminARN, "Operations": []string{"Decrypt"}, "Name": "n", "Constraints": map[string]any{"EncryptionContextSubset": ec}})
	g2 := call("CreateGrant", map[string]any{"KeyId": id, "GranteePrincipal": ecrVia, "Operations": []string{"Encrypt"}})
	call("ListGrants", map[string]any{"KeyId": id, "Limit": 1})
	call("ListRetirableGrants", map[string]any{"RetiringPrincipal": adminARN})
	call("RetireGrant", map[string]any{"GrantToken": g["GrantToken"]})
	call("RevokeGrant", map[string]any{"KeyId": id, "GrantId": g2["GrantId"]})
	pol := call("GetKeyPolicy", map[string]any{"KeyId": id, "PolicyName": "default"})
	call("PutKeyPolicy", map[string]any{"KeyId": id, "Policy": pol["Policy"]})
	call("ListKeyPolicies", map[string]any{"KeyId": id})
	call("EnableKeyRotation", map[string]any{"KeyId": id})
	call("GetKeyRotationStatus", map[string]any{"KeyId": id})
	call("RotateKeyOnDemand", map[string]any{"KeyId": id})
	call("ListKeyRotations", map[string]any{"KeyId": id, "IncludeKeyMaterial": "ALL_KEY_MATERIAL"})
	call("DisableKeyRotation", map[string]any{"KeyId": id})
	call("TagResource", map[string]any{"KeyId": id, "Tags": []map[string]string{{"TagKey": "c", "TagValue": "d"}}})
	call("ListResourceTags", map[string]any{"KeyId": id})
	call("UntagResource", map[string]any{"KeyId": id, "TagKeys": []string{"a"}})
	call("DisableKey", map[string]any{"KeyId": id})
	call("EnableKey", map[string]any{"KeyId": id})
	call("ScheduleKeyDeletion", map[string]any{"KeyId": id, "PendingWindowInDays": 7})
	call("DescribeKey", map[string]any{"KeyId": id})
	call("CancelKeyDeletion", map[string]any{"KeyId": id})
	for op := range operations {
		if !covered[op] {
			t.Errorf("%s not exercised", op)
		}
	}
}

// TestModelErrors checks error responses: unimplemented operations name
// themselves, malformed requests are SerializationException, and every
// error type is a model exception or a protocol-level one.
func TestModelErrors(t *testing.T) {
	t.Parallel()
	m := loadModel(t)
	e := newEnv(t)
	h := NewHandler(e.svc)
	send := func(op, body string) (int, map[string]any) {
		req := httptest.NewRequestWithContext(t.Context(), http.MethodPost, "/", strings.NewReader(body))
		req.Header.Set("X-Amz-Target", TargetPrefix+op)
		req = req.WithContext(auth.WithInfo(req.Context(), &auth.Info{Principal: e.admin().principal}))
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		var out map[string]any
		if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
			t.Fatalf("%s: %v\n%s", op, err, rec.Body)
		}
		return rec.Code, out
	}
	for _, op := range modelOperations {
		if _, ok := operations[op]; ok {
			continue
		}
		code, out := send(op, "{}")
		if code != 400 || out["__type"] != codeUnsupported || !strings.Contains(out["message"].(string), op) {
			t.Errorf("%s: %d %v", op, code, out)
		}
	}
	for name, c := range map[string]struct{ op, body, want string }{
		"unknown op":     {"Frobnicate", "{}", codeUnknownOperation},
		"bad json":       {"DescribeKey", "{", codeSerialization},
		"unknown member": {"DescribeKey", `{"KeyId":"x","Bogus":1}`, codeSerialization},
		"wrong type":     {"DescribeKey", `{"KeyId":5}`, codeSerialization},
		"bad base64":     {"Decrypt", `{"CiphertextBlob":"***"}`, codeSerialization},
		"missing key":    {"DescribeKey", `{}`, codeValidation},
		"bad alias":      {"CreateAlias", `{"AliasName":"alias/bad name","TargetKeyId":"x"}`, codeValidation},
		"no prefix":      {"CreateAlias", `{"AliasName":"nope","TargetKeyId":"x"}`, codeInvalidAliasName},
		"reserved":       {"CreateAlias", `{"AliasName":"alias/aws/mine","TargetKeyId":"x"}`, codeInvalidAliasName},
		"bad policy":     {"CreateKey", `{"Policy":"{\"Statement\":[{\"Effect\":\"Maybe\"}]}"}`, codeMalformedPolicy},
		"bad limit":      {"ListKeys", `{"Limit":0}`, codeValidation},
		"invalid key id": {"DescribeKey", `{"KeyId":"not-a-key"}`, codeNotFound},
		"bad arn":        {"DescribeKey", `{"KeyId":"arn:aws:s3:::bucket"}`, codeInvalidArn},
	} {
		code, out := send(c.op, c.body)
		typ, _ := out["__type"].(string)
		if code != 400 || typ != c.want {
			t.Errorf("%s: %d %v, want %s", name, code, out, c.want)
		}
		if s, ok := m.Shapes[typ]; (!ok || !s.Exception) && !slices.Contains([]string{codeValidation, codeSerialization, codeUnknownOperation}, typ) {
			t.Errorf("%s: %s is not a model exception", name, typ)
		}
	}
}
