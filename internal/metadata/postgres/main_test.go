package postgres

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// The tests need a PostgreSQL server. COFFER_TEST_POSTGRES_DSN names one
// (its user must be allowed to CREATE DATABASE); without it, TestMain
// starts a throwaway server: initdb into a temporary directory, pg_ctl
// start on 127.0.0.1 and a free port (as the postgres OS user via runuser
// when running as root), and stops it by PID when the tests are done. A
// missing server is a test failure, never a skip.
//
// The run creates one database (dropped at the end) and every test a
// schema of its own in it (newDSN, selected by search_path in the DSN, as
// a deployment would), so parallel subtests share nothing they did not
// ask for; a schema costs milliseconds where a database costs a checkpoint.
const dsnEnv = "COFFER_TEST_POSTGRES_DSN"

var (
	testDSN    string        // the run's database
	testPool   *pgxpool.Pool // connected to testDSN
	startupErr error         // why there is no server; every test fails with it
	icu        bool          // the run's database uses an ICU en-US default collation
)

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	adminDSN := os.Getenv(dsnEnv)
	if adminDSN == "" {
		srv, err := startServer()
		if err != nil {
			startupErr = err
			return m.Run() // every test that needs the server fails with the reason
		}
		defer srv.stop()
		adminDSN = srv.dsn
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	admin, err := pgx.Connect(ctx, adminDSN)
	if err != nil {
		startupErr = fmt.Errorf("connect to the test server: %w", err)
		return m.Run()
	}
	defer admin.Close(context.Background())
	// An ICU collation whose order differs from byte order ("B" after "a")
	// proves that every ordered column carries COLLATE "C" and does not
	// lean on the database default; servers without ICU get the default.
	name := "coffer_test_" + randomHex(6)
	if _, err := admin.Exec(ctx, createDatabaseSQL(name, true)); err == nil {
		icu = true
	} else if _, err := admin.Exec(ctx, createDatabaseSQL(name, false)); err != nil {
		startupErr = fmt.Errorf("create the test database (the user needs CREATEDB): %w", err)
		return m.Run()
	}
	defer func() {
		// FORCE ends sessions a failed test left behind.
		if _, err := admin.Exec(context.Background(), "DROP DATABASE "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
			fmt.Fprintf(os.Stderr, "drop test database %s: %v\n", name, err)
		}
	}()
	// Test data is thrown away: commits need not wait for the WAL flush
	// (they stay atomic and isolated). Benchmarks turn it back on.
	if _, err := admin.Exec(ctx, "ALTER DATABASE "+pgx.Identifier{name}.Sanitize()+" SET synchronous_commit = off"); err != nil {
		startupErr = fmt.Errorf("configure the test database: %w", err)
		return m.Run()
	}
	testDSN, err = withDatabase(adminDSN, name)
	if err != nil {
		startupErr = err
		return m.Run()
	}
	if testPool, err = pgxpool.New(ctx, testDSN); err != nil {
		startupErr = fmt.Errorf("connect to the test database: %w", err)
		return m.Run()
	}
	defer testPool.Close()
	return m.Run()
}

// server is the throwaway PostgreSQL of one test run.
type server struct {
	dir  string // temporary directory: data/, log, socket
	data string
	dsn  string
}

// debianBins is where Debian's postgresql packages put the server binaries.
const debianBins = "/usr/lib/postgresql/*/bin"

// pgBinDir finds the directory holding initdb and pg_ctl: one matching
// pattern (newest version first), then $PATH through lookPath.
func pgBinDir(pattern string, lookPath func(string) (string, error)) (string, error) {
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
	return "", fmt.Errorf("PostgreSQL server binaries (initdb, pg_ctl) not found in %s or $PATH: "+
		"install them (Debian/Ubuntu: apt-get install postgresql) or point %s at a server", pattern, dsnEnv)
}

func isExecutable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

// startServer initdbs and starts a server on a free loopback port.
func startServer() (*server, error) {
	bin, err := pgBinDir(debianBins, exec.LookPath)
	if err != nil {
		return nil, err
	}
	// As root, PostgreSQL refuses to run: run it as the postgres user, which
	// must own the directory.
	var asUser []string
	var uid, gid = -1, -1
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
	srv := &server{dir: dir, data: filepath.Join(dir, "data")}
	run := func(name string, args ...string) error {
		argv := append(slices.Clone(asUser), append([]string{filepath.Join(bin, name)}, args...)...)
		cmd := exec.Command(argv[0], argv[1:]...)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("%s: %w\n%s", name, err, out)
		}
		return nil
	}
	if err := run("initdb", "-D", srv.data, "-U", "postgres", "-A", "trust", "-E", "UTF8",
		"--locale=C.UTF-8", "--no-sync"); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	// A free port can be taken between the probe and the server's bind:
	// try a few.
	for attempt := 0; ; attempt++ {
		port, err := freePort()
		if err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
		opts := strings.Join([]string{
			"-c listen_addresses=127.0.0.1",
			"-p " + strconv.Itoa(port),
			"-k " + dir, // Unix socket here, not in /var/run/postgresql
			"-c max_connections=200",
		}, " ")
		err = run("pg_ctl", "-D", srv.data, "-l", filepath.Join(dir, "log"), "-w", "-t", "60", "-o", opts, "start")
		if err == nil {
			srv.dsn = fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", port)
			return srv, nil
		}
		if attempt == 2 {
			log, _ := os.ReadFile(filepath.Join(dir, "log"))
			srv.stop()
			return nil, fmt.Errorf("%w\nserver log:\n%s", err, log)
		}
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// stop shuts the server down by the PID in postmaster.pid (SIGINT: fast
// shutdown), waits for it to exit (SIGKILL after 20s), and removes its
// directory.
func (srv *server) stop() {
	defer os.RemoveAll(srv.dir)
	b, err := os.ReadFile(filepath.Join(srv.data, "postmaster.pid"))
	if err != nil {
		return // never started
	}
	first, _, _ := strings.Cut(string(b), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(first))
	if err != nil || pid <= 1 {
		return
	}
	if err := syscall.Kill(pid, syscall.SIGINT); err != nil {
		return
	}
	deadline := time.Now().Add(20 * time.Second)
	for syscall.Kill(pid, 0) == nil {
		if time.Now().After(deadline) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
			time.Sleep(100 * time.Millisecond)
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

func createDatabaseSQL(name string, icu bool) string {
	q := "CREATE DATABASE " + pgx.Identifier{name}.Sanitize()
	if icu {
		q += " TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'en-US'"
	}
	return q
}

// newDSN creates an empty schema for one test, dropped when the test ends,
// and returns a DSN whose search_path selects it.
func newDSN(t testing.TB) string {
	t.Helper()
	if startupErr != nil {
		t.Fatalf("no PostgreSQL server for the tests: %v", startupErr)
	}
	name := "t_" + randomHex(8)
	ctx := context.Background()
	if _, err := testPool.Exec(ctx, "CREATE SCHEMA "+name); err != nil {
		t.Fatalf("create test schema: %v", err)
	}
	t.Cleanup(func() {
		if _, err := testPool.Exec(ctx, "DROP SCHEMA "+name+" CASCADE"); err != nil {
			t.Errorf("drop test schema %s: %v", name, err)
		}
	})
	dsn, err := withParam(testDSN, "search_path", name)
	if err != nil {
		t.Fatal(err)
	}
	return dsn
}

// withDatabase returns dsn with its database replaced by name.
func withDatabase(dsn, name string) (string, error) {
	if isURL(dsn) {
		u, err := url.Parse(dsn)
		if err != nil {
			return "", fmt.Errorf("parse %s: invalid URL", dsnEnv) // never print the DSN: it may hold a password
		}
		u.Path = "/" + name
		return u.String(), nil
	}
	return dsn + " dbname=" + name, nil // key=value form: the last setting wins
}

// withParam returns dsn with one more setting.
func withParam(dsn, key, value string) (string, error) {
	if isURL(dsn) {
		u, err := url.Parse(dsn)
		if err != nil {
			return "", fmt.Errorf("parse %s: invalid URL", dsnEnv)
		}
		q := u.Query()
		q.Set(key, value)
		u.RawQuery = q.Encode()
		return u.String(), nil
	}
	return dsn + " " + key + "=" + value, nil
}

func isURL(dsn string) bool {
	return strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://")
}

// openStore opens a Store on dsn, closed when the test ends.
func openStore(t testing.TB, cfg Config) *Store {
	t.Helper()
	s, err := Open(context.Background(), cfg)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return s
}

// newStore opens a Store on a fresh database.
func newStore(t testing.TB) (*Store, string) {
	t.Helper()
	dsn := newDSN(t)
	return openStore(t, Config{DSN: dsn}), dsn
}
