package server

import (
	"context"
	"net/http"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awskms "github.com/aws/aws-sdk-go-v2/service/kms"
	kmstypes "github.com/aws/aws-sdk-go-v2/service/kms/types"
)

// kmsClients is the concurrency issue #5 asks for: 16 clients at once.
const kmsClients = 16

// BenchmarkHTTPGenerateDataKeyDecrypt is issue #5's "over HTTP with SigV4"
// figure: 16 goroutines each call GenerateDataKey then Decrypt through the
// AWS SDK for Go v2 KMS client against the in-process server (loopback
// TCP, SigV4 verification, identity and key policies, audit events). One
// op is one pair; req/s counts both requests.
func BenchmarkHTTPGenerateDataKeyDecrypt(b *testing.B) {
	srv, _ := newAuthServer(b)
	hc := awshttp.NewBuildableClient().WithTransportOptions(func(tr *http.Transport) {
		tr.MaxIdleConnsPerHost = 2 * kmsClients // keep every client's connection alive
	})
	c := awskms.New(awskms.Options{Region: "us-east-1", BaseEndpoint: aws.String(srv.URL),
		Credentials: credentials.NewStaticCredentialsProvider(adminID, adminSecret, ""), HTTPClient: hc})
	ctx := context.Background()
	key, err := c.CreateKey(ctx, &awskms.CreateKeyInput{Description: aws.String("bench")})
	if err != nil {
		b.Fatalf("CreateKey: %v", err)
	}
	keyID := key.KeyMetadata.KeyId

	procs := runtime.GOMAXPROCS(0)
	p := (kmsClients + procs - 1) / procs // RunParallel runs p*GOMAXPROCS goroutines
	b.SetParallelism(p)
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := processCPU()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			dk, err := c.GenerateDataKey(ctx, &awskms.GenerateDataKeyInput{KeyId: keyID, KeySpec: kmstypes.DataKeySpecAes256})
			if err != nil {
				b.Errorf("GenerateDataKey: %v", err)
				return
			}
			if _, err := c.Decrypt(ctx, &awskms.DecryptInput{CiphertextBlob: dk.CiphertextBlob}); err != nil {
				b.Errorf("Decrypt: %v", err)
				return
			}
		}
	})
	b.StopTimer()
	cpu := processCPU() - cpu0
	secs := b.Elapsed().Seconds()
	b.ReportMetric(float64(2*b.N)/secs, "req/s")
	b.ReportMetric(float64(b.N)/secs, "pairs/s")
	if cpu > 0 {
		// Client and server share the process: this counts both sides.
		b.ReportMetric(float64(2*b.N)/cpu.Seconds(), "req/cpu-s")
	}
	b.ReportMetric(float64(p*procs), "goroutines")
}

// processCPU is the process's CPU time (all threads, GC included): what a
// core delivers, whatever else runs on a shared machine.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
