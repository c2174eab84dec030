#!/usr/bin/env bash
# Health of smtp-out, quiet by design: reads /proc and main.cf instead of opening an SMTP
# session, so nothing reaches the mail log, and forks nothing. Healthy when the Postfix master
# and OpenDKIM run, something listens on 587 (submission), and the DKIM milter that
# smtpd_milters names accepts connections (its unix socket listens).
#
#   healthcheck                  check once; print "healthy" or "unhealthy: <problems>"
#   healthcheck --watch SECONDS  Docker's HEALTHCHECK (see the Dockerfile): the first passing
#                                check after a start returns at once; later runs keep watching
#                                for SECONDS (once a second, in this process) and return as
#                                soon as a check fails, or with a last full check at the end.
#
# Why --watch: every run Docker starts costs ~40 ms of CPU in dockerd, containerd, the shim and
# runc whatever the command (measured with `sh -c true`), so a run every second would cost ~4%
# of a core; Engine 20.10 has no start interval, so a long --interval would also hold back the
# first "healthy" by that long. Watching in one long run gives both: healthy one --interval
# after the start, a failure reported within a second, and well under 1% of a core.
# Docker's --timeout must exceed SECONDS (a run still watching at the timeout counts as failed).
set -u
here="${BASH_SOURCE[0]%/*}"
[ "$here" != "${BASH_SOURCE[0]}" ] || here=.
# shellcheck source-path=SCRIPTDIR
source "$here/smtp-out-lib.sh"

problems=()

# Fill `problems`; FULL=full also checks the TCP listener (reading /proc/net/tcp costs ~4 ms
# here: the kernel walks its whole connection table), which a watch does only at its end.
check() {
  local milter=""
  problems=()
  running master || problems+=("postfix master not running")
  running opendkim || problems+=("opendkim not running")
  if [ "$1" = full ]; then
    tcp_listening 587 || problems+=("nothing listens on 587")
  fi
  if ! main_cf_value smtpd_milters milter || ! milter_endpoint "$milter"; then
    problems+=("smtpd_milters in $POSTFIX_MAIN_CF names no unix: or inet: milter ('$milter')")
  elif ! milter_listening "$milter"; then
    problems+=("the DKIM milter $milter does not listen ($MILTER_KIND $MILTER_WHERE)")
  fi
  [ "${#problems[@]}" -eq 0 ]
}

report() {
  if [ "${#problems[@]}" -gt 0 ]; then
    printf 'unhealthy: %s\n' "$(IFS=';'; printf '%s' "${problems[*]}")"
    exit 1
  fi
  echo healthy
  exit 0
}

# Wait about a second without forking (`sleep` would cost a fork and an exec every second).
pause() {
  if [ -z "${pace_fd:-}" ]; then
    if [ -p "$HEALTH_PACE" ]; then exec {pace_fd}<>"$HEALTH_PACE"; else sleep 1; return; fi
  fi
  read -r -t 1 -u "$pace_fd" _ || true
}

watch() {
  local seconds="$1" deadline
  [[ "$seconds" =~ ^[0-9]{1,4}$ ]] || { echo "unhealthy: --watch takes whole seconds, not '$seconds'"; exit 2; }
  check full || report
  if [ ! -e "$HEALTH_PASSED" ]; then
    : >"$HEALTH_PASSED" 2>/dev/null || true
    report
  fi
  deadline=$((SECONDS + 10#$seconds))
  while [ "$SECONDS" -lt "$deadline" ]; do
    pause
    check quick || report
  done
  check full
  report
}

case "${1:-}" in
  --watch) watch "${2:-}" ;;
  '') check full; report ;;
  *) echo "usage: healthcheck [--watch SECONDS]" >&2; exit 2 ;;
esac
