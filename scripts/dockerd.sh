#!/usr/bin/env bash
# dockerd.sh starts or stops a Docker daemon private to Coffer's tests.
#
#   eval "$(scripts/dockerd.sh start)"   # prints `export DOCKER_HOST=...`
#   scripts/dockerd.sh stop
#   scripts/dockerd.sh status
#
# start: if a daemon already answers on DOCKER_HOST (or the default socket)
# it is reused and left alone by stop. Otherwise dockerd runs with no
# iptables, no bridge and the vfs storage driver (works in containers
# without privileges for overlay), with its data root, exec root, pidfile
# and unix socket all under one new temp dir, so it cannot collide with
# another daemon. start waits (bounded) until `docker info` answers and
# records the PID in .tools/dockerd.state; stop kills exactly that PID,
# waits for it to exit, and removes the temp dir.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"

STATE="$TOOLS/dockerd.state"
START_TIMEOUT=${DOCKERD_START_TIMEOUT:-60} # seconds
STOP_TIMEOUT=${DOCKERD_STOP_TIMEOUT:-30}   # seconds

answers() { timeout 10 docker info >/dev/null 2>&1; }

start() {
	command -v docker >/dev/null 2>&1 || die "docker client not found: run scripts/deps.sh (as root)"
	if [ -f "$STATE" ]; then
		# shellcheck disable=SC1090
		source "$STATE"
		if [ -n "${DOCKERD_PID:-}" ] && kill -0 "$DOCKERD_PID" 2>/dev/null && DOCKER_HOST=$DOCKER_HOST answers; then
			log "dockerd: ours already running (pid $DOCKERD_PID)"
			echo "export DOCKER_HOST=$DOCKER_HOST"
			return 0
		fi
		rm -f "$STATE"
	fi
	if answers; then
		log "dockerd: reusing the daemon that answers on ${DOCKER_HOST:-the default socket}"
		mkdir -p "$TOOLS"
		printf 'DOCKERD_REUSED=1\nDOCKER_HOST=%q\n' "${DOCKER_HOST:-}" >"$STATE"
		[ -z "${DOCKER_HOST:-}" ] || echo "export DOCKER_HOST=$DOCKER_HOST"
		return 0
	fi
	command -v dockerd >/dev/null 2>&1 || die "dockerd not found: run scripts/deps.sh as root (installs docker.io)"
	[ "$(id -u)" -eq 0 ] || die "dockerd needs root"

	# Short path: unix sockets (ours and containerd's) are limited to 108 bytes.
	local dir sock pid i
	dir=$(mktemp -d /tmp/coffer-dockerd.XXXXXX)
	sock="$dir/docker.sock"
	mkdir -p "$dir/data" "$dir/exec"
	dockerd --iptables=false --ip-masq=false --bridge=none --storage-driver=vfs \
		--data-root "$dir/data" --exec-root "$dir/exec" --pidfile "$dir/dockerd.pid" \
		--host "unix://$sock" >"$dir/dockerd.log" 2>&1 </dev/null &
	pid=$!
	mkdir -p "$TOOLS"
	printf 'DOCKERD_PID=%d\nDOCKERD_DIR=%q\nDOCKER_HOST=%q\n' "$pid" "$dir" "unix://$sock" >"$STATE"
	for ((i = 0; i < START_TIMEOUT * 5; i++)); do
		if ! kill -0 "$pid" 2>/dev/null; then
			tail -n 30 "$dir/dockerd.log" >&2 || true
			rm -f "$STATE"
			die "dockerd exited during start-up (log above, full log in $dir/dockerd.log)"
		fi
		if DOCKER_HOST="unix://$sock" answers; then
			log "dockerd: ready (pid $pid, DOCKER_HOST=unix://$sock, log $dir/dockerd.log)"
			echo "export DOCKER_HOST=unix://$sock"
			return 0
		fi
		sleep 0.2
	done
	tail -n 30 "$dir/dockerd.log" >&2 || true
	stop
	die "dockerd did not answer within ${START_TIMEOUT}s"
}

stop() {
	[ -f "$STATE" ] || {
		log "dockerd: nothing to stop (no $STATE)"
		return 0
	}
	local DOCKERD_PID="" DOCKERD_DIR="" DOCKERD_REUSED="" DOCKER_HOST="" i
	# shellcheck disable=SC1090
	source "$STATE"
	rm -f "$STATE"
	if [ -n "$DOCKERD_REUSED" ]; then
		log "dockerd: left the reused daemon running"
		return 0
	fi
	if [ -n "$DOCKERD_PID" ] && kill -0 "$DOCKERD_PID" 2>/dev/null; then
		kill -TERM "$DOCKERD_PID" 2>/dev/null || true
		for ((i = 0; i < STOP_TIMEOUT * 10; i++)); do
			kill -0 "$DOCKERD_PID" 2>/dev/null || break
			sleep 0.1
		done
		if kill -0 "$DOCKERD_PID" 2>/dev/null; then
			log "dockerd: pid $DOCKERD_PID still alive after ${STOP_TIMEOUT}s, sending SIGKILL"
			kill -KILL "$DOCKERD_PID" 2>/dev/null || true
			sleep 0.5
		fi
		# Reap it if it is our child; otherwise it is already gone.
		wait "$DOCKERD_PID" 2>/dev/null || true
		log "dockerd: stopped (pid $DOCKERD_PID)"
	fi
	if [ -n "$DOCKERD_DIR" ] && [ -d "$DOCKERD_DIR" ]; then
		# Anything dockerd left mounted under its dirs (netns files, shm).
		awk -v d="$DOCKERD_DIR/" 'index($2, d) == 1 { print $2 }' /proc/mounts | sort -r |
			while read -r m; do umount -l "$m" 2>/dev/null || true; done
		rm -rf "$DOCKERD_DIR"
	fi
}

status() {
	if [ -f "$STATE" ]; then cat "$STATE"; else echo "not started by dockerd.sh"; fi
}

case ${1:-} in
start)
	start
	total "dockerd start"
	;;
stop)
	stop
	total "dockerd stop"
	;;
status) status ;;
*) die "usage: $0 start|stop|status" ;;
esac
