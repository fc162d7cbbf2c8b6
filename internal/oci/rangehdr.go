package oci

import (
	"errors"
	"strconv"
	"strings"
)

var errRangeUnsatisfiable = errors.New("range not satisfiable")

// parseRange interprets a Range header for an entity of size bytes. It
// returns ok=false when the whole entity should be served (no header, a
// syntactically invalid one, or several ranges: RFC 9110 lets a server
// ignore those), and errRangeUnsatisfiable for a single range outside it.
func parseRange(h string, size int64) (off, n int64, ok bool, err error) {
	spec, found := strings.CutPrefix(strings.TrimSpace(h), "bytes=")
	if !found || strings.Contains(spec, ",") || len(spec) > 64 {
		return 0, 0, false, nil
	}
	first, last, found := strings.Cut(strings.TrimSpace(spec), "-")
	if !found {
		return 0, 0, false, nil
	}
	switch {
	case first == "": // suffix: the last N bytes
		k, perr := strconv.ParseInt(last, 10, 64)
		if perr != nil || k < 0 {
			return 0, 0, false, nil
		}
		if k == 0 || size == 0 {
			return 0, 0, false, errRangeUnsatisfiable
		}
		if k > size {
			k = size
		}
		return size - k, k, true, nil
	default:
		a, perr := strconv.ParseInt(first, 10, 64)
		if perr != nil || a < 0 {
			return 0, 0, false, nil
		}
		b := size - 1
		if last != "" {
			b, perr = strconv.ParseInt(last, 10, 64)
			if perr != nil || b < a {
				return 0, 0, false, nil
			}
			if b > size-1 {
				b = size - 1
			}
		}
		if a >= size {
			return 0, 0, false, errRangeUnsatisfiable
		}
		return a, b - a + 1, true, nil
	}
}

// parseContentRange parses an upload chunk's Content-Range "start-end"
// (some clients send "bytes start-end"; both are accepted).
func parseContentRange(h string) (start, end int64, err error) {
	s := strings.TrimPrefix(strings.TrimSpace(h), "bytes ")
	s = strings.TrimPrefix(s, "bytes=")
	a, b, found := strings.Cut(s, "-")
	if !found || len(s) > 64 {
		return 0, 0, errors.New("Content-Range must be <start>-<end>")
	}
	start, err1 := strconv.ParseInt(a, 10, 64)
	end, err2 := strconv.ParseInt(b, 10, 64)
	if err1 != nil || err2 != nil || start < 0 || end < start {
		return 0, 0, errors.New("Content-Range must be <start>-<end> with 0 <= start <= end")
	}
	return start, end, nil
}
