#!/usr/bin/env bash
# Shared helpers for the provisioning scripts. Source it; it defines functions only.

log() { printf '[provision] %s\n' "$*" >&2; }
die() { printf '[provision] ERROR: %s\n' "$*" >&2; exit 1; }

# Print the URI of the first apt source on this machine that serves SUITE (for example
# "bookworm" or "bookworm-security"). Reads deb822 .sources files and one-line .list files,
# so no mirror host name ever has to be written into the project.
apt_uri_for_suite() {
  local suite="$1" f
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    awk -v want="$suite" '
      function flush() { if (types ~ /(^| )deb( |$)/ && uri != "" && (" " suites " ") ~ (" " want " ")) { print uri; found = 1; exit } }
      /^[[:space:]]*$/ { flush(); types = ""; uri = ""; suites = ""; next }
      /^Types:/  { sub(/^Types:[[:space:]]*/, "");  types = $0 }
      /^URIs:/   { sub(/^URIs:[[:space:]]*/, "");   split($0, u, /[[:space:]]+/); uri = u[1] }
      /^Suites:/ { sub(/^Suites:[[:space:]]*/, ""); suites = $0 }
      END { if (!found) flush() }
    ' "$f" | head -n 1 | grep . && return 0
  done
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -f "$f" ] || continue
    awk -v want="$suite" '$1 == "deb" { i = 2; if ($2 ~ /^\[/) { while ($i !~ /\]$/) i++; i++ } if ($(i + 1) == want) { print $i; exit } }' "$f" \
      | head -n 1 | grep . && return 0
  done
  return 1
}

docker_ready() { docker info >/dev/null 2>&1; }
