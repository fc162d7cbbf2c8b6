package postgres

import (
	"context"
	"fmt"
	"regexp"

	"github.com/jackc/pgx/v5"
)

// A counter is a PostgreSQL sequence in the store's schema
// (coffer_counter_<name>, created on first use). Sequences are outside
// transactions: a Tick is visible to every session's next Count at once,
// and ticks from many sessions never wait for each other. Replicas use one
// as a fence: a writer ticks after its write and before it answers, and a
// reader that sees a new count knows that its caches may be stale, with no
// delivery delay (notifications, by contrast, arrive asynchronously).

// counterName is what a counter may be called.
var counterName = regexp.MustCompile(`^[a-z][a-z0-9_]{0,39}$`)

// codeUndefinedTable is undefined_table; codeDuplicateTable duplicate_table.
const (
	codeUndefinedTable = "42P01"
	codeDuplicateTable = "42P07"
)

// Tick advances the counter name by at least one.
func (s *Store) Tick(ctx context.Context, name string) error {
	seq, err := s.counter(name)
	if err != nil {
		return err
	}
	return s.onCounter(ctx, seq, func() error {
		_, err := s.pool.Exec(ctx, `SELECT nextval($1::regclass)`, seq.Sanitize())
		return err
	})
}

// Count returns the counter name: 0 before its first Tick, and then a
// value that changes with every Tick.
func (s *Store) Count(ctx context.Context, name string) (int64, error) {
	seq, err := s.counter(name)
	if err != nil {
		return 0, err
	}
	var n int64
	err = s.onCounter(ctx, seq, func() error {
		var called bool
		if err := s.pool.QueryRow(ctx, `SELECT last_value, is_called FROM `+seq.Sanitize()).Scan(&n, &called); err != nil {
			return err
		}
		if !called {
			n = 0
		}
		return nil
	})
	return n, err
}

func (s *Store) counter(name string) (pgx.Identifier, error) {
	if !counterName.MatchString(name) {
		return nil, fmt.Errorf("postgres: counter name %q is not [a-z][a-z0-9_]*", name)
	}
	return pgx.Identifier{s.schema, "coffer_counter_" + name}, nil
}

// onCounter runs op, creating the sequence and running op again if it
// does not exist yet.
func (s *Store) onCounter(ctx context.Context, seq pgx.Identifier, op func() error) error {
	err := op()
	if pgCode(err) == codeUndefinedTable {
		_, cerr := s.pool.Exec(ctx, `CREATE SEQUENCE IF NOT EXISTS `+seq.Sanitize())
		// Concurrent creators: IF NOT EXISTS is not atomic.
		if c := pgCode(cerr); cerr != nil && c != codeUnique && c != codeDuplicateTable {
			return fmt.Errorf("postgres: create counter %s: %w", seq.Sanitize(), cerr)
		}
		err = op()
	}
	if err != nil {
		return fmt.Errorf("postgres: counter %s: %w", seq.Sanitize(), err)
	}
	return nil
}
