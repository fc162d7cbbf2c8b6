package kms

import (
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
)

// TestRevokeUnderLoad: with calls in flight on every core, a call that
// starts after RevokeGrant (or DisableKey) returned never succeeds: the
// caches never serve state older than the last completed write (SPEC
// GRANT-04).
func TestRevokeUnderLoad(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{noEvents: true, useCap: 64})
	ctx := t.Context()
	admin := e.admin().caller()
	key, err := e.svc.CreateKey(ctx, admin, &CreateKeyInput{})
	if err != nil {
		t.Fatal(err)
	}
	arn := key.KeyMetadata.Arn
	user := e.newUser("pusher").viaECR()
	ec := map[string]string{"aws:ecr:arn": repoARN}
	g, err := e.svc.CreateGrant(ctx, admin, &CreateGrantInput{KeyId: arn, GranteePrincipal: ecrVia,
		Operations: []string{"GenerateDataKey", "Decrypt"}, Constraints: &GrantConstraints{EncryptionContextSubset: ec}})
	if err != nil {
		t.Fatal(err)
	}
	var revoked atomic.Bool
	var ok, denied atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				after := revoked.Load()
				dk, err := e.svc.GenerateDataKey(ctx, user, &GenerateDataKeyInput{KeyId: arn, KeySpec: "AES_256", EncryptionContext: ec})
				switch {
				case err == nil && after:
					t.Error("GenerateDataKey succeeded after RevokeGrant returned")
					return
				case err == nil:
					ok.Add(1)
					if _, err := e.svc.Decrypt(ctx, user, &DecryptInput{CiphertextBlob: dk.CiphertextBlob, EncryptionContext: ec}); err != nil && !errors.Is(err, ErrAccessDenied) {
						t.Error(err)
						return
					}
				case errors.Is(err, ErrAccessDenied):
					denied.Add(1)
				default:
					t.Error(err)
					return
				}
			}
		}()
	}
	for ok.Load() < 200 && !t.Failed() {
		runtime.Gosched()
	}
	if _, err := e.svc.RevokeGrant(ctx, admin, &RevokeGrantInput{KeyId: arn, GrantId: g.GrantId}); err != nil {
		t.Fatal(err)
	}
	revoked.Store(true)
	for denied.Load() < 200 && !t.Failed() {
		runtime.Gosched()
	}
	close(stop)
	wg.Wait()
	// The small use cap made the key rotate itself along the way; every
	// ciphertext still decrypts for the administrator.
	rots, err := e.svc.ListKeyRotations(ctx, admin, &ListKeyRotationsInput{KeyId: arn})
	if err != nil || len(rots.Rotations) == 0 {
		t.Fatalf("no automatic rotation at the use cap: %+v, %v", rots, err)
	}
	t.Logf("%d pairs before the revoke, %d denials after; %d rotations at the use cap", ok.Load(), denied.Load(), len(rots.Rotations))
}

// TestUseCapRotation: at the cap, new ciphertexts move to a new material
// version and old ones keep decrypting.
func TestUseCapRotation(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{useCap: 3})
	ctx := t.Context()
	admin := e.admin().caller()
	key, err := e.svc.CreateKey(ctx, admin, &CreateKeyInput{})
	if err != nil {
		t.Fatal(err)
	}
	var blobs [][]byte
	for i := range 10 {
		out, err := e.svc.Encrypt(ctx, admin, &EncryptInput{KeyId: key.KeyMetadata.KeyId, Plaintext: []byte{byte(i)}})
		if err != nil {
			t.Fatal(err)
		}
		blobs = append(blobs, out.CiphertextBlob)
	}
	versions := map[uint32]int{}
	for i, b := range blobs {
		pb, _ := parseBlob(b)
		versions[pb.version]++
		out, err := e.svc.Decrypt(ctx, admin, &DecryptInput{CiphertextBlob: b})
		if err != nil || out.Plaintext[0] != byte(i) {
			t.Fatalf("blob %d: %v", i, err)
		}
	}
	if len(versions) != 4 || versions[1] != 3 || versions[4] != 1 {
		t.Fatalf("versions used = %v, want 3 per version", versions)
	}
}
