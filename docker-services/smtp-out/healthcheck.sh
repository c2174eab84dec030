#!/usr/bin/env bash
# Docker HEALTHCHECK for smtp-out. Quiet by design: reads /proc and main.cf instead of opening an
# SMTP session, so nothing reaches the mail log, and forks nothing. Healthy when the Postfix
# master and OpenDKIM run, something listens on 587 (submission), and the DKIM milter that
# smtpd_milters names accepts connections.
set -u
here="${BASH_SOURCE[0]%/*}"
[ "$here" != "${BASH_SOURCE[0]}" ] || here=.
# shellcheck source-path=SCRIPTDIR
source "$here/smtp-out-lib.sh"

problems=()
running master || problems+=("postfix master not running")
running opendkim || problems+=("opendkim not running")
tcp_listening 587 || problems+=("nothing listens on 587")
milter=""
if ! main_cf_value smtpd_milters milter || ! milter_endpoint "$milter"; then
  problems+=("smtpd_milters in $POSTFIX_MAIN_CF names no unix: or inet: milter ('$milter')")
elif ! milter_listening "$milter"; then
  problems+=("the DKIM milter $milter does not listen ($MILTER_KIND $MILTER_WHERE)")
fi

if [ "${#problems[@]}" -gt 0 ]; then
  printf 'unhealthy: %s\n' "$(IFS=';'; printf '%s' "${problems[*]}")"
  exit 1
fi
echo healthy
