package config

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestDefaults(t *testing.T) {
	t.Parallel()
	d := Defaults()
	if err := d.Validate(); err != nil {
		t.Fatalf("Defaults().Validate() = %v", err)
	}
	want := Config{
		Listen:            "127.0.0.1:5000",
		DataDir:           "./coffer-data",
		Storage:           "fs",
		Region:            "us-east-1",
		LogLevel:          "info",
		LogFormat:         "json",
		ShutdownTimeout:   30 * time.Second,
		PublicEndpoint:    true,
		LifecycleInterval: time.Hour,
		GCInterval:        time.Hour,
		MetadataCacheTTL:  time.Second,

		S3AbortUploadsAfter: 24 * time.Hour,
		AuditDigestInterval: time.Hour,
	}
	if !reflect.DeepEqual(d, want) {
		t.Errorf("Defaults() = %#v", d)
	}
}

func TestValidateRules(t *testing.T) {
	t.Parallel()
	key32 := base64.StdEncoding.EncodeToString(make([]byte, 32))
	tests := []struct {
		name    string
		edit    func(*Config)
		wantErr string // "" for valid
	}{
		{"listen localhost", func(c *Config) { c.Listen = "localhost:5000" }, ""},
		{"listen IPv6 loopback", func(c *Config) { c.Listen = "[::1]:5000" }, ""},
		{"listen port 0", func(c *Config) { c.Listen = "127.0.0.1:0" }, ""},
		{"listen other loopback", func(c *Config) { c.Listen = "127.1.2.3:5000" }, ""},
		{"listen no port", func(c *Config) { c.Listen = "127.0.0.1" }, `"127.0.0.1" is not host:port`},
		{"listen named port", func(c *Config) { c.Listen = "127.0.0.1:http" }, `port "http" is not a number`},
		{"listen port too big", func(c *Config) { c.Listen = "127.0.0.1:65536" }, `port "65536" is not a number`},
		{"listen hostname", func(c *Config) { c.Listen = "coffer.internal:5000" }, `host "coffer.internal" is not an IP address or localhost`},
		{"listen empty host", func(c *Config) { c.Listen = ":5000" }, `":5000" has no host`},
		// Every request is authenticated, so any address may be served.
		{"listen all interfaces", func(c *Config) { c.Listen = "0.0.0.0:5000" }, ""},
		{"listen LAN address", func(c *Config) { c.Listen = "192.168.1.10:5000" }, ""},
		{"listen IPv6 any", func(c *Config) { c.Listen = "[::]:5000" }, ""},
		// The anonymous escape stays on loopback (issue #3).
		{"listen all interfaces, anonymous refused", func(c *Config) { c.Listen = "0.0.0.0:5000"; c.InsecureAllowAnonymous = true },
			`insecure_allow_anonymous (default): anonymous access is allowed only on a loopback listen address, not "0.0.0.0:5000"`},
		{"listen loopback, anonymous accepted", func(c *Config) { c.InsecureAllowAnonymous = true }, ""},
		{"admin key without secret", func(c *Config) { c.AdminAccessKeyID = "AKIAEXAMPLEEXAMPLE12" }, "must be set together with COFFER_ADMIN_SECRET_ACCESS_KEY"},
		{"admin key with secret", func(c *Config) {
			c.AdminAccessKeyID, c.AdminSecretAccessKey = "AKIAEXAMPLEEXAMPLE12", "secretsecretsecret"
		}, ""},
		{"data empty", func(c *Config) { c.DataDir = "" }, "data (default): must not be empty"},
		{"region GovCloud", func(c *Config) { c.Region = "us-gov-west-1" }, ""},
		{"region ISO", func(c *Config) { c.Region = "us-isob-east-1" }, ""},
		{"region China", func(c *Config) { c.Region = "cn-north-1" }, ""},
		{"region upper case", func(c *Config) { c.Region = "US-EAST-1" }, `"US-EAST-1" is not a region name`},
		{"region no number", func(c *Config) { c.Region = "us-east" }, "is not a region name"},
		{"region empty", func(c *Config) { c.Region = "" }, "is not a region name"},
		{"account ID", func(c *Config) { c.AccountID = "123456789012" }, ""},
		{"account ID short", func(c *Config) { c.AccountID = "12345678901" }, "is not a 12-digit account ID"},
		{"account ID letters", func(c *Config) { c.AccountID = "12345678901a" }, "is not a 12-digit account ID"},
		{"root key", func(c *Config) { c.RootKey = key32 }, ""},
		{"root key short", func(c *Config) { c.RootKey = base64.StdEncoding.EncodeToString(make([]byte, 16)) }, "decodes to 16 bytes; want 32"},
		{"root key with a trailing newline", func(c *Config) { c.RootKey = key32 + "\n" }, ""},
		{"root key split over lines", func(c *Config) { c.RootKey = key32[:20] + "\n" + key32[20:] }, "is not valid standard base64"},
		{"root key non-canonical padding bits", func(c *Config) { c.RootKey = key32[:42] + "B=" }, "is not valid standard base64"},
		{"root key unpadded", func(c *Config) { c.RootKey = strings.TrimRight(key32, "=") }, "is not valid standard base64"},
		{"root key and root key file", func(c *Config) { c.RootKey = key32; c.RootKeyFile = "/k" }, "cannot be used together with root_key_file (default)"},
		{"log level", func(c *Config) { c.LogLevel = "debug" }, ""},
		{"log level upper case", func(c *Config) { c.LogLevel = "INFO" }, `"INFO" is not a log level`},
		{"log format text", func(c *Config) { c.LogFormat = "text" }, ""},
		{"log format logfmt", func(c *Config) { c.LogFormat = "logfmt" }, `"logfmt" is not a log format`},
		{"pprof", func(c *Config) { c.Pprof = "127.0.0.1:6060" }, ""},
		{"pprof IPv6", func(c *Config) { c.Pprof = "[::1]:6060" }, ""},
		{"pprof localhost", func(c *Config) { c.Pprof = "localhost:6060" }, "must be on a loopback IP"},
		{"pprof all interfaces", func(c *Config) { c.Pprof = "0.0.0.0:6060" }, "must be on a loopback IP"},
		{"pprof anonymous does not help", func(c *Config) { c.Pprof = "10.0.0.1:6060"; c.InsecureAllowAnonymous = true }, "must be on a loopback IP"},
		{"pprof no port", func(c *Config) { c.Pprof = "127.0.0.1" }, "is not host:port"},
		{"shutdown zero", func(c *Config) { c.ShutdownTimeout = 0 }, "shutdown_timeout (default): 0s must be greater than zero"},
		{"shutdown negative", func(c *Config) { c.ShutdownTimeout = -time.Second }, "-1s must be greater than zero"},
		{"metadata cache off", func(c *Config) { c.MetadataCacheTTL = 0 }, ""},
		{"metadata cache negative", func(c *Config) { c.MetadataCacheTTL = -time.Second }, "-1s must not be negative"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := Defaults()
			tc.edit(&c)
			err := c.Validate()
			switch {
			case tc.wantErr == "" && err != nil:
				t.Errorf("Validate() = %v; want nil", err)
			case tc.wantErr != "" && err == nil:
				t.Errorf("Validate() = nil; want an error containing %q", tc.wantErr)
			case tc.wantErr != "" && !strings.Contains(err.Error(), tc.wantErr):
				t.Errorf("Validate() = %v; want an error containing %q", err, tc.wantErr)
			}
			if tc.wantErr != "" && len(problems(err)) != 1 {
				t.Errorf("Validate() reported %d problems; want 1: %v", len(problems(err)), err)
			}
		})
	}
}

func TestRootKeyPath(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, data, file, want string
	}{
		{"default", "./coffer-data", "", "coffer-data/root.key"},
		{"data dir", "/srv/coffer", "", "/srv/coffer/root.key"},
		{"explicit file", "/srv/coffer", "/etc/coffer/root.key", "/etc/coffer/root.key"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := Config{DataDir: tc.data, RootKeyFile: tc.file}
			if got := c.RootKeyPath(); got != tc.want {
				t.Errorf("RootKeyPath() = %q; want %q", got, tc.want)
			}
		})
	}
}

func TestEndpointsFromFile(t *testing.T) {
	t.Parallel()
	good := "version: 1\npublic_endpoint: false\nendpoints:\n" +
		"  - id: vpce-0123456789abcdef0\n    vpc_id: vpc-a1\n    listen: [\"127.0.0.2:5443\"]\n" +
		"    services: [ecr.api, ecr.dkr]\n    dns_names: [api.ecr.us-east-1.coffer.internal]\n    allowed_cidrs: [127.0.0.0/8]\n" +
		"    policy: '{\"Statement\":[{\"Effect\":\"Allow\",\"Principal\":\"*\",\"Action\":\"*\",\"Resource\":\"*\"}]}'\n"
	cfg, err := load(t, good, nil, "--config", "$FILE")
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if cfg.PublicEndpoint || len(cfg.Endpoints) != 1 || cfg.Endpoints[0].ID != "vpce-0123456789abcdef0" || cfg.Endpoints[0].Services[1] != "ecr.dkr" {
		t.Fatalf("endpoints = %+v", cfg.Endpoints)
	}
	bad := "version: 1\nendpoints:\n  - listen: [\"10.0.0.1:443\"]\n    services: [ecr.dkr]\n    allowed_cidrs: [10.0.0.0/40]\n    insecure: true\n" +
		"  - listen: [\"127.0.0.3:1\"]\n    services: [ecr.api]\n    policy: '{\"Statement\":[{\"Effect\":\"Maybe\"}]}'\n    colour: red\n"
	_, err = load(t, bad, nil, "--config", "$FILE")
	for _, want := range []string{"field colour not found", "10.0.0.0/40", "insecure (plain HTTP) is allowed only on loopback", "Effect"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
}

func TestString(t *testing.T) {
	t.Parallel()
	want := "listen=127.0.0.1:5000 data=./coffer-data metadata=sqlite storage=fs region=us-east-1 account_id=<generated> " +
		"create_on_push=false insecure_allow_anonymous=false root_key_file=coffer-data/root.key " +
		"log_level=info log_format=json pprof=<off> shutdown_timeout=30s config_file=<none> public_endpoint=true endpoints=0 lifecycle_interval=1h0m0s gc_interval=1h0m0s insecure_http=false trusted_proxies=<none> audit_retention_days=0 audit_webhook_url=<none> audit_syslog_addr=<none> audit_digest_interval=1h0m0s"
	if got := Defaults().String(); got != want {
		t.Errorf("String() =\n%s\nwant\n%s", got, want)
	}
	c := Defaults()
	c.DataDir = "/my data"
	if got := c.String(); !strings.Contains(got, `data="/my data"`) {
		t.Errorf("String() = %s; want the data dir quoted", got)
	}
}

// The secret is recognisable in every form it might leak in: its base64
// text and the 32 bytes it decodes to.
var (
	secretBytes = []byte("TOPSECRET-root-key-0123456789abc")
	secret      = base64.StdEncoding.EncodeToString(secretBytes)
	// secretText is a recognisable value that is not valid base64.
	secretText = "TOPSECRET-not-base64-do-not-print"
)

func assertNoSecret(t *testing.T, what, s string) {
	t.Helper()
	for _, x := range []string{secret, string(secretBytes), secretText, "TOPSECRET"} {
		if strings.Contains(s, x) {
			t.Errorf("%s contains the secret %q:\n%s", what, x, s)
		}
	}
}

func TestSecretNeverInErrors(t *testing.T) {
	t.Parallel()
	if len(secretBytes) != 32 {
		t.Fatalf("test secret is %d bytes", len(secretBytes))
	}
	tests := []struct {
		name    string
		file    string
		env     map[string]string
		args    []string
		wantErr string
	}{
		{
			name:    "invalid base64",
			env:     map[string]string{"COFFER_ROOT_KEY": secretText},
			wantErr: "root_key (env COFFER_ROOT_KEY): is not valid standard base64",
		},
		{
			name:    "wrong length",
			env:     map[string]string{"COFFER_ROOT_KEY": base64.StdEncoding.EncodeToString([]byte("TOPSECRET-short"))},
			wantErr: "decodes to 15 bytes",
		},
		{
			name:    "together with a root key file",
			env:     map[string]string{"COFFER_ROOT_KEY": secret},
			args:    []string{"--root-key-file", "/etc/coffer/root.key"},
			wantErr: "cannot be used together with root_key_file (flag --root-key-file)",
		},
		{
			name:    "in the file",
			file:    "version: 1\nroot_key: " + secret + "\n",
			args:    []string{"--config", "$FILE"},
			wantErr: "root_key (file ",
		},
		{
			name:    "in the file as a mapping",
			file:    "version: 1\nroot_key:\n  value: " + secretText + "\n",
			args:    []string{"--config", "$FILE"},
			wantErr: "secrets are not read from the config file",
		},
		{
			name:    "in the file with a syntax error after it",
			file:    "version: 1\nroot_key: " + secretText + "\nlisten: [\n",
			args:    []string{"--config", "$FILE"},
			wantErr: "config (file ",
		},
		{
			name:    "the whole file",
			file:    secretText + "\n",
			args:    []string{"--config", "$FILE"},
			wantErr: "the top level must be a mapping",
		},
		{
			name:    "in the file twice",
			file:    "version: 1\nroot_key: " + secretText + "\nroot_key: " + secret + "\n",
			args:    []string{"--config", "$FILE"},
			wantErr: "root_key (file ",
		},
		{
			name: "among many other problems",
			file: "version: 1\nroot_key: " + secretText + "\nregion: Mars\nunknown: 1\n",
			env: map[string]string{
				"COFFER_ROOT_KEY":      secretText,
				"COFFER_ROOT_KEY_FILE": "/k",
				"COFFER_LISTEN":        "0.0.0.0:5000",
				"COFFER_LOG_LEVEL":     "loud",
			},
			args:    []string{"--config", "$FILE", "--shutdown-timeout", "never"},
			wantErr: "root_key (env COFFER_ROOT_KEY)",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg, err := load(t, tc.file, tc.env, tc.args...)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error = %v; want one containing %q", err, tc.wantErr)
			}
			assertNoSecret(t, "error", err.Error())
			assertNoSecret(t, "error %+v", fmt.Sprintf("%+v", err))
			assertNoSecret(t, "Config", cfg.String())
		})
	}
}

func TestSecretNeverFormatted(t *testing.T) {
	t.Parallel()
	cfg, err := load(t, "", map[string]string{"COFFER_ROOT_KEY": secret,
		"COFFER_ADMIN_ACCESS_KEY_ID": "AKIATOPSECRETKEYID12", "COFFER_ADMIN_SECRET_ACCESS_KEY": secretText})
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if cfg.RootKey != secret || cfg.AdminSecretAccessKey != secretText {
		t.Fatal("secrets were not loaded")
	}
	if s := cfg.String(); !strings.Contains(s, "root_key=<env>") {
		t.Errorf("String() = %s; want it to say the key came from the environment", s)
	}

	forms := map[string]string{"String": cfg.String()}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%d", "%x"} {
		forms["Sprintf "+verb] = fmt.Sprintf(verb, cfg)
		forms["Sprintf "+verb+" pointer"] = fmt.Sprintf(verb, &cfg)
		forms["Sprintf "+verb+" in a slice"] = fmt.Sprintf(verb, []Config{cfg})
	}
	for name, h := range map[string]func(*bytes.Buffer) slog.Handler{
		"json": func(b *bytes.Buffer) slog.Handler { return slog.NewJSONHandler(b, nil) },
		"text": func(b *bytes.Buffer) slog.Handler { return slog.NewTextHandler(b, nil) },
	} {
		var b bytes.Buffer
		log := slog.New(h(&b))
		log.Info("config", "config", cfg, "pointer", &cfg)
		forms["slog "+name] = b.String()
		if !strings.Contains(b.String(), "us-east-1") {
			t.Errorf("slog %s output lacks the settings: %s", name, b.String())
		}
	}
	j, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	forms["json.Marshal"] = string(j)

	for name, s := range forms {
		assertNoSecret(t, name, s)
	}
}

func TestAuditSettings(t *testing.T) {
	t.Parallel()
	cfg, err := load(t, "version: 1\naudit_retention_days: 90\naudit_webhook_url: https://siem.example/hook\naudit_syslog_addr: 127.0.0.1:6514\n", nil, "--config", "$FILE")
	if err != nil || cfg.AuditRetentionDays != 90 || cfg.AuditWebhookURL != "https://siem.example/hook" || cfg.AuditSyslogAddr != "127.0.0.1:6514" {
		t.Fatalf("Load = %+v, %v", cfg, err)
	}
	_, err = load(t, "version: 1\naudit_retention_days: soon\naudit_webhook_url: ftp://x\naudit_syslog_addr: nocolon\n", nil, "--config", "$FILE")
	for _, want := range []string{`"soon" is not a whole number`, `"ftp://x" is not an http(s) URL`, `"nocolon" is not host:port`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
}
