package server

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudtrail"
	cttypes "github.com/aws/aws-sdk-go-v2/service/cloudtrail/types"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/cofferhq/coffer/internal/audit"
)

// Every request to every door is one CloudTrail-format event, findable
// with LookupEvents, in a trail that verifies and holds no secret (#8).
func TestAuditTrailEndToEnd(t *testing.T) {
	t.Parallel()
	srv, app := newAuthServer(t)
	ctx := context.Background()
	tok := loginToken(t, ecrClient(srv, adminID, adminSecret, nil))
	img, _ := random.Image(1024, 1)
	if err := remote.Write(ref(t, srv, "audited/app:v1"), img, remote.WithAuth(&authn.Basic{Username: "AWS", Password: tok})); err != nil {
		t.Fatal(err)
	}
	id, secret := createUser(t, app, "auditreader", "AmazonEC2ContainerRegistryReadOnly")
	readerTok := loginToken(t, ecrClient(srv, id, secret, nil))
	other, _ := random.Image(512, 1)
	_ = remote.Write(ref(t, srv, "audited/app:v2"), other, remote.WithAuth(&authn.Basic{Username: "AWS", Password: readerTok})) // denied
	req, _ := http.NewRequest("GET", srv.URL+"/v2/audited/app/manifests/v1", nil)
	req.SetBasicAuth("AWS", "cf1.not.a-token")
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
	}

	ct := cloudtrail.New(cloudtrail.Options{Region: "us-east-1", BaseEndpoint: aws.String(srv.URL), Credentials: staticCreds(adminID, adminSecret)})
	lookup := func(name string) []cttypes.Event {
		t.Helper()
		out, err := ct.LookupEvents(ctx, &cloudtrail.LookupEventsInput{LookupAttributes: []cttypes.LookupAttribute{
			{AttributeKey: cttypes.LookupAttributeKeyEventName, AttributeValue: aws.String(name)}}})
		if err != nil {
			t.Fatalf("LookupEvents %s: %v", name, err)
		}
		return out.Events
	}
	if len(lookup("PutImage")) == 0 {
		t.Error("the push's PutImage is not in the trail")
	}
	var sawDenied bool // the reader's push stops at its first upload step
	for _, e := range lookup("InitiateLayerUpload") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(aws.ToString(e.CloudTrailEvent)), &rec); err != nil {
			t.Fatal(err)
		}
		if rec["sourceIPAddress"] != "127.0.0.1" || rec["eventSource"] != "ecr.amazonaws.com" {
			t.Errorf("record = %v", rec)
		}
		if rec["errorCode"] == "DENIED" && strings.HasSuffix(rec["userIdentity"].(map[string]any)["arn"].(string), ":user/auditreader") {
			sawDenied = true
		}
	}
	if !sawDenied {
		t.Error("the denied push is not in the trail")
	}
	if len(lookup("GetAuthorizationToken")) < 2 {
		t.Error("GetAuthorizationToken calls missing")
	}
	var sawFailedLogin bool
	for _, e := range lookup("BatchGetImage") {
		if strings.Contains(aws.ToString(e.CloudTrailEvent), `"errorCode":"UNAUTHORIZED"`) {
			sawFailedLogin = true
		}
	}
	if !sawFailedLogin {
		t.Error("the failed login is not in the trail")
	}

	// Group commit is visible to operators.
	if resp, err := http.Get(srv.URL + "/metrics"); err != nil {
		t.Fatal(err)
	} else {
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		for _, m := range []string{"coffer_audit_records_total ", "coffer_audit_commits_total ", "coffer_audit_commit_seconds_total ", "coffer_audit_shared_backlog "} {
			if !bytes.Contains(body, []byte("\n"+m)) {
				t.Errorf("/metrics lacks %s", m)
			}
		}
	}

	// Close the trail (final digest), verify it, and look for secrets.
	dir := audit.Dir(app.cfg.DataDir)
	srv.Close()
	if err := app.Close(); err != nil {
		t.Fatal(err)
	}
	pub, err := audit.ReadPublicKey(filepath.Join(dir, "signing.pub"))
	if err != nil {
		t.Fatal(err)
	}
	rep, err := audit.Verify(dir, pub, time.Time{}, time.Time{})
	if err != nil || len(rep.Problems) != 0 || rep.LogFilesChecked == 0 {
		t.Fatalf("Verify = %+v, %v", rep, err)
	}
	secrets := []string{adminSecret, secret, tok, readerTok}
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
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
				t.Errorf("%s holds a secret", p)
			}
		}
		return nil
	})
}
