package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ecr"
	ecrtypes "github.com/aws/aws-sdk-go-v2/service/ecr/types"
	awskms "github.com/aws/aws-sdk-go-v2/service/kms"
	kmstypes "github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/google/go-containerregistry/pkg/authn"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/cofferhq/coffer/internal/audit"
	"github.com/cofferhq/coffer/internal/config"
	"github.com/cofferhq/coffer/internal/iam"
)

// Issue #6: KMS-encrypted repositories end to end, in process.

func regionalServer(t *testing.T, region string) (*httptest.Server, *App) {
	t.Helper()
	cfg := config.Defaults()
	cfg.DataDir = t.TempDir()
	cfg.Region = region
	cfg.AdminAccessKeyID, cfg.AdminSecretAccessKey = adminID, adminSecret
	return startApp(t, cfg, slog.New(slog.DiscardHandler))
}

func regionalECR(srv *httptest.Server, region, id, secret string) *ecr.Client {
	return ecr.New(ecr.Options{Region: region, BaseEndpoint: aws.String(srv.URL),
		Credentials: credentials.NewStaticCredentialsProvider(id, secret, "")})
}

func regionalKMS(srv *httptest.Server, region, id, secret string) *awskms.Client {
	return awskms.New(awskms.Options{Region: region, BaseEndpoint: aws.String(srv.URL),
		Credentials: credentials.NewStaticCredentialsProvider(id, secret, "")})
}

// kmsTrail returns the service KMS events (eventSource kms.amazonaws.com,
// invokedBy set) named op in the audit trail, as decoded CloudTrail
// records.
func kmsTrail(t *testing.T, app *App, op string) []map[string]any {
	t.Helper()
	ctx := context.Background()
	if err := app.trail.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	var out []map[string]any
	tok := ""
	for {
		page, err := app.trail.Lookup(ctx, audit.LookupInput{AttributeKey: audit.AttrEventName, AttributeValue: op, NextToken: tok})
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range page.Events {
			var rec map[string]any
			if err := json.Unmarshal([]byte(e.CloudTrailEvent), &rec); err != nil {
				t.Fatal(err)
			}
			if rec["eventSource"] == "kms.amazonaws.com" {
				if id, _ := rec["userIdentity"].(map[string]any); id["invokedBy"] != nil {
					out = append(out, rec)
				}
			}
		}
		if page.NextToken == "" {
			return out
		}
		tok = page.NextToken
	}
}

// kmsCallsFor counts the trail's op events whose encryption context names
// repoARN, checking that the context is exactly the two ECR pairs.
func kmsCallsFor(t *testing.T, app *App, op, repoARN string) int {
	t.Helper()
	n := 0
	for _, rec := range kmsTrail(t, app, op) {
		params, _ := rec["requestParameters"].(map[string]any)
		ec, _ := params["encryptionContext"].(map[string]any)
		if ec["aws:ecr:arn"] != repoARN {
			continue
		}
		if len(ec) != 2 || !strings.HasPrefix(ec["aws:s3:arn"].(string), "arn:aws") {
			t.Errorf("%s encryption context = %v", op, ec)
		}
		n++
	}
	return n
}

// repoObjects counts the stored objects of a KMS repository: its own layer
// domain (the repository ID) and its manifests.
func repoObjects(t *testing.T, app *App, name string) int {
	t.Helper()
	repo, err := app.store.GetRepository(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, dir := range []string{filepath.Join(app.cfg.DataDir, "blobs", "layers", repo.Domain), filepath.Join(app.cfg.DataDir, "blobs", "manifests", repo.ID)} {
		filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() && !strings.Contains(d.Name(), ".tmp") {
				n++
			}
			return nil
		})
	}
	return n
}

func repoFiles(t *testing.T, app *App, name, bucket string) []string {
	t.Helper()
	repo, err := app.store.GetRepository(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	dir := repo.Domain
	if bucket == "manifests" {
		dir = repo.ID
	}
	var files []string
	filepath.WalkDir(filepath.Join(app.cfg.DataDir, "blobs", bucket, dir), func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			files = append(files, p)
		}
		return nil
	})
	return files
}

// readImage reads every layer of a pulled image to the end, so each blob
// is decrypted and its digest checked.
func readImage(img v1.Image) error {
	if _, err := img.RawConfigFile(); err != nil {
		return err
	}
	layers, err := img.Layers()
	if err != nil {
		return err
	}
	for _, l := range layers {
		rc, err := l.Compressed()
		if err != nil {
			return err
		}
		_, err = io.Copy(io.Discard, rc)
		rc.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

func repoGrants(t *testing.T, kc *awskms.Client, keyID, repoARN string) []kmstypes.GrantListEntry {
	t.Helper()
	out, err := kc.ListGrants(context.Background(), &awskms.ListGrantsInput{KeyId: aws.String(keyID)})
	if err != nil {
		t.Fatalf("ListGrants: %v", err)
	}
	var gs []kmstypes.GrantListEntry
	for _, g := range out.Grants {
		if g.Constraints != nil && g.Constraints.EncryptionContextSubset["aws:ecr:arn"] == repoARN {
			gs = append(gs, g)
		}
	}
	return gs
}

func createKMSRepo(ctx context.Context, c *ecr.Client, name, typ, key string) (*ecrtypes.Repository, error) {
	cfg := &ecrtypes.EncryptionConfiguration{EncryptionType: ecrtypes.EncryptionType(typ)}
	if key != "" {
		cfg.KmsKey = aws.String(key)
	}
	out, err := c.CreateRepository(ctx, &ecr.CreateRepositoryInput{RepositoryName: aws.String(name), EncryptionConfiguration: cfg})
	if err != nil {
		return nil, err
	}
	return out.Repository, nil
}

func TestKMSRepositories(t *testing.T) {
	ctx := context.Background()
	srv, app := newAuthServer(t)
	admin := ecrClient(srv, adminID, adminSecret, nil)
	kc := regionalKMS(srv, "us-east-1", adminID, adminSecret)
	adminAuth := remote.WithAuth(&authn.Basic{Username: "AWS", Password: loginToken(t, admin)})
	arnOf := func(name string) string { return "arn:aws:ecr:us-east-1:" + app.accountID + ":repository/" + name }

	key, err := kc.CreateKey(ctx, &awskms.CreateKeyInput{Description: aws.String("repository key")})
	if err != nil {
		t.Fatalf("CreateKey: %v", err)
	}
	keyARN := aws.ToString(key.KeyMetadata.Arn)
	keyID := aws.ToString(key.KeyMetadata.KeyId)
	if _, err := kc.CreateAlias(ctx, &awskms.CreateAliasInput{AliasName: aws.String("alias/repos"), TargetKeyId: aws.String(keyID)}); err != nil {
		t.Fatal(err)
	}

	// Every form of key reference resolves to the key ARN (SPEC KMS-04).
	for i, ref := range []string{keyID, keyARN, "alias/repos", "arn:aws:kms:us-east-1:" + app.accountID + ":alias/repos"} {
		name := []string{"kms/byid", "kms/byarn", "kms/byalias", "kms/byaliasarn"}[i]
		repo, err := createKMSRepo(ctx, admin, name, "KMS", ref)
		if err != nil {
			t.Fatalf("CreateRepository %s with key %s: %v", name, ref, err)
		}
		if repo.EncryptionConfiguration.EncryptionType != ecrtypes.EncryptionTypeKms || aws.ToString(repo.EncryptionConfiguration.KmsKey) != keyARN {
			t.Fatalf("%s encryption = %+v", name, repo.EncryptionConfiguration)
		}
		// SPEC FLOW-02, GRANT-07: two grants per repository, to the ECR
		// service, constrained to the repository.
		gs := repoGrants(t, kc, keyID, arnOf(name))
		if len(gs) != 2 {
			t.Fatalf("%s has %d grants, want 2", name, len(gs))
		}
		for _, g := range gs {
			if aws.ToString(g.GranteePrincipal) != "ecr.us-east-1.amazonaws.com" {
				t.Errorf("grantee = %s", aws.ToString(g.GranteePrincipal))
			}
		}
	}

	// The default key: alias/aws/ecr, created on first use (KMS-01/02).
	def, err := createKMSRepo(ctx, admin, "kms/default", "KMS", "")
	if err != nil {
		t.Fatalf("CreateRepository with the default key: %v", err)
	}
	dk, err := kc.DescribeKey(ctx, &awskms.DescribeKeyInput{KeyId: aws.String("alias/aws/ecr")})
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToString(def.EncryptionConfiguration.KmsKey) != aws.ToString(dk.KeyMetadata.Arn) || dk.KeyMetadata.KeyManager != kmstypes.KeyManagerTypeAws {
		t.Fatalf("default repository key = %s, alias/aws/ecr = %+v", aws.ToString(def.EncryptionConfiguration.KmsKey), dk.KeyMetadata)
	}
	if n := len(repoGrants(t, kc, aws.ToString(dk.KeyMetadata.KeyId), arnOf("kms/default"))); n != 2 {
		t.Fatalf("default-key repository has %d grants", n)
	}

	marker := []byte("coffer-kms-plaintext-marker-" + strings.Repeat("7c1e2b", 8))
	markerImage := func() v1.Image {
		img, err := mutate.AppendLayers(empty.Image, static.NewLayer(bytes.Repeat(marker, 4096), types.OCILayer))
		if err != nil {
			t.Fatal(err)
		}
		return img
	}

	for _, name := range []string{"kms/byid", "kms/default"} {
		t.Run("push and pull "+name, func(t *testing.T) {
			img := markerImage()
			r := ref(t, srv, name+":v1")
			if err := remote.Write(r, img, adminAuth); err != nil {
				t.Fatalf("push: %v", err)
			}
			objs := repoObjects(t, app, name)
			gdk := kmsCallsFor(t, app, "GenerateDataKey", arnOf(name))
			if objs == 0 || gdk != objs {
				t.Fatalf("push stored %d objects with %d GenerateDataKey calls; want one each", objs, gdk)
			}
			t.Logf("%s: %d objects, %d GenerateDataKey", name, objs, gdk)
			before := kmsCallsFor(t, app, "Decrypt", arnOf(name))
			got, err := remote.Image(r, adminAuth)
			if err != nil {
				t.Fatalf("pull: %v", err)
			}
			if err := readImage(got); err != nil {
				t.Fatalf("pulled image: %v", err)
			}
			dec := kmsCallsFor(t, app, "Decrypt", arnOf(name)) - before
			if dec == 0 || dec > objs {
				t.Fatalf("pull made %d Decrypt calls for %d objects", dec, objs)
			}
			t.Logf("%s: pull made %d Decrypt calls", name, dec)
			// AUD-01/02: the records name the service and the context.
			for _, rec := range kmsTrail(t, app, "GenerateDataKey") {
				if rec["userIdentity"].(map[string]any)["invokedBy"] != "ecr.amazonaws.com" {
					t.Errorf("GenerateDataKey record userIdentity = %v", rec["userIdentity"])
				}
			}
		})
	}

	t.Run("no plaintext at rest", func(t *testing.T) {
		probe := marker[:32]
		filepath.WalkDir(filepath.Join(app.cfg.DataDir, "blobs"), func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			b, err := os.ReadFile(path)
			if err == nil && bytes.Contains(b, probe) {
				t.Errorf("plaintext marker found in %s", path)
			}
			return nil
		})
	})

	t.Run("revoked grants stop push and pull at once; new grants restore them", func(t *testing.T) {
		name := "kms/byid"
		r := ref(t, srv, name+":v1")
		gs := repoGrants(t, kc, keyID, arnOf(name))
		byOp := map[string]kmstypes.GrantListEntry{}
		for _, g := range gs {
			for _, op := range g.Operations {
				if op == kmstypes.GrantOperationGenerateDataKey || op == kmstypes.GrantOperationDecrypt {
					byOp[string(op)] = g
				}
			}
		}
		for _, op := range []string{"GenerateDataKey", "Decrypt"} {
			if _, err := kc.RevokeGrant(ctx, &awskms.RevokeGrantInput{KeyId: aws.String(keyID), GrantId: byOp[op].GrantId}); err != nil {
				t.Fatalf("RevokeGrant %s: %v", op, err)
			}
		}
		fresh, _ := random.Image(4096, 1)
		err := remote.Write(ref(t, srv, name+":v2"), fresh, adminAuth)
		if err == nil || !strings.Contains(err.Error(), "KmsException") || !strings.Contains(err.Error(), "kms:GenerateDataKey") {
			t.Fatalf("push after revoke = %v", err)
		}
		_, err = remote.Image(r, adminAuth)
		if err == nil || !strings.Contains(err.Error(), "KmsException") || !strings.Contains(err.Error(), "kms:Decrypt") {
			t.Fatalf("pull after revoke = %v", err)
		}
		t.Logf("pull after revoke: %v", err)
		bg, err := admin.BatchGetImage(ctx, &ecr.BatchGetImageInput{RepositoryName: aws.String(name), ImageIds: []ecrtypes.ImageIdentifier{{ImageTag: aws.String("v1")}}})
		if err != nil || len(bg.Failures) != 1 || bg.Failures[0].FailureCode != ecrtypes.ImageFailureCodeKmsError {
			t.Fatalf("BatchGetImage after revoke = %+v, %v", bg, err)
		}
		for _, op := range []string{"GenerateDataKey", "Decrypt"} {
			g := byOp[op]
			if _, err := kc.CreateGrant(ctx, &awskms.CreateGrantInput{KeyId: aws.String(keyID), GranteePrincipal: g.GranteePrincipal,
				Operations: g.Operations, Constraints: g.Constraints}); err != nil {
				t.Fatalf("CreateGrant: %v", err)
			}
		}
		if err := remote.Write(ref(t, srv, name+":v2"), fresh, adminAuth); err != nil {
			t.Fatalf("push after re-grant: %v", err)
		}
		if _, err := remote.Image(r, adminAuth); err != nil {
			t.Fatalf("pull after re-grant: %v", err)
		}
	})

	t.Run("a disabled key or one pending deletion stops push and pull at once", func(t *testing.T) {
		r := ref(t, srv, "kms/byarn:v1")
		img, _ := random.Image(2048, 1)
		if err := remote.Write(r, img, adminAuth); err != nil {
			t.Fatal(err)
		}
		if _, err := kc.DisableKey(ctx, &awskms.DisableKeyInput{KeyId: aws.String(keyID)}); err != nil {
			t.Fatal(err)
		}
		_, err := remote.Image(r, adminAuth)
		if err == nil || !strings.Contains(err.Error(), "DisabledException") {
			t.Fatalf("pull with the key disabled = %v", err)
		}
		if _, err := kc.EnableKey(ctx, &awskms.EnableKeyInput{KeyId: aws.String(keyID)}); err != nil {
			t.Fatal(err)
		}
		if _, err := remote.Image(r, adminAuth); err != nil {
			t.Fatalf("pull with the key enabled again: %v", err)
		}
		if _, err := kc.ScheduleKeyDeletion(ctx, &awskms.ScheduleKeyDeletionInput{KeyId: aws.String(keyID), PendingWindowInDays: aws.Int32(7)}); err != nil {
			t.Fatal(err)
		}
		_, err = remote.Image(r, adminAuth)
		if err == nil || !strings.Contains(err.Error(), "KMSInvalidStateException") {
			t.Fatalf("pull with the key pending deletion = %v", err)
		}
		fresh, _ := random.Image(1024, 1)
		if err := remote.Write(ref(t, srv, "kms/byarn:v9"), fresh, adminAuth); err == nil || !strings.Contains(err.Error(), "KmsException") {
			t.Fatalf("push with the key pending deletion = %v", err)
		}
		if _, err := kc.CancelKeyDeletion(ctx, &awskms.CancelKeyDeletionInput{KeyId: aws.String(keyID)}); err != nil {
			t.Fatal(err)
		}
		if _, err := kc.EnableKey(ctx, &awskms.EnableKeyInput{KeyId: aws.String(keyID)}); err != nil {
			t.Fatal(err)
		}
		if _, err := remote.Image(r, adminAuth); err != nil {
			t.Fatalf("pull after CancelKeyDeletion and EnableKey: %v", err)
		}
	})

	t.Run("objects swapped between KMS repositories do not decrypt", func(t *testing.T) {
		img, _ := random.Image(4096, 1)
		for _, n := range []string{"kms/byalias", "kms/byaliasarn"} {
			if err := remote.Write(ref(t, srv, n+":v1"), img, adminAuth); err != nil {
				t.Fatal(err)
			}
		}
		a, b := repoFiles(t, app, "kms/byalias", "manifests"), repoFiles(t, app, "kms/byaliasarn", "manifests")
		if len(a) != 1 || len(b) != 1 {
			t.Fatalf("manifest objects: %v %v", a, b)
		}
		data, err := os.ReadFile(a[0])
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(b[0], data, 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := remote.Image(ref(t, srv, "kms/byaliasarn:v1"), adminAuth); err == nil {
			t.Fatal("a manifest copied from another KMS repository was served")
		}
		if _, err := remote.Image(ref(t, srv, "kms/byalias:v1"), adminAuth); err != nil {
			t.Fatalf("the original still pulls: %v", err)
		}
	})

	t.Run("a mount into a KMS repository re-encrypts under its key", func(t *testing.T) {
		img, _ := random.Image(4096, 2)
		src := ref(t, srv, "plain/app:v1")
		if err := remote.Write(src, img, adminAuth); err != nil {
			t.Fatal(err)
		}
		pulled, err := remote.Image(src, adminAuth)
		if err != nil {
			t.Fatal(err)
		}
		name := "kms/byaliasarn"
		before := kmsCallsFor(t, app, "GenerateDataKey", arnOf(name))
		objsBefore := repoObjects(t, app, name)
		dst := ref(t, srv, name+":mounted")
		if err := remote.Write(dst, pulled, adminAuth); err != nil {
			t.Fatalf("push with mounts: %v", err)
		}
		added := repoObjects(t, app, name) - objsBefore
		if gdk := kmsCallsFor(t, app, "GenerateDataKey", arnOf(name)) - before; added < 4 || gdk != added {
			t.Fatalf("mount push added %d objects with %d GenerateDataKey calls", added, gdk)
		}
		got, err := remote.Image(dst, adminAuth)
		if err != nil {
			t.Fatal(err)
		}
		if err := readImage(got); err != nil {
			t.Fatalf("mounted image: %v", err)
		}
	})

	t.Run("delete retires both grants", func(t *testing.T) {
		if _, err := admin.DeleteRepository(ctx, &ecr.DeleteRepositoryInput{RepositoryName: aws.String("kms/byalias"), Force: true}); err != nil {
			t.Fatalf("DeleteRepository: %v", err)
		}
		if n := len(repoGrants(t, kc, keyID, arnOf("kms/byalias"))); n != 0 {
			t.Fatalf("%d grants left after delete", n)
		}
	})

	t.Run("delete without kms:RetireGrant deletes and reports the grants left", func(t *testing.T) {
		id, secret := createUser(t, app, "deleter", "AmazonEC2ContainerRegistryFullAccess")
		c := ecrClient(srv, id, secret, nil)
		_, err := c.DeleteRepository(ctx, &ecr.DeleteRepositoryInput{RepositoryName: aws.String("kms/byarn"), Force: true})
		want := "The repository [kms/byarn] has been deleted successfully but the grants created by the kmsKey [" + keyARN + "] failed to be retired"
		var ke *ecrtypes.KmsException
		if !errors.As(err, &ke) || aws.ToString(ke.Message) != want {
			t.Fatalf("DeleteRepository = %v, want KmsException %q", err, want)
		}
		if _, err := admin.DescribeRepositories(ctx, &ecr.DescribeRepositoriesInput{RepositoryNames: []string{"kms/byarn"}}); apiCode(err) != "RepositoryNotFoundException" {
			t.Fatalf("repository after delete: %v", err)
		}
		left := repoGrants(t, kc, keyID, arnOf("kms/byarn"))
		if len(left) != 2 {
			all, _ := kc.ListGrants(ctx, &awskms.ListGrantsInput{KeyId: aws.String(keyID)})
			for _, g := range all.Grants {
				t.Logf("grant %s %v %+v", aws.ToString(g.GrantId), g.Operations, g.Constraints)
			}
			t.Fatalf("%d grants left, want 2", len(left))
		}
		for _, g := range left { // SPEC TRBL-05: aws kms retire-grant
			if _, err := kc.RetireGrant(ctx, &awskms.RetireGrantInput{KeyId: aws.String(keyID), GrantId: g.GrantId}); err != nil {
				t.Fatalf("RetireGrant: %v", err)
			}
		}
		if n := len(repoGrants(t, kc, keyID, arnOf("kms/byarn"))); n != 0 {
			t.Fatalf("%d grants left after retire-grant", n)
		}
		// A repository whose grants were revoked and replaced by hand
		// deletes cleanly: the revoked ones are gone already.
		if _, err := admin.DeleteRepository(ctx, &ecr.DeleteRepositoryInput{RepositoryName: aws.String("kms/byid"), Force: true}); err != nil {
			t.Fatalf("DeleteRepository kms/byid: %v", err)
		}
	})

	t.Run("PERM-05/06: creation needs CreateGrant and DescribeKey", func(t *testing.T) {
		id, secret := createUser(t, app, "creator", "AmazonEC2ContainerRegistryFullAccess")
		user := "arn:aws:iam::" + app.accountID + ":user/creator"
		root := "arn:aws:iam::" + app.accountID + ":root"
		policy := func(actions string) string {
			return `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"` + root + `"},"Action":"kms:*","Resource":"*"},` +
				`{"Effect":"Allow","Principal":{"AWS":"` + user + `"},"Action":[` + actions + `],"Resource":"*"}]}`
		}
		k, err := kc.CreateKey(ctx, &awskms.CreateKeyInput{Policy: aws.String(policy(`"kms:DescribeKey"`))})
		if err != nil {
			t.Fatal(err)
		}
		kid := aws.ToString(k.KeyMetadata.KeyId)
		c := ecrClient(srv, id, secret, nil)
		_, err = createKMSRepo(ctx, c, "kms/denied", "KMS", kid)
		var ke *ecrtypes.KmsException
		if !errors.As(err, &ke) || !strings.Contains(aws.ToString(ke.Message), "kms:CreateGrant") {
			t.Fatalf("CreateRepository without CreateGrant = %v", err)
		}
		if _, err := admin.DescribeRepositories(ctx, &ecr.DescribeRepositoriesInput{RepositoryNames: []string{"kms/denied"}}); apiCode(err) != "RepositoryNotFoundException" {
			t.Fatalf("repository after refused create: %v", err)
		}
		if n := len(repoGrants(t, kc, kid, arnOf("kms/denied"))); n != 0 {
			t.Fatalf("%d grants left after a refused create", n)
		}
		// The key policy alone may allow CreateGrant and DescribeKey.
		if _, err := kc.PutKeyPolicy(ctx, &awskms.PutKeyPolicyInput{KeyId: aws.String(kid), PolicyName: aws.String("default"),
			Policy: aws.String(policy(`"kms:DescribeKey","kms:CreateGrant"`))}); err != nil {
			t.Fatal(err)
		}
		if _, err := createKMSRepo(ctx, c, "kms/allowed", "KMS", kid); err != nil {
			t.Fatalf("CreateRepository with CreateGrant in the key policy: %v", err)
		}
		if n := len(repoGrants(t, kc, kid, arnOf("kms/allowed"))); n != 2 {
			t.Fatalf("%d grants", n)
		}
		// ...and kms:RetireGrant in IAM lets the same user delete cleanly.
		if err := app.iam.PutInlinePolicy(ctx, iam.UserEntity(), "creator", "retire",
			`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"kms:RetireGrant","Resource":"`+aws.ToString(k.KeyMetadata.Arn)+`"}]}`); err != nil {
			t.Fatal(err)
		}
		if _, err := c.DeleteRepository(ctx, &ecr.DeleteRepositoryInput{RepositoryName: aws.String("kms/allowed")}); err != nil {
			t.Fatalf("DeleteRepository with kms:RetireGrant: %v", err)
		}
		if n := len(repoGrants(t, kc, kid, arnOf("kms/allowed"))); n != 0 {
			t.Fatalf("%d grants left", n)
		}
	})

	t.Run("KMS_DSSE is refused outside GovCloud", func(t *testing.T) {
		_, err := createKMSRepo(ctx, admin, "kms/dsse", "KMS_DSSE", "")
		if apiCode(err) != "InvalidParameterException" || !strings.Contains(err.Error(), "GovCloud") {
			t.Fatalf("KMS_DSSE in us-east-1 = %v", err)
		}
	})

	t.Run("unknown key fails creation", func(t *testing.T) {
		_, err := createKMSRepo(ctx, admin, "kms/nokey", "KMS", "alias/nope")
		var ke *ecrtypes.KmsException
		if !errors.As(err, &ke) {
			t.Fatalf("CreateRepository with an unknown key = %v", err)
		}
	})
}

func TestKMSDSSERepositoryInGovCloud(t *testing.T) {
	ctx := context.Background()
	const region = "us-gov-west-1"
	srv, app := regionalServer(t, region)
	admin := regionalECR(srv, region, adminID, adminSecret)
	repo, err := createKMSRepo(ctx, admin, "gov/dsse", "KMS_DSSE", "")
	if err != nil {
		t.Fatalf("CreateRepository KMS_DSSE in %s: %v", region, err)
	}
	if repo.EncryptionConfiguration.EncryptionType != ecrtypes.EncryptionTypeKmsDsse || !strings.HasPrefix(aws.ToString(repo.EncryptionConfiguration.KmsKey), "arn:aws-us-gov:kms:us-gov-west-1:") {
		t.Fatalf("encryption = %+v %s", repo.EncryptionConfiguration, aws.ToString(repo.EncryptionConfiguration.KmsKey))
	}
	auth := remote.WithAuth(&authn.Basic{Username: "AWS", Password: loginToken(t, admin)})
	img, _ := random.Image(8192, 2)
	r := ref(t, srv, "gov/dsse:v1")
	if err := remote.Write(r, img, auth); err != nil {
		t.Fatalf("push: %v", err)
	}
	repoARN := aws.ToString(repo.RepositoryArn)
	objs := repoObjects(t, app, "gov/dsse")
	if gdk := kmsCallsFor(t, app, "GenerateDataKey", repoARN); objs == 0 || gdk != 2*objs {
		t.Fatalf("DSSE push stored %d objects with %d GenerateDataKey calls; want two each", objs, gdk)
	}
	got, err := remote.Image(r, auth)
	if err != nil {
		t.Fatalf("pull: %v", err)
	}
	if err := readImage(got); err != nil {
		t.Fatal(err)
	}
	if dec := kmsCallsFor(t, app, "Decrypt", repoARN); dec == 0 || dec > 2*objs {
		t.Fatalf("DSSE pull: %d Decrypt calls for %d objects", dec, objs)
	}
	// Two slots per object.
	for _, f := range repoFiles(t, app, "gov/dsse", "manifests") {
		b, _ := os.ReadFile(f)
		if bytes.Count(b, []byte(aws.ToString(repo.EncryptionConfiguration.KmsKey))) != 2 {
			t.Errorf("%s does not name the key in two slots", f)
		}
	}
}
