package oci

import (
	"errors"
	"strconv"
	"strings"
)

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
