#!/usr/bin/env bash
# Docker HEALTHCHECK for smtp-out. Quiet by design: reads /proc instead of opening an SMTP
# session, so nothing reaches the mail log. Healthy when the Postfix master and OpenDKIM run
# and something listens on 587 (submission) and 127.0.0.1:8891 (the DKIM milter).
set -u

running() { # true when a process with this command name exists
  local comm
  for comm in /proc/[0-9]*/comm; do
    [ "$(cat "$comm" 2>/dev/null)" = "$1" ] && return 0
  done
  return 1
}

listening() { # true when a TCP socket listens on PORT (IPv4 or IPv6)
  local port_hex
  port_hex=$(printf '%04X' "$1")
  awk -v p=":$port_hex" '$4 == "0A" && ($2 ~ p "$") { found = 1 } END { exit !found }' \
    /proc/net/tcp /proc/net/tcp6 2>/dev/null
}

problems=()
running master || problems+=("postfix master not running")
running opendkim || problems+=("opendkim not running")
listening 587 || problems+=("nothing listens on 587")
listening 8891 || problems+=("nothing listens on 8891 (DKIM milter)")

if [ "${#problems[@]}" -gt 0 ]; then
  printf 'unhealthy: %s\n' "$(IFS=';'; printf '%s' "${problems[*]}")"
  exit 1
fi
echo healthy
