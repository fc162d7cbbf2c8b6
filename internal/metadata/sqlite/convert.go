package sqlite

import (
	"database/sql"
	"encoding/json"
	"fmt"
	"time"
)

// scanner is what *sql.Row and *sql.Rows share.
type scanner interface {
	Scan(dest ...any) error
}

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

// jsonStrings encodes a string list; nil and empty both become "[]".
func jsonStrings(v []string) (string, error) {
	if len(v) == 0 {
		return "[]", nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return "", fmt.Errorf("encode string list: %w", err)
	}
	return string(b), nil
}

// parseStrings decodes a string list; an empty list decodes as nil.
func parseStrings(s string) ([]string, error) {
	var v []string
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		return nil, fmt.Errorf("decode string list: %w", err)
	}
	if len(v) == 0 {
		return nil, nil
	}
	return v, nil
}

// jsonMap encodes annotations; an empty map is stored as NULL.
func jsonMap(m map[string]string) (sql.NullString, error) {
	if len(m) == 0 {
		return sql.NullString{}, nil
	}
	b, err := json.Marshal(m)
	if err != nil {
		return sql.NullString{}, fmt.Errorf("encode annotations: %w", err)
	}
	return sql.NullString{String: string(b), Valid: true}, nil
}

// parseMap decodes annotations; NULL or an empty object decodes as nil.
func parseMap(s sql.NullString) (map[string]string, error) {
	if !s.Valid {
		return nil, nil
	}
	var m map[string]string
	if err := json.Unmarshal([]byte(s.String), &m); err != nil {
		return nil, fmt.Errorf("decode annotations: %w", err)
	}
	if len(m) == 0 {
		return nil, nil
	}
	return m, nil
}

func nowMicros() int64 { return time.Now().UnixMicro() }
