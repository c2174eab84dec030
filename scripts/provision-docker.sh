#!/usr/bin/env bash
# Make a Docker engine available on a bare Debian machine.
#
# - Installs Debian's docker-compose (v1) when it is missing: production is defined by a compose
#   file, and the rollout tasks and their tests drive it.
# - Starts nothing when `docker info` already answers.
# - Installs Debian's docker.io (and iptables) when dockerd is missing.
# - Starts dockerd in the background, waits (bounded) until it answers, and records
#   its PID in $DOCKERD_PIDFILE so that the caller (.ci/run) can stop what it started.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh source-path=SCRIPTDIR
. "$here/lib.sh"

DOCKERD_PIDFILE="${DOCKERD_PIDFILE:-/tmp/smtp-out-dockerd.pid}"
DOCKERD_LOG="${DOCKERD_LOG:-/tmp/smtp-out-dockerd.log}"
DOCKERD_WAIT_SECONDS="${DOCKERD_WAIT_SECONDS:-60}"

install_debian_packages() {
  [ "$(id -u)" -eq 0 ] || die "$* not installed and this is not root: install Debian's $*"
  log "Installing Debian's $*"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

command -v docker-compose >/dev/null 2>&1 || install_debian_packages docker-compose

if docker_ready; then
  log "Docker engine already answers; nothing to start"
  exit 0
fi

command -v dockerd >/dev/null 2>&1 || install_debian_packages docker.io iptables ca-certificates
command -v docker >/dev/null 2>&1 || die "docker CLI missing after install"

log "Starting dockerd (log: $DOCKERD_LOG)"
# dockerd outlives this script: it must not inherit a descriptor of the caller's beyond the
# standard three (a lock held with `flock`, say, would stay held for as long as dockerd runs).
(
  for fd in /proc/self/fd/*; do
    fd=${fd##*/}
    if [ "$fd" -gt 2 ]; then eval "exec $fd>&-"; fi
  done 2>/dev/null
  exec nohup dockerd >"$DOCKERD_LOG" 2>&1 </dev/null
) &
echo $! >"$DOCKERD_PIDFILE"

deadline=$((SECONDS + DOCKERD_WAIT_SECONDS))
until docker_ready; do
  if ! kill -0 "$(cat "$DOCKERD_PIDFILE")" 2>/dev/null; then
    tail -n 20 "$DOCKERD_LOG" >&2 || true
    die "dockerd exited during start-up; see $DOCKERD_LOG"
  fi
  [ "$SECONDS" -lt "$deadline" ] || die "dockerd did not answer within ${DOCKERD_WAIT_SECONDS}s; see $DOCKERD_LOG"
  sleep 0.5
done
log "Docker engine is up (server $(docker version --format '{{.Server.Version}}'))"
