package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/cofferhq/coffer/internal/testbackend"
)

// benchBucket is the bucket of the PostgreSQL + S3 variant.
const benchBucket = "coffer-bench"

// postgresS3 starts a throwaway PostgreSQL and versitygw on 127.0.0.1 for
// one server of the "on PostgreSQL + S3" variant and returns the settings
// that point coffer at them; stop ends both by PID and removes their data.
func postgresS3(ctx context.Context) (args, env []string, stop func(), err error) {
	pg, err := testbackend.StartPostgres(testbackend.PostgresConfig{})
	if err != nil {
		return nil, nil, nil, fmt.Errorf("PostgreSQL: %w", err)
	}
	gw, err := testbackend.StartVersitygw(testbackend.VersitygwConfig{})
	if err != nil {
		pg.Stop()
		return nil, nil, nil, fmt.Errorf("versitygw: %w", err)
	}
	stop = func() {
		gw.Stop()
		pg.Stop()
	}
	dsn, err := pg.CreateDatabase(ctx, "coffer")
	if err == nil {
		err = gw.CreateBucket(ctx, benchBucket)
	}
	if err != nil {
		stop()
		return nil, nil, nil, err
	}
	noAWS := filepath.Join(os.TempDir(), "coffer-bench-no-aws-config")
	args = []string{"--storage", "s3", "--s3-bucket", benchBucket, "--s3-endpoint", gw.Endpoint, "--s3-path-style"}
	env = []string{"COFFER_METADATA_DSN=" + dsn,
		"COFFER_S3_ACCESS_KEY_ID=" + testbackend.AccessKey, "COFFER_S3_SECRET_ACCESS_KEY=" + testbackend.SecretKey,
		"AWS_CONFIG_FILE=" + noAWS, "AWS_SHARED_CREDENTIALS_FILE=" + noAWS, "AWS_EC2_METADATA_DISABLED=true"}
	return args, env, stop, nil
}

// backendsAvailable reports why the PostgreSQL + S3 variant cannot run:
// the PostgreSQL server binaries or versitygw are missing. versitygw is
// installed into toolsBin with go install if needed, as distribution is.
func backendsAvailable(ctx context.Context, toolsBin string) error {
	var errs []error
	if _, err := testbackend.PostgresBinDir(testbackend.DebianPostgresBins, exec.LookPath, ""); err != nil {
		errs = append(errs, err)
	}
	if _, err := testbackend.FindVersitygw(); err != nil {
		if _, ierr := installTool(ctx, toolsBin, "versitygw", testbackend.VersitygwModule,
			testbackend.VersitygwModule+"/cmd/versitygw", testbackend.VersitygwVersion); ierr != nil {
			errs = append(errs, ierr)
		}
	}
	return errors.Join(errs...)
}
