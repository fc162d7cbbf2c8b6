package server

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecr"
	ecrtypes "github.com/aws/aws-sdk-go-v2/service/ecr/types"
	awskms "github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/google/go-containerregistry/pkg/authn"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/cofferhq/coffer/internal/crypto/envelope"
	"github.com/cofferhq/coffer/internal/crypto/rootkey"
	"github.com/cofferhq/coffer/internal/kms"
	"github.com/cofferhq/coffer/internal/metadata"
	"github.com/cofferhq/coffer/internal/registry"
)

// Issue #11 item 4: crypto-shredding. A KMS repository's objects are
// sealed under data keys only its KMS key can unwrap, so once that key is
// deleted (or, for the registry, once the repository's grants are
// retired) every remaining copy of the ciphertext, including one saved
// aside beforehand, is unreadable to Coffer. What this does not claim: while
// the key exists and is enabled, whoever may call kms:Decrypt on it can
// still open a saved copy, and so can a repository of the same name created
// under the same key (subtest "delete repository"; docs/kms.md).

// shredObjects is one pushed image's stored objects, read through the
// metadata (never by walking directories), with a copy of each saved
// aside as an attacker with disk access could.
type shredObjects struct {
	repo   metadata.Repository
	layer  metadata.Blob     // the marker layer's blob row
	saved  map[string][]byte // storage key -> ciphertext copy
	plain  []byte            // the marker layer's plaintext
	tagged string
}

func pushShredImage(t *testing.T, srv *httptest.Server, app *App, r remote.Option, name string, marker []byte) shredObjects {
	t.Helper()
	ctx := context.Background()
	layer := static.NewLayer(marker, types.OCILayer)
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref(t, srv, name+":v1"), img, r); err != nil {
		t.Fatalf("push %s: %v", name, err)
	}
	repo, err := app.store.GetRepository(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	o := shredObjects{repo: repo, saved: map[string][]byte{}, plain: marker, tagged: name + ":v1"}
	ld, _ := layer.Digest()
	cd, _ := img.ConfigName()
	for _, d := range []v1.Hash{ld, cd} {
		b, err := app.store.BlobLinked(ctx, repo.ID, d.String())
		if err != nil {
			t.Fatalf("blob %s: %v", d, err)
		}
		if d == ld {
			o.layer = b
		}
		o.saved[b.ObjectKey] = readObject(t, app, b.ObjectKey)
	}
	m, err := app.store.ResolveTag(ctx, repo.ID, "v1")
	if err != nil {
		t.Fatal(err)
	}
	o.saved[m.ObjectKey] = readObject(t, app, m.ObjectKey)
	for key, data := range o.saved {
		if bytes.Contains(data, marker[:32]) {
			t.Fatalf("object %s holds plaintext", key)
		}
	}
	return o
}

func objectPath(app *App, key string) string {
	return filepath.Join(app.cfg.DataDir, "blobs", filepath.FromSlash(key))
}

func readObject(t *testing.T, app *App, key string) []byte {
	t.Helper()
	data, err := os.ReadFile(objectPath(app, key))
	if err != nil {
		t.Fatalf("object %s: %v", key, err)
	}
	return data
}

// layerARN is the identity a layer object is bound to and the aws:s3:arn of
// its encryption context (registry.objectARN, SPEC STO-04).
func layerARN(key string) string {
	return "arn:aws:s3:::prod-us-east-1-starport-layer-bucket/" + strings.TrimPrefix(key, "layers/")
}

// openSaved opens a saved copy of a layer object the way the registry
// does, but with a data key obtained elsewhere (decrypt): it succeeds only
// for whoever can unwrap the object's data key under the repository's
// encryption context.
func openSaved(t *testing.T, o shredObjects, repoARN string, decrypt func(wrapped []byte, ec map[string]string) ([]byte, error)) ([]byte, error) {
	t.Helper()
	br := bufio.NewReader(bytes.NewReader(o.saved[o.layer.ObjectKey]))
	hdr, err := envelope.ParseHeader(br)
	if err != nil {
		t.Fatalf("saved copy header: %v", err)
	}
	if len(hdr.Slots) != 1 || hdr.Slots[0].Source != envelope.SourceKMS || hdr.Slots[0].KeyID != o.repo.KMSKey {
		t.Fatalf("saved copy slots = %+v", hdr.Slots)
	}
	arn := layerARN(o.layer.ObjectKey)
	dk, err := decrypt(hdr.Slots[0].Wrapped, map[string]string{"aws:ecr:arn": repoARN, "aws:s3:arn": arn})
	if err != nil {
		return nil, err
	}
	sum, err := hex.DecodeString(strings.TrimPrefix(o.layer.Digest, "sha256:"))
	if err != nil {
		t.Fatal(err)
	}
	pr, err := envelope.NewBoundReader(br, hdr, []byte(arn), o.layer.Size, sum, dk)
	if err != nil {
		return nil, err
	}
	return io.ReadAll(pr)
}

// sweepAfter deletes the keys whose deletion date has passed by at the
// moment at, the way the server's periodic KMS sweep does once that moment
// comes: a KMS instance on the same store with a clock set to at (the
// scheduled date is at least 7 days out). The running service is then
// told, as a replica would be.
func sweepAfter(t *testing.T, app *App, at time.Time) int {
	t.Helper()
	root, err := rootkey.LoadFile(app.cfg.RootKeyPath())
	if err != nil {
		t.Fatal(err)
	}
	later, err := kms.New(kms.Config{AccountID: app.accountID, Region: app.cfg.Region, Docs: app.store, Root: root,
		IdentityPolicies: app.iam.IdentityPolicies, Log: slog.New(slog.DiscardHandler), Now: func() time.Time { return at }})
	if err != nil {
		t.Fatal(err)
	}
	deleted, _, err := later.Sweep(context.Background())
	if err != nil {
		t.Fatalf("sweep: %v", err)
	}
	app.kms.Invalidate()
	return deleted
}

// materialDocs counts the sealed key material versions the store holds for
// a key: what Coffer would need to unwrap its data keys.
func materialDocs(t *testing.T, app *App, keyID string) int {
	t.Helper()
	n := 0
	err := app.store.ViewDocs(context.Background(), func(tx metadata.DocTx) error {
		docs, err := tx.List("kms.material", keyID+"/")
		n = len(docs)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// keyGone reports a KMS Decrypt refused because the key no longer exists:
// without a KeyId the ciphertext names a key KMS does not have
// (InvalidCiphertextException, as AWS answers); with one, NotFoundException.
func keyGone(err error) bool {
	return err != nil && (strings.Contains(err.Error(), "InvalidCiphertextException") || strings.Contains(err.Error(), "NotFoundException"))
}

func TestCryptoShredding(t *testing.T) {
	ctx := context.Background()
	srv, app := newAuthServer(t)
	admin := ecrClient(srv, adminID, adminSecret, nil)
	kc := regionalKMS(srv, "us-east-1", adminID, adminSecret)
	auth := remote.WithAuth(&authn.Basic{Username: "AWS", Password: loginToken(t, admin)})
	arnOf := func(name string) string { return "arn:aws:ecr:us-east-1:" + app.accountID + ":repository/" + name }
	newKey := func() (id, arn string) {
		out, err := kc.CreateKey(ctx, &awskms.CreateKeyInput{Description: aws.String("shredding")})
		if err != nil {
			t.Fatalf("CreateKey: %v", err)
		}
		return aws.ToString(out.KeyMetadata.KeyId), aws.ToString(out.KeyMetadata.Arn)
	}
	// adminDecrypt is a principal holding kms:Decrypt on the key (the
	// administrator, through the default key policy), outside the registry.
	adminDecrypt := func(wrapped []byte, ec map[string]string) ([]byte, error) {
		out, err := kc.Decrypt(ctx, &awskms.DecryptInput{CiphertextBlob: wrapped, EncryptionContext: ec})
		if err != nil {
			return nil, err
		}
		return out.Plaintext, nil
	}
	marker := func(s string) []byte { return bytes.Repeat([]byte("coffer-shred-"+s+"-"), 8192) }

	t.Run("key deletion", func(t *testing.T) {
		keyID, keyARN := newKey()
		name := "shred/keydel"
		if _, err := createKMSRepo(ctx, admin, name, "KMS", keyARN); err != nil {
			t.Fatal(err)
		}
		o := pushShredImage(t, srv, app, auth, name, marker("a"))
		if _, err := remote.Image(ref(t, srv, o.tagged), auth); err != nil {
			t.Fatalf("pull before: %v", err)
		}
		sched, err := kc.ScheduleKeyDeletion(ctx, &awskms.ScheduleKeyDeletionInput{KeyId: aws.String(keyID), PendingWindowInDays: aws.Int32(7)})
		if err != nil {
			t.Fatal(err)
		}
		// Pending deletion: refused at once, but still recoverable.
		if _, err := remote.Image(ref(t, srv, o.tagged), auth); err == nil || !strings.Contains(err.Error(), "KMSInvalidStateException") {
			t.Fatalf("pull with the key pending deletion = %v", err)
		}
		if n := sweepAfter(t, app, aws.ToTime(sched.DeletionDate).Add(-time.Minute)); n != 0 {
			t.Fatalf("sweep before the date deleted %d keys", n)
		}
		if n := sweepAfter(t, app, aws.ToTime(sched.DeletionDate).Add(time.Minute)); n != 1 {
			t.Fatalf("sweep after the date deleted %d keys, want 1", n)
		}
		if n := materialDocs(t, app, keyID); n != 0 {
			t.Fatalf("%d key material versions left after deletion", n)
		}

		// The registry's own path: pulls and BatchGetImage fail clearly.
		_, err = remote.Image(ref(t, srv, o.tagged), auth)
		if err == nil || !strings.Contains(err.Error(), "KmsException") || !strings.Contains(err.Error(), "NotFoundException") {
			t.Fatalf("pull after key deletion = %v", err)
		}
		t.Logf("pull after key deletion: %v", err)
		bg, err := admin.BatchGetImage(ctx, &ecr.BatchGetImageInput{RepositoryName: aws.String(name),
			ImageIds: []ecrtypes.ImageIdentifier{{ImageTag: aws.String("v1")}}})
		if err != nil || len(bg.Failures) != 1 || bg.Failures[0].FailureCode != ecrtypes.ImageFailureCodeKmsError {
			t.Fatalf("BatchGetImage after key deletion = %+v, %v", bg, err)
		}
		// The ciphertext is still on disk, and the saved copies are
		// byte-identical; the registry cannot open either.
		for key, data := range o.saved {
			if !bytes.Equal(readObject(t, app, key), data) {
				t.Fatalf("object %s changed", key)
			}
		}
		_, err = app.reg.OpenBlob(ctx, o.repo, o.layer, 0, -1)
		if !errors.Is(err, registry.ErrKMS) || !strings.Contains(err.Error(), "NotFoundException") {
			t.Fatalf("registry OpenBlob after key deletion = %v", err)
		}
		// Nor can anyone through the KMS, the administrator included...
		if _, err := openSaved(t, o, arnOf(name), adminDecrypt); !keyGone(err) {
			t.Fatalf("administrator decrypting a saved copy after key deletion = %v", err)
		}
		// ...and the root key, the only other key Coffer holds, does not
		// wrap KMS data keys.
		root, err := rootkey.LoadFile(app.cfg.RootKeyPath())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := openSaved(t, o, arnOf(name), func(w []byte, ec map[string]string) ([]byte, error) { return root.Unwrap(w, ec) }); err == nil {
			t.Fatal("the root key unwrapped a KMS data key")
		}
	})

	t.Run("delete repository", func(t *testing.T) {
		keyID, keyARN := newKey()
		name := "shred/repodel"
		if _, err := createKMSRepo(ctx, admin, name, "KMS", keyARN); err != nil {
			t.Fatal(err)
		}
		o := pushShredImage(t, srv, app, auth, name, marker("b"))
		if _, err := admin.DeleteRepository(ctx, &ecr.DeleteRepositoryInput{RepositoryName: aws.String(name), Force: true}); err != nil {
			t.Fatalf("DeleteRepository --force: %v", err)
		}
		// Every object is gone from storage (the repository owns its
		// encryption domain, so its layers go with it, not with GC).
		for key := range o.saved {
			if _, err := os.Stat(objectPath(app, key)); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("object %s after delete: %v", key, err)
			}
		}
		if n := len(repoGrants(t, kc, keyID, arnOf(name))); n != 0 {
			t.Fatalf("%d grants left", n)
		}
		// A saved copy restored to where it was: the registry decrypts
		// only through the repository's grants, which are retired.
		key := o.layer.ObjectKey
		if err := os.MkdirAll(filepath.Dir(objectPath(app, key)), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(objectPath(app, key), o.saved[key], 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := app.reg.OpenBlob(ctx, o.repo, o.layer, 0, -1)
		if !errors.Is(err, registry.ErrKMS) || !strings.Contains(err.Error(), "AccessDenied") {
			t.Fatalf("registry OpenBlob of a restored copy after delete = %v", err)
		}
		t.Logf("registry OpenBlob after delete: %v", err)
		// The limit of what deletion does: the key is still enabled, and a
		// principal allowed kms:Decrypt on it can open the saved copy
		// (docs/kms.md says so). Deleting the key is what shreds.
		got, err := openSaved(t, o, arnOf(name), adminDecrypt)
		if err != nil || !bytes.Equal(got, o.plain) {
			t.Fatalf("administrator opening a saved copy while the key is enabled: %d bytes, %v", len(got), err)
		}
		// So can the registry itself once a repository of the same name is
		// created under the same key: its new grants are constrained to the
		// same repository ARN, which the old data keys' context names. (The
		// blob row is written directly, as only someone with write access
		// to the metadata database could.)
		again, err := createKMSRepo(ctx, admin, name, "KMS", keyARN)
		if err != nil {
			t.Fatal(err)
		}
		repo2 := mustRepo(t, app, aws.ToString(again.RepositoryName))
		stale := o.layer
		stale.Domain = repo2.Domain
		if _, _, err := app.store.CommitBlob(ctx, repo2.ID, stale); err != nil {
			t.Fatal(err)
		}
		rc, err := app.reg.OpenBlob(ctx, repo2, stale, 0, -1)
		if err != nil {
			t.Fatalf("registry opening the restored copy through a same-name repository: %v", err)
		}
		got, err = io.ReadAll(rc)
		rc.Close()
		if err != nil || !bytes.Equal(got, o.plain) {
			t.Fatalf("restored copy through a same-name repository: %d bytes, %v", len(got), err)
		}
		if _, err := admin.DeleteRepository(ctx, &ecr.DeleteRepositoryInput{RepositoryName: aws.String(name), Force: true}); err != nil {
			t.Fatal(err)
		}
		sched, err := kc.ScheduleKeyDeletion(ctx, &awskms.ScheduleKeyDeletionInput{KeyId: aws.String(keyID), PendingWindowInDays: aws.Int32(7)})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := openSaved(t, o, arnOf(name), adminDecrypt); err == nil || !strings.Contains(err.Error(), "KMSInvalidStateException") {
			t.Fatalf("administrator decrypting with the key pending deletion = %v", err)
		}
		if n := sweepAfter(t, app, aws.ToTime(sched.DeletionDate).Add(time.Minute)); n != 1 {
			t.Fatalf("sweep deleted %d keys, want 1", n)
		}
		if _, err := openSaved(t, o, arnOf(name), adminDecrypt); !keyGone(err) {
			t.Fatalf("administrator decrypting after key deletion = %v", err)
		}
		if n := materialDocs(t, app, keyID); n != 0 {
			t.Fatalf("%d key material versions left after deletion", n)
		}
	})
}
