#!/usr/bin/env bash
# e2e.sh runs the end-to-end tests (test/e2e, build tag e2e) against the
# real coffer binary, docker, skopeo and go-containerregistry.
#
#   scripts/e2e.sh [go test flags, e.g. -run TestSkopeo]
#
# If no docker daemon answers, it starts a private one with
# scripts/dockerd.sh and stops it afterwards. The verbose test log is also
# written to test-reports/e2e.log.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

for tool in docker dockerd skopeo; do
	command -v "$tool" >/dev/null 2>&1 || die "$tool not found: run scripts/deps.sh as root (installs docker.io and skopeo)"
done

started=""
if ! timeout 10 docker info >/dev/null 2>&1; then
	env=$("$ROOT/scripts/dockerd.sh" start)
	eval "$env"
	started=1
fi
cleanup() {
	local rc=$?
	[ -z "$started" ] || "$ROOT/scripts/dockerd.sh" stop || true
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mkdir -p "$ROOT/test-reports"
log "e2e: DOCKER_HOST=${DOCKER_HOST:-<default>}"
rc=0
timed "go test -tags e2e" go test -tags e2e -count=1 -timeout 20m -v "$@" ./test/e2e/... \
	>"$ROOT/test-reports/e2e.log" 2>&1 || rc=$?
if [ "$rc" -ne 0 ]; then
	cat "$ROOT/test-reports/e2e.log"
	log "e2e: FAILED (exit $rc); log above and in test-reports/e2e.log"
	exit "$rc"
fi
# On success the whole log is long (every subtest): show results and metrics.
grep -E '^(--- |ok |PASS$)|_test\.go:[0-9]+:' "$ROOT/test-reports/e2e.log" | cut -c1-400 || true
log "e2e: passed; full log: test-reports/e2e.log"
