//go:build coffer_bench_nosync

package audit

// skipSync is set in a build for benchmarks only (go build -tags
// coffer_bench_nosync), which measures what the trail's disk syncs cost:
// segments are written but never fdatasynced, so nothing is durable
// against a power loss.
const skipSync = true
