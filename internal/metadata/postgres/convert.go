package postgres

import (
	"strings"
	"time"

	"github.com/cofferhq/coffer/internal/metadata/sqlstore"
)

// Timestamps are BIGINT unix microseconds UTC, as in SQLite. The zero time
// round-trips (its UnixMicro is a valid int64), so NULL is used only where
// "never" is a meaningful state (last_pulled_at).

func micros(t time.Time) int64 { return t.UnixMicro() }

func fromMicros(v int64) time.Time { return time.UnixMicro(v).UTC() }

func nullMicros(t time.Time) *int64 {
	if t.IsZero() {
		return nil
	}
	v := t.UnixMicro()
	return &v
}

func fromNullMicros(v *int64) time.Time {
	if v == nil {
		return time.Time{}
	}
	return fromMicros(*v)
}

func nullString(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// jsonMap encodes annotations; an empty map is stored as NULL.
func jsonMap(m map[string]string) (*string, error) {
	s, err := sqlstore.EncodeAnnotations(m)
	return nullString(s), err
}

// parseMap decodes annotations; NULL or an empty object decodes as nil.
func parseMap(s *string) (map[string]string, error) {
	if s == nil {
		return nil, nil
	}
	return sqlstore.DecodeAnnotations(*s)
}

func nowMicros() int64 { return time.Now().UnixMicro() }

// sqlLimit maps the contract's "limit <= 0 means no limit" to a LIMIT
// parameter: LIMIT NULL is no limit in PostgreSQL.
func sqlLimit(limit int) *int64 {
	if limit <= 0 {
		return nil
	}
	v := int64(limit)
	return &v
}

// pageStart maps a paging bound to one PostgreSQL can bind. Text there
// cannot hold NUL, yet a caller may page with "last + \x00" (the byte-wise
// successor of last). No stored value contains NUL, so for any stored d and
// a bound p + "\x00" + rest, both d >= bound and d > bound hold exactly
// when d > p: pageStart returns p and strict = true (use > instead of >=).
// Without NUL it returns the bound unchanged and strict = false.
func pageStart(bound string) (string, bool) {
	if i := strings.IndexByte(bound, 0); i >= 0 {
		return bound[:i], true
	}
	return bound, false
}
