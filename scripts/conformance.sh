#!/usr/bin/env bash
# conformance.sh runs the OCI distribution-spec conformance suite (all four
# workflows: pull, push, content discovery, content management) against a
# fresh coffer built from this tree, prints the spec counts, and exits
# non-zero if any spec failed.
#
#   scripts/conformance.sh                  build, start coffer, run, stop
#   scripts/conformance.sh --build-only     just build .tools/conformance.test
#   OCI_ROOT_URL=http://127.0.0.1:5000 scripts/conformance.sh
#                                           run against a registry already
#                                           running there (e.g. a peer)
#
# coffer runs on a free 127.0.0.1 port with --create-on-push and a temp
# data dir, and is stopped by its PID. junit.xml, report.html and the logs
# are copied to test-reports/conformance/.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"

if [ "${1:-}" = --build-only ]; then
	exec "$ROOT/scripts/deps.sh" conformance
fi
"$ROOT/scripts/deps.sh" conformance

WORK=$(mktemp -d /tmp/coffer-conformance.XXXXXX)
REPORTS="$ROOT/test-reports/conformance"
COFFER_PID=""

cleanup() {
	local rc=$? i
	if [ -n "$COFFER_PID" ] && kill -0 "$COFFER_PID" 2>/dev/null; then
		kill -TERM "$COFFER_PID" 2>/dev/null || true
		for ((i = 0; i < 150; i++)); do
			kill -0 "$COFFER_PID" 2>/dev/null || break
			sleep 0.1
		done
		if kill -0 "$COFFER_PID" 2>/dev/null; then
			log "coffer (pid $COFFER_PID) ignored SIGTERM for 15s; sending SIGKILL"
			kill -KILL "$COFFER_PID" 2>/dev/null || true
		fi
		wait "$COFFER_PID" 2>/dev/null || true
	fi
	mkdir -p "$REPORTS"
	cp -f "$WORK"/report/junit.xml "$WORK"/report/report.html "$WORK"/*.log "$REPORTS"/ 2>/dev/null || true
	rm -rf "$WORK"
	total "scripts/conformance.sh"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# http_status URL prints the status code of a GET, using only bash.
http_status() {
	local host=${1#http://} path
	path=/${host#*/}
	host=${host%%/*}
	(
		exec 3<>"/dev/tcp/${host%:*}/${host##*:}" || exit 1
		printf 'GET %s HTTP/1.0\r\nHost: %s\r\n\r\n' "$path" "$host" >&3
		read -r -t 5 _ code _ <&3 && echo "$code"
	) 2>/dev/null || echo 000
}

start_coffer() {
	local port i
	timed "build coffer" go build -o "$WORK/coffer" "$ROOT/cmd/coffer"
	port=$(free_port)
	mkdir -p "$WORK/data"
	COFFER_ADMIN_ACCESS_KEY_ID=$ADMIN_KEY_ID COFFER_ADMIN_SECRET_ACCESS_KEY=$ADMIN_SECRET \
		"$WORK/coffer" serve --listen "127.0.0.1:$port" --data "$WORK/data" --create-on-push \
		>"$WORK/coffer.log" 2>&1 </dev/null &
	COFFER_PID=$!
	OCI_ROOT_URL="http://127.0.0.1:$port"
	for ((i = 0; i < 300; i++)); do
		kill -0 "$COFFER_PID" 2>/dev/null || {
			tail -n 40 "$WORK/coffer.log" >&2
			die "coffer exited during start-up (log above)"
		}
		[ "$(http_status "$OCI_ROOT_URL/readyz")" = 200 ] && {
			log "coffer ready on $OCI_ROOT_URL (pid $COFFER_PID)"
			login
			return 0
		}
		sleep 0.1
	done
	tail -n 40 "$WORK/coffer.log" >&2
	die "coffer not ready (GET /readyz) within 30s"
}

# summary prints the counts (and each failure) from the junit report, or
# from the suite's own summary line if python3 is missing. It prints
# "FAILED=<n>" last.
summary() {
	local junit="$WORK/report/junit.xml"
	if [ -f "$junit" ] && command -v python3 >/dev/null 2>&1; then
		python3 - "$junit" <<'PY'
import sys, xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()
cases = root.iter("testcase")
passed = failed = skipped = 0
failures = []
for c in cases:
    node = c.get("name") or ""
    bad = c.find("failure") is not None or c.find("error") is not None
    # Only [It] nodes are specs; suite nodes (e.g. [ReportAfterSuite])
    # count only if they failed.
    if not node.startswith("[It]") and not bad:
        continue
    if c.find("skipped") is not None:
        skipped += 1
    elif c.find("failure") is not None or c.find("error") is not None:
        failed += 1
        f = c.find("failure") if c.find("failure") is not None else c.find("error")
        msg = " ".join((f.get("message") or "").split())
        where = [l.strip() for l in (f.text or "").splitlines() if l.strip().startswith("In [")]
        failures.append((node, msg, where[:1]))
    else:
        passed += 1
print(f"conformance: {passed} passed, {failed} failed, {skipped} skipped ({passed + failed + skipped} specs)")
for name, msg, detail in failures:
    print(f"  FAIL {name}")
    if msg:
        print(f"       {msg}")
    for line in detail:
        print(f"       {line}")
print(f"FAILED={failed}")
PY
	else
		local line
		line=$(grep -E '[0-9]+ Passed \| [0-9]+ Failed' "$WORK/conformance.log" | tail -n 1 || true)
		[ -n "$line" ] || {
			echo "conformance: no summary found (see $REPORTS/conformance.log)"
			echo "FAILED=unknown"
			return
		}
		echo "conformance: $line"
		echo "FAILED=$(sed -E 's/.*[^0-9]([0-9]+) Failed.*/\1/' <<<"$line")"
	fi
}

# The suite runs authenticated, as docker does: the password comes from the
# real `aws ecr get-login-password` (issue #3), the suite sends it as Basic
# AWS:<token> after the registry's 401 challenge.
ADMIN_KEY_ID=AKIACONFORMANCE00001
ADMIN_SECRET=conformance-admin-secret-0123456789
login() {
	command -v aws >/dev/null || die "the aws CLI is needed for get-login-password"
	OCI_USERNAME=AWS
	OCI_PASSWORD=$(AWS_ACCESS_KEY_ID=$ADMIN_KEY_ID AWS_SECRET_ACCESS_KEY=$ADMIN_SECRET AWS_DEFAULT_REGION=us-east-1 \
		AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null \
		aws ecr get-login-password --endpoint-url "$OCI_ROOT_URL") || die "aws ecr get-login-password failed"
	[ -n "$OCI_PASSWORD" ] || die "aws ecr get-login-password printed nothing"
	log "logged in with aws ecr get-login-password"
}

main() {
	if [ -n "${OCI_ROOT_URL:-}" ]; then
		log "using the registry at $OCI_ROOT_URL (OCI_ROOT_URL is set)"
	else
		start_coffer
	fi
	mkdir -p "$WORK/report"
	local rc=0
	# Namespaces follow ECR's repository grammar (lowercase segments).
	(cd "$WORK/report" && env OCI_ROOT_URL="$OCI_ROOT_URL" \
		OCI_USERNAME="${OCI_USERNAME:-}" OCI_PASSWORD="${OCI_PASSWORD:-}" \
		OCI_NAMESPACE="${OCI_NAMESPACE:-conformance/a}" \
		OCI_CROSSMOUNT_NAMESPACE="${OCI_CROSSMOUNT_NAMESPACE:-conformance/b}" \
		OCI_TEST_PULL=1 OCI_TEST_PUSH=1 OCI_TEST_CONTENT_DISCOVERY=1 OCI_TEST_CONTENT_MANAGEMENT=1 \
		OCI_HIDE_SKIPPED_WORKFLOWS=0 OCI_DEBUG="${OCI_DEBUG:-0}" \
		OCI_REPORT_DIR="$WORK/report" \
		timeout 600 "$TOOLS/conformance.test" -test.timeout 9m -ginkgo.no-color) \
		>"$WORK/conformance.log" 2>&1 || rc=$?
	local out failed
	out=$(summary)
	failed=$(sed -n 's/^FAILED=//p' <<<"$out")
	grep -v '^FAILED=' <<<"$out"
	grep -E '^Ran [0-9]+ of [0-9]+ Specs|[0-9]+ Passed \| [0-9]+ Failed' "$WORK/conformance.log" | sed 's/^/suite: /' || true
	log "reports: $REPORTS/ (junit.xml, report.html, conformance.log${COFFER_PID:+, coffer.log})"
	if [ "$failed" != 0 ] || [ "$rc" -ne 0 ]; then
		[ "$failed" != 0 ] || tail -n 40 "$WORK/conformance.log" >&2
		die "conformance suite failed (exit $rc, $failed failed specs)"
	fi
}

main
