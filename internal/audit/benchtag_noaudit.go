//go:build coffer_bench_noaudit

package audit

// recordsNothing is set in a build for benchmarks only (go build -tags
// coffer_bench_noaudit), which measures what the trail costs: Record
// returns at once and nothing of the requests is recorded.
const recordsNothing = true
