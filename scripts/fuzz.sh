#!/usr/bin/env bash
# fuzz.sh runs every Fuzz* target in the module for a short time each.
#
#   scripts/fuzz.sh [FUZZTIME]     default 10s per target
#
# Targets are found with `go test -list '^Fuzz'` (so build tags and
# _test.go files are honoured); each runs alone, since -fuzz takes one
# target in one package. A crasher is written to the package's
# testdata/fuzz/ by go test: commit it with the fix.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

FUZZTIME=${1:-${FUZZTIME:-10s}}

list_targets() {
	local out rc=0 names=() line
	out=$(go test -list '^Fuzz' ./... 2>&1) || rc=$?
	if [ "$rc" -ne 0 ]; then
		printf '%s\n' "$out" >&2
		die "go test -list failed (exit $rc): the tree does not build"
	fi
	# Output: target names, then "ok  <package>  <time>" for their package.
	while IFS= read -r line; do
		case $line in
		Fuzz*) names+=("$line") ;;
		ok*)
			local pkg
			pkg=$(awk '{ print $2 }' <<<"$line")
			for n in "${names[@]}"; do echo "$pkg $n"; done
			names=()
			;;
		esac
	done <<<"$out"
}

fuzz_one() {
	# sh -c so that only go test's output goes to the log, not timed's line.
	# shellcheck disable=SC2016 # expanded by sh -c
	timed "fuzz ${1#github.com/cofferhq/coffer/}.$2" sh -c '"$@" >"$0" 2>&1' "$TOOLS/fuzz.log" \
		go test -run '^$' -fuzz "^${2}\$" -fuzztime "$FUZZTIME" "$1"
}

# inconclusive_retry reruns a target once when its run ended with the fuzz
# engine's own "context deadline exceeded" (a worker still busy when the
# time budget ran out on a loaded machine) and no failing input was found.
# A crasher, a second timeout or any other failure stays a failure.
inconclusive_retry() {
	grep -q 'context deadline exceeded' "$TOOLS/fuzz.log" || return 1
	grep -q 'Failing input written to' "$TOOLS/fuzz.log" && return 1
	log "fuzz: $1.$2 timed out without a finding; running it once more"
	fuzz_one "$1" "$2"
}

main() {
	local targets pkg name rc=0 n=0 failed=()
	targets=$(list_targets) || exit 1
	if [ -z "$targets" ]; then
		log "fuzz: no Fuzz targets found"
		return 0
	fi
	log "fuzz: $(wc -l <<<"$targets") targets, $FUZZTIME each"
	while read -r pkg name; do
		n=$((n + 1))
		if ! fuzz_one "$pkg" "$name" && ! inconclusive_retry "$pkg" "$name"; then
			cat "$TOOLS/fuzz.log" >&2
			failed+=("$pkg.$name")
			rc=1
		fi
	done <<<"$targets"
	if [ "$rc" -ne 0 ]; then
		log "fuzz: ${#failed[@]} of $n targets failed: ${failed[*]}"
	else
		log "fuzz: all $n targets passed"
	fi
	return "$rc"
}

mkdir -p "$TOOLS"
rc=0
main || rc=$?
total "scripts/fuzz.sh"
exit "$rc"
