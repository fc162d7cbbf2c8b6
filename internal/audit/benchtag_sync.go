//go:build !coffer_bench_nosync

package audit

// skipSync is false in every build but the benchmark's one that measures
// what the trail's disk syncs cost (benchtag_nosync.go).
const skipSync = false
