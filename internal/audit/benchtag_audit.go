//go:build !coffer_bench_noaudit

package audit

// recordsNothing is false in every build but the benchmark's one that
// measures what the trail costs (benchtag_noaudit.go).
const recordsNothing = false
