#!/usr/bin/env bash
# vuln.sh runs govulncheck over the module. It needs the Go vulnerability
# database (https://vuln.go.dev, or a mirror named by GOVULNDB); where that
# is unreachable it says so and fails, rather than passing unchecked.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

"$ROOT/scripts/deps.sh" govulncheck
db=${GOVULNDB:-https://vuln.go.dev}
case $db in
http://* | https://*)
	if ! (command -v curl >/dev/null && curl -fsS --max-time 10 -o /dev/null "$db/index/db.json.gz") 2>/dev/null; then
		die "make vuln: govulncheck $GOVULNCHECK_VERSION is installed, but the vulnerability database $db is unreachable from here (this network reaches only the Go module proxy, Debian and npm). Run it where $db is reachable, or set GOVULNDB to a reachable mirror (or a file:// copy)."
	fi
	;;
esac
timed "govulncheck" govulncheck -db "$db" ./...
