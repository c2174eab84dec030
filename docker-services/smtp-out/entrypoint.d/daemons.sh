# shellcheck shell=bash disable=SC2034,SC2153 # the stages share their variables (entrypoint.sh sources them all)
# Stage 8, the daemons started before Postfix: busybox syslogd (OpenDKIM logs only through
# syslog) and OpenDKIM, waited for (bounded) until its milter socket listens. Needs busybox and
# opendkim (tests/docker/test_entrypoint_stages.py).

# OpenDKIM logs only through syslog; relay /dev/log to stdout, next to Postfix's lines.
start_log_relay() {
  rm -f /dev/log
  busybox syslogd -n -S -O - &
  local deadline=$((SECONDS + 5))
  until [ -S /dev/log ]; do
    [ "$SECONDS" -lt "$deadline" ] || fail "/dev/log: syslog relay for OpenDKIM did not start"
    sleep 0.01
  done
}

start_opendkim() {
  rm -f "$DKIM_PID_DIR/opendkim.pid"
  log "Starting opendkim"
  opendkim -x "$DKIM_RUN/opendkim.conf" || fail "$DKIM_RUN/opendkim.conf: opendkim did not start"
  local deadline=$((SECONDS + MILTER_WAIT_SECONDS))
  until unix_listening "$MILTER_SOCKET"; do
    [ "$SECONDS" -lt "$deadline" ] \
      || fail "opendkim did not listen on $MILTER_SOCKET within ${MILTER_WAIT_SECONDS}s (SMTP_OUT_MILTER_WAIT_SECONDS)"
    sleep 0.01
  done
  log "opendkim listens on $MILTER_SOCKET (Postfix: $MILTER)"
}
