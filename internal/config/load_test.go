package config

import (
	"bytes"
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

// mapEnv turns a map into a getenv function.
func mapEnv(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

// writeConfig writes a config file into a fresh directory and returns its
// path.
func writeConfig(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "coffer.yaml")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// load runs Load on a fresh flag set. If file is not empty it is written to
// a temporary file whose path replaces every "$FILE" in args and env.
func load(t *testing.T, file string, env map[string]string, args ...string) (Config, error) {
	t.Helper()
	if file != "" {
		path := writeConfig(t, file)
		for i := range args {
			args[i] = strings.ReplaceAll(args[i], "$FILE", path)
		}
		for k, v := range env {
			env[k] = strings.ReplaceAll(v, "$FILE", path)
		}
	}
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return Load(fs, args, mapEnv(env))
}

// problems splits a joined error into its messages.
func problems(err error) []string {
	if err == nil {
		return nil
	}
	var out []string
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range j.Unwrap() {
			out = append(out, problems(e)...)
		}
		return out
	}
	return []string{err.Error()}
}

// public drops the unexported bookkeeping so Configs compare on settings.
func public(c Config) Config {
	c.origin = [numSettings]origin{}
	return c
}

const fullFile = `version: 1
listen: 127.0.0.2:5001
data: /srv/coffer
region: eu-west-1
account_id: 123456789012
create_on_push: true
insecure_allow_anonymous: true
root_key_file: /etc/coffer/root.key
log_level: debug
log_format: text
pprof: 127.0.0.1:6060
shutdown_timeout: 1m30s
`

func TestLoadPrecedence(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		file string
		env  map[string]string
		args []string
		// want edits Defaults(); File is filled in when file is set.
		want func(*Config)
	}{
		{
			name: "defaults",
			want: func(*Config) {},
		},
		{
			name: "file only",
			file: fullFile,
			args: []string{"--config", "$FILE"},
			want: func(c *Config) {
				c.Listen = "127.0.0.2:5001"
				c.DataDir = "/srv/coffer"
				c.Region = "eu-west-1"
				c.AccountID = "123456789012"
				c.CreateOnPush = true
				c.InsecureAllowAnonymous = true
				c.RootKeyFile = "/etc/coffer/root.key"
				c.LogLevel = "debug"
				c.LogFormat = "text"
				c.Pprof = "127.0.0.1:6060"
				c.ShutdownTimeout = 90 * time.Second
			},
		},
		{
			name: "file named by COFFER_CONFIG",
			file: "version: 1\nregion: eu-west-1\n",
			env:  map[string]string{"COFFER_CONFIG": "$FILE"},
			want: func(c *Config) { c.Region = "eu-west-1" },
		},
		{
			name: "--config overrides COFFER_CONFIG",
			file: "version: 1\nregion: eu-west-1\n",
			env:  map[string]string{"COFFER_CONFIG": "/does/not/exist.yaml"},
			args: []string{"--config=$FILE"},
			want: func(c *Config) { c.Region = "eu-west-1" },
		},
		{
			name: "empty --config turns COFFER_CONFIG off",
			env:  map[string]string{"COFFER_CONFIG": "/does/not/exist.yaml"},
			args: []string{"--config="},
			want: func(*Config) {},
		},
		{
			name: "env overrides file",
			file: "version: 1\nlisten: 127.0.0.2:5001\nregion: eu-west-1\ncreate_on_push: true\nshutdown_timeout: 5s\n",
			env: map[string]string{
				"COFFER_CONFIG":           "$FILE",
				"COFFER_LISTEN":           "127.0.0.3:5002",
				"COFFER_CREATE_ON_PUSH":   "0",
				"COFFER_SHUTDOWN_TIMEOUT": "7s",
			},
			want: func(c *Config) {
				c.Listen = "127.0.0.3:5002"
				c.Region = "eu-west-1"
				c.CreateOnPush = false
				c.ShutdownTimeout = 7 * time.Second
			},
		},
		{
			name: "flag overrides env",
			file: "version: 1\nlisten: 127.0.0.2:5001\nregion: eu-west-1\nlog_level: warn\n",
			env: map[string]string{
				"COFFER_CONFIG":         "$FILE",
				"COFFER_LISTEN":         "127.0.0.3:5002",
				"COFFER_LOG_LEVEL":      "error",
				"COFFER_CREATE_ON_PUSH": "true",
				"COFFER_DATA":           "/from/env",
			},
			args: []string{"--listen", "[::1]:5003", "--create-on-push=false", "-log-level=debug"},
			want: func(c *Config) {
				c.Listen = "[::1]:5003"
				c.Region = "eu-west-1"
				c.LogLevel = "debug"
				c.DataDir = "/from/env"
			},
		},
		{
			name: "flag clears a file value",
			file: "version: 1\naccount_id: '123456789012'\n",
			args: []string{"--config", "$FILE", "--account-id="},
			want: func(*Config) {},
		},
		{
			name: "empty environment variable counts as unset",
			env:  map[string]string{"COFFER_LISTEN": "", "COFFER_REGION": ""},
			want: func(*Config) {},
		},
		{
			name: "null in the file means empty",
			file: "version: 1\naccount_id:\npprof: ~\n",
			args: []string{"--config", "$FILE"},
			want: func(*Config) {},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := load(t, tc.file, tc.env, tc.args...)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			want := Defaults()
			tc.want(&want)
			if tc.file != "" {
				want.File = got.File
				if got.File == "" {
					t.Errorf("File is empty; want the config file's path")
				}
			}
			if !reflect.DeepEqual(public(got), public(want)) {
				t.Errorf("Load:\n got %v\nwant %v", got, want)
			}
		})
	}
}

func TestLoadNamesTheSource(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		file       string
		env        map[string]string
		args       []string
		wantSource string
	}{
		{"file", "version: 1\n\nregion: Mars\n", nil, []string{"--config", "$FILE"}, "coffer.yaml line 3)"},
		{"env", "", map[string]string{"COFFER_REGION": "Mars"}, nil, "(env COFFER_REGION)"},
		{"flag", "", map[string]string{"COFFER_REGION": "Venus"}, []string{"--region", "Mars"}, "(flag --region)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := load(t, tc.file, tc.env, tc.args...)
			ps := problems(err)
			if len(ps) != 1 || !strings.HasPrefix(ps[0], "region (") || !strings.Contains(ps[0], tc.wantSource) {
				t.Fatalf("Load error = %q; want one region problem naming %q", ps, tc.wantSource)
			}
			var se *SettingError
			if !errors.As(err, &se) || se.Setting != "region" {
				t.Errorf("errors.As(*SettingError) = %v, %+v", se != nil, se)
			}
		})
	}
}

func TestLoadReportsEveryProblem(t *testing.T) {
	t.Parallel()
	file := "version: 1\nregion: US-EAST-1\nlog_format: xml\ncreate_on_push: yes\n"
	env := map[string]string{
		"COFFER_CONFIG":                   "$FILE",
		"COFFER_ACCOUNT_ID":               "12345",
		"COFFER_SHUTDOWN_TIMEOUT":         "0s",
		"COFFER_ROOT_KEY":                 "not base64!",
		"COFFER_ROOT_KEY_FILE":            "/etc/coffer/root.key",
		"COFFER_INSECURE_ALLOW_ANONYMOUS": "maybe",
	}
	args := []string{
		"--listen", "example.com:5000",
		"--data=",
		"--log-level", "loud",
		"--pprof", "0.0.0.0:6060",
	}
	_, err := load(t, file, env, args...)
	want := []string{
		`create_on_push (file `, `coffer.yaml line 4): "yes" is not a boolean`,
		`insecure_allow_anonymous (env COFFER_INSECURE_ALLOW_ANONYMOUS): "maybe" is not a boolean`,
		`listen (flag --listen): "example.com:5000": host "example.com" is not an IP address or localhost`,
		`data (flag --data): must not be empty`,
		`region (file `, `coffer.yaml line 2): "US-EAST-1" is not a region name`,
		`account_id (env COFFER_ACCOUNT_ID): "12345" is not a 12-digit account ID`,
		`root_key (env COFFER_ROOT_KEY): is not valid standard base64`,
		`root_key (env COFFER_ROOT_KEY): cannot be used together with root_key_file (env COFFER_ROOT_KEY_FILE)`,
		`log_level (flag --log-level): "loud" is not a log level`,
		`log_format (file `, `coffer.yaml line 3): "xml" is not a log format`,
		`pprof (flag --pprof): "0.0.0.0:6060" must be on a loopback IP`,
		`shutdown_timeout (env COFFER_SHUTDOWN_TIMEOUT): 0s must be greater than zero`,
	}
	msg := err.Error()
	for _, w := range want {
		if !strings.Contains(msg, w) {
			t.Errorf("error does not contain %q", w)
		}
	}
	if got := problems(err); len(got) != 12 {
		t.Errorf("got %d problems, want 12:\n%s", len(got), strings.Join(got, "\n"))
	}
	if t.Failed() {
		t.Logf("error:\n%s", msg)
	}
}

func TestLoadFileProblems(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		file string
		want []string // one substring per expected problem
	}{
		{
			name: "unknown keys, all of them",
			file: "version: 1\nlisten: 127.0.0.1:5000\nlisen: x\nregoin: y\n",
			want: []string{"lisen (file ", "coffer.yaml line 3): unknown key", "regoin (file ", "line 4): unknown key"},
		},
		{
			name: "missing version",
			file: "listen: 127.0.0.1:5000\n",
			want: []string{`version (file `, `coffer.yaml): missing; the file must say "version: 1"`},
		},
		{
			name: "unsupported version",
			file: "version: 2\n",
			want: []string{`version (file `, `line 1): unsupported version "2"`},
		},
		{
			name: "version as a string",
			file: "version: \"1\"\n",
			want: []string{`unsupported version "1"`},
		},
		{
			name: "empty file",
			file: "# nothing\n",
			want: []string{`version (file `, `the file is empty`},
		},
		{
			name: "root key refused",
			file: "version: 1\nroot_key: c2VjcmV0\n",
			want: []string{`root_key (file `, `line 2): secrets are not read from the config file; set them in the environment (COFFER_ROOT_KEY`},
		},
		{
			name: "duplicate key",
			file: "version: 1\nregion: eu-west-1\nregion: eu-west-2\n",
			want: []string{`region (file `, `line 3): duplicate key; first set at line 2`},
		},
		{
			name: "two documents",
			file: "version: 1\n---\nversion: 1\n",
			want: []string{`the file must hold exactly one YAML document`},
		},
		{
			name: "not a mapping",
			file: "- version: 1\n",
			want: []string{`config (file `, `the top level must be a mapping`},
		},
		{
			name: "syntax error",
			file: "version: 1\nlisten: [\n",
			want: []string{`config (file `},
		},
		{
			name: "list where a value belongs",
			file: "version: 1\nlisten: [a, b]\n",
			want: []string{`listen (file `, `want a single value`},
		},
		{
			name: "duration without unit",
			file: "version: 1\nshutdown_timeout: 30\n",
			want: []string{`shutdown_timeout (file `, `"30" is not a duration`},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := load(t, tc.file, nil, "--config", "$FILE")
			if err == nil {
				t.Fatal("Load succeeded; want an error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			var se *SettingError
			if !errors.As(err, &se) {
				t.Errorf("error is not a *SettingError: %v", err)
			}
		})
	}

	t.Run("missing file", func(t *testing.T) {
		t.Parallel()
		_, err := load(t, "", map[string]string{"COFFER_CONFIG": "/does/not/exist.yaml", "COFFER_REGION": "Mars"})
		for _, w := range []string{"config (env COFFER_CONFIG): open /does/not/exist.yaml", "region (env COFFER_REGION)"} {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("error %q does not contain %q", err, w)
			}
		}
	})
	t.Run("file too large", func(t *testing.T) {
		t.Parallel()
		_, err := load(t, "version: 1\n"+strings.Repeat("#", maxFileSize), nil, "--config", "$FILE")
		if err == nil || !strings.Contains(err.Error(), "larger than") {
			t.Errorf("error = %v; want a size error", err)
		}
	})
}

func TestLoadBooleans(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		file    string // create_on_push value in the file, if not empty
		env     string // COFFER_CREATE_ON_PUSH
		args    []string
		want    bool
		wantErr string
	}{
		{name: "env true", env: "true", want: true},
		{name: "env 1", env: "1", want: true},
		{name: "env false", env: "false", want: false},
		{name: "env 0", env: "0", want: false},
		{name: "env yes", env: "yes", wantErr: `"yes" is not a boolean (want true, false, 1 or 0)`},
		{name: "env TRUE", env: "TRUE", wantErr: `"TRUE" is not a boolean`},
		{name: "bare flag", args: []string{"--create-on-push"}, want: true},
		{name: "flag =true", args: []string{"--create-on-push=true"}, want: true},
		{name: "flag =1", args: []string{"--create-on-push=1"}, want: true},
		{name: "flag =0 overrides env", env: "true", args: []string{"--create-on-push=0"}, want: false},
		{name: "flag =false overrides file", file: "true", args: []string{"--create-on-push=false"}, want: false},
		{name: "flag =on", args: []string{"--create-on-push=on"}, wantErr: `create_on_push (flag --create-on-push): "on" is not a boolean`},
		{name: "file true", file: "true", want: true},
		{name: "file false", file: "false", want: false},
		{name: "file yes", file: "yes", wantErr: `"yes" is not a boolean (want true or false)`},
		{name: "file 1", file: "1", wantErr: `"1" is not a boolean (want true or false)`},
		{name: "file quoted", file: `"true"`, wantErr: `"true" is not a boolean`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			file := ""
			args := tc.args
			if tc.file != "" {
				file = "version: 1\ncreate_on_push: " + tc.file + "\n"
				args = append([]string{"--config", "$FILE"}, args...)
			}
			got, err := load(t, file, map[string]string{"COFFER_CREATE_ON_PUSH": tc.env}, args...)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error = %v; want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if got.CreateOnPush != tc.want {
				t.Errorf("CreateOnPush = %v; want %v", got.CreateOnPush, tc.want)
			}
		})
	}
}

func TestLoadSubcommandFlags(t *testing.T) {
	t.Parallel()
	fs := flag.NewFlagSet("gc", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	dryRun := fs.Bool("dry-run", false, "report only")
	RegisterFlags(fs) // e.g. for help text; Load must cope
	cfg, err := Load(fs, []string{"--dry-run", "--data", "/srv/coffer", "repo-a", "repo-b"}, nil)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if !*dryRun {
		t.Error("the subcommand's own flag was not parsed")
	}
	if cfg.DataDir != "/srv/coffer" {
		t.Errorf("DataDir = %q", cfg.DataDir)
	}
	if got := fs.Args(); !reflect.DeepEqual(got, []string{"repo-a", "repo-b"}) {
		t.Errorf("fs.Args() = %q", got)
	}
}

func TestLoadCommandLineErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		args       []string
		wantIs     error
		wantOutput string
	}{
		{"help", []string{"-h"}, flag.ErrHelp, "-listen"},
		{"long help", []string{"--help"}, flag.ErrHelp, "COFFER_LISTEN"},
		{"unknown flag", []string{"--nope"}, ErrUsage, "flag provided but not defined: -nope"},
		{"missing value", []string{"--listen"}, ErrUsage, "flag needs an argument: -listen"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var out bytes.Buffer
			fs := flag.NewFlagSet("serve", flag.ContinueOnError)
			fs.SetOutput(&out)
			_, err := Load(fs, tc.args, nil)
			if !errors.Is(err, tc.wantIs) {
				t.Errorf("error = %v; want errors.Is %v", err, tc.wantIs)
			}
			if !strings.Contains(out.String(), tc.wantOutput) {
				t.Errorf("flag output %q does not contain %q", out.String(), tc.wantOutput)
			}
		})
	}
}

// TestFileSchemaMatchesSettings keeps fileConfig's YAML tags and the
// settings table in step.
func TestFileSchemaMatchesSettings(t *testing.T) {
	t.Parallel()
	var fc fileConfig
	v := reflect.ValueOf(&fc).Elem()
	tagOf := make(map[*yaml.Node]string)
	for i := range v.NumField() {
		tagOf[v.Field(i).Addr().Interface().(*yaml.Node)] = v.Type().Field(i).Tag.Get("yaml")
	}
	nodes := fc.nodes()
	seen := map[string]bool{"version": true, "endpoints": true, "quotas": true} // lists, decoded on their own
	for id, n := range nodes {
		if tagOf[n] != settings[id].key {
			t.Errorf("setting %q maps to the field tagged %q", settings[id].key, tagOf[n])
		}
		seen[tagOf[n]] = true
	}
	for _, tag := range tagOf {
		if !seen[tag] {
			t.Errorf("field tagged %q is not a setting", tag)
		}
	}
}

// TestSettingsDescribeEveryFlag keeps the help table and the flags in step.
func TestSettingsDescribeEveryFlag(t *testing.T) {
	t.Parallel()
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	RegisterFlags(fs)
	documented := make(map[string]bool)
	envs := make(map[string]bool)
	for _, s := range Settings() {
		if s.Env == "" || s.Usage == "" || envs[s.Env] {
			t.Errorf("bad setting %+v", s)
		}
		envs[s.Env] = true
		if s.Flag != "" {
			documented[s.Flag] = true
			if fs.Lookup(s.Flag) == nil {
				t.Errorf("setting %+v has no registered flag", s)
			}
		}
	}
	fs.VisitAll(func(f *flag.Flag) {
		if !documented[f.Name] {
			t.Errorf("flag --%s is missing from Settings", f.Name)
		}
	})
	if !envs["COFFER_ROOT_KEY"] || !envs["COFFER_CONFIG"] {
		t.Error("Settings misses COFFER_ROOT_KEY or COFFER_CONFIG")
	}
}
