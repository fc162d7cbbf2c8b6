#!/usr/bin/env bash
# test.sh is `make test`: every test Coffer has, in one run.
#
#   deps         scripts/deps.sh (installs missing packages when root;
#                otherwise fails naming what to install)
#   gofmt, vet   scripts/lint.sh fmt vet
#   race         go test -race ./...
#   dockerd      a private docker daemon (scripts/dockerd.sh), stopped on exit
#   e2e          go test -tags e2e ./test/e2e/... (scripts/e2e.sh)
#   conformance  OCI distribution-spec suite (scripts/conformance.sh)
#   fuzz         every Fuzz target for FUZZTIME (default 5s) (scripts/fuzz.sh)
#   bench-smoke  the benchmark harness on small data (go run ./bench -smoke)
#   bench-list   the listing benchmark at 10,000 tags (go run ./bench -listing -smoke)
#   bench-replicas  one replica against two on PostgreSQL + S3, small data
#                (go run ./bench -replicas -smoke)
#
# Every stage after deps runs even if an earlier one failed, so one run
# shows every problem; the exit status is non-zero if any stage failed.
# Each stage's time is printed, and a summary at the end. Budget: well
# under 30 minutes on 2 cores.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

FUZZTIME=${FUZZTIME:-5s}
results=()
failed=0

# stage NAME CMD...: runs CMD (a program or script, never a shell function)
# and records its result and time.
stage() {
	local name=$1 start rc=0 ms
	shift
	printf '\n===== %s: %s\n' "$name" "$*" >&2
	start=${EPOCHREALTIME/./}
	"$@" || rc=$?
	ms=$(((${EPOCHREALTIME/./} - start) / 1000))
	results+=("$(printf '%-12s %-4s %5d.%ds' "$name" "$([ "$rc" -eq 0 ] && echo ok || echo FAIL)" $((ms / 1000)) $((ms % 1000 / 100)))")
	[ "$rc" -eq 0 ] || failed=$((failed + 1))
	return 0
}

summary() {
	local rc=$?
	"$ROOT/scripts/dockerd.sh" stop >/dev/null 2>&1 || true
	printf '\n===== summary\n' >&2
	printf '  %s\n' "${results[@]}" >&2
	total "make test" 2>&1 | sed 's/^/  /' >&2
	if [ "$failed" -gt 0 ] || [ "$rc" -ne 0 ]; then
		log "make test: FAILED ($failed stages)"
		exit 1
	fi
	log "make test: all stages passed"
}
trap summary EXIT
trap 'exit 130' INT TERM

log "make test on $(nproc) cores, $(go version | cut -d' ' -f3), CI=${CI:-}"

stage deps "$ROOT/scripts/deps.sh"
if [ "$failed" -gt 0 ]; then
	log "dependencies missing: nothing else can run"
	exit 1
fi
stage gofmt "$ROOT/scripts/lint.sh" fmt
stage vet "$ROOT/scripts/lint.sh" vet
stage staticcheck "$ROOT/scripts/lint.sh" staticcheck
stage race go test -race -count=1 -timeout 15m ./...

# One daemon for all docker tests; summary() stops it by its PID.
printf '\n===== dockerd: scripts/dockerd.sh start\n' >&2
if env=$("$ROOT/scripts/dockerd.sh" start); then
	eval "$env"
	results+=("$(printf '%-12s %-4s' dockerd ok)")
	stage e2e "$ROOT/scripts/e2e.sh"
else
	results+=("$(printf '%-12s %-4s' dockerd FAIL)" "$(printf '%-12s %-4s (no docker daemon)' e2e FAIL)")
	failed=$((failed + 2))
fi

stage conformance "$ROOT/scripts/conformance.sh"
stage fuzz "$ROOT/scripts/fuzz.sh" "$FUZZTIME"
# The benchmark harness on small data, so it keeps working (issue #10).
stage bench-smoke go run ./bench -smoke
stage bench-list go run ./bench -listing -smoke
stage bench-replicas go run ./bench -replicas -smoke
