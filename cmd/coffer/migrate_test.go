package main

import (
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/cofferhq/coffer/internal/config"
	"github.com/cofferhq/coffer/internal/server"
	"github.com/cofferhq/coffer/internal/testbackend"
)

// TestMigrateCommandLine: the target's settings are checked before
// anything is opened, a DSN password is refused on the command line and
// never printed, the source must be a single node, and a running server
// on the data directory is refused.
func TestMigrateCommandLine(t *testing.T) {
	t.Parallel()
	data := t.TempDir()
	for _, tc := range []struct {
		name string
		env  map[string]string
		args []string
		code int
		want string
	}{
		{"no target database", nil, []string{"--to-storage", "s3", "--to-s3-bucket", "b-1"}, 2, "needs a PostgreSQL database"},
		{"password on the command line", nil, []string{"--to-metadata-dsn", "postgres://u:hunter2pw@db/coffer"}, 2, "environment (COFFER_TO_METADATA_DSN)"},
		{"source on PostgreSQL", map[string]string{"COFFER_TO_METADATA_DSN": "postgres://db/coffer"},
			[]string{"--metadata-dsn", "postgres://db/other"}, 2, "single-node"},
		{"bad target bucket", map[string]string{"COFFER_TO_METADATA_DSN": "postgres://db/coffer"},
			[]string{"--to-storage", "s3", "--to-s3-bucket", "B"}, 2, "not an S3 bucket name"},
		{"another region", map[string]string{"COFFER_TO_METADATA_DSN": "postgres://db/coffer", "COFFER_TO_REGION": "eu-west-1"},
			nil, 2, "keeps its region"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := runCoffer(tc.env, append([]string{"migrate", "--data", data}, tc.args...)...)
			if r.code != tc.code || !strings.Contains(r.stderr, tc.want) || strings.Contains(r.stderr+r.stdout, "hunter2pw") {
				t.Errorf("exit %d, stderr:\n%s\nwant exit %d mentioning %q, no password", r.code, r.stderr, tc.code, tc.want)
			}
		})
	}

	t.Run("server running", func(t *testing.T) {
		cfg := config.Defaults()
		cfg.DataDir = t.TempDir()
		cfg.AdminAccessKeyID, cfg.AdminSecretAccessKey = "AKIAMIGRATETESTADMIN", "migrate-test-secret-0123456789"
		app, err := server.Open(context.Background(), cfg, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		defer app.Close()
		r := runCoffer(map[string]string{"COFFER_TO_METADATA_DSN": "postgres://127.0.0.1:1/coffer"}, "migrate", "--data", cfg.DataDir)
		if r.code != 1 || !strings.Contains(r.stderr, "stop the server") {
			t.Errorf("exit %d, stderr:\n%s\nwant 1: stop the server first", r.code, r.stderr)
		}
	})
}

// TestMigrateCommand migrates a pushed single-node deployment into
// PostgreSQL and versitygw through the command line (target settings as
// --to-* flags and COFFER_TO_* variables), runs it again (verification
// only), and checks the target with coffer fsck.
func TestMigrateCommand(t *testing.T) {
	ctx := context.Background()
	data := pushedData(t)
	pg, err := testbackend.StartPostgres(testbackend.PostgresConfig{})
	if err != nil {
		t.Fatalf("start PostgreSQL: %v", err)
	}
	t.Cleanup(pg.Stop)
	gw, err := testbackend.StartVersitygw(testbackend.VersitygwConfig{})
	if err != nil {
		t.Fatalf("start versitygw: %v", err)
	}
	t.Cleanup(gw.Stop)
	if err := gw.CreateBucket(ctx, "migrated"); err != nil {
		t.Fatal(err)
	}
	dsn, err := pg.CreateDatabase(ctx, "coffer")
	if err != nil {
		t.Fatal(err)
	}
	s3 := []string{"--storage", "s3", "--s3-bucket", "migrated", "--s3-endpoint", gw.Endpoint, "--s3-path-style", "--s3-prefix", "prod"}
	var to []string
	for _, a := range s3 {
		if strings.HasPrefix(a, "--") {
			a = "--to-" + a[2:]
		}
		to = append(to, a)
	}
	env := map[string]string{
		"COFFER_TO_METADATA_DSN":         dsn,
		"COFFER_TO_S3_ACCESS_KEY_ID":     testbackend.AccessKey,
		"COFFER_TO_S3_SECRET_ACCESS_KEY": testbackend.SecretKey,
	}
	r := runCoffer(env, append([]string{"migrate", "--data", data, "--verify"}, to...)...)
	if r.code != 0 || !strings.Contains(r.stdout, "migrated account") || !strings.Contains(r.stdout, "same root key") {
		t.Fatalf("migrate: exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	if strings.Contains(r.stdout+r.stderr, testbackend.SecretKey) {
		t.Error("migrate printed the S3 secret key")
	}
	r = runCoffer(env, append([]string{"migrate", "--data", data}, to...)...)
	if r.code != 0 || !strings.Contains(r.stderr, "already in the target") || !strings.Contains(r.stdout, "0 copied") {
		t.Errorf("second migrate: exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	fenv := map[string]string{
		"COFFER_METADATA_DSN":         dsn,
		"COFFER_S3_ACCESS_KEY_ID":     testbackend.AccessKey,
		"COFFER_S3_SECRET_ACCESS_KEY": testbackend.SecretKey,
	}
	r = runCoffer(fenv, append([]string{"fsck", "--data", data}, s3...)...)
	if r.code != 0 || !strings.Contains(r.stdout, "0 problems") {
		t.Errorf("fsck on the target: exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
}
