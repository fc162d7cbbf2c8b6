package postgres

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/cofferhq/coffer/internal/testbackend"
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
		defer srv.Stop()
		adminDSN = srv.DSN
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

// The throwaway server comes from internal/testbackend, shared with the
// end-to-end tests and the benchmark.
const (
	debianBins = testbackend.DebianPostgresBins
	serverHint = "or point " + dsnEnv + " at a server"
)

// pgBinDir finds the directory holding initdb and pg_ctl.
func pgBinDir(pattern string, lookPath func(string) (string, error)) (string, error) {
	return testbackend.PostgresBinDir(pattern, lookPath, serverHint)
}

// startServer initdbs and starts a server on a free loopback port.
func startServer() (*testbackend.Postgres, error) {
	return testbackend.StartPostgres(testbackend.PostgresConfig{Hint: serverHint})
}

func freePort() (int, error) { return testbackend.FreePort() }

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
