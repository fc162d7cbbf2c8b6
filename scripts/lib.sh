# shellcheck shell=bash
# Shared helpers for Coffer's scripts. Source it; do not run it.
#
# Sets ROOT (the repository root), TOOLS (.tools/, ignored by git) and
# TOOLS_BIN, and puts TOOLS_BIN first on PATH.

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TOOLS="$ROOT/.tools"
TOOLS_BIN="$TOOLS/bin"
export PATH="$TOOLS_BIN:$PATH"

# shellcheck disable=SC2034 # used by the scripts that source this file
# Pinned versions (the Go module proxy here serves only some versions:
# check with `go list -m -versions MOD` before changing one).
{
	CRANE_VERSION=v0.22.1
	STATICCHECK_VERSION=v0.8.2
	GOVULNCHECK_VERSION=v1.8.0
	VERSITYGW_VERSION=v1.8.0
	CONFORMANCE_MODULE=github.com/opencontainers/distribution-spec/conformance
}

log() { printf '%s %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# timed NAME CMD...: runs CMD, then prints how long it took (also on
# failure) and returns CMD's status. CMD should be a program, not a shell
# function: bash ignores `set -e` inside a function called as `f || ...`.
timed() {
	local name=$1 start rc=0 ms
	shift
	start=${EPOCHREALTIME/./}
	"$@" || rc=$?
	ms=$(((${EPOCHREALTIME/./} - start) / 1000))
	printf '%s [time] %-44s %4d.%ds%s\n' "$(date -u +%H:%M:%S)" "$name" \
		$((ms / 1000)) $((ms % 1000 / 100)) "$([ "$rc" -eq 0 ] || echo "  (FAILED, exit $rc)")" >&2
	return "$rc"
}

_SCRIPT_START=${EPOCHREALTIME/./}

# total NAME prints how long this script has been running.
total() {
	local ms=$(((${EPOCHREALTIME/./} - _SCRIPT_START) / 1000))
	printf '%s [time] %-44s %4d.%ds\n' "$(date -u +%H:%M:%S)" "$1" $((ms / 1000)) $((ms % 1000 / 100)) >&2
}

# free_port prints a TCP port on 127.0.0.1 that was free a moment ago.
free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}
