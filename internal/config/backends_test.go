package config

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func TestBackendSettings(t *testing.T) {
	t.Parallel()
	file := `version: 1
metadata_dsn: postgres://coffer@db.internal:5432/coffer?sslmode=verify-full
metadata_max_conns: 40
metadata_min_conns: 4
storage: s3
s3_bucket: coffer-blobs
s3_region: eu-west-1
s3_endpoint: https://s3.example.com:9000
s3_path_style: true
s3_prefix: prod/
s3_server_side_encryption: AES256
s3_abort_uploads_after: 48h
`
	env := map[string]string{"COFFER_S3_ACCESS_KEY_ID": "AKIAS3KEY", "COFFER_S3_SECRET_ACCESS_KEY": "s3-secret-value"}
	cfg, err := load(t, file, env, "--config", "$FILE", "--s3-region", "us-west-2")
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	want := Defaults()
	want.MetadataDSN = "postgres://coffer@db.internal:5432/coffer?sslmode=verify-full"
	want.MetadataMaxConns, want.MetadataMinConns = 40, 4
	want.Storage, want.S3Bucket, want.S3Region, want.S3Endpoint = "s3", "coffer-blobs", "us-west-2", "https://s3.example.com:9000"
	want.S3PathStyle, want.S3Prefix, want.S3ServerSideEncryption = true, "prod/", "AES256"
	want.S3AccessKeyID, want.S3SecretAccessKey = "AKIAS3KEY", "s3-secret-value"
	want.S3AbortUploadsAfter = 48 * time.Hour
	cfg.File = ""
	if got := public(cfg); fmt.Sprintf("%#v", got) != fmt.Sprintf("%#v", want) || got.S3SecretAccessKey != want.S3SecretAccessKey ||
		got.MetadataDSN != want.MetadataDSN || got.S3Region != "us-west-2" || !got.S3PathStyle || got.MetadataMinConns != 4 {
		t.Errorf("Load = %+v", got)
	}
	if s := cfg.String(); !strings.Contains(s, `storage="s3://coffer-blobs/prod at https://s3.example.com:9000"`) ||
		!strings.Contains(s, `metadata="postgres://coffer@db.internal:5432/coffer?sslmode=verify-full"`) {
		t.Errorf("String() = %s", s)
	}
}

func TestBackendValidation(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		file string
		env  map[string]string
		want []string // every problem, in any order; nil: valid
	}{
		{name: "sqlite and fs by default", file: "version: 1\n"},
		{name: "postgres with password from env", env: map[string]string{"COFFER_METADATA_DSN": "postgres://u:pw@127.0.0.1/db"}},
		{name: "postgres with password param from env", env: map[string]string{"COFFER_METADATA_DSN": "postgresql://u@127.0.0.1/db?password=pw"}},
		{name: "postgres over a socket", file: "version: 1\nmetadata_dsn: postgres:///coffer?host=/run/postgresql\n"},
		{
			name: "password in the file",
			file: "version: 1\nmetadata_dsn: postgres://u:hunter2@127.0.0.1/db\n",
			want: []string{"metadata_dsn (file ", "holds a password, which is read only from the environment (COFFER_METADATA_DSN)"},
		},
		{
			name: "not a URL",
			file: "version: 1\nmetadata_dsn: host=db user=coffer password=hunter2\n",
			want: []string{"metadata_dsn (file ", "is not a postgres:// URL"},
		},
		{
			name: "no database, pool settings",
			file: "version: 1\nmetadata_dsn: postgres://db:5432\nmetadata_max_conns: 2\nmetadata_min_conns: 3\n",
			want: []string{"names no database", "metadata_min_conns (file ", "3 is more than metadata_max_conns 2"},
		},
		{
			name: "pool without postgres",
			file: "version: 1\nmetadata_max_conns: -1\nmetadata_min_conns: 2\n",
			want: []string{"-1 is outside 0 to 10000", "metadata_min_conns (file ", "applies only to PostgreSQL"},
		},
		{
			name: "unknown storage",
			file: "version: 1\nstorage: gcs\n",
			want: []string{`"gcs" is not a storage kind (want fs or s3)`},
		},
		{
			name: "s3 settings with fs",
			file: "version: 1\ns3_bucket: b1b\ns3_path_style: true\n",
			env:  map[string]string{"COFFER_S3_ACCESS_KEY_ID": "AKIA", "COFFER_S3_SECRET_ACCESS_KEY": "hunter2"},
			want: []string{"s3_bucket (file ", "s3_path_style (file ", "s3_access_key_id (env COFFER_S3_ACCESS_KEY_ID)",
				"s3_secret_access_key (env COFFER_S3_SECRET_ACCESS_KEY)", "applies only with storage s3"},
		},
		{
			name: "s3 everything wrong",
			file: "version: 1\nstorage: s3\ns3_bucket: Not_A_Bucket\ns3_endpoint: https://user:hunter2@s3.example\ns3_prefix: a/../b\ns3_server_side_encryption: aws:kms\n",
			env:  map[string]string{"COFFER_S3_SECRET_ACCESS_KEY": "hunter2", "COFFER_S3_SESSION_TOKEN": "tok"},
			want: []string{`"Not_A_Bucket" is not an S3 bucket name`, "s3_endpoint (file ", "must not hold credentials",
				`"a/../b" is not a key path`, `"aws:kms" is not supported`, "s3_access_key_id", "must be set together with COFFER_S3_SECRET_ACCESS_KEY",
				"s3_session_token (env COFFER_S3_SESSION_TOKEN): needs COFFER_S3_ACCESS_KEY_ID"},
		},
		{
			name: "s3 without bucket, bad endpoint",
			file: "version: 1\nstorage: s3\ns3_endpoint: s3.example.com\n",
			want: []string{"storage (file ", "s3 needs s3_bucket (COFFER_S3_BUCKET)", "is not an http(s) URL"},
		},
		{
			name: "s3 upload abort off",
			file: "version: 1\nstorage: s3\ns3_bucket: bucket\ns3_abort_uploads_after: 0s\n",
		},
		{
			name: "s3 upload abort too soon",
			file: "version: 1\nstorage: s3\ns3_bucket: bucket\ns3_abort_uploads_after: 10m\n",
			env:  map[string]string{"COFFER_S3_ABORT_UPLOADS_AFTER": "-1h"},
			want: []string{"s3_abort_uploads_after (env COFFER_S3_ABORT_UPLOADS_AFTER): -1h0m0s is less than 1h0m0s"},
		},
		{
			name: "s3 upload abort with fs",
			file: "version: 1\ns3_abort_uploads_after: 2h\n",
			want: []string{"s3_abort_uploads_after (file ", "applies only with storage s3"},
		},
		{
			name: "s3 credentials in the file",
			file: "version: 1\nstorage: s3\ns3_bucket: bucket\ns3_secret_access_key: hunter2\n",
			want: []string{"s3_secret_access_key (file ", "secrets are not read from the config file", "COFFER_S3_SECRET_ACCESS_KEY"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var args []string
			if tc.file != "" {
				args = []string{"--config", "$FILE"}
			}
			env := map[string]string{}
			for k, v := range tc.env {
				env[k] = v
			}
			_, err := load(t, tc.file, env, args...)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("Load: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Load succeeded; want %q", tc.want)
			}
			msg := err.Error()
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error lacks %q:\n%s", w, msg)
				}
			}
			if strings.Contains(msg, "hunter2") {
				t.Errorf("error shows a secret:\n%s", msg)
			}
		})
	}
}

// TestBackendSecretsNeverFormatted: the DSN's password and the S3 keys
// appear in no form of the Config.
func TestBackendSecretsNeverFormatted(t *testing.T) {
	t.Parallel()
	env := map[string]string{
		"COFFER_METADATA_DSN":         "postgres://coffer:TOPSECRET-pw@db:5432/coffer?sslmode=disable",
		"COFFER_STORAGE":              "s3",
		"COFFER_S3_BUCKET":            "bucket",
		"COFFER_S3_ACCESS_KEY_ID":     "AKIATOPSECRET",
		"COFFER_S3_SECRET_ACCESS_KEY": "TOPSECRET-s3",
		"COFFER_S3_SESSION_TOKEN":     "TOPSECRET-token",
	}
	cfg, err := load(t, "", env)
	if err != nil {
		t.Fatal(err)
	}
	var logged bytes.Buffer
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("config", "config", cfg)
	js, _ := json.Marshal(cfg)
	for what, s := range map[string]string{
		"String": cfg.String(), "%v": fmt.Sprintf("%v", cfg), "%#v": fmt.Sprintf("%#v", cfg), "slog": logged.String(), "json": string(js),
	} {
		if strings.Contains(s, "TOPSECRET") {
			t.Errorf("%s shows a secret: %s", what, s)
		}
	}
	if !strings.Contains(cfg.String(), `metadata="postgres://coffer@db:5432/coffer?sslmode=disable"`) {
		t.Errorf("String() lacks the redacted DSN: %s", cfg.String())
	}
}
