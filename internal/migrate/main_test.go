package migrate_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/cofferhq/coffer/internal/config"
	"github.com/cofferhq/coffer/internal/testbackend"
)

// The tests migrate into a real PostgreSQL and versitygw, which TestMain
// starts (internal/testbackend) and stops. Without them every test that
// needs them fails with the reason, never skips.

const bucket = "coffer-migrate"

var (
	pg         *testbackend.Postgres
	gw         *testbackend.Versitygw
	startupErr error
)

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	// Keep the AWS SDK away from the developer's configuration.
	none := filepath.Join(os.TempDir(), "coffer-migrate-test-no-aws-config")
	os.Setenv("AWS_CONFIG_FILE", none)
	os.Setenv("AWS_SHARED_CREDENTIALS_FILE", none)
	os.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	var err error
	if pg, err = testbackend.StartPostgres(testbackend.PostgresConfig{}); err != nil {
		startupErr = fmt.Errorf("start PostgreSQL: %w", err)
		return m.Run()
	}
	defer pg.Stop()
	if gw, err = testbackend.StartVersitygw(testbackend.VersitygwConfig{}); err != nil {
		startupErr = fmt.Errorf("start versitygw: %w", err)
		return m.Run()
	}
	defer gw.Stop()
	if err := gw.CreateBucket(context.Background(), bucket); err != nil {
		startupErr = err
	}
	return m.Run()
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

// targetConfig is a deployment on a new PostgreSQL database and a new
// prefix of the test bucket, loaded the way serve loads it, with dataDir
// as its data directory.
func targetConfig(t *testing.T, dataDir string) config.Config {
	t.Helper()
	if startupErr != nil {
		t.Fatalf("no backends: %v", startupErr)
	}
	dsn, err := pg.CreateDatabase(context.Background(), "m_"+randomHex(6))
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{
		"COFFER_DATA": dataDir, "COFFER_METADATA_DSN": dsn, "COFFER_STORAGE": "s3",
		"COFFER_S3_BUCKET": bucket, "COFFER_S3_ENDPOINT": gw.Endpoint, "COFFER_S3_PATH_STYLE": "true",
		"COFFER_S3_PREFIX":        "p" + randomHex(4),
		"COFFER_S3_ACCESS_KEY_ID": testbackend.AccessKey, "COFFER_S3_SECRET_ACCESS_KEY": testbackend.SecretKey,
	}
	cfg, err := config.Load(newFlagSet(), nil, func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}
