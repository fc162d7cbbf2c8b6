package server

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecr"
	"github.com/aws/smithy-go"

	"github.com/cofferhq/coffer/internal/config"
	"github.com/cofferhq/coffer/internal/metadata/postgres"
	"github.com/cofferhq/coffer/internal/testbackend"
)

// startReplica opens cfg and serves it until the test ends; it returns
// the App and its base URL.
func startReplica(t *testing.T, cfg config.Config) (*App, string) {
	t.Helper()
	app, err := Open(context.Background(), cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	return app, serveApp(t, app, cfg)
}

// serveApp serves an opened app as Serve does (App.serve: background
// work, the replicas' subscriptions) on a loopback port until the test
// ends, then closes it; it returns the base URL once the app is ready.
func serveApp(t *testing.T, app *App, cfg config.Config) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		app.Close()
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- app.serve(ctx, []listener{{ep: publicEndpoint(cfg), ln: ln}}) }()
	t.Cleanup(func() {
		cancel()
		<-done
		app.Close()
	})
	base := "http://" + ln.Addr().String()
	waitReady(t, base)
	return base
}

// Two replicas on one PostgreSQL database share the authentication-failure
// budget (issue #9): failures from one address with one access key, spread
// over both replicas, get the address and the key throttled on both once
// their sum (not either replica's share) reaches the budget; another
// address with another key is not affected.
func TestThrottleSharedAcrossReplicas(t *testing.T) {
	t.Parallel()
	pg, err := testbackend.StartPostgres(testbackend.PostgresConfig{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pg.Stop)
	dsn, err := pg.CreateDatabase(t.Context(), "throttle")
	if err != nil {
		t.Fatal(err)
	}
	root := make([]byte, 32)
	rand.Read(root)
	replica := func() config.Config {
		cfg := config.Defaults()
		cfg.DataDir = t.TempDir()
		cfg.MetadataDSN = dsn
		cfg.AccountID = "123456789012"
		cfg.RootKey = base64.StdEncoding.EncodeToString(root)
		cfg.AdminAccessKeyID, cfg.AdminSecretAccessKey = adminID, adminSecret
		return cfg
	}
	appA, urlA := startReplica(t, replica())
	appB, urlB := startReplica(t, replica())
	probe, err := postgres.Open(t.Context(), postgres.Config{DSN: dsn})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { probe.Close() })

	const (
		attacker    = "127.0.0.2"
		attackerKey = "AKIAATTACKER00000001"
		other       = "127.0.0.3"
		otherKey    = "AKIAOTHERCLIENT00001"
		budget      = 20 // auth.FailureLimiter's default
	)
	// call signs a DescribeRepositories with a wrong secret from src and
	// returns the error code.
	call := func(url, src, key string) string {
		t.Helper()
		c := ecr.New(ecr.Options{Region: "us-east-1", BaseEndpoint: aws.String(url), Credentials: staticCreds(key, "wrong-secret"),
			HTTPClient: sourceClient(src, nil, "", nil), Retryer: aws.NopRetryer{}})
		_, err := c.DescribeRepositories(context.Background(), &ecr.DescribeRepositoriesInput{})
		var ae smithy.APIError
		if !errors.As(err, &ae) {
			t.Fatalf("DescribeRepositories with a wrong secret through %s: %v", url, err)
		}
		return ae.ErrorCode()
	}
	shared := func(subject string) int64 {
		t.Helper()
		got, err := probe.AddAuthFailures(t.Context(), time.Minute, map[string]int{subject: 0})
		if err != nil {
			t.Fatal(err)
		}
		return got[subject].Failures
	}
	waitShared := func(subject string, want int64) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); shared(subject) != want; time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("shared count of %s = %d, want %d", subject, shared(subject), want)
			}
		}
	}

	// budget-1 failures, alternating: about half the budget on each.
	for i := range budget - 1 {
		if code := call([]string{urlA, urlB}[i%2], attacker, attackerKey); code != "UnrecognizedClientException" {
			t.Fatalf("failure %d answered %s", i+1, code)
		}
	}
	waitShared("ip:"+attacker, budget-1)
	waitShared("key:"+attackerKey, budget-1)
	for _, app := range []*App{appA, appB} {
		if app.limiter.Throttled("ip:"+attacker) || app.limiter.Throttled("key:"+attackerKey) {
			t.Fatal("throttled before the shared budget was spent")
		}
	}
	// The last one, through B: both replicas throttle.
	if code := call(urlB, attacker, attackerKey); code != "UnrecognizedClientException" {
		t.Fatalf("failure %d answered %s", budget, code)
	}
	for _, app := range []*App{appA, appB} {
		for deadline := time.Now().Add(10 * time.Second); !app.limiter.Throttled("ip:"+attacker) || !app.limiter.Throttled("key:"+attackerKey); {
			if time.Now().After(deadline) {
				t.Fatal("a replica does not throttle after the shared budget was spent")
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	for _, tc := range []struct {
		name, src, key, want string
	}{
		{"attacker", attacker, attackerKey, "ThrottlingException"},
		{"attacker's address, another key", attacker, otherKey, "ThrottlingException"},
		{"attacker's key, another address", other, attackerKey, "ThrottlingException"},
		{"another address and key", other, otherKey, "UnrecognizedClientException"},
	} {
		for name, url := range map[string]string{"A": urlA, "B": urlB} {
			if code := call(url, tc.src, tc.key); code != tc.want {
				t.Errorf("%s through %s: %s, want %s", tc.name, name, code, tc.want)
			}
		}
	}
	// The /v2/ door shares the address's budget.
	for name, url := range map[string]string{"A": urlA, "B": urlB} {
		req, _ := http.NewRequest("GET", url+"/v2/", nil)
		req.SetBasicAuth("AWS", "not-a-token")
		resp, err := sourceClient(attacker, nil, "", nil).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusTooManyRequests {
			t.Errorf("/v2/ from the attacker's address through %s: %d, want 429", name, resp.StatusCode)
		}
	}
}
