#!/usr/bin/env bash
# deps.sh installs what Coffer's tests need, skipping whatever is already
# present, and prints how long each step took. Safe to run again.
#
#   scripts/deps.sh                 apt packages + crane + conformance suite + versitygw
#   scripts/deps.sh apt|crane|conformance|versitygw|staticcheck|govulncheck ...
#
# apt packages (docker.io, skopeo) need root; as another user a missing
# package is an error that names the command to run. Go tools go to
# .tools/bin (GOBIN), never into the project's go.mod.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"

APT_PACKAGES=(docker.io:dockerd skopeo:skopeo curl:curl) # package:command that proves it

deps_apt() {
	local missing=() entry
	for entry in "${APT_PACKAGES[@]}"; do
		command -v "${entry#*:}" >/dev/null 2>&1 || missing+=("${entry%%:*}")
	done
	if [ ${#missing[@]} -eq 0 ]; then
		log "apt: ${APT_PACKAGES[*]%%:*} already installed"
		return 0
	fi
	if [ "$(id -u)" -ne 0 ]; then
		die "missing ${missing[*]}; install as root: apt-get update && apt-get install -y --no-install-recommends ${missing[*]} (or run scripts/deps.sh as root)"
	fi
	export DEBIAN_FRONTEND=noninteractive
	timed "apt-get update" apt-get update -qq
	timed "apt-get install ${missing[*]}" \
		apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
	for entry in "${APT_PACKAGES[@]}"; do
		command -v "${entry#*:}" >/dev/null 2>&1 || die "${entry%%:*} installed but ${entry#*:} is not on PATH"
	done
}

# go_tool NAME MODULE/PATH@VERSION MODULE: installs NAME into .tools/bin
# unless the binary there was already built from MODULE at VERSION.
go_tool() {
	local name=$1 pkg=$2 mod=$3 want=${2##*@} have=""
	if [ -x "$TOOLS_BIN/$name" ]; then
		have=$(go version -m "$TOOLS_BIN/$name" 2>/dev/null | awk -v m="$mod" '$1 == "mod" && $2 == m { print $3 }')
	fi
	if [ "$have" = "$want" ]; then
		log "$name $want already in .tools/bin"
		return 0
	fi
	mkdir -p "$TOOLS_BIN"
	# GOFLAGS is cleared so a caller's -mod=... cannot leak into go install.
	timed "go install $name@$want" env GOBIN="$TOOLS_BIN" GOFLAGS= go install "$pkg"
}

# deps_conformance builds the OCI distribution-spec conformance suite from
# the pinned module in test/conformance into .tools/conformance.test. The
# checksum database has no entry for the pinned version, so its hashes live
# in test/conformance/go.sum; GONOSUMDB is the fallback if that is edited.
deps_conformance() {
	local dir="$ROOT/test/conformance" out="$TOOLS/conformance.test" stamp want
	want=$(cat "$dir/go.mod" "$dir/go.sum" | sha256sum | cut -d' ' -f1)
	stamp="$out.stamp"
	if [ -x "$out" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
		log "conformance.test already built for this test/conformance/go.sum"
		return 0
	fi
	mkdir -p "$TOOLS"
	rm -f "$stamp"
	cd "$dir"
	timed "build conformance.test" env GOFLAGS=-mod=readonly \
		GONOSUMDB="$CONFORMANCE_MODULE" GOWORK=off \
		go test -c -o "$out" "$CONFORMANCE_MODULE"
	cd "$ROOT"
	echo "$want" >"$stamp"
}

main() {
	local steps=("$@") step
	[ ${#steps[@]} -gt 0 ] || steps=(apt crane conformance versitygw)
	command -v go >/dev/null 2>&1 || die "go is not on PATH (Go 1.26 is required)"
	for step in "${steps[@]}"; do
		case $step in
		apt) deps_apt ;;
		crane) go_tool crane "github.com/google/go-containerregistry/cmd/crane@$CRANE_VERSION" github.com/google/go-containerregistry ;;
		conformance) deps_conformance ;;
		# S3 server for internal/storage/s3's tests (~3.5 min cold build).
		versitygw) go_tool versitygw "github.com/versity/versitygw/cmd/versitygw@$VERSITYGW_VERSION" github.com/versity/versitygw ;;
		staticcheck) go_tool staticcheck "honnef.co/go/tools/cmd/staticcheck@$STATICCHECK_VERSION" honnef.co/go/tools ;;
		govulncheck) go_tool govulncheck "golang.org/x/vuln/cmd/govulncheck@$GOVULNCHECK_VERSION" golang.org/x/vuln ;;
		*) die "unknown step $step (want apt, crane, conformance, versitygw, staticcheck or govulncheck)" ;;
		esac
	done
}

main "$@"
total "scripts/deps.sh ${*:-all}"
