package main

import (
	"context"
	"debug/buildinfo"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Distribution v3 is the peer every Coffer figure is compared with. It is
// installed with `go install` into the project's tools directory, never into
// go.mod, so its dependency graph cannot move Coffer's.
const (
	distributionModule  = "github.com/distribution/distribution/v3"
	distributionPackage = distributionModule + "/cmd/registry"
	distributionVersion = "v3.0.0"
)

// server is one registry process started by the harness, with a data
// directory of its own that is removed when it stops.
type server struct {
	name  string
	addr  string // 127.0.0.1:port of the registry API
	pprof string // 127.0.0.1:port of net/http/pprof, or ""
	dir   string // temporary directory: data, config, log
	log   string // stderr and stdout of the process
	cmd   *exec.Cmd
	done  chan struct{} // closed when the process has exited
	err   error         // exit status, valid after done
	// after stops what spec.before started (backends), after the process.
	after func()
}

func (s *server) pid() int { return s.cmd.Process.Pid }

// check reports an error if the process has exited.
func (s *server) check() error {
	select {
	case <-s.done:
		return fmt.Errorf("%s exited (%v); last log lines:\n%s", s.name, s.err, tail(s.log, 20))
	default:
		return nil
	}
}

// stop ends the process (SIGTERM, then SIGKILL after 15 s) and removes its
// directory unless keep is set.
func (s *server) stop(keep bool) {
	select {
	case <-s.done:
	default:
		_ = s.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-s.done:
		case <-time.After(15 * time.Second):
			_ = s.cmd.Process.Kill()
			<-s.done
		}
	}
	if s.after != nil {
		s.after()
	}
	if keep {
		logf("kept %s's directory %s", s.name, s.dir)
		return
	}
	if err := os.RemoveAll(s.dir); err != nil {
		logf("remove %s: %v", s.dir, err)
	}
}

// spec says how to start one kind of server in a fresh directory.
type spec struct {
	name  string
	argv  func(dir, addr, pprof string) ([]string, error) // may write files into dir
	env   []string
	ready string // path that answers 200 when the server is ready
	pprof bool   // give the server a pprof listener
	// before, if set, starts what the server needs (backends.go) and
	// returns extra arguments and environment, and how to stop it.
	before func(ctx context.Context) (args, env []string, stop func(), err error)
}

// start runs sp in a new temporary directory on free loopback ports and
// waits until it is ready. A port taken between choosing and binding makes
// the process exit; start then tries again with other ports.
func start(ctx context.Context, sp spec) (*server, error) {
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		s, err := startOnce(ctx, sp)
		if err == nil {
			return s, nil
		}
		lastErr = err
		if ctx.Err() != nil {
			break
		}
	}
	return nil, lastErr
}

func startOnce(ctx context.Context, sp spec) (*server, error) {
	dir, err := os.MkdirTemp("", "coffer-bench-*")
	if err != nil {
		return nil, err
	}
	s := &server{name: sp.name, dir: dir, log: filepath.Join(dir, "server.log"), done: make(chan struct{})}
	fail := func(err error) (*server, error) {
		s.stop(false)
		return nil, fmt.Errorf("start %s: %w", sp.name, err)
	}
	if s.addr, err = freePort(); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	if sp.pprof {
		if s.pprof, err = freePort(); err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
	}
	argv, err := sp.argv(dir, s.addr, s.pprof)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	env := append(cleanEnv(), sp.env...)
	if sp.before != nil {
		args, extra, stop, err := sp.before(ctx)
		if err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("start %s: %w", sp.name, err)
		}
		argv, env, s.after = append(argv, args...), append(env, extra...), stop
	}
	logFile, err := os.Create(s.log)
	if err == nil {
		s.cmd = exec.Command(argv[0], argv[1:]...)
		s.cmd.Stdout, s.cmd.Stderr = logFile, logFile
		s.cmd.Dir = dir
		s.cmd.Env = env
		if err = s.cmd.Start(); err != nil {
			logFile.Close()
		}
	}
	if err != nil {
		if s.after != nil {
			s.after()
		}
		os.RemoveAll(dir)
		return nil, fmt.Errorf("start %s: %w", sp.name, err)
	}
	go func() {
		s.err = s.cmd.Wait()
		logFile.Close()
		close(s.done)
	}()

	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(30 * time.Second)
	for {
		if err := s.check(); err != nil {
			return fail(err)
		}
		resp, err := client.Get("http://" + s.addr + sp.ready)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s, nil
			}
		}
		if time.Now().After(deadline) {
			return fail(fmt.Errorf("not ready after 30 s (last: %v); log:\n%s", errOrStatus(resp, err), tail(s.log, 20)))
		}
		select {
		case <-ctx.Done():
			return fail(ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func errOrStatus(resp *http.Response, err error) string {
	if err != nil {
		return err.Error()
	}
	return resp.Status
}

// cleanEnv is the harness's environment without COFFER_* and REGISTRY_*
// variables, so that a developer's settings cannot change what is measured.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "COFFER_") || strings.HasPrefix(kv, "REGISTRY_") || strings.HasPrefix(kv, "OTEL_") {
			continue
		}
		env = append(env, kv)
	}
	return env
}

// freePort returns a loopback address whose port was free a moment ago.
func freePort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// cofferSpec starts `coffer serve` with fresh storage and the variant's
// extra flags and environment.
func cofferSpec(name, bin string, v variant, pprof bool) spec {
	return spec{
		name: name,
		argv: func(dir, addr, pprofAddr string) ([]string, error) {
			argv := []string{bin, "serve",
				"--listen", addr,
				"--data", filepath.Join(dir, "data"),
				"--create-on-push",
				"--log-level", "warn",
			}
			if pprofAddr != "" {
				argv = append(argv, "--pprof", pprofAddr)
			}
			return append(argv, v.ServeArgs...), nil
		},
		env:    v.Env,
		ready:  "/readyz",
		pprof:  pprof,
		before: v.Backends,
	}
}

// distributionSpec starts distribution's `registry serve` with a config
// that matches what the harness asks of Coffer: filesystem storage in a
// fresh directory, deletes enabled, errors-only logging and no access log
// (Coffer at --log-level warn writes no access lines either). No blob
// descriptor cache is configured: the documented minimal configuration.
func distributionSpec(bin string) spec {
	return spec{
		name: "distribution " + distributionVersion,
		argv: func(dir, addr, _ string) ([]string, error) {
			cfg := fmt.Sprintf(`version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: %s
  delete:
    enabled: true
http:
  addr: %s
`, filepath.Join(dir, "data"), addr)
			path := filepath.Join(dir, "config.yml")
			if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
				return nil, err
			}
			return []string{bin, "serve", path}, nil
		},
		env:   []string{"OTEL_TRACES_EXPORTER=none"},
		ready: "/v2/",
	}
}

// repoRoot returns the directory of Coffer's go.mod.
func repoRoot(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("run the harness inside Coffer's module (go env GOMOD is empty)")
	}
	return filepath.Dir(gomod), nil
}

// buildCoffer builds ./cmd/coffer into dir, with the build tags given,
// and returns the binary's path.
func buildCoffer(ctx context.Context, root, dir string, tags ...string) (string, error) {
	bin := filepath.Join(dir, strings.Join(append([]string{"coffer"}, tags...), "-"))
	cmd := exec.CommandContext(ctx, "go", "build", "-tags", strings.Join(tags, ","), "-o", bin, "./cmd/coffer")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/coffer: %w\n%s", err, out)
	}
	return bin, nil
}

// installDistribution returns the path of distribution v3's registry in
// toolsBin, installing it with `go install` unless a binary built from the
// pinned version is already there.
func installDistribution(ctx context.Context, toolsBin string) (string, error) {
	return installTool(ctx, toolsBin, "registry", distributionModule, distributionPackage, distributionVersion)
}

// installTool returns the path of the tool name in toolsBin, installing
// pkg@version with `go install` unless a binary built from module at that
// version is already there. GOFLAGS is cleared so a caller's -mod=...
// cannot leak into go install.
func installTool(ctx context.Context, toolsBin, name, module, pkg, version string) (string, error) {
	bin := filepath.Join(toolsBin, name)
	if info, err := buildinfo.ReadFile(bin); err == nil && info.Main.Path == module && info.Main.Version == version {
		return bin, nil
	}
	if err := os.MkdirAll(toolsBin, 0o755); err != nil {
		return "", err
	}
	logf("installing %s@%s into %s", pkg, version, toolsBin)
	t0 := time.Now()
	cmd := exec.CommandContext(ctx, "go", "install", pkg+"@"+version)
	cmd.Env = append(os.Environ(), "GOBIN="+toolsBin, "GOFLAGS=")
	if out, err := cmd.CombinedOutput(); err != nil {
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		return "", fmt.Errorf("go install %s@%s: %w\n%s", pkg, version, err, tail2(out, 20))
	}
	logf("installed %s in %.0f s", name, time.Since(t0).Seconds())
	return bin, nil
}

// tail returns the last n lines of a file.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	return tail2(b, n)
}

func tail2(b []byte, n int) string {
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
