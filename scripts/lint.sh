#!/usr/bin/env bash
# lint.sh checks formatting and runs the linters.
#
#   scripts/lint.sh [fmt] [vet] [staticcheck]     default: all three
#
# staticcheck is installed into .tools/bin at the version pinned in
# scripts/lib.sh. Every step runs; the exit status is non-zero if any failed.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

steps=("$@")
[ ${#steps[@]} -gt 0 ] || steps=(fmt vet staticcheck)
rc=0
for step in "${steps[@]}"; do
	case $step in
	fmt)
		# All Go files but tools and testdata (which may hold odd code on purpose).
		bad=$(find . \( -name .tools -o -name .git -o -name testdata -o -name vendor \) -prune \
			-o -name '*.go' -type f -print0 | xargs -0 -r gofmt -l)
		if [ -n "$bad" ]; then
			log "gofmt: these files need formatting (gofmt -w FILE):"
			printf '  %s\n' "$bad" >&2
			rc=1
		else
			log "gofmt: clean"
		fi
		;;
	vet)
		# The e2e tests are behind a build tag: vet them as well.
		timed "go vet" go vet ./... || rc=1
		timed "go vet -tags e2e" go vet -tags e2e ./test/e2e/... || rc=1
		;;
	staticcheck)
		if "$ROOT/scripts/deps.sh" staticcheck; then
			timed "staticcheck" staticcheck ./... || rc=1
			timed "staticcheck -tags e2e" staticcheck -tags e2e ./test/e2e/... || rc=1
		else
			rc=1
		fi
		;;
	*) die "unknown lint step $step (want fmt, vet or staticcheck)" ;;
	esac
done
if [ "$rc" -eq 0 ]; then log "lint: ${steps[*]}: all clean"; else log "lint: FAILED"; fi
exit "$rc"
