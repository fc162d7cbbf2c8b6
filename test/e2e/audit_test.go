//go:build e2e

package e2e

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// trailEvent is the part of a CloudTrail record the scripted test checks.
type trailEvent struct {
	EventID      string `json:"eventID"`
	EventName    string `json:"eventName"`
	EventSource  string `json:"eventSource"`
	EventType    string `json:"eventType"`
	ErrorCode    string `json:"errorCode"`
	RequestID    string `json:"requestID"`
	ReadOnly     bool   `json:"readOnly"`
	SourceIP     string `json:"sourceIPAddress"`
	Recipient    string `json:"recipientAccountId"`
	UserIdentity struct {
		Type      string `json:"type"`
		ARN       string `json:"arn"`
		InvokedBy string `json:"invokedBy"`
	} `json:"userIdentity"`
	RequestParameters map[string]any `json:"requestParameters"`
	Resources         []struct {
		ARN string `json:"ARN"`
	} `json:"resources"`
}

// step is one expected event of the script, matched in order.
type step struct {
	name, errorCode, who string // who: suffix of userIdentity.arn ("" = any)
	invokedBy            string
	check                func(e trailEvent) string // "" when fine
}

// TestAuditScriptedSequence is issue #8's end-to-end script, driven with the
// real aws CLI and Docker engine: create a KMS repository, docker push and
// pull, a denied push, a failed login, delete. The trail then holds exactly
// one event per HTTP request the server answered (matched with the access
// log by request ID), plus the KMS calls ECR made on the users' behalf
// (SPEC AUD-01/02), with the script's milestones in order with their fields;
// `aws cloudtrail lookup-events` returns the same events as the files, and
// no secret of the test is anywhere in the trail.
func TestAuditScriptedSequence(t *testing.T) {
	ctx := testContext(t, 5*time.Minute)
	d := newDockerCLI(t, ctx)
	c := startCoffer(t)
	requireTool(t, "aws")
	endpoint := c.URL("")
	admin := c.awsEnv()
	awsJSON := func(env []string, args ...string) map[string]any {
		t.Helper()
		out := run(t, ctx, env, nil, "aws", append(args, "--endpoint-url", endpoint, "--output", "json")...)
		var m map[string]any
		if strings.TrimSpace(out) != "" {
			if err := json.Unmarshal([]byte(out), &m); err != nil {
				t.Fatalf("aws %v: %v\n%s", args, err, out)
			}
		}
		return m
	}
	start := time.Now().Add(-time.Second)

	// 1. A customer managed key and a repository encrypted with it.
	key := awsJSON(admin, "kms", "create-key", "--description", "audit e2e")
	keyARN := key["KeyMetadata"].(map[string]any)["Arn"].(string)
	repoOut := awsJSON(admin, "ecr", "create-repository", "--repository-name", "e2e/audited",
		"--encryption-configuration", "encryptionType=KMS,kmsKey="+keyARN)
	repoARN := repoOut["repository"].(map[string]any)["repositoryArn"].(string)

	// A read-only user for the denied push.
	awsJSON(admin, "iam", "create-user", "--user-name", "auditreader")
	awsJSON(admin, "iam", "attach-user-policy", "--user-name", "auditreader", "--policy-arn", "arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryReadOnly")
	ak := awsJSON(admin, "iam", "create-access-key", "--user-name", "auditreader")["AccessKey"].(map[string]any)
	readerID, readerSecret := ak["AccessKeyId"].(string), ak["SecretAccessKey"].(string)
	reader := append(c.awsEnv(), "AWS_ACCESS_KEY_ID="+readerID, "AWS_SECRET_ACCESS_KEY="+readerSecret)

	// 2. docker login and push.
	d.login(c)
	ref := c.Addr + "/e2e/audited:v1"
	d.removeOnCleanup(ref, c.Addr+"/e2e/audited:v2")
	d.importImage(ref, map[string]string{"etc/audit-e2e": "audited\n"})
	d.push(ref)

	// 3. pull it back.
	d.run("rmi", ref)
	d.run("pull", ref)

	// 4. A denied push: the read-only user pushes a new tag.
	readerToken := strings.TrimSpace(run(t, ctx, reader, nil, "aws", "ecr", "get-login-password", "--endpoint-url", endpoint))
	rd := newDockerCLI(t, ctx)
	out := run(t, ctx, rd.env, strings.NewReader(readerToken), "docker", "login", "-u", "AWS", "--password-stdin", c.Addr)
	if !strings.Contains(out, "Login Succeeded") {
		t.Fatalf("reader docker login: %s", out)
	}
	rd.run("tag", ref, c.Addr+"/e2e/audited:v2")
	if out, err := runErr(ctx, rd.env, nil, "docker", "push", c.Addr+"/e2e/audited:v2"); err == nil {
		t.Fatalf("the read-only user's push succeeded:\n%s", out)
	}

	// 5. A failed login.
	badToken := "not-a-token-" + randomHex(t, 8)
	if out, err := runErr(ctx, rd.env, strings.NewReader(badToken), "docker", "login", "-u", "AWS", "--password-stdin", c.Addr); err == nil {
		t.Fatalf("docker login with a wrong password succeeded:\n%s", out)
	}

	// 6. Delete the repository with its images.
	awsJSON(admin, "ecr", "delete-repository", "--repository-name", "e2e/audited", "--force")

	// What the trail's query API returns (the aws CLI follows NextToken).
	looked := map[string]bool{}
	lk := awsJSON(admin, "cloudtrail", "lookup-events", "--start-time", start.UTC().Format(time.RFC3339))
	for _, e := range lk["Events"].([]any) {
		looked[e.(map[string]any)["EventId"].(string)] = true
	}

	c.Stop() // seals the open segment into a log file
	events := readTrail(t, filepath.Join(c.Dir, "audit"))
	requests := accessLogRequests(t, c.logs.String())

	// Exactly one request event per answered request; service events on
	// top. (The order is the script's, checked below: docker's parallel
	// requests answer in any order.)
	perRequest := map[string]int{}
	for _, e := range events {
		if e.UserIdentity.InvokedBy == "" {
			perRequest[e.RequestID]++
		}
	}
	for id := range requests {
		if perRequest[id] != 1 {
			t.Errorf("request %s has %d events in the trail, want 1", id, perRequest[id])
		}
	}
	for id, n := range perRequest {
		if !requests[id] {
			t.Errorf("the trail has %d events of request %s, which the server did not log", n, id)
		}
	}
	// The lookup saw every event from the files that falls in the script
	// (the lookup ran before the last few requests: the lookup itself).
	for _, e := range events {
		if e.EventName == "LookupEvents" {
			continue
		}
		if !looked[e.EventID] {
			t.Errorf("event %s %s (%s) is in the files but not returned by lookup-events", e.EventID, e.EventName, e.RequestID)
		}
	}

	fromRepo := func(e trailEvent) string {
		for _, r := range e.Resources {
			if r.ARN == repoARN {
				return ""
			}
		}
		return "resources lack " + repoARN
	}
	withContext := func(e trailEvent) string {
		ec, _ := e.RequestParameters["encryptionContext"].(map[string]any)
		if ec == nil || ec["aws:ecr:arn"] != repoARN || ec["aws:s3:arn"] == nil {
			return "requestParameters.encryptionContext lacks aws:s3:arn or aws:ecr:arn = " + repoARN
		}
		if e.EventSource != "kms.amazonaws.com" || len(e.Resources) == 0 || e.Resources[0].ARN != keyARN {
			return "not a KMS event on " + keyARN
		}
		return ""
	}
	script := []step{
		// A service event is recorded while its request runs, so before
		// the request's own event.
		{name: "CreateKey", who: ":user/admin"},
		{name: "CreateGrant", who: ":user/admin", invokedBy: "ecr.amazonaws.com"},
		{name: "CreateRepository", who: ":user/admin", check: fromRepo},
		{name: "GetAuthorizationToken", who: ":user/admin"},
		{name: "InitiateLayerUpload", who: ":user/admin", check: fromRepo},
		{name: "GenerateDataKey", invokedBy: "ecr.amazonaws.com", check: withContext},
		{name: "CompleteLayerUpload", who: ":user/admin", check: fromRepo},
		{name: "PutImage", who: ":user/admin", check: fromRepo},
		{name: "BatchGetImage", who: ":user/admin", check: fromRepo},
		{name: "Decrypt", invokedBy: "ecr.amazonaws.com", check: withContext},
		{name: "GetDownloadUrlForLayer", who: ":user/admin", check: fromRepo},
		{name: "GetAuthorizationToken", who: ":user/auditreader"},
		{name: "PutImage", errorCode: "DENIED", who: ":user/auditreader", check: fromRepo},
		{name: "Unknown", errorCode: "UNAUTHORIZED"},
		{name: "RetireGrant", who: ":user/admin", invokedBy: "ecr.amazonaws.com"},
		{name: "DeleteRepository", who: ":user/admin", check: fromRepo},
	}
	i := 0
	for _, e := range events {
		if i == len(script) {
			break
		}
		s := script[i]
		if e.EventName != s.name || e.ErrorCode != s.errorCode || e.UserIdentity.InvokedBy != s.invokedBy ||
			(s.who != "" && !strings.HasSuffix(e.UserIdentity.ARN, s.who)) {
			continue
		}
		if s.check != nil {
			if msg := s.check(e); msg != "" {
				t.Errorf("step %d %s: %s", i, s.name, msg)
			}
		}
		wantIP := "127.0.0.1" // the client; for a service's call, the service (as CloudTrail)
		if s.invokedBy != "" {
			wantIP = s.invokedBy
		}
		if e.SourceIP != wantIP || e.Recipient == "" {
			t.Errorf("step %d %s: sourceIPAddress %q, recipientAccountId %q", i, s.name, e.SourceIP, e.Recipient)
		}
		i++
	}
	if i < len(script) {
		var got []string
		for _, e := range events {
			got = append(got, e.EventName+"/"+e.ErrorCode+"/"+e.UserIdentity.ARN+"/"+e.UserIdentity.InvokedBy)
		}
		t.Fatalf("the trail lacks step %d (%+v) of the script in order; the trail:\n%s", i, script[i], strings.Join(got, "\n"))
	}
	t.Logf("%d events (%d requests), script of %d steps found in order", len(events), len(requests), len(script))

	// No secret of the test anywhere in the trail's files.
	secrets := []string{adminSecret, readerSecret, c.loginToken(ctx), readerToken, badToken}
	filepath.WalkDir(filepath.Join(c.Dir, "audit"), func(p string, de fs.DirEntry, err error) error {
		if err != nil || de.IsDir() {
			return err
		}
		b, _ := os.ReadFile(p)
		if zr, err := gzip.NewReader(bytes.NewReader(b)); err == nil {
			if plain, err := io.ReadAll(zr); err == nil {
				b = append(b, plain...)
			}
		}
		for _, s := range secrets {
			if bytes.Contains(b, []byte(s)) {
				t.Errorf("%s holds a secret of the test", p)
			}
		}
		return nil
	})
	if out := run(t, ctx, nil, nil, cofferBin, "audit", "verify", "--data", c.Dir); !strings.Contains(out, "OK: no file was modified") {
		t.Errorf("coffer audit verify:\n%s", out)
	}
}

// readTrail returns the records of the one log file under dir, in commit
// order.
func readTrail(t *testing.T, dir string) []trailEvent {
	t.Helper()
	var files []string
	filepath.WalkDir(dir, func(p string, de fs.DirEntry, err error) error {
		if err == nil && !de.IsDir() && strings.HasSuffix(p, ".json.gz") && strings.Contains(p, string(filepath.Separator)+"CloudTrail"+string(filepath.Separator)) {
			files = append(files, p)
		}
		return err
	})
	var all [][]trailEvent
	for _, p := range files {
		raw, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		zr, err := gzip.NewReader(bytes.NewReader(raw))
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		var lf struct{ Records []trailEvent }
		if err := json.NewDecoder(zr).Decode(&lf); err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		all = append(all, lf.Records)
	}
	if len(all) != 1 {
		// The test's few hundred events fit in one file (rotation at
		// 10,000 events or 5 minutes); several would need an order.
		t.Fatalf("%d log files, want 1", len(all))
	}
	return all[0]
}

// accessLogRequests returns the request IDs of the server's access log
// lines (JSON, msg "request") for the doors that are audited.
func accessLogRequests(t *testing.T, logs string) map[string]bool {
	t.Helper()
	ids := map[string]bool{}
	sc := bufio.NewScanner(strings.NewReader(logs))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var l struct {
			Msg, Path string
			RequestID string `json:"request_id"`
		}
		if json.Unmarshal(sc.Bytes(), &l) != nil || l.Msg != "request" || l.RequestID == "" {
			continue
		}
		switch l.Path {
		case "/healthz", "/readyz", "/metrics":
			continue
		}
		ids[l.RequestID] = true
	}
	if len(ids) == 0 {
		t.Fatal("no access log lines in the server's output")
	}
	return ids
}
