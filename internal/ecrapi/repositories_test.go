package ecrapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/cofferhq/coffer/internal/auth"
	"github.com/cofferhq/coffer/internal/auth/token"
	"github.com/cofferhq/coffer/internal/crypto/rootkey"
	"github.com/cofferhq/coffer/internal/metadata"
	"github.com/cofferhq/coffer/internal/metadata/sqlite"
	"github.com/cofferhq/coffer/internal/registry"
	"github.com/cofferhq/coffer/internal/storage/fs"
)

var reposScope = registryScope{region: "us-east-1", account: "123456789012"}

// reposExceptionOf returns the exception type of a decode error.
func reposExceptionOf(t testing.TB, err error) string {
	t.Helper()
	if err == nil {
		return ""
	}
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v (%T) is not an *Error", err, err)
	}
	return e.Type
}

func TestParseCreateRepository(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("k", 129)
	var fiftyOne []string
	for i := range 51 {
		fiftyOne = append(fiftyOne, fmt.Sprintf(`{"Key":"k%d","Value":"v"}`, i))
	}
	for _, tc := range []struct {
		name, body, want string
	}{
		{"minimal", `{"repositoryName":"team/app"}`, ""},
		{"everything", `{"registryId":"123456789012","repositoryName":"a-b/c_d.e","tags":[{"Key":"team","Value":""}],
			"imageTagMutability":"IMMUTABLE_WITH_EXCLUSION","imageTagMutabilityExclusionFilters":[{"filterType":"WILDCARD","filter":"latest*"}],
			"imageScanningConfiguration":{"scanOnPush":true},"encryptionConfiguration":{"encryptionType":"AES256"}}`, ""},
		{"empty body", ``, "InvalidParameterException"},
		{"not JSON", `{"repositoryName":`, "SerializationException"},
		{"unknown member", `{"repositoryName":"ab","color":"red"}`, "SerializationException"},
		{"wrong type", `{"repositoryName":7}`, "SerializationException"},
		{"bad name", `{"repositoryName":"Team/App"}`, "InvalidParameterException"},
		{"short name", `{"repositoryName":"a"}`, "InvalidParameterException"},
		{"registry ID pattern", `{"repositoryName":"ab","registryId":"12"}`, "InvalidParameterException"},
		{"other registry", `{"repositoryName":"ab","registryId":"210987654321"}`, "InvalidParameterException"},
		{"KMS", `{"repositoryName":"ab","encryptionConfiguration":{"encryptionType":"KMS"}}`, ""},
		{"KMS with a key", `{"repositoryName":"ab","encryptionConfiguration":{"encryptionType":"KMS","kmsKey":"alias/x"}}`, ""},
		{"KMS with an empty key", `{"repositoryName":"ab","encryptionConfiguration":{"encryptionType":"KMS","kmsKey":""}}`, "InvalidParameterException"},
		{"KMS_DSSE outside GovCloud", `{"repositoryName":"ab","encryptionConfiguration":{"encryptionType":"KMS_DSSE","kmsKey":"alias/x"}}`, "InvalidParameterException"},
		{"AES256 with a key", `{"repositoryName":"ab","encryptionConfiguration":{"encryptionType":"AES256","kmsKey":"k"}}`, "InvalidParameterException"},
		{"no encryption type", `{"repositoryName":"ab","encryptionConfiguration":{}}`, "InvalidParameterException"},
		{"unknown encryption type", `{"repositoryName":"ab","encryptionConfiguration":{"encryptionType":"ROT13"}}`, "InvalidParameterException"},
		{"unknown mutability", `{"repositoryName":"ab","imageTagMutability":"SOMETIMES"}`, "InvalidParameterException"},
		{"exclusion needs filters", `{"repositoryName":"ab","imageTagMutability":"MUTABLE_WITH_EXCLUSION"}`, "InvalidParameterException"},
		{"exclusion with empty filters", `{"repositoryName":"ab","imageTagMutability":"MUTABLE_WITH_EXCLUSION","imageTagMutabilityExclusionFilters":[]}`, "InvalidParameterException"},
		{"filters without exclusion", `{"repositoryName":"ab","imageTagMutability":"IMMUTABLE","imageTagMutabilityExclusionFilters":[{"filterType":"WILDCARD","filter":"x"}]}`, "InvalidParameterException"},
		{"filters with default", `{"repositoryName":"ab","imageTagMutabilityExclusionFilters":[{"filterType":"WILDCARD","filter":"x"}]}`, "InvalidParameterException"},
		{"filter type", `{"repositoryName":"ab","imageTagMutability":"IMMUTABLE_WITH_EXCLUSION","imageTagMutabilityExclusionFilters":[{"filterType":"REGEX","filter":"x"}]}`, "InvalidParameterException"},
		{"filter pattern", `{"repositoryName":"ab","imageTagMutability":"IMMUTABLE_WITH_EXCLUSION","imageTagMutabilityExclusionFilters":[{"filterType":"WILDCARD","filter":"a b"}]}`, "InvalidParameterException"},
		{"six filters", `{"repositoryName":"ab","imageTagMutability":"IMMUTABLE_WITH_EXCLUSION","imageTagMutabilityExclusionFilters":[` +
			strings.Repeat(`{"filterType":"WILDCARD","filter":"x"},`, 5) + `{"filterType":"WILDCARD","filter":"x"}]}`, "InvalidParameterException"},
		{"tag key too long", `{"repositoryName":"ab","tags":[{"Key":"` + long + `","Value":"v"}]}`, "InvalidTagParameterException"},
		{"tag key empty", `{"repositoryName":"ab","tags":[{"Key":"","Value":"v"}]}`, "InvalidTagParameterException"},
		{"tag value too long", `{"repositoryName":"ab","tags":[{"Key":"k","Value":"` + strings.Repeat("v", 257) + `"}]}`, "InvalidTagParameterException"},
		{"tag without value", `{"repositoryName":"ab","tags":[{"Key":"k"}]}`, "InvalidTagParameterException"},
		{"tag aws prefix", `{"repositoryName":"ab","tags":[{"Key":"aws:owner","Value":"v"}]}`, "InvalidTagParameterException"},
		{"tag character", `{"repositoryName":"ab","tags":[{"Key":"a<b","Value":"v"}]}`, "InvalidTagParameterException"},
		{"tag twice", `{"repositoryName":"ab","tags":[{"Key":"k","Value":"1"},{"Key":"k","Value":"2"}]}`, "InvalidTagParameterException"},
		{"51 tags", `{"repositoryName":"ab","tags":[` + strings.Join(fiftyOne, ",") + `]}`, "TooManyTagsException"},
		{"unicode tag", `{"repositoryName":"ab","tags":[{"Key":"équipe 1","Value":"données/été=+-@"}]}`, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := reposScope.parseCreateRepository([]byte(tc.body))
			if got := reposExceptionOf(t, err); got != tc.want {
				t.Fatalf("exception = %q (%v), want %q", got, err, tc.want)
			}
		})
	}
}

func TestDSSEOnlyInGovCloud(t *testing.T) {
	t.Parallel()
	body := []byte(`{"repositoryName":"ab","encryptionConfiguration":{"encryptionType":"KMS_DSSE"}}`)
	_, err := reposScope.parseCreateRepository(body)
	if err == nil || !strings.Contains(err.Error(), "only available in the AWS GovCloud (US) regions") {
		t.Fatalf("KMS_DSSE outside GovCloud = %v", err)
	}
	gov := registryScope{region: "us-gov-west-1", account: reposScope.account}
	req, err := gov.parseCreateRepository(body)
	if err != nil || req.encryption != "KMS_DSSE" || req.kmsKey != "" {
		t.Fatalf("KMS_DSSE in us-gov-west-1 = %+v, %v", req, err)
	}
}

func TestParseDescribeRepositories(t *testing.T) {
	t.Parallel()
	tok := pageToken("team/app")
	for _, tc := range []struct {
		name, body, want string
		check            func(describeRepositoriesRequest) bool
	}{
		{"all", `{}`, "", func(r describeRepositoriesRequest) bool { return r.names == nil && r.limit == 100 && r.after == "" }},
		{"page", `{"maxResults":1000,"nextToken":"` + tok + `"}`, "", func(r describeRepositoriesRequest) bool { return r.limit == 1000 && r.after == "team/app" }},
		{"empty token is the start", `{"nextToken":""}`, "", func(r describeRepositoriesRequest) bool { return r.after == "" }},
		{"names deduplicated", `{"repositoryNames":["b1","a1","b1"]}`, "", func(r describeRepositoriesRequest) bool {
			return len(r.names) == 2 && r.names[0] == "b1" && r.names[1] == "a1"
		}},
		{"maxResults 0", `{"maxResults":0}`, "InvalidParameterException", nil},
		{"maxResults 1001", `{"maxResults":1001}`, "InvalidParameterException", nil},
		{"names and token", `{"repositoryNames":["ab"],"nextToken":"` + tok + `"}`, "InvalidParameterException", nil},
		{"names and maxResults", `{"repositoryNames":["ab"],"maxResults":5}`, "InvalidParameterException", nil},
		{"no names", `{"repositoryNames":[]}`, "InvalidParameterException", nil},
		{"bad name", `{"repositoryNames":["ab","A"]}`, "InvalidParameterException", nil},
		{"forged token", `{"nextToken":"bm9wZQ"}`, "InvalidParameterException", nil},
		{"token of a bad name", `{"nextToken":"` + pageToken("../x") + `"}`, "InvalidParameterException", nil},
		{"other registry", `{"registryId":"000000000000"}`, "InvalidParameterException", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			req, err := reposScope.parseDescribeRepositories([]byte(tc.body))
			if got := reposExceptionOf(t, err); got != tc.want {
				t.Fatalf("exception = %q (%v), want %q", got, err, tc.want)
			}
			if tc.check != nil && !tc.check(req) {
				t.Fatalf("request = %+v", req)
			}
		})
	}
}

func TestRepositoryFromARN(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ arn, want string }{
		{"arn:aws:ecr:us-east-1:123456789012:repository/team/app", ""},
		{"arn:aws:ecr:us-east-1:123456789012:repository/", "InvalidParameterException"},
		{"arn:aws:ecr:us-west-2:123456789012:repository/team/app", "InvalidParameterException"},
		{"arn:aws:ecr:us-east-1:210987654321:repository/team/app", "InvalidParameterException"},
		{"arn:aws:kms:us-east-1:123456789012:key/k", "InvalidParameterException"},
		{"arn:aws-cn:ecr:us-east-1:123456789012:repository/ab", "InvalidParameterException"},
		{"arn:aws:ecr:us-east-1:123456789012:registry/ab", "InvalidParameterException"},
		{"arn:aws:ecr:us-east-1:123456789012:repository/a:b", "InvalidParameterException"},
		{"team/app", "InvalidParameterException"},
		{"", "InvalidParameterException"},
	} {
		t.Run(tc.arn, func(t *testing.T) {
			t.Parallel()
			arn := tc.arn
			_, err := reposScope.repositoryFromARN(&arn)
			if got := reposExceptionOf(t, err); got != tc.want {
				t.Fatalf("exception = %q (%v), want %q", got, err, tc.want)
			}
		})
	}
}

// reposDecoders are the request decoders of the repository, policy, tag and
// registry operations, with the exceptions each may answer.
var reposDecoders = []struct {
	op      string
	decode  func([]byte) (check func() error, err error)
	allowed []string
}{
	{"CreateRepository", func(b []byte) (func() error, error) {
		req, err := reposScope.parseCreateRepository(b)
		return func() error {
			if err := reposValidName(req.name); err != nil {
				return err
			}
			if len(req.tags) > maxTagsPerResource {
				return fmt.Errorf("%d tags accepted", len(req.tags))
			}
			for _, t := range req.tags {
				if n := utf8.RuneCountInString(t.Key); n < 1 || n > maxTagKeyChars || utf8.RuneCountInString(t.Value) > maxTagValueChars {
					return fmt.Errorf("tag %q accepted", t.Key)
				}
			}
			withExclusion := strings.HasSuffix(req.mutability, "_WITH_EXCLUSION")
			if withExclusion != (len(req.exclusions) > 0) || len(req.exclusions) > maxExclusionFilters {
				return fmt.Errorf("mutability %s with %d filters accepted", req.mutability, len(req.exclusions))
			}
			return nil
		}, err
	}, []string{"InvalidParameterException", "InvalidTagParameterException", "TooManyTagsException"}},
	{"DescribeRepositories", func(b []byte) (func() error, error) {
		req, err := reposScope.parseDescribeRepositories(b)
		return func() error {
			if req.limit < 1 || req.limit > maxDescribeResults || len(req.names) > maxRepositoryNames {
				return fmt.Errorf("request %+v accepted", req)
			}
			for _, n := range req.names {
				if err := reposValidName(n); err != nil {
					return err
				}
			}
			return nil
		}, err
	}, []string{"InvalidParameterException"}},
	{"DeleteRepository", func(b []byte) (func() error, error) {
		req, err := reposScope.parseDeleteRepository(b)
		return func() error { return reposValidName(req.name) }, err
	}, []string{"InvalidParameterException"}},
	{"PutImageTagMutability", func(b []byte) (func() error, error) {
		req, err := reposScope.parsePutImageTagMutability(b)
		return func() error {
			if req.mutability == "" {
				return errors.New("empty mutability accepted")
			}
			return reposValidName(req.name)
		}, err
	}, []string{"InvalidParameterException"}},
	{"PutImageScanningConfiguration", func(b []byte) (func() error, error) {
		name, _, err := reposScope.parsePutImageScanningConfiguration(b)
		return func() error { return reposValidName(name) }, err
	}, []string{"InvalidParameterException"}},
	{"SetRepositoryPolicy", func(b []byte) (func() error, error) {
		req, err := reposScope.parseSetRepositoryPolicy(b)
		if err == nil {
			_, err = parsePolicy("repository", req.text)
		}
		return func() error {
			if utf8.RuneCountInString(req.text) > maxPolicyChars {
				return errors.New("oversized policy accepted")
			}
			return reposValidName(req.name)
		}, err
	}, []string{"InvalidParameterException"}},
	{"GetRepositoryPolicy", func(b []byte) (func() error, error) {
		name, err := reposScope.parseRepositoryRef(b)
		return func() error { return reposValidName(name) }, err
	}, []string{"InvalidParameterException"}},
	{"PutRegistryPolicy", func(b []byte) (func() error, error) {
		text, err := parsePutRegistryPolicy(b)
		if err == nil {
			_, err = parsePolicy("registry", text)
		}
		return func() error { return nil }, err
	}, []string{"InvalidParameterException"}},
	{"DescribeRegistry", func(b []byte) (func() error, error) {
		return func() error { return nil }, parseNoMembers(b)
	}, nil},
	{"TagResource", func(b []byte) (func() error, error) {
		name, tags, err := reposScope.parseTagResource(b)
		return func() error {
			if len(tags) > maxTagsPerResource {
				return errors.New("too many tags accepted")
			}
			return reposValidName(name)
		}, err
	}, []string{"InvalidParameterException", "InvalidTagParameterException", "TooManyTagsException"}},
	{"UntagResource", func(b []byte) (func() error, error) {
		name, _, err := reposScope.parseUntagResource(b)
		return func() error { return reposValidName(name) }, err
	}, []string{"InvalidParameterException", "InvalidTagParameterException", "TooManyTagsException"}},
	{"ListTagsForResource", func(b []byte) (func() error, error) {
		name, err := reposScope.parseListTagsForResource(b)
		return func() error { return reposValidName(name) }, err
	}, []string{"InvalidParameterException"}},
}

func reposValidName(n registry.RepoName) error {
	if _, err := registry.ParseRepoName(string(n)); err != nil {
		return fmt.Errorf("name %q accepted: %v", n, err)
	}
	return nil
}

// FuzzDecodeRepositoryRequests feeds arbitrary bodies to every decoder of
// the repository, policy, tag and registry operations: none may panic, each
// failure must be one of the exceptions the model lists for the operation
// (or SerializationException for a body that is not the input shape), and
// whatever is accepted must satisfy the model's constraints.
func FuzzDecodeRepositoryRequests(f *testing.F) {
	for _, s := range []string{
		``, `{}`, `null`, `[]`, `{"repositoryName":"team/app"}`,
		`{"repositoryName":"a-b/c","tags":[{"Key":"k","Value":"v"}],"imageTagMutability":"IMMUTABLE_WITH_EXCLUSION",` +
			`"imageTagMutabilityExclusionFilters":[{"filterType":"WILDCARD","filter":"v*"}],"imageScanningConfiguration":{"scanOnPush":true},` +
			`"encryptionConfiguration":{"encryptionType":"AES256"}}`,
		`{"repositoryNames":["ab","cd"]}`, `{"maxResults":10,"nextToken":"` + pageToken("ab") + `"}`,
		`{"repositoryName":"ab","force":true}`,
		`{"repositoryName":"ab","policyText":"{\"Version\":\"2012-10-17\",\"Statement\":[{\"Effect\":\"Deny\",\"Principal\":\"*\",\"Action\":\"ecr:*\"}]}"}`,
		`{"policyText":"{}"}`,
		`{"resourceArn":"arn:aws:ecr:us-east-1:123456789012:repository/ab","tags":[{"Key":"k","Value":""}],"tagKeys":["k"]}`,
		`{"repositoryName":"ab","imageScanningConfiguration":{}}`,
		`{"repositoryName":"ab","imageTagMutability":"MUTABLE"}`,
		`{"registryId":"123456789012","repositoryName":"ab","encryptionConfiguration":{"encryptionType":"KMS","kmsKey":"x"}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, d := range reposDecoders {
			check, err := d.decode(body)
			if err == nil {
				if cerr := check(); cerr != nil {
					t.Fatalf("%s accepted %q: %v", d.op, body, cerr)
				}
				continue
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("%s(%q): error %v is not an *Error", d.op, body, err)
			}
			ok := e.Type == "SerializationException"
			for _, a := range d.allowed {
				ok = ok || e.Type == a
			}
			if !ok || e.Status != http.StatusBadRequest || e.Message == "" {
				t.Fatalf("%s(%q) = %s (%d) %q: not an exception the model lists", d.op, body, e.Type, e.Status, e.Message)
			}
		}
	})
}

// newReposHandler returns a Handler over a real SQLite store and file
// storage in a temporary directory, allowing everything.
func newReposHandler(tb testing.TB) (*Handler, metadata.Store) {
	tb.Helper()
	dir := tb.TempDir()
	store, err := sqlite.Open(context.Background(), sqlite.Config{Path: filepath.Join(dir, "coffer.db")})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { store.Close() })
	driver, err := fs.New(fs.Config{Root: filepath.Join(dir, "blobs")})
	if err != nil {
		tb.Fatal(err)
	}
	root, err := rootkey.Generate()
	if err != nil {
		tb.Fatal(err)
	}
	reg, err := registry.New(registry.Config{Region: reposScope.region, AccountID: reposScope.account,
		Store: store, Driver: driver, Keys: registry.RootKeys{Root: root}, Root: root})
	if err != nil {
		tb.Fatal(err)
	}
	tok, err := token.NewKey(make([]byte, 32))
	if err != nil {
		tb.Fatal(err)
	}
	h, err := New(Config{Registry: reg, Authz: auth.AllowAll{}, Tokens: tok})
	if err != nil {
		tb.Fatal(err)
	}
	return h, store
}

// reposCall serves one ECR request in-process and decodes the response.
func reposCall(tb testing.TB, h *Handler, op, body string, out any) *httptest.ResponseRecorder {
	tb.Helper()
	req := httptest.NewRequest(http.MethodPost, "http://registry.test/", strings.NewReader(body))
	req.Header.Set("X-Amz-Target", TargetPrefix+op)
	req.Header.Set("Content-Type", "application/x-amz-json-1.1")
	info := &auth.Info{Principal: auth.Principal{Type: "IAMUser", ARN: "arn:aws:iam::123456789012:user/bench", AccountID: "123456789012"}}
	req = req.WithContext(auth.WithInfo(req.Context(), info))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		tb.Fatalf("%s: %d %s", op, rec.Code, rec.Body)
	}
	if out != nil {
		if err := json.Unmarshal(rec.Body.Bytes(), out); err != nil {
			tb.Fatal(err)
		}
	}
	return rec
}

// TestDescribeRepositoriesPaging walks a registry in pages and checks that
// every repository comes exactly once, in name order, across a delete and
// a create between pages.
func TestDescribeRepositoriesPaging(t *testing.T) {
	t.Parallel()
	h, store := newReposHandler(t)
	ctx := context.Background()
	for i := range 30 {
		if err := store.CreateRepository(ctx, metadata.Repository{ID: fmt.Sprint("id", i), Name: fmt.Sprintf("r%02d", i),
			Domain: "aes256", EncryptionType: "AES256", TagMutability: "MUTABLE", CreatedAt: time.Unix(1700000000, 0)}); err != nil {
			t.Fatal(err)
		}
	}
	type page struct {
		Repositories []repositoryShape
		NextToken    string
	}
	var names []string
	body := `{"maxResults":7}`
	for pages := 0; ; pages++ {
		var p page
		reposCall(t, h, "DescribeRepositories", body, &p)
		for _, r := range p.Repositories {
			names = append(names, r.RepositoryName)
			if r.EncryptionConfiguration.EncryptionType != "AES256" || r.CreatedAt != 1700000000 ||
				r.RepositoryURI != "registry.test/"+r.RepositoryName {
				t.Fatalf("repository %+v", r)
			}
		}
		if pages == 1 { // between pages: one behind the cursor goes, one ahead comes
			if _, err := store.DeleteRepository(ctx, "r00"); err != nil {
				t.Fatal(err)
			}
			if err := store.CreateRepository(ctx, metadata.Repository{ID: "late", Name: "r99", Domain: "aes256",
				EncryptionType: "AES256", TagMutability: "MUTABLE", CreatedAt: time.Unix(1700000000, 0)}); err != nil {
				t.Fatal(err)
			}
		}
		if p.NextToken == "" {
			break
		}
		body = `{"maxResults":7,"nextToken":"` + p.NextToken + `"}`
	}
	want := []string{}
	for i := range 30 {
		want = append(want, fmt.Sprintf("r%02d", i))
	}
	want = append(want, "r99")
	if strings.Join(names, ",") != strings.Join(want, ",") {
		t.Fatalf("paged names = %v\nwant %v", names, want)
	}
}

// BenchmarkDescribeRepositories1000of10000 is the DescribeRepositories
// target: one page of 1,000 repositories out of 10,000 (decode, authorize,
// one keyset query, JSON encoding) in at most 50 ms.
func BenchmarkDescribeRepositories1000of10000(b *testing.B) {
	h, store := newReposHandler(b)
	ctx := context.Background()
	for i := range 10_000 {
		if err := store.CreateRepository(ctx, metadata.Repository{ID: fmt.Sprint("id", i), Name: fmt.Sprintf("team-%02d/app-%05d", i%37, i),
			Domain: "aes256", EncryptionType: "AES256", TagMutability: "IMMUTABLE_WITH_EXCLUSION",
			TagMutabilityExclusions: []string{"latest", "dev-*"}, ScanOnPush: i%2 == 0, CreatedAt: time.Now()}); err != nil {
			b.Fatal(err)
		}
	}
	// Start mid-registry, as a page in the middle of a walk would.
	body := `{"maxResults":1000,"nextToken":"` + pageToken("team-17/app-00000") + `"}`
	var n int
	for b.Loop() {
		rec := reposCall(b, h, "DescribeRepositories", body, nil)
		n = rec.Body.Len()
	}
	var page struct{ Repositories []repositoryShape }
	reposCall(b, h, "DescribeRepositories", body, &page)
	if len(page.Repositories) != 1000 {
		b.Fatalf("page of %d repositories", len(page.Repositories))
	}
	b.ReportMetric(float64(n), "bytes/page")
}
