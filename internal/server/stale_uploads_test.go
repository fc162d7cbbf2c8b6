package server

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	s3sdk "github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/cofferhq/coffer/internal/config"
	"github.com/cofferhq/coffer/internal/storage"
	"github.com/cofferhq/coffer/internal/testbackend"
)

// syncBuffer is a log destination safe for concurrent writers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// fakeAborter is a storage.Driver whose AbortStaleUploads answers from a
// script, one entry per call (the last repeats).
type fakeAborter struct {
	storage.Driver
	mu     sync.Mutex
	script []abortResult
	ages   []time.Duration
}

type abortResult struct {
	n   int
	err error
}

func (f *fakeAborter) AbortStaleUploads(_ context.Context, olderThan time.Duration) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ages = append(f.ages, olderThan)
	r := f.script[min(len(f.ages), len(f.script))-1]
	return r.n, r.err
}

func (f *fakeAborter) calls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.ages)
}

// The loop runs at once and then every interval, logs an abort count at
// Info and a failure at Warn, keeps going after a failure and stops with
// its context.
func TestStaleUploadsLoop(t *testing.T) {
	t.Parallel()
	if newStaleUploads(&fakeAborter{}, 0, discardLog()) != nil {
		t.Error("the job runs with s3_abort_uploads_after 0")
	}
	if newStaleUploads(struct{ storage.Driver }{}, time.Hour, discardLog()) != nil {
		t.Error("the job runs on a driver without multipart uploads")
	}
	d := &fakeAborter{script: []abortResult{{n: 0}, {n: 3}, {n: 1, err: errors.New("s3: abort multipart upload: access denied")}, {n: 0}}}
	var logs syncBuffer
	job := newStaleUploads(d, 24*time.Hour, slog.New(slog.NewTextHandler(&logs, nil)))
	if job == nil || job.every != staleUploadsEvery {
		t.Fatalf("newStaleUploads = %+v", job)
	}
	job.every = 5 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		job.loop(ctx)
	}()
	for deadline := time.Now().Add(5 * time.Second); d.calls() < 5; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d runs in 5s", d.calls())
		}
	}
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("the loop does not stop with its context")
	}
	for _, age := range d.ages {
		if age != 24*time.Hour {
			t.Fatalf("aborted uploads older than %v, want 24h", age)
		}
	}
	out := logs.String()
	for _, want := range []string{
		`level=INFO msg="aborted abandoned multipart uploads" log=s3_uploads uploads=3 older_than=24h0m0s`,
		`level=INFO msg="aborted abandoned multipart uploads" log=s3_uploads uploads=1`,
		`level=WARN msg="cannot abort abandoned multipart uploads" log=s3_uploads err="s3: abort multipart upload: access denied"`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
	if n := strings.Count(out, "aborted abandoned"); n != 2 {
		t.Errorf("%d Info lines, want 2 (none for runs that aborted nothing):\n%s", n, out)
	}
}

// A single node with S3 storage is its own leader: serving, it aborts the
// bucket's abandoned multipart uploads under its prefix, and leaves other
// keys' alone. (The age is forced to 0 here; the setting's least is 1h.)
func TestStaleUploadsSingleNode(t *testing.T) {
	t.Parallel()
	gw, err := testbackend.StartVersitygw(testbackend.VersitygwConfig{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(gw.Stop)
	ctx := t.Context()
	const bucket = "stale-uploads"
	if err := gw.CreateBucket(ctx, bucket); err != nil {
		t.Fatal(err)
	}
	client := gw.Client()
	create := func(key string) {
		t.Helper()
		if _, err := client.CreateMultipartUpload(ctx, &s3sdk.CreateMultipartUploadInput{Bucket: aws.String(bucket), Key: aws.String(key)}); err != nil {
			t.Fatal(err)
		}
	}
	create("node/layers/aes256/abandoned")
	create("elsewhere/obj")
	list := func() []string {
		t.Helper()
		out, err := client.ListMultipartUploads(ctx, &s3sdk.ListMultipartUploadsInput{Bucket: aws.String(bucket)})
		if err != nil {
			t.Fatal(err)
		}
		var keys []string
		for _, u := range out.Uploads {
			keys = append(keys, aws.ToString(u.Key))
		}
		return keys
	}
	if got := list(); len(got) != 2 {
		t.Fatalf("uploads before = %q", got)
	}

	cfg := config.Defaults()
	cfg.DataDir = t.TempDir()
	cfg.AdminAccessKeyID, cfg.AdminSecretAccessKey = adminID, adminSecret
	cfg.Storage, cfg.S3Bucket, cfg.S3Endpoint, cfg.S3PathStyle, cfg.S3Prefix = config.StorageS3, bucket, gw.Endpoint, true, "node"
	cfg.S3AccessKeyID, cfg.S3SecretAccessKey = testbackend.AccessKey, testbackend.SecretKey
	cfg.LifecycleInterval, cfg.GCInterval = 0, 0
	var logs syncBuffer
	app, err := Open(context.Background(), cfg, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if app.uploads == nil || app.uploads.olderThan != 24*time.Hour {
		app.Close()
		t.Fatalf("the S3 upload job is %+v; want it on, at 24h", app.uploads)
	}
	app.uploads.olderThan = 0
	serveApp(t, app, cfg)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		got := list()
		if len(got) == 1 && got[0] == "elsewhere/obj" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("uploads after serving = %q, want only elsewhere/obj", got)
		}
	}
	for deadline := time.Now().Add(5 * time.Second); !strings.Contains(logs.String(), "aborted abandoned multipart uploads"); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no Info line for the abort:\n%s", logs.String())
		}
	}
	if !strings.Contains(logs.String(), "uploads=1") {
		t.Errorf("the abort's log line does not count 1 upload:\n%s", logs.String())
	}
}
