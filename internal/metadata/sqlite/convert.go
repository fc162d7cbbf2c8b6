package sqlite

import (
	"database/sql"
	"time"

	"github.com/cofferhq/coffer/internal/metadata/sqlstore"
)

// scanner is what *sql.Row and *sql.Rows share.
type scanner = sqlstore.Scanner

// Timestamps are INTEGER unix microseconds UTC. The zero time round-trips
// (its UnixMicro is a valid int64), so NULL is used only where "never" is a
// meaningful state (last_pulled_at).

func micros(t time.Time) int64 { return t.UnixMicro() }

func fromMicros(v int64) time.Time { return time.UnixMicro(v).UTC() }

func nullMicros(t time.Time) sql.NullInt64 {
	if t.IsZero() {
		return sql.NullInt64{}
	}
	return sql.NullInt64{Int64: t.UnixMicro(), Valid: true}
}

func fromNullMicros(v sql.NullInt64) time.Time {
	if !v.Valid {
		return time.Time{}
	}
	return fromMicros(v.Int64)
}

func nullString(s string) sql.NullString {
	return sql.NullString{String: s, Valid: s != ""}
}

// jsonMap encodes annotations; an empty map is stored as NULL.
func jsonMap(m map[string]string) (sql.NullString, error) {
	s, err := sqlstore.EncodeAnnotations(m)
	return nullString(s), err
}

// parseMap decodes annotations; NULL or an empty object decodes as nil.
func parseMap(s sql.NullString) (map[string]string, error) {
	if !s.Valid {
		return nil, nil
	}
	return sqlstore.DecodeAnnotations(s.String)
}

func nowMicros() int64 { return time.Now().UnixMicro() }
