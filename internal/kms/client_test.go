package kms

import (
	"bytes"
	"context"
	"errors"
	"reflect"
	"slices"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/cofferhq/coffer/internal/auth"
)

// registryFlow is what the registry does through the seam over a
// repository's life (SPEC FLOW-01..09): DescribeKey, two CreateGrants,
// GenerateDataKey, Decrypt, ListGrants, two RetireGrants.
func registryFlow(t *testing.T, c Client, creator, pusher Caller, keyRef string) {
	t.Helper()
	ctx := t.Context()
	d, err := c.DescribeKey(ctx, creator, &DescribeKeyInput{KeyId: keyRef})
	if err != nil {
		t.Fatalf("DescribeKey: %v", err)
	}
	arn := d.KeyMetadata.Arn
	if d.KeyMetadata.KeyId == "" || arn == "" || d.KeyMetadata.CreationDate == nil {
		t.Fatalf("DescribeKey = %+v", d.KeyMetadata)
	}
	cons := &GrantConstraints{EncryptionContextSubset: map[string]string{"aws:ecr:arn": repoARN}}
	var grants []string
	for range 2 {
		g, err := c.CreateGrant(ctx, creator, &CreateGrantInput{KeyId: arn, GranteePrincipal: ecrVia, RetiringPrincipal: ecrVia,
			Operations: []string{"Decrypt", "GenerateDataKey", "DescribeKey", "RetireGrant"}, Constraints: cons})
		if err != nil {
			t.Fatalf("CreateGrant: %v", err)
		}
		grants = append(grants, g.GrantId)
	}
	ec := map[string]string{"aws:ecr:arn": repoARN, "aws:s3:arn": "arn:aws:s3:::us-east-1-starport-manifest-bucket/x/sha256:ab"}
	dk, err := c.GenerateDataKey(ctx, pusher, &GenerateDataKeyInput{KeyId: arn, KeySpec: "AES_256", EncryptionContext: ec})
	if err != nil {
		t.Fatalf("GenerateDataKey: %v", err)
	}
	pt, err := c.Decrypt(ctx, pusher, &DecryptInput{CiphertextBlob: dk.CiphertextBlob, EncryptionContext: ec})
	if err != nil || !bytes.Equal(pt.Plaintext, dk.Plaintext) || pt.KeyId != arn {
		t.Fatalf("Decrypt = %+v, %v", pt, err)
	}
	_, err = c.Decrypt(ctx, pusher, &DecryptInput{CiphertextBlob: dk.CiphertextBlob, EncryptionContext: map[string]string{"aws:ecr:arn": repoARN}})
	if !errors.Is(err, ErrInvalidCiphertext) {
		t.Fatalf("Decrypt with a missing pair = %v, want ErrInvalidCiphertext", err)
	}
	lg, err := c.ListGrants(ctx, creator, &ListGrantsInput{KeyId: arn})
	if err != nil {
		t.Fatalf("ListGrants: %v", err)
	}
	var listed []string
	for _, g := range lg.Grants {
		listed = append(listed, g.GrantId)
		if !reflect.DeepEqual(g.Constraints, cons) || g.GranteePrincipal != ecrVia || g.KeyId != arn {
			t.Errorf("grant = %+v", g)
		}
	}
	if !slices.Equal(slices.Sorted(slices.Values(listed)), slices.Sorted(slices.Values(grants))) {
		t.Fatalf("ListGrants = %v, created %v", listed, grants)
	}
	for _, g := range grants {
		if _, err := c.RetireGrant(ctx, creator, &RetireGrantInput{KeyId: arn, GrantId: g}); err != nil {
			t.Fatalf("RetireGrant: %v", err)
		}
	}
	lg, err = c.ListGrants(ctx, creator, &ListGrantsInput{KeyId: arn})
	if err != nil || len(lg.Grants) != 0 {
		t.Fatalf("ListGrants after retiring = %+v, %v", lg, err)
	}
	_, err = c.DescribeKey(ctx, creator, &DescribeKeyInput{KeyId: "alias/missing"})
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("DescribeKey(alias/missing) = %v, want ErrNotFound", err)
	}
}

// TestClientInProcess runs the registry flow against *Service, with the
// calls made on users' behalf through ECR, and checks their events
// (SPEC AUD-01/02).
func TestClientInProcess(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	admin := e.admin()
	key, err := e.svc.CreateKey(t.Context(), admin.caller(), &CreateKeyInput{})
	if err != nil {
		t.Fatal(err)
	}
	pusher := e.newUser("pusher")
	e.takeEvents()
	registryFlow(t, e.svc, admin.viaECR(), pusher.viaECR(), key.KeyMetadata.KeyId)

	evs := e.takeEvents()
	var ops []string
	for _, ev := range evs {
		ops = append(ops, ev.Operation)
		if ev.InvokedBy != "ecr.amazonaws.com" || ev.ViaService != ecrVia || ev.SourceIP != "ecr.amazonaws.com" {
			t.Errorf("%s event: invokedBy %q via %q source %q", ev.Operation, ev.InvokedBy, ev.ViaService, ev.SourceIP)
		}
		if (ev.Operation == "GenerateDataKey" || ev.Operation == "Decrypt") && ev.ErrorCode == "" {
			ec, _ := ev.RequestParameters["encryptionContext"].(map[string]string)
			if ec["aws:ecr:arn"] != repoARN || ec["aws:s3:arn"] == "" || ev.KeyARN != key.KeyMetadata.Arn {
				t.Errorf("%s event lacks the encryption context or key: %+v", ev.Operation, ev)
			}
			if ev.Principal.ARN != pusher.arn {
				t.Errorf("%s event principal = %s", ev.Operation, ev.Principal.ARN)
			}
			if _, leaked := ev.RequestParameters["plaintext"]; leaked {
				t.Error("plaintext in an event")
			}
		}
	}
	want := []string{"DescribeKey", "CreateGrant", "CreateGrant", "GenerateDataKey", "Decrypt", "Decrypt", "ListGrants",
		"RetireGrant", "RetireGrant", "ListGrants", "DescribeKey"}
	if !slices.Equal(ops, want) {
		t.Fatalf("events = %v\nwant %v", ops, want)
	}
	if evs[5].ErrorCode != "InvalidCiphertextException" || evs[len(evs)-1].ErrorCode != "NotFoundException" {
		t.Errorf("error codes = %q, %q", evs[5].ErrorCode, evs[len(evs)-1].ErrorCode)
	}
}

// TestClientRemote runs the same flow through aws-sdk-go-v2 against the
// handler behind SigV4: the remote KMS authorizes the registry's own
// credentials.
func TestClientRemote(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	admin := e.admin()
	key, err := e.svc.CreateKey(t.Context(), admin.caller(), &CreateKeyInput{})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var seam []Event
	r, err := NewRemote(RemoteConfig{Endpoint: e.URL, Region: testRegion,
		Credentials: aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
			return aws.Credentials{AccessKeyID: adminKeyID, SecretAccessKey: adminSecret}, nil
		}),
		Events: func(_ context.Context, ev Event) { mu.Lock(); seam = append(seam, ev); mu.Unlock() }})
	if err != nil {
		t.Fatal(err)
	}
	user := Caller{Principal: auth.Principal{Type: "IAMUser", ARN: "arn:aws:iam::123456789012:user/someone"}, ViaService: ecrVia, InvokedBy: "ecr.amazonaws.com"}
	registryFlow(t, r, user, user, key.KeyMetadata.Arn)
	mu.Lock()
	defer mu.Unlock()
	if len(seam) != 11 || seam[3].Operation != "GenerateDataKey" || seam[3].Principal.ARN != user.Principal.ARN || seam[3].InvokedBy != "ecr.amazonaws.com" {
		t.Fatalf("seam events = %+v", seam)
	}
	// The server side saw the registry's credentials.
	for _, ev := range e.takeEvents() {
		if ev.Principal.ARN != adminARN {
			t.Fatalf("server event principal = %s", ev.Principal.ARN)
		}
	}
	if _, err := NewRemote(RemoteConfig{}); err == nil {
		t.Fatal("NewRemote accepted an empty config")
	}
}
