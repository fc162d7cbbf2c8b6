package sqlite

import (
	"slices"
	"strings"
	"testing"
)

// TestImagePagePlans checks that every ListImages page is a keyset range
// scan of a covering index, on a store without statistics (as in
// production): no table scanned, no sort, no automatic index (SQLite 3.54
// picked a scan of the repository's manifests probing an automatic index
// of the page for a TAGGED page, before the CROSS JOIN).
func TestImagePagePlans(t *testing.T) {
	s, _ := openTemp(t)
	ctx := t.Context()
	for _, tc := range []struct {
		name  string
		query string
		args  []any
		scans []string // steps "SCAN x" allowed: subqueries, not tables
		start string   // the range scan the page must start with
	}{
		{"ANY", qListImagesAny, []any{"r", "d", 10}, nil, "SEARCH m USING COVERING INDEX manifests_images (repo_id=? AND digest>?)"},
		{"TAGGED", qListImagesTagged, []any{"r", "d", 10}, []string{"SCAN d"}, "SEARCH x USING COVERING INDEX tags_digest (repo_id=? AND digest>?)"},
		{"UNTAGGED", qListImagesUntagged, []any{"r", "d", 100, 10}, []string{"SCAN w", "SCAN m"}, "SEARCH x USING COVERING INDEX manifests_images (repo_id=? AND digest>?)"},
		{"window", qImageWindow, []any{"r", "d", 100}, []string{"SCAN (subquery-1)"}, "SEARCH manifests USING COVERING INDEX sqlite_autoindex_manifests_1 (repo_id=? AND digest>?)"},
	} {
		rows, err := s.r.QueryContext(ctx, "EXPLAIN QUERY PLAN "+tc.query, tc.args...)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		var plan []string
		for rows.Next() {
			var id, parent, notused int
			var detail string
			if err := rows.Scan(&id, &parent, &notused, &detail); err != nil {
				t.Fatal(err)
			}
			plan = append(plan, detail)
		}
		rows.Close()
		if !slices.Contains(plan, tc.start) {
			t.Errorf("%s: no step %q in plan %q", tc.name, tc.start, plan)
		}
		for _, step := range plan {
			if (strings.HasPrefix(step, "SCAN") && !slices.Contains(tc.scans, step)) ||
				strings.Contains(step, "TEMP B-TREE") || strings.Contains(step, "AUTOMATIC") ||
				(strings.HasPrefix(step, "SEARCH") && !strings.Contains(step, "COVERING INDEX")) {
				t.Errorf("%s: plan step %q (plan %q)", tc.name, step, plan)
			}
		}
	}
}
