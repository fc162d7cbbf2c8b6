package server

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
)

// The botocore ECR model, read from the installed botocore (gzipped). It is
// installed wherever these tests run, so its absence fails the test.

type imgModel struct {
	Operations map[string]struct {
		Input  *struct{ Shape string }  `json:"input"`
		Output *struct{ Shape string }  `json:"output"`
		Errors []struct{ Shape string } `json:"errors"`
	} `json:"operations"`
	Shapes map[string]imgShape `json:"shapes"`
}

type imgShapeRef struct {
	Shape string `json:"shape"`
}

type imgShape struct {
	Type      string                 `json:"type"`
	Required  []string               `json:"required"`
	Members   map[string]imgShapeRef `json:"members"`
	Member    *imgShapeRef           `json:"member"`
	Key       *imgShapeRef           `json:"key"`
	Value     *imgShapeRef           `json:"value"`
	Enum      []string               `json:"enum"`
	Exception bool                   `json:"exception"`
}

func imgLoadModel(t *testing.T) *imgModel {
	t.Helper()
	out, err := exec.CommandContext(t.Context(), "python3", "-c", "import botocore,os;print(os.path.dirname(botocore.__file__))").Output()
	if err != nil {
		t.Fatalf("cannot locate botocore with python3 (it must be installed): %v", err)
	}
	path := filepath.Join(strings.TrimSpace(string(out)), "data", "ecr", "2015-09-21", "service-2.json.gz")
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("botocore ECR model: %v", err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	var m imgModel
	if err := json.NewDecoder(zr).Decode(&m); err != nil {
		t.Fatal(err)
	}
	return &m
}

// imgCommonErrors may answer any operation (AWS-wide errors of the JSON
// protocol and Coffer's authorization).
var imgCommonErrors = []string{"AccessDeniedException", "UnrecognizedClientException", "InvalidSignatureException",
	"SerializationException", "ThrottlingException", "MissingAuthenticationTokenException"}

// check validates one response body against the operation's output shape
// (status 200) or its error shapes, and returns every problem.
func (m *imgModel) check(op string, status int, body []byte) []string {
	o, ok := m.Operations[op]
	if !ok {
		return []string{op + " is not in the model"}
	}
	var v any
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		return []string{fmt.Sprintf("%s: body is not JSON: %v", op, err)}
	}
	if status == http.StatusOK {
		if o.Output == nil {
			return nil
		}
		return m.value(op, o.Output.Shape, v, false)
	}
	obj, _ := v.(map[string]any)
	typ, _ := obj["__type"].(string)
	if i := strings.LastIndexByte(typ, '#'); i >= 0 {
		typ = typ[i+1:]
	}
	if slices.Contains(imgCommonErrors, typ) {
		return nil
	}
	declared := false
	for _, e := range o.Errors {
		declared = declared || e.Shape == typ
	}
	if !declared {
		return []string{fmt.Sprintf("%s answered %s, which the model does not list for it", op, typ)}
	}
	return m.value(op+" "+typ, typ, v, true)
}

func (m *imgModel) value(path, shape string, v any, isError bool) []string {
	s, ok := m.Shapes[shape]
	if !ok {
		return []string{path + ": unknown shape " + shape}
	}
	var probs []string
	bad := func(format string, args ...any) { probs = append(probs, path+": "+fmt.Sprintf(format, args...)) }
	switch s.Type {
	case "structure":
		obj, ok := v.(map[string]any)
		if !ok {
			bad("%s must be an object, got %T", shape, v)
			return probs
		}
		for k, mv := range obj {
			if isError && k == "__type" {
				continue
			}
			ref, ok := s.Members[k]
			if !ok {
				bad("member %q is not in %s", k, shape)
				continue
			}
			probs = append(probs, m.value(path+"."+k, ref.Shape, mv, false)...)
		}
		for _, r := range s.Required {
			if _, ok := obj[r]; !ok {
				bad("required member %q of %s is missing", r, shape)
			}
		}
	case "list":
		arr, ok := v.([]any)
		if !ok {
			bad("%s must be a list, got %T", shape, v)
			return probs
		}
		for i, e := range arr {
			probs = append(probs, m.value(fmt.Sprintf("%s[%d]", path, i), s.Member.Shape, e, false)...)
		}
	case "map":
		obj, ok := v.(map[string]any)
		if !ok {
			bad("%s must be a map, got %T", shape, v)
			return probs
		}
		for k, e := range obj {
			probs = append(probs, m.value(path+"["+k+"]", s.Value.Shape, e, false)...)
		}
	case "string", "blob":
		str, ok := v.(string)
		if !ok {
			bad("%s must be a string, got %T", shape, v)
		} else if len(s.Enum) > 0 && !slices.Contains(s.Enum, str) {
			bad("%q is not in the enum of %s %v", str, shape, s.Enum)
		}
	case "integer", "long":
		n, ok := v.(json.Number)
		if _, err := n.Int64(); !ok || err != nil {
			bad("%s must be an integer, got %v", shape, v)
		}
	case "timestamp", "double", "float":
		if _, ok := v.(json.Number); !ok {
			bad("%s must be a number (epoch seconds), got %T", shape, v)
		}
	case "boolean":
		if _, ok := v.(bool); !ok {
			bad("%s must be a boolean, got %T", shape, v)
		}
	default:
		bad("shape %s has type %s this checker does not know", shape, s.Type)
	}
	return probs
}

// imgExchange is one ECR call seen on the wire.
type imgExchange struct {
	op     string
	status int
	body   []byte
}

// imgRecorder is an http.RoundTripper that keeps every ECR response body,
// so the test can hold each one against the model after the SDK parsed it.
type imgRecorder struct {
	next http.RoundTripper
	mu   sync.Mutex
	seen []imgExchange
}

func (r *imgRecorder) RoundTrip(req *http.Request) (*http.Response, error) {
	op, isECR := strings.CutPrefix(req.Header.Get("X-Amz-Target"), "AmazonEC2ContainerRegistry_V20150921.")
	resp, err := r.next.RoundTrip(req)
	if err != nil || !isECR {
		return resp, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	r.mu.Lock()
	r.seen = append(r.seen, imgExchange{op: op, status: resp.StatusCode, body: body})
	r.mu.Unlock()
	return resp, nil
}

// verify checks every recorded response against the model and that each
// of ops answered successfully at least once.
func (r *imgRecorder) verify(t *testing.T, m *imgModel, ops ...string) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	ok := map[string]bool{}
	for _, x := range r.seen {
		for _, p := range m.check(x.op, x.status, x.body) {
			t.Errorf("model: %s (body %.300s)", p, x.body)
		}
		if x.status == http.StatusOK {
			ok[x.op] = true
		}
	}
	for _, op := range ops {
		if !ok[op] {
			t.Errorf("%s never answered successfully in this test", op)
		}
	}
	t.Logf("checked %d ECR responses against the botocore model", len(r.seen))
}

func TestImageModelChecker(t *testing.T) {
	t.Parallel()
	m := imgLoadModel(t)
	for _, tc := range []struct {
		op     string
		status int
		body   string
		bad    bool
	}{
		{"ListImages", 200, `{"imageIds":[{"imageDigest":"sha256:x","imageTag":"v"}],"nextToken":"t"}`, false},
		{"ListImages", 200, `{"imageIds":[{"digest":"sha256:x"}]}`, true},
		{"BatchCheckLayerAvailability", 200, `{"layers":[{"layerDigest":"d","layerAvailability":"GONE"}]}`, true},
		{"DescribeImages", 200, `{"imageDetails":[{"imagePushedAt":"yesterday"}]}`, true},
		{"UploadLayerPart", 400, `{"__type":"InvalidLayerPartException","message":"m","lastValidByteReceived":5}`, false},
		{"UploadLayerPart", 400, `{"__type":"ImageNotFoundException","message":"m"}`, true},
		{"PutImage", 400, `{"__type":"AccessDeniedException","message":"m"}`, false},
	} {
		probs := m.check(tc.op, tc.status, []byte(tc.body))
		if (len(probs) > 0) != tc.bad {
			t.Errorf("%s %s: problems %v, want bad=%v", tc.op, tc.body, probs, tc.bad)
		}
	}
}
