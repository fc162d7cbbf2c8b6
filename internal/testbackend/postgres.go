package testbackend

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// DebianPostgresBins is where Debian's postgresql packages put the server
// binaries.
const DebianPostgresBins = "/usr/lib/postgresql/*/bin"

// PostgresBinDir finds the directory holding initdb and pg_ctl: one
// matching pattern (newest version first), then $PATH through lookPath.
// hint ends the error message (another way to get a server, say).
func PostgresBinDir(pattern string, lookPath func(string) (string, error), hint string) (string, error) {
	dirs, _ := filepath.Glob(pattern)
	slices.SortFunc(dirs, func(a, b string) int {
		va, _ := strconv.Atoi(filepath.Base(filepath.Dir(a)))
		vb, _ := strconv.Atoi(filepath.Base(filepath.Dir(b)))
		return vb - va
	})
	for _, d := range dirs {
		if isExecutable(filepath.Join(d, "initdb")) && isExecutable(filepath.Join(d, "pg_ctl")) {
			return d, nil
		}
	}
	if p, err := lookPath("initdb"); err == nil {
		d := filepath.Dir(p)
		if isExecutable(filepath.Join(d, "pg_ctl")) {
			return d, nil
		}
	}
	msg := fmt.Sprintf("PostgreSQL server binaries (initdb, pg_ctl) not found in %s or $PATH: "+
		"install them (Debian/Ubuntu: apt-get install postgresql)", pattern)
	if hint != "" {
		msg += " " + hint
	}
	return "", fmt.Errorf("%s", msg)
}

func isExecutable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

// FreePort returns a loopback TCP port that was free a moment ago.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// PostgresConfig configures StartPostgres.
type PostgresConfig struct {
	// Hint ends the error message when the server binaries are missing.
	Hint string
	// MaxConnections is the server's max_connections; 0 means 200.
	MaxConnections int
}

// Postgres is a throwaway PostgreSQL server.
type Postgres struct {
	// DSN is the superuser's URL for the database "postgres":
	// postgres://postgres@127.0.0.1:PORT/postgres?sslmode=disable.
	DSN  string
	Port int
	dir  string // temporary directory: data/, log, socket
	data string
	run  func(name string, args ...string) error
	opts string
}

// StartPostgres initdbs a cluster in a new temporary directory and starts
// it on a free 127.0.0.1 port (trust authentication, user postgres).
func StartPostgres(cfg PostgresConfig) (*Postgres, error) {
	bin, err := PostgresBinDir(DebianPostgresBins, exec.LookPath, cfg.Hint)
	if err != nil {
		return nil, err
	}
	// As root, PostgreSQL refuses to run: run it as the postgres user, which
	// must own the directory.
	var asUser []string
	uid, gid := -1, -1
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return nil, fmt.Errorf("running as root needs a postgres OS user to run the server (apt-get install postgresql creates it): %w", err)
		}
		uid, _ = strconv.Atoi(u.Uid)
		gid, _ = strconv.Atoi(u.Gid)
		runuser, err := exec.LookPath("runuser")
		if err != nil {
			return nil, fmt.Errorf("running as root needs runuser (util-linux) to start PostgreSQL as postgres: %w", err)
		}
		asUser = []string{runuser, "-u", "postgres", "--"}
	}
	dir, err := os.MkdirTemp("", "coffer-pg-")
	if err != nil {
		return nil, err
	}
	if uid >= 0 {
		if err := os.Chown(dir, uid, gid); err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
	}
	p := &Postgres{dir: dir, data: filepath.Join(dir, "data")}
	p.run = func(name string, args ...string) error {
		argv := append(slices.Clone(asUser), append([]string{filepath.Join(bin, name)}, args...)...)
		cmd := exec.Command(argv[0], argv[1:]...)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("%s: %w\n%s", name, err, out)
		}
		return nil
	}
	if err := p.run("initdb", "-D", p.data, "-U", "postgres", "-A", "trust", "-E", "UTF8",
		"--locale=C.UTF-8", "--no-sync"); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	maxConns := cfg.MaxConnections
	if maxConns <= 0 {
		maxConns = 200
	}
	// A free port can be taken between the probe and the server's bind:
	// try a few.
	for attempt := 0; ; attempt++ {
		port, err := FreePort()
		if err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
		p.Port = port
		p.opts = strings.Join([]string{
			"-c listen_addresses=127.0.0.1",
			"-p " + strconv.Itoa(port),
			"-k " + dir, // Unix socket here, not in /var/run/postgresql
			"-c max_connections=" + strconv.Itoa(maxConns),
		}, " ")
		err = p.start()
		if err == nil {
			p.DSN = fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", port)
			return p, nil
		}
		if attempt == 2 {
			p.Stop()
			return nil, fmt.Errorf("%w\nserver log:\n%s", err, p.LogTail())
		}
	}
}

func (p *Postgres) start() error {
	return p.run("pg_ctl", "-D", p.data, "-l", filepath.Join(p.dir, "log"), "-w", "-t", "60", "-o", p.opts, "start")
}

// LogTail returns the end of the server log.
func (p *Postgres) LogTail() string { return tailFile(filepath.Join(p.dir, "log"), 4000) }

// Halt shuts the server down (fast: sessions are ended) and keeps its
// data, as an outage would; Resume starts it again.
func (p *Postgres) Halt() error {
	pid := p.pid()
	if pid <= 1 {
		return fmt.Errorf("postgres: not running")
	}
	return stopPID(pid, syscall.SIGINT, 20*time.Second)
}

// Resume starts a halted server again on the same port and data.
func (p *Postgres) Resume() error { return p.start() }

// pid reads the postmaster's PID, or 0.
func (p *Postgres) pid() int {
	b, err := os.ReadFile(filepath.Join(p.data, "postmaster.pid"))
	if err != nil {
		return 0
	}
	first, _, _ := strings.Cut(string(b), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(first))
	if err != nil {
		return 0
	}
	return pid
}

// Stop shuts the server down by the PID in postmaster.pid (SIGINT: fast
// shutdown), waits for it to exit (SIGKILL after 20 s), and removes its
// directory.
func (p *Postgres) Stop() {
	defer os.RemoveAll(p.dir)
	if pid := p.pid(); pid > 1 {
		_ = stopPID(pid, syscall.SIGINT, 20*time.Second)
	}
}

// CreateDatabase creates a database and returns its DSN.
func (p *Postgres) CreateDatabase(ctx context.Context, name string) (string, error) {
	conn, err := pgx.Connect(ctx, p.DSN)
	if err != nil {
		return "", fmt.Errorf("connect to the test server: %w", err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return "", fmt.Errorf("create database %s: %w", name, err)
	}
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", p.Port, name), nil
}

// stopPID sends sig and waits until the process is gone, sending SIGKILL
// after wait.
func stopPID(pid int, sig syscall.Signal, wait time.Duration) error {
	if err := syscall.Kill(pid, sig); err != nil {
		return err
	}
	deadline := time.Now().Add(wait)
	for syscall.Kill(pid, 0) == nil {
		if time.Now().After(deadline) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
			time.Sleep(100 * time.Millisecond)
			return fmt.Errorf("pid %d did not stop within %v; killed", pid, wait)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nil
}

// tailFile returns at most the last n bytes of a file.
func tailFile(path string, n int) string {
	b, _ := os.ReadFile(path)
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}
