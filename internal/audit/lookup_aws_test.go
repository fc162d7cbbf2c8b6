package audit_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/cloudtrail"
	cttypes "github.com/aws/aws-sdk-go-v2/service/cloudtrail/types"
	"github.com/aws/smithy-go"

	"github.com/cofferhq/coffer/internal/audit"
	"github.com/cofferhq/coffer/internal/auth"
	"github.com/cofferhq/coffer/internal/auth/sigv4"
	"github.com/cofferhq/coffer/internal/authz"
	"github.com/cofferhq/coffer/internal/crypto/rootkey"
	"github.com/cofferhq/coffer/internal/iam"
	"github.com/cofferhq/coffer/internal/metadata/sqlite"
)

const (
	account     = "111122223333"
	region      = "us-east-1"
	adminID     = "AKIAADMINEXAMPLE0001"
	adminSecret = "admin-secret-for-tests-0123456789abcdef"
)

var seedStart = time.Date(2026, 3, 14, 0, 0, 0, 0, time.UTC)

// keyStore adapts the IAM service to the SigV4 verifier, as the server
// does.
type keyStore struct{ iam *iam.Service }

func (k keyStore) Lookup(ctx context.Context, id string) (sigv4.Credentials, error) {
	c, err := k.iam.Lookup(ctx, id)
	if errors.Is(err, iam.ErrUnknownKey) {
		return sigv4.Credentials{}, fmt.Errorf("%w", sigv4.ErrUnknownKey)
	}
	if err != nil {
		return sigv4.Credentials{}, err
	}
	return sigv4.Credentials{AccessKeyID: c.AccessKeyID, SecretAccessKey: c.Secret, SessionToken: c.SessionToken,
		Expires: c.Expires, Principal: c.Principal}, nil
}

type creds struct{ id, secret string }

type lookupServer struct {
	url                 string
	dir                 string // the trail
	store               *audit.Store
	admin, reader, nope creds
}

// newLookupServer serves the CloudTrail API the way the AWS door will:
// SigV4 (service cloudtrail) against a real IAM service, the real
// decision point, the audit hook after the handler. The trail holds 120
// seeded events: PutImage, BatchGetImage, DescribeRepositories and
// DeleteRepository in turn, one a minute from seedStart.
func newLookupServer(t *testing.T) *lookupServer {
	t.Helper()
	ctx := context.Background()
	md, err := sqlite.Open(ctx, sqlite.Config{Path: t.TempDir() + "/coffer.db"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { md.Close() })
	root, err := rootkey.Generate()
	if err != nil {
		t.Fatal(err)
	}
	ids, err := iam.New(iam.Config{AccountID: account, Docs: md, Root: root})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := ids.Bootstrap(ctx, adminID, adminSecret); err != nil {
		t.Fatal(err)
	}
	ls := &lookupServer{admin: creds{adminID, adminSecret}}
	for _, u := range []struct {
		name, policy string
		c            *creds
	}{
		{"reader", "arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryFullAccess", &ls.reader},
		{"nope", "arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryReadOnly", &ls.nope},
	} {
		if _, err := ids.CreateUser(ctx, u.name, "/", nil); err != nil {
			t.Fatal(err)
		}
		if err := ids.AttachPolicy(ctx, iam.UserEntity(), u.name, u.policy); err != nil {
			t.Fatal(err)
		}
		k, secret, err := ids.CreateAccessKey(ctx, u.name)
		if err != nil {
			t.Fatal(err)
		}
		*u.c = creds{k.ID, secret}
	}
	decider, err := authz.New(authz.Config{IAM: ids, Docs: md, AccountID: account, Region: region})
	if err != nil {
		t.Fatal(err)
	}
	verifier, err := sigv4.New(sigv4.Config{Region: region, Keys: keyStore{iam: ids}})
	if err != nil {
		t.Fatal(err)
	}
	_, priv, _ := ed25519.GenerateKey(nil)
	ls.dir = t.TempDir()
	store, err := audit.NewStore(audit.Config{Dir: ls.dir, Region: region, AccountID: account, SigningKey: priv, FileMaxEvents: 20})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	ls.store = store
	names := []string{"PutImage", "BatchGetImage", "DescribeRepositories", "DeleteRepository"}
	for i := range 120 {
		name := names[i%4]
		repo := fmt.Sprintf("arn:aws:ecr:%s:%s:repository/app-%d", region, account, i%3)
		info := &auth.Info{
			RequestID: fmt.Sprintf("seed-%03d", i), Time: seedStart.Add(time.Duration(i) * time.Minute),
			SourceIP: netip.MustParseAddr("192.0.2.1"), UserAgent: "seed",
			Principal: auth.Principal{Type: "IAMUser", ARN: "arn:aws:iam::" + account + ":user/alice", AccountID: account,
				PrincipalID: "AIDAALICE", UserName: "alice", AccessKeyID: "AKIAALICEEXAMPLE0001"},
			Action: "ecr:" + name, EventName: name, Resources: []string{repo},
			Params: map[string]any{"repositoryName": fmt.Sprintf("app-%d", i%3)},
		}
		if err := store.Record(ctx, info, audit.Outcome{Status: 200}); err != nil {
			t.Fatal(err)
		}
	}
	h, err := audit.NewLookupHandler(audit.LookupConfig{Store: store, Authz: decider})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host, _, _ := net.SplitHostPort(r.RemoteAddr)
		info := &auth.Info{RequestID: fmt.Sprintf("%d", time.Now().UnixNano()), Time: time.Now().UTC(),
			SourceIP: netip.MustParseAddr(host), UserAgent: r.UserAgent(), Principal: auth.Anonymous}
		ctx := auth.WithInfo(r.Context(), info)
		r = r.WithContext(ctx)
		rec := &statusRecorder{ResponseWriter: w, status: 200}
		defer func() {
			// Here, unlike in the pipeline, the response has left: the
			// client may be gone.
			if err := store.Record(context.WithoutCancel(ctx), info, audit.Outcome{Status: rec.status}); err != nil {
				t.Errorf("audit: %v", err)
			}
		}()
		if _, ok := audit.CloudTrailOperation(r.Header.Get("X-Amz-Target")); !ok {
			http.Error(rec, "not CloudTrail", http.StatusBadRequest)
			return
		}
		res, err := verifier.Verify(r, "cloudtrail")
		if err != nil {
			info.ErrorCode = "InvalidSignatureException"
			rec.Header().Set("Content-Type", "application/x-amz-json-1.1")
			rec.WriteHeader(http.StatusBadRequest)
			json.NewEncoder(rec).Encode(map[string]string{"__type": "InvalidSignatureException", "message": err.Error()})
			return
		}
		info.Principal = res.Principal
		h.ServeHTTP(rec, r)
	}))
	t.Cleanup(srv.Close)
	ls.url = srv.URL
	return ls
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) { s.status = code; s.ResponseWriter.WriteHeader(code) }

// awsCLI runs the aws CLI (v1) against the server with c's credentials.
func (ls *lookupServer) awsCLI(t *testing.T, c creds, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	cmd := exec.Command("aws", append([]string{"--endpoint-url", ls.url, "--region", region, "--output", "json"}, args...)...)
	home := t.TempDir()
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + home,
		"AWS_ACCESS_KEY_ID=" + c.id, "AWS_SECRET_ACCESS_KEY=" + c.secret,
		"AWS_CONFIG_FILE=" + home + "/none", "AWS_SHARED_CREDENTIALS_FILE=" + home + "/none",
		"AWS_EC2_METADATA_DISABLED=true", "PYENV_VERSION=" + os.Getenv("PYENV_VERSION"), "PYENV_ROOT=" + os.Getenv("PYENV_ROOT")}
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	return o.String(), e.String(), err
}

type cliEvents struct {
	Events []struct {
		EventId, EventName, ReadOnly, AccessKeyId, EventSource, Username, CloudTrailEvent string
		EventTime                                                                         json.RawMessage
		Resources                                                                         []struct{ ResourceType, ResourceName string }
	}
	NextToken string
}

func TestLookupEventsWithTheAWSCLI(t *testing.T) {
	if _, err := exec.LookPath("aws"); err != nil {
		t.Fatal("the aws CLI is not installed (ENVIRONMENT.md lists it on every machine)")
	}
	t.Parallel()
	ls := newLookupServer(t)

	stdout, stderr, err := ls.awsCLI(t, ls.admin, "cloudtrail", "lookup-events",
		"--lookup-attributes", "AttributeKey=EventName,AttributeValue=PutImage")
	if err != nil {
		t.Fatalf("aws cloudtrail lookup-events: %v\n%s", err, stderr)
	}
	var out cliEvents
	if err := json.Unmarshal([]byte(stdout), &out); err != nil {
		t.Fatalf("output %q: %v", stdout, err)
	}
	// The CLI follows NextToken: 30 PutImage events over one page of 50.
	if len(out.Events) != 30 {
		t.Fatalf("%d events, want 30", len(out.Events))
	}
	for _, e := range out.Events {
		var rec audit.Event
		if err := json.Unmarshal([]byte(e.CloudTrailEvent), &rec); err != nil {
			t.Fatalf("CloudTrailEvent: %v", err)
		}
		if e.EventName != "PutImage" || rec.EventName != "PutImage" || e.ReadOnly != "false" || e.EventSource != "ecr.amazonaws.com" ||
			e.Username != "alice" || e.AccessKeyId != "AKIAALICEEXAMPLE0001" || len(e.Resources) != 1 ||
			e.Resources[0].ResourceType != "AWS::ECR::Repository" || rec.EventVersion != "1.11" || rec.EventID != e.EventId {
			t.Fatalf("event = %+v", e)
		}
	}
	if got, want := string(out.Events[0].EventTime), fmt.Sprint(seedStart.Add(116*time.Minute).Unix()); got != want {
		t.Errorf("newest EventTime = %s, want %s (2026-03-14T01:56:00Z)", got, want)
	}

	// Paging by hand, a time range and another attribute.
	stdout, stderr, err = ls.awsCLI(t, ls.reader, "cloudtrail", "lookup-events",
		"--lookup-attributes", "AttributeKey=ResourceName,AttributeValue=app-1",
		"--start-time", "2026-03-14T00:30:00Z", "--end-time", "2026-03-14T01:29:59Z", "--max-items", "7")
	if err != nil {
		t.Fatalf("lookup-events with a range: %v\n%s", err, stderr)
	}
	out = cliEvents{}
	json.Unmarshal([]byte(stdout), &out)
	if len(out.Events) != 7 || out.NextToken == "" {
		t.Fatalf("first page: %d events, NextToken %q; want 7 and a token", len(out.Events), out.NextToken)
	}
	stdout, stderr, err = ls.awsCLI(t, ls.reader, "cloudtrail", "lookup-events",
		"--lookup-attributes", "AttributeKey=ResourceName,AttributeValue=app-1",
		"--start-time", "2026-03-14T00:30:00Z", "--end-time", "2026-03-14T01:29:59Z", "--starting-token", out.NextToken)
	if err != nil {
		t.Fatalf("second page: %v\n%s", err, stderr)
	}
	rest := cliEvents{}
	json.Unmarshal([]byte(stdout), &rest)
	// Minutes 30..89 hold 60 events, 20 of them on app-1.
	if len(out.Events)+len(rest.Events) != 20 {
		t.Fatalf("%d + %d events, want 20", len(out.Events), len(rest.Events))
	}

	// A principal without cloudtrail:LookupEvents is denied, with AWS's
	// error and message.
	_, stderr, err = ls.awsCLI(t, ls.nope, "cloudtrail", "lookup-events")
	if err == nil || !strings.Contains(stderr, "AccessDeniedException") || !strings.Contains(stderr, "cloudtrail:LookupEvents") {
		t.Fatalf("denied lookup: %v, stderr %q", err, stderr)
	}
	_, stderr, err = ls.awsCLI(t, ls.admin, "cloudtrail", "lookup-events", "--lookup-attributes",
		"AttributeKey=EventName,AttributeValue=PutImage", "AttributeKey=Username,AttributeValue=alice")
	if err == nil || !strings.Contains(stderr, "InvalidLookupAttributesException") {
		t.Fatalf("two attributes: %v, stderr %q", err, stderr)
	}

	// The lookups themselves are in the trail, the denied one too.
	stdout, _, err = ls.awsCLI(t, ls.admin, "cloudtrail", "lookup-events",
		"--lookup-attributes", "AttributeKey=EventName,AttributeValue=LookupEvents")
	if err != nil {
		t.Fatal(err)
	}
	out = cliEvents{}
	json.Unmarshal([]byte(stdout), &out)
	denied := 0
	for _, e := range out.Events {
		var rec audit.Event
		json.Unmarshal([]byte(e.CloudTrailEvent), &rec)
		if rec.EventSource != "cloudtrail.amazonaws.com" || e.ReadOnly != "true" {
			t.Errorf("LookupEvents record = %s", e.CloudTrailEvent)
		}
		if rec.ErrorCode == "AccessDeniedException" && rec.UserIdentity.UserName == "nope" {
			denied++
		}
	}
	if len(out.Events) < 5 || denied != 1 {
		t.Fatalf("%d LookupEvents records, %d denied; want at least 5 and 1", len(out.Events), denied)
	}

	// No file of the trail holds a secret key of the callers.
	if err := ls.store.Close(); err != nil {
		t.Fatal(err)
	}
	files := 0
	filepath.WalkDir(ls.dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		raw, _ := os.ReadFile(p)
		texts := []string{string(raw)}
		if strings.HasSuffix(p, ".gz") {
			zr, err := gzip.NewReader(bytes.NewReader(raw))
			if err != nil {
				t.Fatalf("%s: %v", p, err)
			}
			plain, _ := io.ReadAll(zr)
			texts = append(texts, string(plain))
		}
		for _, text := range texts {
			for _, secret := range []string{ls.admin.secret, ls.reader.secret, ls.nope.secret} {
				if strings.Contains(text, secret) {
					t.Errorf("%s holds a secret access key", p)
				}
			}
		}
		files++
		return nil
	})
	if files < 8 {
		t.Fatalf("only %d files in the trail", files)
	}
}

func TestLookupEventsWithTheGoSDK(t *testing.T) {
	t.Parallel()
	ls := newLookupServer(t)
	client := func(c creds) *cloudtrail.Client {
		return cloudtrail.New(cloudtrail.Options{Region: region, BaseEndpoint: aws.String(ls.url),
			Credentials: credentials.NewStaticCredentialsProvider(c.id, c.secret, "")})
	}
	ctx := context.Background()
	ct := client(ls.admin)
	p := cloudtrail.NewLookupEventsPaginator(ct, &cloudtrail.LookupEventsInput{
		LookupAttributes: []cttypes.LookupAttribute{{AttributeKey: cttypes.LookupAttributeKeyReadOnly, AttributeValue: aws.String("true")}},
		MaxResults:       aws.Int32(11),
	})
	n, pages := 0, 0
	var last time.Time
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		pages++
		for _, e := range page.Events {
			n++
			if aws.ToString(e.ReadOnly) != "true" || e.EventTime == nil {
				t.Fatalf("event %+v", e)
			}
			if !last.IsZero() && e.EventTime.After(last) {
				t.Fatal("events not newest first")
			}
			last = *e.EventTime
		}
	}
	// BatchGetImage and DescribeRepositories: 60 seeded events, the
	// earlier SDK calls are not read-only... LookupEvents is, and it was
	// recorded after it answered: at most the pages before it.
	if n < 60 || pages < 6 {
		t.Fatalf("%d read-only events in %d pages, want at least 60 in 6", n, pages)
	}
	out, err := ct.LookupEvents(ctx, &cloudtrail.LookupEventsInput{
		StartTime: aws.Time(seedStart.Add(10 * time.Minute)), EndTime: aws.Time(seedStart.Add(19 * time.Minute)),
	})
	if err != nil || len(out.Events) != 10 || out.NextToken != nil {
		t.Fatalf("range lookup = %d events, %v", len(out.Events), err)
	}
	if got := *out.Events[0].EventTime; !got.Equal(seedStart.Add(19 * time.Minute)) {
		t.Errorf("newest EventTime = %s", got)
	}

	_, err = ct.LookupEvents(ctx, &cloudtrail.LookupEventsInput{MaxResults: aws.Int32(51)})
	var maxErr *cttypes.InvalidMaxResultsException
	if !errors.As(err, &maxErr) {
		t.Errorf("MaxResults 51: %v", err)
	}
	_, err = ct.LookupEvents(ctx, &cloudtrail.LookupEventsInput{StartTime: aws.Time(seedStart.Add(time.Hour)), EndTime: aws.Time(seedStart)})
	var rangeErr *cttypes.InvalidTimeRangeException
	if !errors.As(err, &rangeErr) {
		t.Errorf("reversed range: %v", err)
	}
	_, err = ct.LookupEvents(ctx, &cloudtrail.LookupEventsInput{NextToken: aws.String("bogus")})
	var tokErr *cttypes.InvalidNextTokenException
	if !errors.As(err, &tokErr) {
		t.Errorf("bogus token: %v", err)
	}
	_, err = client(ls.nope).LookupEvents(ctx, &cloudtrail.LookupEventsInput{})
	// LookupEvents' model lists no AccessDeniedException: the SDK gives a
	// generic API error with AWS's code.
	var denied smithy.APIError
	if !errors.As(err, &denied) || denied.ErrorCode() != "AccessDeniedException" {
		t.Errorf("denied: %v", err)
	}
	_, err = ct.DescribeTrails(ctx, &cloudtrail.DescribeTrailsInput{})
	var unsupported *cttypes.UnsupportedOperationException
	if !errors.As(err, &unsupported) {
		t.Errorf("DescribeTrails: %v", err)
	}
	_, err = client(creds{adminID, "wrong-secret-0123456789"}).LookupEvents(ctx, &cloudtrail.LookupEventsInput{})
	if err == nil {
		t.Error("a bad signature was accepted")
	}
}
