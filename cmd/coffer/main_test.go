package main

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
)

// result is what one run of the command line produced.
type result struct {
	code           int
	stdout, stderr string
}

// runCoffer runs the command line with env as the whole environment.
func runCoffer(env map[string]string, args ...string) result {
	var stdout, stderr bytes.Buffer
	code := run(args, &stdout, &stderr, func(k string) string { return env[k] })
	return result{code, stdout.String(), stderr.String()}
}

func TestVersion(t *testing.T) {
	t.Parallel()
	r := runCoffer(nil, "version")
	want := regexp.MustCompile(`^coffer \S+ \(([0-9a-f]+(-dirty)?, )?` + regexp.QuoteMeta(runtime.Version()+", "+runtime.GOOS+"/"+runtime.GOARCH) + `\)\n$`)
	if r.code != 0 || !want.MatchString(r.stdout) || r.stderr != "" {
		t.Errorf("coffer version = %d, stdout %q, stderr %q; want 0 and a line matching %s", r.code, r.stdout, r.stderr, want)
	}
	if r := runCoffer(nil, "version", "extra"); r.code != 2 || !strings.Contains(r.stderr, `unexpected argument "extra"`) {
		t.Errorf("coffer version extra = %d, stderr %q; want 2", r.code, r.stderr)
	}
}

func TestVersionLine(t *testing.T) {
	t.Parallel()
	vcs := func(rev, modified string) *debug.BuildInfo {
		return &debug.BuildInfo{
			Main:     debug.Module{Path: "github.com/cofferhq/coffer", Version: "(devel)"},
			Settings: []debug.BuildSetting{{Key: "vcs", Value: "git"}, {Key: "vcs.revision", Value: rev}, {Key: "vcs.modified", Value: modified}},
		}
	}
	tests := []struct {
		name    string
		version string
		info    *debug.BuildInfo
		want    string
	}{
		{"no build info", "dev", nil, "coffer dev (go1.26.8, linux/amd64)"},
		{"no VCS stamp", "dev", &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}}, "coffer dev (go1.26.8, linux/amd64)"},
		{"revision", "v1.2.3", vcs("0123abcd", "false"), "coffer v1.2.3 (0123abcd, go1.26.8, linux/amd64)"},
		{"modified tree", "v1.2.3", vcs("0123abcd", "true"), "coffer v1.2.3 (0123abcd-dirty, go1.26.8, linux/amd64)"},
		{"module version when not linked in", "dev", &debug.BuildInfo{Main: debug.Module{Version: "v1.4.0"}}, "coffer v1.4.0 (go1.26.8, linux/amd64)"},
		{"linked-in version wins", "v2.0.0", &debug.BuildInfo{Main: debug.Module{Version: "v1.4.0"}}, "coffer v2.0.0 (go1.26.8, linux/amd64)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := versionLine(tc.version, tc.info, "go1.26.8", "linux/amd64"); got != tc.want {
				t.Errorf("versionLine = %q; want %q", got, tc.want)
			}
		})
	}
}

func TestHelp(t *testing.T) {
	t.Parallel()
	everywhere := []string{"serve", "version", "--config FILE", "COFFER_CONFIG", "--listen ADDR", "COFFER_LISTEN",
		"--data DIR", "COFFER_DATA", "--insecure-allow-anonymous", "COFFER_ROOT_KEY", "(default 127.0.0.1:5000)"}
	tests := []struct {
		name     string
		args     []string
		wantCode int
		toStdout bool
		want     []string
	}{
		{"help", []string{"help"}, 0, true, append(everywhere, "coffer <command> [flags]")},
		{"-h", []string{"-h"}, 0, true, append(everywhere, "coffer <command> [flags]")},
		{"--help", []string{"--help"}, 0, true, append(everywhere, "coffer <command> [flags]")},
		{"no arguments", nil, 2, false, append(everywhere, "coffer <command> [flags]")},
		{"help serve", []string{"help", "serve"}, 0, true, append(everywhere, "coffer serve [flags]", "SIGTERM")},
		{"serve -h", []string{"serve", "-h"}, 0, false, append(everywhere, "coffer serve [flags]")},
		{"help version", []string{"help", "version"}, 0, true, []string{"coffer version", "VCS revision"}},
		{"help unknown", []string{"help", "nope"}, 2, false, []string{`coffer help: unknown command "nope"`, "coffer <command> [flags]"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := runCoffer(nil, tc.args...)
			out, other := r.stderr, r.stdout
			if tc.toStdout {
				out, other = r.stdout, r.stderr
			}
			if r.code != tc.wantCode || other != "" {
				t.Errorf("code %d, stdout %q, stderr %q; want code %d and output on one stream only", r.code, r.stdout, r.stderr, tc.wantCode)
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("output does not contain %q:\n%s", w, out)
				}
			}
		})
	}
}

func TestUnknownCommand(t *testing.T) {
	t.Parallel()
	r := runCoffer(nil, "frobnicate", "--listen", "x")
	if r.code != 2 || r.stdout != "" {
		t.Errorf("code %d, stdout %q; want 2 and nothing on stdout", r.code, r.stdout)
	}
	for _, w := range []string{`coffer: unknown command "frobnicate"`, "Commands:", "serve", "version"} {
		if !strings.Contains(r.stderr, w) {
			t.Errorf("stderr does not contain %q:\n%s", w, r.stderr)
		}
	}
}

func TestServeInvalidConfiguration(t *testing.T) {
	t.Parallel()
	const secret = "TOPSECRET-not-base64"
	file := filepath.Join(t.TempDir(), "coffer.yaml")
	if err := os.WriteFile(file, []byte("version: 1\nregion: Mars\nlisen: 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{
		"COFFER_CONFIG":     file,
		"COFFER_ACCOUNT_ID": "42",
		"COFFER_ROOT_KEY":   secret,
		"COFFER_LOG_FORMAT": "xml",
	}
	r := runCoffer(env, "serve", "--listen", "0.0.0.0:5000", "--insecure-allow-anonymous", "--shutdown-timeout", "0s", "--pprof", "10.0.0.1:6060")
	if r.code != 2 || r.stdout != "" {
		t.Errorf("code %d, stdout %q; want 2 and nothing on stdout", r.code, r.stdout)
	}
	want := []string{
		"coffer: invalid configuration:",
		"  lisen (file " + file + " line 3): unknown key",
		"  region (file " + file + " line 2): \"Mars\" is not a region name such as us-east-1",
		"  account_id (env COFFER_ACCOUNT_ID): \"42\" is not a 12-digit account ID (leave it empty to have one generated)",
		"  root_key (env COFFER_ROOT_KEY): is not valid standard base64",
		"  log_format (env COFFER_LOG_FORMAT): \"xml\" is not a log format (want json or text)",
		"  pprof (flag --pprof): \"10.0.0.1:6060\" must be on a loopback IP, such as 127.0.0.1:6060",
		"  shutdown_timeout (flag --shutdown-timeout): 0s must be greater than zero",
		"  insecure_allow_anonymous (flag --insecure-allow-anonymous): anonymous access is allowed only on a loopback listen address, not \"0.0.0.0:5000\"",
	}
	if got := strings.Split(strings.TrimSuffix(r.stderr, "\n"), "\n"); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("stderr:\n%s\nwant:\n%s", r.stderr, strings.Join(want, "\n"))
	}
	if strings.Contains(r.stderr, secret) {
		t.Errorf("stderr contains the root key")
	}
}

func TestServeCommandLineErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"unknown flag", []string{"serve", "--nope"}, "flag provided but not defined: -nope"},
		{"flag without value", []string{"serve", "--data"}, "flag needs an argument: -data"},
		// A valid configuration: the argument must be refused before the
		// server starts.
		{"positional argument", []string{"serve", "--data", "unused", "extra"}, `coffer serve: unexpected argument "extra"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := runCoffer(nil, tc.args...)
			if r.code != 2 || r.stdout != "" || !strings.Contains(r.stderr, tc.want) {
				t.Errorf("code %d, stdout %q, stderr %q; want 2 and %q", r.code, r.stdout, r.stderr, tc.want)
			}
			if strings.Contains(r.stderr, "invalid configuration") {
				t.Errorf("a command-line error was reported as a configuration problem")
			}
		})
	}
}
