package audit

import (
	"encoding/binary"
	"encoding/json"
	"net/netip"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/cofferhq/coffer/internal/auth"
)

func TestNewEventUserIdentity(t *testing.T) {
	t.Parallel()
	role := auth.Principal{Type: "AssumedRole", ARN: "arn:aws:sts::111122223333:assumed-role/deployer/ci-42", AccountID: testAccount,
		PrincipalID: "AROADEPLOYER:ci-42", AccessKeyID: "ASIAEXAMPLE", RoleARN: "arn:aws:iam::111122223333:role/ops/deployer", SessionName: "ci-42"}
	cases := []struct {
		name     string
		p        auth.Principal
		want     UserIdentity
		username string
	}{
		{"iam user", auth.Principal{Type: "IAMUser", ARN: "arn:aws:iam::111122223333:user/alice", AccountID: testAccount,
			PrincipalID: "AIDAALICE", UserName: "alice", AccessKeyID: "AKIAALICE"},
			UserIdentity{Type: "IAMUser", PrincipalID: "AIDAALICE", ARN: "arn:aws:iam::111122223333:user/alice", AccountID: testAccount,
				AccessKeyID: "AKIAALICE", UserName: "alice"}, "alice"},
		{"assumed role", role, UserIdentity{Type: "AssumedRole", PrincipalID: "AROADEPLOYER:ci-42", ARN: role.ARN, AccountID: testAccount,
			AccessKeyID: "ASIAEXAMPLE", SessionContext: &SessionContext{SessionIssuer: &SessionIssuer{Type: "Role", PrincipalID: "AROADEPLOYER",
				ARN: role.RoleARN, AccountID: testAccount, UserName: "deployer"}}}, "ci-42"},
		{"root", auth.Principal{Type: "Root", ARN: "arn:aws:iam::111122223333:root", AccountID: testAccount, PrincipalID: testAccount},
			UserIdentity{Type: "Root", PrincipalID: testAccount, ARN: "arn:aws:iam::111122223333:root", AccountID: testAccount}, "root"},
		{"anonymous", auth.Anonymous, UserIdentity{Type: "AWSAccount", AccountID: "ANONYMOUS_PRINCIPAL"}, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ev := NewEvent(&auth.Info{Principal: c.p, Action: "ecr:ListImages"}, Outcome{Status: 200}, testRegion, testAccount, time.Now())
			if !reflect.DeepEqual(ev.UserIdentity, c.want) {
				t.Errorf("userIdentity = %+v, want %+v", ev.UserIdentity, c.want)
			}
			if got := lookupUsername(&ev.UserIdentity); got != c.username {
				t.Errorf("Username = %q, want %q", got, c.username)
			}
		})
	}
}

// TestNewEventRecord checks a whole record against CloudTrail's field
// names and values.
func TestNewEventRecord(t *testing.T) {
	t.Parallel()
	info := &auth.Info{
		RequestID: "req-1", Time: time.Date(2026, 3, 14, 15, 9, 26, 535_000_000, time.UTC),
		SourceIP: netip.MustParseAddr("2001:db8::7"), SecureTransport: true, UserAgent: "docker/27.0",
		TLSVersion: "TLS 1.3", TLSCipherSuite: "TLS_AES_128_GCM_SHA256", Host: "registry.example",
		Principal: auth.Principal{Type: "IAMUser", ARN: "arn:aws:iam::111122223333:user/alice", AccountID: testAccount,
			PrincipalID: "AIDAALICE", UserName: "alice", AccessKeyID: "AKIAALICE"},
		Action: "ecr:PutImage", EventName: "PutImage", EndpointID: "vpce-0123456789abcdef0",
		Resources:        []string{"arn:aws:ecr:us-east-1:111122223333:repository/app", "arn:aws:ecr:us-east-1:111122223333:repository/app", "*"},
		Params:           map[string]any{"repositoryName": "app", "imageTag": "v1"},
		ResponseElements: map[string]any{"image": map[string]any{"imageId": map[string]any{"imageDigest": "sha256:abc"}}},
	}
	ev := NewEvent(info, Outcome{Status: 200}, testRegion, testAccount, time.Now())
	b, _ := json.Marshal(ev)
	var got map[string]any
	json.Unmarshal(b, &got)
	want := map[string]any{
		"eventVersion": "1.11", "eventTime": "2026-03-14T15:09:26Z", "eventSource": "ecr.amazonaws.com", "eventName": "PutImage",
		"awsRegion": "us-east-1", "sourceIPAddress": "2001:db8::7", "userAgent": "docker/27.0",
		"requestParameters": map[string]any{"repositoryName": "app", "imageTag": "v1"},
		"responseElements":  map[string]any{"image": map[string]any{"imageId": map[string]any{"imageDigest": "sha256:abc"}}},
		"requestID":         "req-1", "readOnly": false, "eventType": "AwsApiCall", "managementEvent": true,
		"recipientAccountId": testAccount, "vpcEndpointId": "vpce-0123456789abcdef0", "eventCategory": "Management",
		"resources":  []any{map[string]any{"ARN": "arn:aws:ecr:us-east-1:111122223333:repository/app", "accountId": testAccount, "type": "AWS::ECR::Repository"}},
		"tlsDetails": map[string]any{"tlsVersion": "TLSv1.3", "cipherSuite": "TLS_AES_128_GCM_SHA256", "clientProvidedHostHeader": "registry.example"},
	}
	for k, v := range want {
		if !reflect.DeepEqual(got[k], v) {
			t.Errorf("%s = %#v, want %#v", k, got[k], v)
		}
	}
	if id, _ := got["eventID"].(string); len(id) != 36 {
		t.Errorf("eventID = %q, want a UUID", got["eventID"])
	}
	if _, ok := got["errorCode"]; ok {
		t.Error("a successful request has an errorCode")
	}
}

// TestNewEventServiceCall: a KMS call ECR makes for a user carries
// invokedBy and the encryption context (AUD-01, AUD-02).
func TestNewEventServiceCall(t *testing.T) {
	t.Parallel()
	key := "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
	ec := map[string]any{"aws:s3:arn": "arn:aws:s3:::prod-us-east-1-starport-layer-bucket/x", "aws:ecr:arn": "arn:aws:ecr:us-east-1:111122223333:repository/app"}
	info := &auth.Info{
		Principal: auth.Principal{Type: "IAMUser", ARN: "arn:aws:iam::111122223333:user/alice", AccountID: testAccount, UserName: "alice"},
		Action:    "kms:GenerateDataKey", InvokedBy: "ecr.amazonaws.com", SourceIP: netip.MustParseAddr("192.0.2.1"),
		Resources: []string{key}, Params: map[string]any{"keyId": key, "encryptionContext": ec, "keySpec": "AES_256"},
	}
	ev := NewEvent(info, Outcome{Status: 200}, testRegion, testAccount, time.Now())
	if ev.EventSource != "kms.amazonaws.com" || ev.UserIdentity.InvokedBy != "ecr.amazonaws.com" ||
		ev.SourceIPAddress != "ecr.amazonaws.com" || ev.UserAgent != "ecr.amazonaws.com" || !ev.ReadOnly {
		t.Errorf("event = %+v", ev)
	}
	if got := ev.RequestParameters.(map[string]any)["encryptionContext"]; !reflect.DeepEqual(got, ec) {
		t.Errorf("encryptionContext = %v", got)
	}
	if len(ev.Resources) != 1 || ev.Resources[0].Type != "AWS::KMS::Key" || ev.Resources[0].ARN != key {
		t.Errorf("resources = %+v", ev.Resources)
	}
}

// TestNewEventServiceOwnCall: a service acting on its own (a lifecycle
// expiry) is an AwsServiceEvent by the AWSService principal.
func TestNewEventServiceOwnCall(t *testing.T) {
	t.Parallel()
	info := &auth.Info{Principal: auth.Principal{Type: "AWSService", PrincipalID: "ecr.amazonaws.com", AccountID: testAccount},
		Action: "ecr:BatchDeleteImage", ServiceEventDetails: map[string]any{"rule": 1}}
	ev := NewEvent(info, Outcome{Status: 200}, testRegion, testAccount, time.Now())
	if ev.EventType != EventTypeServiceEvent || ev.UserIdentity.Type != "AWSService" || ev.UserIdentity.InvokedBy != "ecr.amazonaws.com" ||
		ev.SourceIPAddress != "ecr.amazonaws.com" || ev.ServiceEventDetails == nil || lookupUsername(&ev.UserIdentity) != "ecr.amazonaws.com" {
		t.Errorf("event = %+v", ev)
	}
}

func TestNewEventErrors(t *testing.T) {
	t.Parallel()
	cases := []struct {
		info       auth.Info
		out        Outcome
		code, msg  string
		wantSource string
		wantName   string
	}{
		{auth.Info{Action: "ecr:PutImage", ErrorCode: "ImageTagAlreadyExistsException", ErrorMessage: "tag exists"},
			Outcome{Status: 400}, "ImageTagAlreadyExistsException", "tag exists", "ecr.amazonaws.com", "PutImage"},
		{auth.Info{Action: "iam:CreateUser"}, Outcome{Status: 409, ErrorCode: "EntityAlreadyExists", ErrorMessage: "exists"},
			"EntityAlreadyExists", "exists", "iam.amazonaws.com", "CreateUser"},
		{auth.Info{}, Outcome{Status: 404}, "NotFound", "", "ecr.amazonaws.com", "Unknown"},
		{auth.Info{Action: "sts:GetCallerIdentity"}, Outcome{Status: 200}, "", "", "sts.amazonaws.com", "GetCallerIdentity"},
	}
	for _, c := range cases {
		ev := NewEvent(&c.info, c.out, testRegion, testAccount, time.Now())
		if ev.ErrorCode != c.code || ev.ErrorMessage != c.msg || ev.EventSource != c.wantSource || ev.EventName != c.wantName {
			t.Errorf("%+v -> %s %q %q %s", c.info, ev.ErrorCode, ev.ErrorMessage, ev.EventSource, ev.EventName)
		}
	}
}

func TestIsReadOnly(t *testing.T) {
	t.Parallel()
	cases := []struct {
		source, name string
		want         bool
	}{
		{"ecr.amazonaws.com", "GetAuthorizationToken", true},
		{"ecr.amazonaws.com", "BatchGetImage", true},
		{"ecr.amazonaws.com", "BatchCheckLayerAvailability", true},
		{"ecr.amazonaws.com", "DescribeRepositories", true},
		{"ecr.amazonaws.com", "ListImages", true},
		{"ecr.amazonaws.com", "PutImage", false},
		{"ecr.amazonaws.com", "BatchDeleteImage", false},
		{"ecr.amazonaws.com", "InitiateLayerUpload", false},
		{"cloudtrail.amazonaws.com", "LookupEvents", true},
		{"kms.amazonaws.com", "Decrypt", true},
		{"kms.amazonaws.com", "GenerateDataKey", true},
		{"kms.amazonaws.com", "CreateGrant", false},
		{"ecr.amazonaws.com", "Decrypt", false},
		{"iam.amazonaws.com", "CreateAccessKey", false},
	}
	for _, c := range cases {
		if got := IsReadOnly(c.source, c.name); got != c.want {
			t.Errorf("IsReadOnly(%s, %s) = %v", c.source, c.name, got)
		}
	}
}

func TestResourceTypeAndName(t *testing.T) {
	t.Parallel()
	cases := []struct{ arn, typ, name string }{
		{"arn:aws:ecr:us-east-1:111122223333:repository/team/app", "AWS::ECR::Repository", "team/app"},
		{"arn:aws:kms:us-east-1:111122223333:key/k-1", "AWS::KMS::Key", "arn:aws:kms:us-east-1:111122223333:key/k-1"},
		{"arn:aws:kms:us-east-1:111122223333:alias/aws/ecr", "AWS::KMS::Alias", "alias/aws/ecr"},
		{"arn:aws:iam::111122223333:user/eng/alice", "AWS::IAM::User", "alice"},
		{"arn:aws:iam::111122223333:role/deployer", "AWS::IAM::Role", "deployer"},
		{"arn:aws:iam::aws:policy/AdministratorAccess", "AWS::IAM::Policy", "AdministratorAccess"},
		{"arn:aws:s3:::prod-us-east-1-starport-layer-bucket/k", "AWS::S3::Object", "prod-us-east-1-starport-layer-bucket/k"},
		{"arn:aws:cloudtrail:us-east-1:111122223333:trail/coffer", "AWS::CloudTrail::Trail", "coffer"},
	}
	for _, c := range cases {
		typ, name := ResourceTypeAndName(c.arn)
		if typ != c.typ || name != c.name {
			t.Errorf("ResourceTypeAndName(%s) = %s, %s", c.arn, typ, name)
		}
	}
}

// TestEventIDs: eventIDs are version 7 UUIDs of the time they were made,
// unique, and increasing from one to the next, from any goroutine.
func TestEventIDs(t *testing.T) {
	t.Parallel()
	const goroutines, each = 4, 5000
	before := time.Now().UnixMilli()
	ids := make([][]string, goroutines)
	var wg sync.WaitGroup
	for g := range ids {
		wg.Go(func() {
			for range each {
				ids[g] = append(ids[g], newEventID())
			}
		})
	}
	wg.Wait()
	after := time.Now().UnixMilli()
	seen := map[string]bool{}
	for _, list := range ids {
		for i, id := range list {
			u, err := uuid.Parse(id)
			if err != nil || u.Version() != 7 || u.Variant() != uuid.RFC4122 || u.String() != id {
				t.Fatalf("eventID %q: version %d, variant %v, %v", id, u.Version(), u.Variant(), err)
			}
			// Each ID is at least 1/4096 ms after the last: 20,000 may run
			// ahead of the clock by 5 ms.
			if ms := int64(binary.BigEndian.Uint64(u[:8]) >> 16); ms < before || ms > after+10 {
				t.Fatalf("eventID %q is of %d ms, not in [%d, %d]", id, ms, before, after)
			}
			if i > 0 && id <= list[i-1] {
				t.Fatalf("eventID %q after %q", id, list[i-1])
			}
			if seen[id] {
				t.Fatalf("eventID %q twice", id)
			}
			seen[id] = true
		}
	}
}
