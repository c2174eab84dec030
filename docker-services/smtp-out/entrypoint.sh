#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR # the stages and smtp-out-lib.sh, next to this file
# smtp-out entrypoint. As in the official images, only the default command (CMD: postfix
# start-fg) initialises: it configures Postfix and OpenDKIM, then execs Postfix as PID 1. Any
# other command (docker run --rm smtp-out postconf -n) runs as given in the configured image:
# no mounts needed, no daemon started, the queue directory never touched.
#
# Every start does the same work from the same inputs, so a restart (restart: always) ends
# in the same state as the first start. One sourced file per stage (entrypoint.d/):
#   environment   the environment (POSTFIX_*, TZ, SMTP_OUT_*), checked before anything is written;
#   configuration main.cf rebuilt from Debian's stock copy + the image defaults +
#                 main.cf.override + POSTFIX_* variables, validated; the effective values;
#   policy        the override policy: what may not be weakened, what needs an opt-in;
#   tls, dkim     the certificate and the DKIM key; OpenDKIM's runtime configuration;
#   submission    the tables that follow myhostname (submission's From: policy);
#   spool         Postfix's chroot inside the (mounted) queue directory;
#   daemons       the log relay and OpenDKIM, waited for (bounded) until the milter listens.
# Any bad input stops the container with one "[smtp-out] ERROR:" line naming the variable or
# file, and the queue directory is written only after every input was validated.
#
# Paths are variables with the image's defaults (CONF_DIR=/etc/postfix, DKIM_DIR, DKIM_RUN,
# SPOOL, ...: see each stage), so the tests run a stage's functions against a temporary root.
# They are not named POSTFIX_*: that prefix is the operator's, one main.cf parameter each.
set -euo pipefail

SMTP_OUT_HOME="${BASH_SOURCE[0]%/*}"
[ "$SMTP_OUT_HOME" != "${BASH_SOURCE[0]}" ] || SMTP_OUT_HOME=.

log() { printf '[smtp-out] %s\n' "$*" >&2; }
fail() { log "ERROR: $*"; exit 1; }

source "$SMTP_OUT_HOME/smtp-out-lib.sh" # SPOOL, running, unix_listening, ...
source "$SMTP_OUT_HOME/entrypoint.d/environment.sh"
source "$SMTP_OUT_HOME/entrypoint.d/configuration.sh"
source "$SMTP_OUT_HOME/entrypoint.d/tls.sh"
source "$SMTP_OUT_HOME/entrypoint.d/policy.sh"
source "$SMTP_OUT_HOME/entrypoint.d/dkim.sh"
source "$SMTP_OUT_HOME/entrypoint.d/submission.sh"
source "$SMTP_OUT_HOME/entrypoint.d/spool.sh"
source "$SMTP_OUT_HOME/entrypoint.d/daemons.sh"

# main.cf and the generated tables, from the image's files and the environment: what the image
# build runs too, so that any other command sees the shipped configuration.
configure() {
  check_environment
  build_main_cf # policy.sh's check_override_policy runs before main.cf is written
  read_postfix_settings
  check_domain
  prepare_submission_checks
}

# The default start: everything validated first, then the queue directory and the daemons.
initialise() {
  rm -f "$HEALTH_PASSED" # the healthcheck's first pass after this start returns at once
  configure
  read_queue_dirs
  check_relay_networks
  check_tls_floor
  check_tls
  check_dkim
  prepare_opendkim

  # Inputs are valid: from here on the queue directory may be written.
  prepare_spool
  start_log_relay
  check_queue_structure
  start_opendkim

  # The entrypoint did what `postfix start-fg` would check first (queue directories and their
  # owners, postsuper's structure check): quick-start makes it skip those (~0.16 s).
  touch "$SPOOL/quick-start"
  log "Starting postfix in foreground (myhostname $DOMAIN)"
}

main() {
  # No command at all (an image built FROM this one with its own ENTRYPOINT resets CMD): the
  # default start.
  [ "$#" -gt 0 ] || set -- postfix start-fg
  if [ "$#" -eq 2 ] && [ "$1" = postfix ] && [ "$2" = start-fg ]; then
    initialise
  fi
  exec "$@"
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  main "$@"
fi
