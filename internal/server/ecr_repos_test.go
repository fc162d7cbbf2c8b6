package server

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecr"
	"github.com/aws/aws-sdk-go-v2/service/ecr/types"
	"github.com/aws/smithy-go"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/cofferhq/coffer/internal/authz"
	"github.com/cofferhq/coffer/internal/config"
	"github.com/cofferhq/coffer/internal/metadata"
)

// reposModel is the part of the botocore ECR model (ecr/2015-09-21) the
// response checks need. It is loaded from the installed botocore at test
// time: the model is the authority on member names, types, required
// members, enums and limits.
type reposModel struct {
	Operations map[string]struct {
		Output *struct {
			Shape string `json:"shape"`
		} `json:"output"`
		Errors []struct {
			Shape string `json:"shape"`
		} `json:"errors"`
	} `json:"operations"`
	Shapes map[string]reposShape `json:"shapes"`
}

type reposShape struct {
	Type     string   `json:"type"`
	Required []string `json:"required"`
	Members  map[string]struct {
		Shape string `json:"shape"`
	} `json:"members"`
	Member *struct {
		Shape string `json:"shape"`
	} `json:"member"`
	Enum      []string `json:"enum"`
	Min       *float64 `json:"min"`
	Max       *float64 `json:"max"`
	Pattern   string   `json:"pattern"`
	Exception bool     `json:"exception"`
}

var (
	reposModelOnce sync.Once
	reposModelVal  *reposModel
	reposModelErr  error
)

// loadReposModel reads the gzipped ECR model of the installed botocore. A
// missing botocore fails the test: the checks must not silently vanish.
func loadReposModel(t *testing.T) *reposModel {
	t.Helper()
	reposModelOnce.Do(func() {
		out, err := exec.Command("python3", "-c", "import botocore,os;print(os.path.dirname(botocore.__file__))").Output()
		if err != nil {
			reposModelErr = fmt.Errorf("botocore is needed for the model checks (pip install botocore): %w", err)
			return
		}
		f, err := os.Open(filepath.Join(strings.TrimSpace(string(out)), "data", "ecr", "2015-09-21", "service-2.json.gz"))
		if err != nil {
			reposModelErr = err
			return
		}
		defer f.Close()
		zr, err := gzip.NewReader(f)
		if err != nil {
			reposModelErr = err
			return
		}
		var m reposModel
		if err := json.NewDecoder(zr).Decode(&m); err != nil {
			reposModelErr = err
			return
		}
		reposModelVal = &m
	})
	if reposModelErr != nil {
		t.Fatalf("ECR model: %v", reposModelErr)
	}
	return reposModelVal
}

// check returns what is wrong with v as a value of shape: members the shape
// does not have, missing required members, wrong JSON types, values outside
// enums, lengths and patterns.
func (m *reposModel) check(shape string, v any, path string) []string {
	s, ok := m.Shapes[shape]
	if !ok {
		return []string{path + ": shape " + shape + " is not in the model"}
	}
	bad := func(format string, args ...any) []string {
		return []string{path + ": " + fmt.Sprintf(format, args...)}
	}
	between := func(n float64, what string) []string {
		if s.Min != nil && n < *s.Min || s.Max != nil && n > *s.Max {
			return bad("%s %v outside [%v, %v] (%s)", what, n, reposPtrOr(s.Min), reposPtrOr(s.Max), shape)
		}
		return nil
	}
	switch s.Type {
	case "structure":
		obj, ok := v.(map[string]any)
		if !ok {
			return bad("%T, want an object (%s)", v, shape)
		}
		var errs []string
		for _, r := range s.Required {
			if _, ok := obj[r]; !ok {
				errs = append(errs, bad("required member %s missing (%s)", r, shape)...)
			}
		}
		for k, mv := range obj {
			mem, ok := s.Members[k]
			if !ok {
				errs = append(errs, bad("member %q is not in %s", k, shape)...)
				continue
			}
			errs = append(errs, m.check(mem.Shape, mv, path+"."+k)...)
		}
		return errs
	case "list":
		arr, ok := v.([]any)
		if !ok {
			return bad("%T, want a list (%s)", v, shape)
		}
		errs := between(float64(len(arr)), "length")
		for i, e := range arr {
			errs = append(errs, m.check(s.Member.Shape, e, fmt.Sprintf("%s[%d]", path, i))...)
		}
		return errs
	case "string":
		str, ok := v.(string)
		if !ok {
			return bad("%T, want a string (%s)", v, shape)
		}
		if len(s.Enum) > 0 && !slices.Contains(s.Enum, str) {
			return bad("%q not in enum %v", str, s.Enum)
		}
		if s.Pattern != "" {
			re, err := regexp.Compile("^(?:" + strings.TrimSuffix(strings.TrimPrefix(s.Pattern, "^"), "$") + ")$")
			if err != nil {
				return bad("pattern %q does not compile: %v", s.Pattern, err)
			}
			if !re.MatchString(str) {
				return bad("%q does not match %s's pattern %s", str, shape, s.Pattern)
			}
		}
		return between(float64(utf8.RuneCountInString(str)), "length")
	case "boolean":
		if _, ok := v.(bool); !ok {
			return bad("%T, want a boolean (%s)", v, shape)
		}
	case "integer", "long":
		n, ok := v.(float64)
		if !ok || n != math.Trunc(n) {
			return bad("%v, want an integer (%s)", v, shape)
		}
		return between(n, "value")
	case "timestamp":
		// JSON 1.1 timestamps are epoch seconds, a JSON number.
		if _, ok := v.(float64); !ok {
			return bad("%T, want epoch seconds as a number (%s)", v, shape)
		}
	default:
		return bad("type %s not handled by the test (%s)", s.Type, shape)
	}
	return nil
}

func reposPtrOr(p *float64) any {
	if p == nil {
		return "-"
	}
	return *p
}

// reposExchange is one recorded ECR call.
type reposExchange struct {
	op     string
	status int
	body   []byte
}

// reposRecorder is an http.RoundTripper that keeps every ECR response, so
// the raw JSON can be checked against the model (the SDK drops members it
// does not know).
type reposRecorder struct {
	mu        sync.Mutex
	exchanges []reposExchange
}

func (rec *reposRecorder) RoundTrip(req *http.Request) (*http.Response, error) {
	op := strings.TrimPrefix(req.Header.Get("X-Amz-Target"), "AmazonEC2ContainerRegistry_V20150921.")
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	rec.mu.Lock()
	rec.exchanges = append(rec.exchanges, reposExchange{op: op, status: resp.StatusCode, body: body})
	rec.mu.Unlock()
	return resp, nil
}

func (rec *reposRecorder) client() *http.Client { return &http.Client{Transport: rec} }

// last returns the latest recorded response of op.
func (rec *reposRecorder) last(t *testing.T, op string) []byte {
	t.Helper()
	rec.mu.Lock()
	defer rec.mu.Unlock()
	for i := len(rec.exchanges) - 1; i >= 0; i-- {
		if rec.exchanges[i].op == op {
			return rec.exchanges[i].body
		}
	}
	t.Fatalf("no %s response recorded", op)
	return nil
}

// checkAgainstModel validates every recorded response: a 200 against the
// operation's output shape, an error's __type against the operation's
// declared errors (plus AWS's common AccessDeniedException) and the
// exception shape. It returns the operations and error types seen.
func (rec *reposRecorder) checkAgainstModel(t *testing.T) (ops, errs map[string]bool) {
	t.Helper()
	m := loadReposModel(t)
	ops, errs = map[string]bool{}, map[string]bool{}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	for _, x := range rec.exchanges {
		op, ok := m.Operations[x.op]
		if !ok {
			t.Errorf("%s is not an operation of the model", x.op)
			continue
		}
		var v any
		if err := json.Unmarshal(x.body, &v); err != nil {
			t.Errorf("%s: response is not JSON: %q", x.op, x.body)
			continue
		}
		if x.status == http.StatusOK {
			ops[x.op] = true
			if op.Output == nil {
				t.Errorf("%s: the model has no output", x.op)
				continue
			}
			for _, e := range m.check(op.Output.Shape, v, x.op) {
				t.Errorf("model: %s\n  body: %s", e, x.body)
			}
			continue
		}
		obj, _ := v.(map[string]any)
		typ, _ := obj["__type"].(string)
		errs[typ] = true
		declared := typ == "AccessDeniedException"
		for _, e := range op.Errors {
			declared = declared || e.Shape == typ
		}
		if !declared {
			t.Errorf("%s answered %s (%d), which the model does not list for it: %s", x.op, typ, x.status, x.body)
		}
		if x.status != http.StatusBadRequest {
			t.Errorf("%s: %s with HTTP %d, want 400", x.op, typ, x.status)
		}
		if msg, _ := obj["message"].(string); msg == "" {
			t.Errorf("%s: %s without a message", x.op, typ)
		}
		if _, ok := m.Shapes[typ]; ok {
			delete(obj, "__type")
			for _, e := range m.check(typ, obj, x.op+"!"+typ) {
				t.Errorf("model: %s", e)
			}
		}
	}
	return ops, errs
}

// reposErrorCode returns the ECR exception name of an SDK error.
func reposErrorCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

func reposWant(t *testing.T, what string, err error, code string) {
	t.Helper()
	if got := reposErrorCode(err); got != code {
		t.Fatalf("%s: err = %v, want %s", what, err, code)
	}
}

// reposRawEncryption returns the raw JSON of the first repository's
// encryptionConfiguration in a recorded response body.
func reposRawEncryption(t *testing.T, body []byte) string {
	t.Helper()
	var v struct {
		Repository   map[string]json.RawMessage   `json:"repository"`
		Repositories []map[string]json.RawMessage `json:"repositories"`
	}
	if err := json.Unmarshal(body, &v); err != nil {
		t.Fatal(err)
	}
	repo := v.Repository
	if repo == nil && len(v.Repositories) > 0 {
		repo = v.Repositories[0]
	}
	raw, ok := repo["encryptionConfiguration"]
	if !ok {
		t.Fatalf("no encryptionConfiguration in %s", body)
	}
	return string(raw)
}

// reposObjects counts the stored objects under a storage prefix.
func reposObjects(t *testing.T, app *App, prefix string) int {
	t.Helper()
	n := 0
	err := filepath.WalkDir(filepath.Join(app.cfg.DataDir, "blobs", prefix), func(_ string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err == nil && d.Type().IsRegular() {
			n++
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestECRRepositoryLifecycle drives the repository, policy, tag and
// registry operations with aws-sdk-go-v2 over real SigV4, and checks every
// response against the botocore model.
func TestECRRepositoryLifecycle(t *testing.T) {
	t.Parallel()
	srv, app := newAuthServer(t)
	rec := &reposRecorder{}
	c := ecrClient(srv, adminID, adminSecret, rec.client())
	ctx := context.Background()
	host := strings.TrimPrefix(srv.URL, "http://")
	acct := app.accountID
	const name = "life/app"
	arn := "arn:aws:ecr:us-east-1:" + acct + ":repository/" + name
	admin := remote.WithAuth(&authn.Basic{Username: "AWS", Password: loginToken(t, c)})
	noRetry := remote.WithRetryStatusCodes()

	// Create with tags and IMMUTABLE_WITH_EXCLUSION.
	before := time.Now().Add(-time.Second)
	created, err := c.CreateRepository(ctx, &ecr.CreateRepositoryInput{
		RepositoryName:     aws.String(name),
		ImageTagMutability: types.ImageTagMutabilityImmutableWithExclusion,
		ImageTagMutabilityExclusionFilters: []types.ImageTagMutabilityExclusionFilter{
			{FilterType: types.ImageTagMutabilityExclusionFilterTypeWildcard, Filter: aws.String("latest")},
			{FilterType: types.ImageTagMutabilityExclusionFilterTypeWildcard, Filter: aws.String("dev-*")},
		},
		ImageScanningConfiguration: &types.ImageScanningConfiguration{ScanOnPush: true},
		Tags:                       []types.Tag{{Key: aws.String("team"), Value: aws.String("a")}, {Key: aws.String("env"), Value: aws.String("dev")}},
	})
	if err != nil {
		t.Fatalf("CreateRepository: %v", err)
	}
	r := created.Repository
	if aws.ToString(r.RepositoryArn) != arn || aws.ToString(r.RegistryId) != acct || aws.ToString(r.RepositoryName) != name ||
		aws.ToString(r.RepositoryUri) != host+"/"+name || r.ImageTagMutability != types.ImageTagMutabilityImmutableWithExclusion ||
		len(r.ImageTagMutabilityExclusionFilters) != 2 || !r.ImageScanningConfiguration.ScanOnPush ||
		r.EncryptionConfiguration.EncryptionType != types.EncryptionTypeAes256 || r.EncryptionConfiguration.KmsKey != nil {
		t.Fatalf("created repository = %+v", r)
	}
	if r.CreatedAt == nil || r.CreatedAt.Before(before) || r.CreatedAt.After(time.Now().Add(time.Second)) {
		t.Fatalf("createdAt = %v", r.CreatedAt)
	}
	encryption := reposRawEncryption(t, rec.last(t, "CreateRepository"))
	if encryption != `{"encryptionType":"AES256"}` {
		t.Fatalf("encryptionConfiguration = %s", encryption)
	}
	stored, err := app.store.GetRepository(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	// ENC-07: after every operation, the configuration DescribeRepositories
	// reports is byte-identical, and so is the stored row's.
	sameEncryption := func(after string) {
		t.Helper()
		if _, err := c.DescribeRepositories(ctx, &ecr.DescribeRepositoriesInput{RepositoryNames: []string{name}}); err != nil {
			t.Fatalf("describe after %s: %v", after, err)
		}
		if got := reposRawEncryption(t, rec.last(t, "DescribeRepositories")); got != encryption {
			t.Fatalf("after %s encryptionConfiguration = %s, want %s", after, got, encryption)
		}
		now, err := app.store.GetRepository(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		if now.ID != stored.ID || now.Domain != stored.Domain || now.EncryptionType != stored.EncryptionType || now.KMSKey != stored.KMSKey {
			t.Fatalf("after %s the stored repository is %+v, was %+v", after, now, stored)
		}
	}
	sameEncryption("CreateRepository")

	t.Run("errors of CreateRepository", func(t *testing.T) {
		_, err := c.CreateRepository(ctx, &ecr.CreateRepositoryInput{RepositoryName: aws.String(name)})
		reposWant(t, "create twice", err, "RepositoryAlreadyExistsException")
		_, err = c.CreateRepository(ctx, &ecr.CreateRepositoryInput{RepositoryName: aws.String("Bad/Name")})
		reposWant(t, "bad name", err, "InvalidParameterException")
		// KMS repositories are issue #6 (kms_repos_test.go); an unknown key
		// fails creation and leaves nothing behind.
		_, err = c.CreateRepository(ctx, &ecr.CreateRepositoryInput{RepositoryName: aws.String("kms/app"),
			EncryptionConfiguration: &types.EncryptionConfiguration{EncryptionType: types.EncryptionTypeKms, KmsKey: aws.String("alias/no-such-key")}})
		reposWant(t, "KMS with an unknown key", err, "KmsException")
		if _, err := app.store.GetRepository(ctx, "kms/app"); !errors.Is(err, metadata.ErrNotFound) {
			t.Fatalf("a failed KMS request left a repository behind: %v", err)
		}
		_, err = c.CreateRepository(ctx, &ecr.CreateRepositoryInput{RepositoryName: aws.String("kms/app"),
			EncryptionConfiguration: &types.EncryptionConfiguration{EncryptionType: types.EncryptionTypeKmsDsse}})
		reposWant(t, "KMS_DSSE", err, "InvalidParameterException")
		_, err = c.CreateRepository(ctx, &ecr.CreateRepositoryInput{RepositoryName: aws.String("other/app"), RegistryId: aws.String("000000000000")})
		reposWant(t, "other registry", err, "InvalidParameterException")
		_, err = c.CreateRepository(ctx, &ecr.CreateRepositoryInput{RepositoryName: aws.String("other/app"),
			Tags: []types.Tag{{Key: aws.String("aws:reserved"), Value: aws.String("x")}}})
		reposWant(t, "reserved tag", err, "InvalidTagParameterException")
		var many []types.Tag
		for i := range 51 {
			many = append(many, types.Tag{Key: aws.String(fmt.Sprint("k", i)), Value: aws.String("v")})
		}
		_, err = c.CreateRepository(ctx, &ecr.CreateRepositoryInput{RepositoryName: aws.String("other/app"), Tags: many})
		reposWant(t, "51 tags", err, "TooManyTagsException")
		_, err = c.CreateRepository(ctx, &ecr.CreateRepositoryInput{RepositoryName: aws.String("other/app"),
			ImageTagMutability: types.ImageTagMutabilityMutableWithExclusion})
		reposWant(t, "exclusion without filters", err, "InvalidParameterException")
	})

	t.Run("paging over 25 repositories with maxResults 10", func(t *testing.T) {
		for i := range 25 {
			if _, err := c.CreateRepository(ctx, &ecr.CreateRepositoryInput{RepositoryName: aws.String(fmt.Sprintf("page/r%02d", i))}); err != nil {
				t.Fatal(err)
			}
		}
		p := ecr.NewDescribeRepositoriesPaginator(c, &ecr.DescribeRepositoriesInput{MaxResults: aws.Int32(10)})
		var names []string
		var sizes []int
		for p.HasMorePages() {
			out, err := p.NextPage(ctx)
			if err != nil {
				t.Fatal(err)
			}
			sizes = append(sizes, len(out.Repositories))
			for _, r := range out.Repositories {
				if r.EncryptionConfiguration == nil || r.EncryptionConfiguration.EncryptionType != types.EncryptionTypeAes256 {
					t.Fatalf("%s has no AES256 encryptionConfiguration (ENC-01/03)", aws.ToString(r.RepositoryName))
				}
				names = append(names, aws.ToString(r.RepositoryName))
			}
		}
		want := []string{name}
		for i := range 25 {
			want = append(want, fmt.Sprintf("page/r%02d", i))
		}
		slices.Sort(want)
		if !slices.Equal(names, want) || !slices.Equal(sizes, []int{10, 10, 6}) {
			t.Fatalf("pages %v: %v\nwant %v", sizes, names, want)
		}
		_, err := c.DescribeRepositories(ctx, &ecr.DescribeRepositoriesInput{RepositoryNames: []string{name, "page/nope", "page/r01"}})
		reposWant(t, "describe a missing name", err, "RepositoryNotFoundException")
		if !strings.Contains(err.Error(), "'page/nope'") {
			t.Fatalf("RepositoryNotFoundException does not name the repository: %v", err)
		}
		_, err = c.DescribeRepositories(ctx, &ecr.DescribeRepositoriesInput{MaxResults: aws.Int32(1001)})
		reposWant(t, "maxResults 1001", err, "InvalidParameterException")
		_, err = c.DescribeRepositories(ctx, &ecr.DescribeRepositoriesInput{NextToken: aws.String("forged")})
		reposWant(t, "forged token", err, "InvalidParameterException")
	})

	t.Run("tags", func(t *testing.T) {
		list := func() map[string]string {
			t.Helper()
			out, err := c.ListTagsForResource(ctx, &ecr.ListTagsForResourceInput{ResourceArn: aws.String(arn)})
			if err != nil {
				t.Fatal(err)
			}
			m := map[string]string{}
			for _, tg := range out.Tags {
				m[aws.ToString(tg.Key)] = aws.ToString(tg.Value)
			}
			return m
		}
		if got := list(); len(got) != 2 || got["team"] != "a" || got["env"] != "dev" {
			t.Fatalf("tags from create = %v", got)
		}
		if _, err := c.TagResource(ctx, &ecr.TagResourceInput{ResourceArn: aws.String(arn),
			Tags: []types.Tag{{Key: aws.String("team"), Value: aws.String("b")}, {Key: aws.String("owner"), Value: aws.String("")}}}); err != nil {
			t.Fatal(err)
		}
		sameEncryption("TagResource")
		if got := list(); len(got) != 3 || got["team"] != "b" || got["owner"] != "" {
			t.Fatalf("tags after TagResource = %v", got)
		}
		if _, err := c.UntagResource(ctx, &ecr.UntagResourceInput{ResourceArn: aws.String(arn), TagKeys: []string{"env", "not-there"}}); err != nil {
			t.Fatal(err)
		}
		sameEncryption("UntagResource")
		if got := list(); len(got) != 2 || got["team"] != "b" {
			t.Fatalf("tags after UntagResource = %v", got)
		}
		var many []types.Tag
		for i := range 49 {
			many = append(many, types.Tag{Key: aws.String(fmt.Sprint("k", i)), Value: aws.String("v")})
		}
		_, err := c.TagResource(ctx, &ecr.TagResourceInput{ResourceArn: aws.String(arn), Tags: many})
		reposWant(t, "tag beyond 50", err, "TooManyTagsException")
		_, err = c.TagResource(ctx, &ecr.TagResourceInput{ResourceArn: aws.String(arn),
			Tags: []types.Tag{{Key: aws.String(strings.Repeat("k", 129)), Value: aws.String("v")}}})
		reposWant(t, "long key", err, "InvalidTagParameterException")
		_, err = c.ListTagsForResource(ctx, &ecr.ListTagsForResourceInput{ResourceArn: aws.String("arn:aws:ecr:us-east-1:" + acct + ":repository/none/here")})
		reposWant(t, "tags of a missing repository", err, "RepositoryNotFoundException")
		_, err = c.TagResource(ctx, &ecr.TagResourceInput{ResourceArn: aws.String("not-an-arn"), Tags: []types.Tag{}})
		reposWant(t, "malformed ARN", err, "InvalidParameterException")
		_, err = c.UntagResource(ctx, &ecr.UntagResourceInput{ResourceArn: aws.String("arn:aws:ecr:eu-west-1:" + acct + ":repository/" + name), TagKeys: []string{"x"}})
		reposWant(t, "ARN of another region", err, "InvalidParameterException")
	})

	t.Run("mutability and scanning leave the encryption configuration alone", func(t *testing.T) {
		out, err := c.PutImageTagMutability(ctx, &ecr.PutImageTagMutabilityInput{RepositoryName: aws.String(name),
			ImageTagMutability: types.ImageTagMutabilityImmutable})
		if err != nil || out.ImageTagMutability != types.ImageTagMutabilityImmutable || len(out.ImageTagMutabilityExclusionFilters) != 0 ||
			aws.ToString(out.RegistryId) != acct || aws.ToString(out.RepositoryName) != name {
			t.Fatalf("PutImageTagMutability = %+v, %v", out, err)
		}
		sameEncryption("PutImageTagMutability")
		// Immutable now: a tag cannot move.
		img1, _ := random.Image(512, 1)
		img2, _ := random.Image(512, 1)
		if err := remote.Write(ref(t, srv, name+":v1"), img1, admin, noRetry); err != nil {
			t.Fatal(err)
		}
		if err := remote.Write(ref(t, srv, name+":v1"), img2, admin, noRetry); err == nil {
			t.Fatal("an IMMUTABLE repository let tag v1 move")
		}
		mut, err := c.PutImageTagMutability(ctx, &ecr.PutImageTagMutabilityInput{RepositoryName: aws.String(name),
			ImageTagMutability: types.ImageTagMutabilityMutableWithExclusion,
			ImageTagMutabilityExclusionFilters: []types.ImageTagMutabilityExclusionFilter{
				{FilterType: types.ImageTagMutabilityExclusionFilterTypeWildcard, Filter: aws.String("v*")}}})
		if err != nil || len(mut.ImageTagMutabilityExclusionFilters) != 1 {
			t.Fatalf("PutImageTagMutability with exclusion = %+v, %v", mut, err)
		}
		sameEncryption("PutImageTagMutability with exclusion")
		if err := remote.Write(ref(t, srv, name+":latest"), img1, admin, noRetry); err != nil {
			t.Fatal(err)
		}
		if err := remote.Write(ref(t, srv, name+":latest"), img2, admin, noRetry); err != nil {
			t.Fatalf("MUTABLE_WITH_EXCLUSION did not let latest move: %v", err)
		}
		scan, err := c.PutImageScanningConfiguration(ctx, &ecr.PutImageScanningConfigurationInput{RepositoryName: aws.String(name),
			ImageScanningConfiguration: &types.ImageScanningConfiguration{ScanOnPush: false}})
		if err != nil || scan.ImageScanningConfiguration.ScanOnPush || aws.ToString(scan.RepositoryName) != name {
			t.Fatalf("PutImageScanningConfiguration = %+v, %v", scan, err)
		}
		sameEncryption("PutImageScanningConfiguration")
		d, err := c.DescribeRepositories(ctx, &ecr.DescribeRepositoriesInput{RepositoryNames: []string{name}})
		if err != nil || d.Repositories[0].ImageScanningConfiguration.ScanOnPush || d.Repositories[0].ImageTagMutability != types.ImageTagMutabilityMutableWithExclusion {
			t.Fatalf("settings after updates = %+v, %v", d.Repositories, err)
		}
		_, err = c.PutImageTagMutability(ctx, &ecr.PutImageTagMutabilityInput{RepositoryName: aws.String("none/here"), ImageTagMutability: types.ImageTagMutabilityMutable})
		reposWant(t, "mutability of a missing repository", err, "RepositoryNotFoundException")
		_, err = c.PutImageScanningConfiguration(ctx, &ecr.PutImageScanningConfigurationInput{RepositoryName: aws.String("none/here"),
			ImageScanningConfiguration: &types.ImageScanningConfiguration{}})
		reposWant(t, "scanning of a missing repository", err, "RepositoryNotFoundException")
	})

	t.Run("a repository policy Deny blocks a pull; deleting it restores access", func(t *testing.T) {
		id, secret := createUser(t, app, "puller", "AmazonEC2ContainerRegistryReadOnly")
		puller := remote.WithAuth(&authn.Basic{Username: "AWS", Password: loginToken(t, ecrClient(srv, id, secret, nil))})
		pull := func() error {
			_, err := remote.Image(ref(t, srv, name+":v1"), puller, noRetry)
			return err
		}
		if err := pull(); err != nil {
			t.Fatalf("pull before the policy: %v", err)
		}
		_, err := c.GetRepositoryPolicy(ctx, &ecr.GetRepositoryPolicyInput{RepositoryName: aws.String(name)})
		reposWant(t, "no policy yet", err, "RepositoryPolicyNotFoundException")
		_, err = c.DeleteRepositoryPolicy(ctx, &ecr.DeleteRepositoryPolicyInput{RepositoryName: aws.String(name)})
		reposWant(t, "delete a missing policy", err, "RepositoryPolicyNotFoundException")

		deny := `{"Version":"2012-10-17","Statement":[{"Sid":"NoPuller","Effect":"Deny","Principal":{"AWS":"arn:aws:iam::` + acct +
			`:user/puller"},"Action":["ecr:BatchGetImage","ecr:GetDownloadUrlForLayer"]}]}`
		set, err := c.SetRepositoryPolicy(ctx, &ecr.SetRepositoryPolicyInput{RepositoryName: aws.String(name), PolicyText: aws.String(deny), Force: true})
		if err != nil || aws.ToString(set.PolicyText) != deny || aws.ToString(set.RegistryId) != acct {
			t.Fatalf("SetRepositoryPolicy = %+v, %v", set, err)
		}
		sameEncryption("SetRepositoryPolicy")
		got, err := c.GetRepositoryPolicy(ctx, &ecr.GetRepositoryPolicyInput{RepositoryName: aws.String(name)})
		if err != nil || aws.ToString(got.PolicyText) != deny {
			t.Fatalf("GetRepositoryPolicy = %+v, %v", got, err)
		}
		var te *transport.Error
		if err := pull(); !errors.As(err, &te) || te.StatusCode != 403 || !strings.Contains(err.Error(), "explicit deny in a resource-based policy") {
			t.Fatalf("pull under the repository Deny = %v", err)
		}
		if _, err := remote.Image(ref(t, srv, name+":v1"), admin, noRetry); err != nil {
			t.Fatalf("admin pull under a Deny for someone else: %v", err)
		}
		// The reader may read the policy (ReadOnly has GetRepositoryPolicy)
		// but not change it.
		rc := ecrClient(srv, id, secret, rec.client())
		if _, err := rc.GetRepositoryPolicy(ctx, &ecr.GetRepositoryPolicyInput{RepositoryName: aws.String(name)}); err != nil {
			t.Fatalf("reader GetRepositoryPolicy: %v", err)
		}
		_, err = rc.DeleteRepositoryPolicy(ctx, &ecr.DeleteRepositoryPolicyInput{RepositoryName: aws.String(name)})
		reposWant(t, "reader deletes the policy", err, "AccessDeniedException")

		for _, bad := range []string{`{"Statement":[]}`, `not json`, ``,
			`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ecr:*"}]}`} {
			_, err := c.SetRepositoryPolicy(ctx, &ecr.SetRepositoryPolicyInput{RepositoryName: aws.String(name), PolicyText: aws.String(bad)})
			reposWant(t, "invalid policy "+bad, err, "InvalidParameterException")
		}
		_, err = c.SetRepositoryPolicy(ctx, &ecr.SetRepositoryPolicyInput{RepositoryName: aws.String("none/here"), PolicyText: aws.String(deny)})
		reposWant(t, "policy of a missing repository", err, "RepositoryNotFoundException")
		_, err = c.GetRepositoryPolicy(ctx, &ecr.GetRepositoryPolicyInput{RepositoryName: aws.String("none/here")})
		reposWant(t, "get policy of a missing repository", err, "RepositoryNotFoundException")
		if err := pull(); err == nil {
			t.Fatal("a refused SetRepositoryPolicy replaced the stored policy")
		}

		del, err := c.DeleteRepositoryPolicy(ctx, &ecr.DeleteRepositoryPolicyInput{RepositoryName: aws.String(name)})
		if err != nil || aws.ToString(del.PolicyText) != deny {
			t.Fatalf("DeleteRepositoryPolicy = %+v, %v", del, err)
		}
		sameEncryption("DeleteRepositoryPolicy")
		if err := pull(); err != nil {
			t.Fatalf("pull after the policy is gone: %v", err)
		}

		// The registry policy applies to every repository.
		_, err = c.GetRegistryPolicy(ctx, &ecr.GetRegistryPolicyInput{})
		reposWant(t, "no registry policy", err, "RegistryPolicyNotFoundException")
		_, err = c.DeleteRegistryPolicy(ctx, &ecr.DeleteRegistryPolicyInput{})
		reposWant(t, "delete a missing registry policy", err, "RegistryPolicyNotFoundException")
		regDeny := `{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Principal":{"AWS":"arn:aws:iam::` + acct +
			`:user/puller"},"Action":"ecr:BatchGetImage","Resource":"arn:aws:ecr:us-east-1:` + acct + `:repository/*"}]}`
		put, err := c.PutRegistryPolicy(ctx, &ecr.PutRegistryPolicyInput{PolicyText: aws.String(regDeny)})
		if err != nil || aws.ToString(put.PolicyText) != regDeny || aws.ToString(put.RegistryId) != acct {
			t.Fatalf("PutRegistryPolicy = %+v, %v", put, err)
		}
		if err := pull(); !errors.As(err, &te) || te.StatusCode != 403 {
			t.Fatalf("pull under the registry Deny = %v", err)
		}
		gr, err := c.GetRegistryPolicy(ctx, &ecr.GetRegistryPolicyInput{})
		if err != nil || aws.ToString(gr.PolicyText) != regDeny {
			t.Fatalf("GetRegistryPolicy = %+v, %v", gr, err)
		}
		_, err = c.PutRegistryPolicy(ctx, &ecr.PutRegistryPolicyInput{PolicyText: aws.String(`{"Version":"2012-10-17"}`)})
		reposWant(t, "invalid registry policy", err, "InvalidParameterException")
		dr, err := c.DeleteRegistryPolicy(ctx, &ecr.DeleteRegistryPolicyInput{})
		if err != nil || aws.ToString(dr.PolicyText) != regDeny {
			t.Fatalf("DeleteRegistryPolicy = %+v, %v", dr, err)
		}
		if err := pull(); err != nil {
			t.Fatalf("pull after the registry policy is gone: %v", err)
		}
	})

	t.Run("a policy that locks its author out needs force", func(t *testing.T) {
		const locked = "locked/app"
		if _, err := c.CreateRepository(ctx, &ecr.CreateRepositoryInput{RepositoryName: aws.String(locked)}); err != nil {
			t.Fatal(err)
		}
		lockout := `{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Principal":"*","Action":"ecr:SetRepositoryPolicy"}]}`
		_, err := c.SetRepositoryPolicy(ctx, &ecr.SetRepositoryPolicyInput{RepositoryName: aws.String(locked), PolicyText: aws.String(lockout)})
		reposWant(t, "lockout without force", err, "InvalidParameterException")
		if !strings.Contains(err.Error(), "set force") {
			t.Fatalf("lockout refusal does not mention force: %v", err)
		}
		if _, err := c.SetRepositoryPolicy(ctx, &ecr.SetRepositoryPolicyInput{RepositoryName: aws.String(locked),
			PolicyText: aws.String(lockout), Force: true}); err != nil {
			t.Fatalf("lockout with force: %v", err)
		}
		_, err = c.SetRepositoryPolicy(ctx, &ecr.SetRepositoryPolicyInput{RepositoryName: aws.String(locked),
			PolicyText: aws.String(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"ecr:ListImages"}]}`)})
		reposWant(t, "set after the lockout", err, "AccessDeniedException")
		if _, err := c.DeleteRepositoryPolicy(ctx, &ecr.DeleteRepositoryPolicyInput{RepositoryName: aws.String(locked)}); err != nil {
			t.Fatalf("delete the lockout policy: %v", err)
		}
		if _, err := c.DeleteRepository(ctx, &ecr.DeleteRepositoryInput{RepositoryName: aws.String(locked)}); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("DescribeRegistry", func(t *testing.T) {
		out, err := c.DescribeRegistry(ctx, &ecr.DescribeRegistryInput{})
		if err != nil || aws.ToString(out.RegistryId) != acct || out.ReplicationConfiguration == nil || len(out.ReplicationConfiguration.Rules) != 0 {
			t.Fatalf("DescribeRegistry = %+v, %v", out, err)
		}
	})

	t.Run("ReadOnly may describe but not create", func(t *testing.T) {
		id, secret := createUser(t, app, "viewer", "AmazonEC2ContainerRegistryReadOnly")
		rc := ecrClient(srv, id, secret, rec.client())
		_, err := rc.CreateRepository(ctx, &ecr.CreateRepositoryInput{RepositoryName: aws.String("viewer/app")})
		reposWant(t, "ReadOnly CreateRepository", err, "AccessDeniedException")
		if !strings.Contains(err.Error(), "is not authorized to perform: ecr:CreateRepository on resource: arn:aws:ecr:us-east-1:"+acct+":repository/viewer/app") {
			t.Fatalf("denial message = %v", err)
		}
		_, err = rc.DeleteRepository(ctx, &ecr.DeleteRepositoryInput{RepositoryName: aws.String(name), Force: true})
		reposWant(t, "ReadOnly DeleteRepository", err, "AccessDeniedException")
		_, err = rc.TagResource(ctx, &ecr.TagResourceInput{ResourceArn: aws.String(arn), Tags: []types.Tag{{Key: aws.String("k"), Value: aws.String("v")}}})
		reposWant(t, "ReadOnly TagResource", err, "AccessDeniedException")
		if _, err := rc.DescribeRepositories(ctx, &ecr.DescribeRepositoriesInput{}); err != nil {
			t.Fatalf("ReadOnly DescribeRepositories: %v", err)
		}
		if _, err := rc.ListTagsForResource(ctx, &ecr.ListTagsForResourceInput{ResourceArn: aws.String(arn)}); err != nil {
			t.Fatalf("ReadOnly ListTagsForResource: %v", err)
		}
		// A denied caller learns nothing about which repositories exist.
		_, err = rc.PutImageTagMutability(ctx, &ecr.PutImageTagMutabilityInput{RepositoryName: aws.String("none/here"), ImageTagMutability: types.ImageTagMutabilityMutable})
		reposWant(t, "ReadOnly PutImageTagMutability of a missing repository", err, "AccessDeniedException")
	})

	t.Run("delete: not empty without force, everything gone with it", func(t *testing.T) {
		repo, err := app.store.GetRepository(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		if n := reposObjects(t, app, "manifests/"+repo.ID); n == 0 {
			t.Fatal("no manifest objects stored for the repository")
		}
		if _, err := c.SetRepositoryPolicy(ctx, &ecr.SetRepositoryPolicyInput{RepositoryName: aws.String(name),
			PolicyText: aws.String(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"ecr:ListImages"}]}`)}); err != nil {
			t.Fatal(err)
		}
		_, err = c.DeleteRepository(ctx, &ecr.DeleteRepositoryInput{RepositoryName: aws.String(name)})
		reposWant(t, "delete with images", err, "RepositoryNotEmptyException")
		if _, err := app.store.GetRepository(ctx, name); err != nil {
			t.Fatalf("a refused delete removed the repository: %v", err)
		}
		out, err := c.DeleteRepository(ctx, &ecr.DeleteRepositoryInput{RepositoryName: aws.String(name), Force: true})
		if err != nil || aws.ToString(out.Repository.RepositoryArn) != arn || out.Repository.EncryptionConfiguration.EncryptionType != types.EncryptionTypeAes256 {
			t.Fatalf("DeleteRepository force = %+v, %v", out, err)
		}
		if got := reposRawEncryption(t, rec.last(t, "DeleteRepository")); got != encryption {
			t.Fatalf("deleted repository's encryptionConfiguration = %s", got)
		}
		_, err = c.DescribeRepositories(ctx, &ecr.DescribeRepositoriesInput{RepositoryNames: []string{name}})
		reposWant(t, "describe a deleted repository", err, "RepositoryNotFoundException")
		if n := reposObjects(t, app, "manifests/"+repo.ID); n != 0 {
			t.Fatalf("%d manifest objects left in storage after the delete", n)
		}
		err = app.store.ViewDocs(ctx, func(tx metadata.DocTx) error {
			for _, kind := range []string{authz.KindRepositoryPolicy, "ecr.tags"} {
				if _, err := tx.Get(kind, name); !errors.Is(err, metadata.ErrNotFound) {
					return fmt.Errorf("%s document after the delete: %v", kind, err)
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.DeleteRepository(ctx, &ecr.DeleteRepositoryInput{RepositoryName: aws.String(name)})
		reposWant(t, "delete twice", err, "RepositoryNotFoundException")

		// The name is free; the new repository has neither the old tags
		// nor the old policy.
		if _, err := c.CreateRepository(ctx, &ecr.CreateRepositoryInput{RepositoryName: aws.String(name)}); err != nil {
			t.Fatal(err)
		}
		tags, err := c.ListTagsForResource(ctx, &ecr.ListTagsForResourceInput{ResourceArn: aws.String(arn)})
		if err != nil || len(tags.Tags) != 0 {
			t.Fatalf("tags of the recreated repository = %+v, %v", tags, err)
		}
		_, err = c.GetRepositoryPolicy(ctx, &ecr.GetRepositoryPolicyInput{RepositoryName: aws.String(name)})
		reposWant(t, "policy of the recreated repository", err, "RepositoryPolicyNotFoundException")
		// An empty repository goes without force.
		if _, err := c.DeleteRepository(ctx, &ecr.DeleteRepositoryInput{RepositoryName: aws.String(name)}); err != nil {
			t.Fatalf("delete an empty repository: %v", err)
		}
	})

	ops, errs := rec.checkAgainstModel(t)
	for _, op := range []string{"CreateRepository", "DescribeRepositories", "DeleteRepository", "PutImageTagMutability",
		"PutImageScanningConfiguration", "SetRepositoryPolicy", "GetRepositoryPolicy", "DeleteRepositoryPolicy",
		"PutRegistryPolicy", "GetRegistryPolicy", "DeleteRegistryPolicy", "TagResource", "UntagResource",
		"ListTagsForResource", "DescribeRegistry"} {
		if !ops[op] {
			t.Errorf("no successful %s was checked against the model", op)
		}
	}
	for _, e := range []string{"InvalidParameterException", "InvalidTagParameterException", "TooManyTagsException",
		"RepositoryAlreadyExistsException", "RepositoryNotFoundException", "RepositoryNotEmptyException",
		"RepositoryPolicyNotFoundException", "RegistryPolicyNotFoundException", "AccessDeniedException"} {
		if !errs[e] {
			t.Errorf("%s was never answered", e)
		}
	}
}

// newReposServer starts Coffer with identity on and create-on-push off.
func newReposServer(t *testing.T) (*httptest.Server, *App) {
	t.Helper()
	cfg := config.Defaults()
	cfg.DataDir = t.TempDir()
	cfg.CreateOnPush = false
	cfg.AdminAccessKeyID, cfg.AdminSecretAccessKey = adminID, adminSecret
	return startApp(t, cfg, slog.New(slog.DiscardHandler))
}

// TestECRCreateRepositoryThenPush: without create-on-push, a push to a
// repository made with CreateRepository works and a push to any other name
// is NAME_UNKNOWN.
func TestECRCreateRepositoryThenPush(t *testing.T) {
	t.Parallel()
	srv, _ := newReposServer(t)
	c := ecrClient(srv, adminID, adminSecret, nil)
	ctx := context.Background()
	admin := remote.WithAuth(&authn.Basic{Username: "AWS", Password: loginToken(t, c)})
	img, _ := random.Image(1024, 2)

	err := remote.Write(ref(t, srv, "made/app:v1"), img, admin, remote.WithRetryStatusCodes())
	var te *transport.Error
	if !errors.As(err, &te) || te.StatusCode != http.StatusNotFound || len(te.Errors) == 0 || te.Errors[0].Code != transport.NameUnknownErrorCode {
		t.Fatalf("push before CreateRepository = %v, want 404 NAME_UNKNOWN", err)
	}
	if _, err := c.CreateRepository(ctx, &ecr.CreateRepositoryInput{RepositoryName: aws.String("made/app")}); err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref(t, srv, "made/app:v1"), img, admin); err != nil {
		t.Fatalf("push after CreateRepository: %v", err)
	}
	if _, err := remote.Image(ref(t, srv, "made/app:v1"), admin); err != nil {
		t.Fatalf("pull: %v", err)
	}
	err = remote.Write(ref(t, srv, "never/made:v1"), img, admin, remote.WithRetryStatusCodes())
	if !errors.As(err, &te) || te.StatusCode != http.StatusNotFound || te.Errors[0].Code != transport.NameUnknownErrorCode {
		t.Fatalf("push to an uncreated repository = %v, want NAME_UNKNOWN", err)
	}
	// A deleted repository is unknown again.
	if _, err := c.DeleteRepository(ctx, &ecr.DeleteRepositoryInput{RepositoryName: aws.String("made/app"), Force: true}); err != nil {
		t.Fatal(err)
	}
	err = remote.Write(ref(t, srv, "made/app:v2"), img, admin, remote.WithRetryStatusCodes())
	if !errors.As(err, &te) || te.StatusCode != http.StatusNotFound {
		t.Fatalf("push to a deleted repository = %v, want NAME_UNKNOWN", err)
	}
}
