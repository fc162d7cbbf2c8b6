package kms

import (
	"bytes"
	"context"
	"net/netip"
	"syscall"
	"testing"
	"time"

	"github.com/cofferhq/coffer/internal/auth"
)

// benchEnv is a key, a caller and an ECR-style encryption context, with
// every per-call check live: identity policies from IAM over SQLite, the
// key policy, grants, key state, the material use counter and the event
// hook.
func benchEnv(b *testing.B, viaGrant bool) (*Service, Caller, string, map[string]string, context.Context) {
	e := newEnv(b, envOpts{discardEvents: true})
	ctx := auth.WithInfo(context.Background(), &auth.Info{RequestID: "bench", Time: time.Now(),
		SourceIP: netip.MustParseAddr("127.0.0.1"), UserAgent: "bench"})
	admin := e.admin().caller()
	key, err := e.svc.CreateKey(ctx, admin, &CreateKeyInput{})
	if err != nil {
		b.Fatal(err)
	}
	ec := map[string]string{"aws:ecr:arn": repoARN, "aws:s3:arn": "arn:aws:s3:::us-east-1-starport-layer-bucket/0f3c/sha256:ab"}
	var c Caller
	if viaGrant {
		// A user with no KMS permission pushing through ECR, allowed by the
		// registry's grant (the production path).
		c = e.newUser("pusher").viaECR()
		_, err = e.svc.CreateGrant(ctx, admin, &CreateGrantInput{KeyId: key.KeyMetadata.Arn, GranteePrincipal: ecrVia,
			Operations:  []string{"GenerateDataKey", "Decrypt"},
			Constraints: &GrantConstraints{EncryptionContextSubset: map[string]string{"aws:ecr:arn": repoARN}}})
		if err != nil {
			b.Fatal(err)
		}
	} else {
		c = e.newUser("user", kmsAll).caller()
	}
	return e.svc, c, key.KeyMetadata.Arn, ec, ctx
}

func benchPairs(b *testing.B, viaGrant bool) {
	s, c, arn, ec, ctx := benchEnv(b, viaGrant)
	pair := func() {
		dk, err := s.GenerateDataKey(ctx, c, &GenerateDataKeyInput{KeyId: arn, KeySpec: "AES_256", EncryptionContext: ec})
		if err != nil {
			b.Fatal(err)
		}
		pt, err := s.Decrypt(ctx, c, &DecryptInput{CiphertextBlob: dk.CiphertextBlob, EncryptionContext: ec})
		if err != nil || !bytes.Equal(pt.Plaintext, dk.Plaintext) {
			b.Fatal(err)
		}
	}
	pair() // warm the caches and reserve the first block of uses
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuTime()
	for b.Loop() {
		pair()
	}
	reportPairs(b, cpuTime()-cpu0)
}

// reportPairs reports pairs per wall-clock second and per CPU-second: the
// process's CPU time (all threads, GC included) is what a core delivers,
// whatever else runs on a shared machine.
func reportPairs(b *testing.B, cpu time.Duration) {
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "pairs/s")
	if cpu > 0 {
		b.ReportMetric(float64(b.N)/cpu.Seconds(), "pairs/cpu-s")
	}
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkGenerateDataKeyDecrypt measures in-process GenerateDataKey +
// Decrypt pairs on one goroutine (one core).
func BenchmarkGenerateDataKeyDecrypt(b *testing.B) {
	b.Run("key-policy+IAM", func(b *testing.B) { benchPairs(b, false) })
	b.Run("grant-via-ECR", func(b *testing.B) { benchPairs(b, true) })
}

// BenchmarkGenerateDataKeyDecryptParallel is the same on every core.
func BenchmarkGenerateDataKeyDecryptParallel(b *testing.B) {
	s, c, arn, ec, ctx := benchEnv(b, true)
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuTime()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			dk, err := s.GenerateDataKey(ctx, c, &GenerateDataKeyInput{KeyId: arn, KeySpec: "AES_256", EncryptionContext: ec})
			if err != nil {
				b.Error(err)
				return
			}
			if _, err := s.Decrypt(ctx, c, &DecryptInput{CiphertextBlob: dk.CiphertextBlob, EncryptionContext: ec}); err != nil {
				b.Error(err)
				return
			}
		}
	})
	reportPairs(b, cpuTime()-cpu0)
}
