package postgres

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
)

// Authentication failures shared by replicas (issue #9; the table is
// migration 0006): one row per subject with its window's start and count.
// Windows run on the database's clock, so replicas whose clocks disagree
// still agree on every window.

// AuthFailureCount is one subject's failure count across replicas.
type AuthFailureCount struct {
	// Failures in the subject's current window, including those just added.
	Failures int64
	// Left is how long the window still runs.
	Left time.Duration
}

// maxAuthSubject is the longest subject stored as given; longer ones (and
// ones PostgreSQL text cannot hold) are stored as their SHA-256, so an
// attacker-chosen access key ID can neither fail the batch nor bloat the
// table.
const maxAuthSubject = 200

// clockMicros is the database's clock in unix microseconds.
const clockMicros = `(extract(epoch FROM clock_timestamp()) * 1000000)::bigint`

// AddAuthFailures adds add[subject] failures to each subject, in one
// statement, and returns each subject's count in its current window: a
// subject's window starts at its first failure after the previous one
// (of length window) ended. Rows are written in subject order, so
// concurrent batches from several replicas do not deadlock.
func (s *Store) AddAuthFailures(ctx context.Context, window time.Duration, add map[string]int) (map[string]AuthFailureCount, error) {
	if window <= 0 {
		return nil, fmt.Errorf("postgres: add auth failures: window %v", window)
	}
	stored := make(map[string]string, len(add)) // stored subject -> given
	var subjects []string
	for given := range add {
		k := authSubject(given)
		if _, dup := stored[k]; !dup {
			subjects = append(subjects, k)
		}
		stored[k] = given
	}
	slices.Sort(subjects)
	counts := make([]int64, len(subjects))
	for i, k := range subjects {
		counts[i] = int64(add[stored[k]])
	}
	rows, err := s.pool.Query(ctx, `WITH clock AS (SELECT `+clockMicros+` AS t)
		INSERT INTO auth_failures AS f (subject, window_start, failures)
		SELECT a.subject, clock.t, a.n FROM unnest($1::text[], $2::bigint[]) AS a (subject, n), clock
		ORDER BY a.subject
		ON CONFLICT (subject) DO UPDATE SET
			window_start = CASE WHEN f.window_start + $3 <= excluded.window_start THEN excluded.window_start ELSE f.window_start END,
			failures = CASE WHEN f.window_start + $3 <= excluded.window_start THEN excluded.failures ELSE f.failures + excluded.failures END
		RETURNING f.subject, f.failures, f.window_start + $3 - (SELECT t FROM clock)`,
		subjects, counts, window.Microseconds())
	if err != nil {
		return nil, fmt.Errorf("postgres: add auth failures: %w", err)
	}
	out := make(map[string]AuthFailureCount, len(subjects))
	var (
		k       string
		n, left int64
	)
	if _, err := pgx.ForEachRow(rows, []any{&k, &n, &left}, func() error {
		out[stored[k]] = AuthFailureCount{Failures: n, Left: time.Duration(max(left, 0)) * time.Microsecond}
		return nil
	}); err != nil {
		return nil, fmt.Errorf("postgres: add auth failures: %w", err)
	}
	return out, nil
}

// DeleteAuthFailures deletes the rows whose window started more than
// olderThan ago (pass at least the window: a row still counting must
// stay) and returns how many it deleted.
func (s *Store) DeleteAuthFailures(ctx context.Context, olderThan time.Duration) (int64, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM auth_failures WHERE window_start < `+clockMicros+` - $1`, olderThan.Microseconds())
	if err != nil {
		return 0, fmt.Errorf("postgres: delete auth failures: %w", err)
	}
	return tag.RowsAffected(), nil
}

// authSubject is the form of subject the table keeps.
func authSubject(subject string) string {
	if len(subject) <= maxAuthSubject && utf8.ValidString(subject) && !strings.ContainsRune(subject, 0) {
		return subject
	}
	sum := sha256.Sum256([]byte(subject))
	return "sha256:" + hex.EncodeToString(sum[:])
}
