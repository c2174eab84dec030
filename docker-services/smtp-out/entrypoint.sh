#!/usr/bin/env bash
# smtp-out entrypoint: configure Postfix and OpenDKIM, then exec Postfix as PID 1.
#
# Every start does the same work from the same inputs, so a restart (restart: always) ends
# in the same state as the first start:
#   1. validate the environment (POSTFIX_*, TZ, SMTP_OUT_*) before anything is written;
#   2. rebuild main.cf from Debian's stock copy + the image defaults + main.cf.override +
#      POSTFIX_* variables, and validate the result, the certificate and the DKIM key;
#   3. generate the tables that follow myhostname (OpenDKIM's KeyTable and SigningTable,
#      submission's From: policy) and OpenDKIM's runtime configuration;
#   4. prepare the Postfix chroot inside the (mounted) queue directory;
#   5. start the log relay and OpenDKIM, wait (bounded) until the milter socket listens;
#   6. exec `postfix start-fg`.
# Any bad input stops the container with one "[smtp-out] ERROR:" line naming the variable or
# file, and the queue directory is written only after every input was validated.
set -euo pipefail

SMTP_OUT_HOME="${BASH_SOURCE[0]%/*}"
[ "$SMTP_OUT_HOME" != "${BASH_SOURCE[0]}" ] || SMTP_OUT_HOME=.
# shellcheck source-path=SCRIPTDIR
source "$SMTP_OUT_HOME/smtp-out-lib.sh" # SPOOL, running, unix_listening, ...

POSTFIX_DIR=/etc/postfix
MAIN_CF_DIST="$POSTFIX_DIR/main.cf.dist"        # Debian's main.cf, saved at build time
DEFAULTS="$POSTFIX_DIR/main.cf.defaults"        # this image's defaults (TLS)
OVERRIDE="${SMTP_OUT_OVERRIDE:-$POSTFIX_DIR/main.cf.override}"
SUBMISSION_HEADER_CHECKS="$POSTFIX_DIR/submission_header_checks"
SUBMISSION_MILTER_HEADER_CHECKS="$POSTFIX_DIR/submission_milter_header_checks"
# The DKIM canary's envelope sender (invoke canary): its mail is held on arrival, signed but not
# delivered, until the canary has checked it and releases or deletes it.
CANARY_SENDERS="$POSTFIX_DIR/submission_canary_senders"
CERT=/etc/postfix/cert/smtp.cert
CERT_KEY=/etc/postfix/cert/smtp.key
DKIM_CONF=/etc/opendkim/opendkim.conf
DKIM_MOUNT=/etc/opendkim/keys                    # operator's keys, possibly read-only
DKIM_RUN=/run/opendkim                           # OpenDKIM's own copies and runtime tables
# OpenDKIM's milter socket, inside Postfix's chroot: smtpd and cleanup (chrooted to the queue
# directory) reach it as unix:/opendkim/opendkim.sock. A unix socket, not TCP on loopback:
# Nagle + delayed ACK cost ~88 ms per message over TCP, against 4.7 ms on this socket (measured
# 2026-11-25, when the socket was chosen; figures for the present: bench/results/latest.md).
MILTER_SOCKET="$SPOOL/opendkim/opendkim.sock"
MILTER="unix:${MILTER_SOCKET#"$SPOOL"}"
MILTER_WAIT_SECONDS=10                           # SMTP_OUT_MILTER_WAIT_SECONDS, validated
# Postfix's queue directories and their owner, group and mode: read from Postfix's own
# manifest (postfix-files, see read_queue_dirs), the one list of them.
QUEUE_DIRS=()
declare -A QUEUE_DIR_OWNER=() QUEUE_DIR_GROUP=() QUEUE_DIR_MODE=()

log() { printf '[smtp-out] %s\n' "$*" >&2; }
fail() { log "ERROR: $*"; exit 1; }

# --- the environment -----------------------------------------------------------------------

# The POSTFIX_* variables, sorted (the order main.cf gets them in).
postfix_variables() {
  compgen -e | grep '^POSTFIX_' | LC_ALL=C sort || true
}

# Every variable the image reads, checked before anything is written (main.cf included).
check_environment() {
  local var name quoted wait="${SMTP_OUT_MILTER_WAIT_SECONDS:-10}"

  # POSTFIX_<parameter>=value becomes one main.cf line: a line break (or any other control
  # character) in the value would let it set further parameters.
  while IFS= read -r var; do
    name="${var#POSTFIX_}"
    [[ "$name" =~ ^[A-Za-z0-9_-]+$ ]] || fail "environment variable $var: '$name' is not a Postfix parameter name"
    case "${!var}" in
      *[[:cntrl:]]*) fail "$var: the value contains a line break or another control character (a main.cf value is one line)" ;;
    esac
  done < <(postfix_variables)

  # TZ names a zone file that is copied into the queue directory (Postfix's chroot).
  if [ -n "${TZ:-}" ] && ! is_zone_name "${TZ#:}"; then
    printf -v quoted '%q' "$TZ"
    fail "TZ=$quoted: not a time zone name (a zone file under /usr/share/zoneinfo, such as UTC or Europe/Berlin)"
  fi

  if [[ ! "$wait" =~ ^[0-9]{1,4}$ ]] || [ $((10#$wait)) -lt 1 ]; then
    printf -v quoted '%q' "$wait"
    fail "SMTP_OUT_MILTER_WAIT_SECONDS=$quoted: not a whole number of seconds from 1 to 9999"
  fi
  MILTER_WAIT_SECONDS=$((10#$wait))
}

# True when NAME is a time zone: a relative path of plain names (no "..") to a TZif file.
is_zone_name() {
  local magic=""
  [[ "$1" =~ ^[A-Za-z0-9_+-]+(/[A-Za-z0-9_+-]+)*$ ]] || return 1
  [ -f "/usr/share/zoneinfo/$1" ] || return 1
  read -r -n 4 magic <"/usr/share/zoneinfo/$1" 2>/dev/null || true
  [ "$magic" = TZif ]
}

# --- configuration -------------------------------------------------------------------------

# Print a main.cf-style file's settings as "name=value" lines: comments and blank lines
# dropped, continuation lines (starting with white space) joined, as Postfix itself reads
# main.cf. Fails naming the file and line when a line is not "name = value".
read_override() {
  local file="$1" line name value current="" lineno=0
  while IFS= read -r line || [ -n "$line" ]; do
    lineno=$((lineno + 1))
    case "$line" in
      *[$'\001'-$'\010'$'\012'-$'\037'$'\177']*) fail "$file line $lineno: control character (a carriage return?) in the line" ;;
      '#'* | '') continue ;;
      [[:space:]]*)
        line="${line#"${line%%[![:space:]]*}"}"
        case "$line" in '' | '#'*) continue ;; esac
        [ -n "$current" ] || fail "$file line $lineno: continuation line with no parameter before it"
        current="$current $line"
        continue
        ;;
    esac
    [ -z "$current" ] || printf '%s\n' "$current"
    case "$line" in
      *=*) ;;
      *) fail "$file line $lineno: expected 'parameter = value', got: $line" ;;
    esac
    name="${line%%=*}"
    name="${name%"${name##*[![:space:]]}"}"
    value="${line#*=}"
    value="${value#"${value%%[![:space:]]*}"}"
    [[ "$name" =~ ^[A-Za-z0-9_-]+$ ]] || fail "$file line $lineno: '$name' is not a Postfix parameter name"
    current="$name=$value"
  done <"$file"
  [ -z "$current" ] || printf '%s\n' "$current"
}

# Settings for main.cf, in a fixed order (first appearance), each with where it came from:
# a file, or the POSTFIX_<name> variable.
SETTING_NAMES=()
declare -A SETTING_VALUE=() SETTING_SOURCE=()
add_setting() { # NAME VALUE SOURCE
  [ -n "${SETTING_VALUE[$1]+set}" ] || SETTING_NAMES+=("$1")
  SETTING_VALUE[$1]="$2"
  SETTING_SOURCE[$1]="$3"
}

# Where a parameter's value came from, for error messages.
source_of() {
  printf '%s' "${SETTING_SOURCE[$1]:-$POSTFIX_DIR/main.cf}"
}

add_settings_from_file() { # FILE
  local line
  # Validate in this shell first: a failure inside the process substitution below could not
  # stop the container.
  read_override "$1" >/dev/null
  while IFS= read -r line; do
    add_setting "${line%%=*}" "${line#*=}" "$1"
  done < <(read_override "$1")
}

# main.cf = Debian's stock main.cf less every parameter set here, then the image defaults
# (main.cf.defaults), main.cf.override, the POSTFIX_* environment variables, and last what this
# image enforces (TLS files, the DKIM milter). Written from scratch on every start in a fixed
# order, so the Nth start ends with the same main.cf as the first.
build_main_cf() {
  local var name

  [ -f "$DEFAULTS" ] || fail "$DEFAULTS: the image's default settings are missing"
  add_settings_from_file "$DEFAULTS"
  if [ -f "$OVERRIDE" ]; then
    add_settings_from_file "$OVERRIDE"
  else
    log "No $OVERRIDE found; using Debian's main.cf, the image defaults and the environment only"
  fi

  while IFS= read -r var; do
    add_setting "${var#POSTFIX_}" "${!var}" "$var"
  done < <(postfix_variables)

  local enforced="this image's entrypoint"
  add_setting smtpd_tls_cert_file "$CERT" "$enforced"
  add_setting smtpd_tls_key_file "$CERT_KEY" "$enforced"
  add_setting smtpd_use_tls yes "$enforced"
  add_setting milter_default_action tempfail "$enforced"
  add_setting milter_protocol 6 "$enforced"
  add_setting smtpd_milters "$MILTER" "$enforced"
  add_setting non_smtpd_milters "$MILTER" "$enforced"
  # Postfix's own mail (bounces, postmaster notices) skips non_smtpd_milters by default, and
  # would leave unsigned.
  add_setting internal_mail_filter_classes "bounce, notify" "$enforced"

  {
    printf '%s\n' "${SETTING_NAMES[@]}" | awk '
      NR == FNR { drop[$0] = 1; next }
      /^[ \t]/ && skipping { next }
      { skipping = 0 }
      /^[A-Za-z0-9_-]+[ \t]*=/ {
        name = $0; sub(/[ \t]*=.*/, "", name)
        if (name in drop) { skipping = 1; next }
      }
      { print }' - "$MAIN_CF_DIST"
    printf '\n# ---- Set at start-up by entrypoint.sh from main.cf.defaults, main.cf.override, POSTFIX_* and the image.\n'
    for name in "${SETTING_NAMES[@]}"; do
      printf '%s = %s\n' "$name" "${SETTING_VALUE[$name]}"
    done
  } >"$POSTFIX_DIR/main.cf.new"
  # Backdated: Postfix re-reads a configuration file modified within the last second until it
  # "cools down", which would cost every postconf below about two seconds.
  touch -d "@$((${EPOCHREALTIME%.*} - 60))" "$POSTFIX_DIR/main.cf.new"
  mv -f "$POSTFIX_DIR/main.cf.new" "$POSTFIX_DIR/main.cf"
  check_unused_parameters
}

# Postfix accepts any name in main.cf and only warns at run time ("unused parameter").
# Turn that warning into an error that names where the parameter came from.
check_unused_parameters() {
  local warnings name source="" unused=()
  warnings=$(postconf -n 2>&1 >/dev/null || true)
  while IFS= read -r name; do
    [ -n "$name" ] || continue
    unused+=("$name")
    source="${source:-$(source_of "$name")}"
  done < <(printf '%s\n' "$warnings" | sed -n 's/.*unused parameter: \([^=]*\)=.*/\1/p' | sort -u)
  case "$source" in POSTFIX_*) source="the POSTFIX_* environment variables" ;; esac
  if [ "${#unused[@]}" -gt 0 ]; then
    fail "$source: unknown Postfix parameter(s): $(IFS=,; printf '%s' "${unused[*]}") (see postconf(5))"
  fi
  [ -z "$warnings" ] || fail "/etc/postfix/main.cf: postconf reports: $(printf '%s' "$warnings" | head -n 1)"
}

# The effective values (with $name expanded) of the parameters checked below, in one postconf.
DOMAIN="" MYNETWORKS="" TLS_LEVEL="" ENFORCE_TLS="" MAIL_OWNER="" SETGID_GROUP="" META_DIR=""
read_postfix_settings() {
  local values
  values=$(postconf -xh myhostname mynetworks smtpd_tls_security_level smtpd_enforce_tls \
    mail_owner setgid_group meta_directory) || fail "/etc/postfix/main.cf: postconf cannot read it"
  {
    IFS= read -r DOMAIN; IFS= read -r MYNETWORKS; IFS= read -r TLS_LEVEL; IFS= read -r ENFORCE_TLS
    IFS= read -r MAIL_OWNER; IFS= read -r SETGID_GROUP; IFS= read -r META_DIR
  } <<<"$values"
}

# The queue directories from postfix-files ("$queue_directory/active:d:$mail_owner:-:700:ucr").
read_queue_dirs() {
  local path type owner group mode _flags name
  while IFS=: read -r path type owner group mode _flags; do
    case "$path" in \$queue_directory/*) ;; *) continue ;; esac
    [ "$type" = d ] || continue
    name="${path#\$queue_directory/}"
    QUEUE_DIRS+=("$name")
    QUEUE_DIR_OWNER[$name]="${owner/#\$mail_owner/$MAIL_OWNER}"
    QUEUE_DIR_GROUP[$name]="${group/#\$setgid_group/$SETGID_GROUP}"
    QUEUE_DIR_MODE[$name]="$mode"
  done <"$META_DIR/postfix-files"
  [ "${#QUEUE_DIRS[@]}" -gt 0 ] || fail "$META_DIR/postfix-files: lists no queue directories"
}

# myhostname is the DKIM signing domain (d=) and the domain submission's From: must be at.
check_domain() {
  local label='[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?'
  [[ "$DOMAIN" =~ ^$label(\.$label)+$ ]] \
    || fail "$(source_of myhostname): myhostname '$DOMAIN' is not a domain name (it is the DKIM signing domain)"
}

# The mynetworks entries (Postfix separates them with commas and/or white space), in NETWORKS.
NETWORKS=()
split_mynetworks() {
  IFS=$', \t' read -r -a NETWORKS <<<"$MYNETWORKS"
}

# Every mynetworks entry must be an address or network: OpenDKIM signs for the same clients
# (InternalHosts), and Postfix answers every RCPT with "451 4.3.0 Temporary lookup failure"
# when a network has host bits set.
check_mynetworks() {
  local entry source
  source=$(source_of mynetworks)
  split_mynetworks
  for entry in "${NETWORKS[@]}"; do
    is_network "$entry" \
      || fail "$source: mynetworks entry '$entry' is not an address or network (a.b.c.d, a.b.c.d/n with no host bits set, [ipv6] or [ipv6]/n); OpenDKIM cannot be told to sign for it"
  done
}

# True for an IPv4 address or network with no host bits set, or an IPv6 address or network in
# brackets (Postfix reads a bare IPv6 address as a type:table lookup).
is_network() {
  local octet value=0 prefix
  if [[ "$1" =~ ^\[([0-9A-Fa-f:.]+)\](/([0-9]{1,3}))?$ ]]; then
    [[ "${BASH_REMATCH[1]}" == *:*:* ]] || return 1
    [ -z "${BASH_REMATCH[3]}" ] || [ $((10#${BASH_REMATCH[3]})) -le 128 ]
    return
  fi
  [[ "$1" =~ ^([0-9]{1,3})\.([0-9]{1,3})\.([0-9]{1,3})\.([0-9]{1,3})(/([0-9]{1,2}))?$ ]] || return 1
  for octet in "${BASH_REMATCH[@]:1:4}"; do
    [ $((10#$octet)) -le 255 ] || return 1
    value=$((value * 256 + 10#$octet))
  done
  [ -n "${BASH_REMATCH[6]}" ] || return 0
  prefix=$((10#${BASH_REMATCH[6]}))
  [ "$prefix" -le 32 ] && [ $((value & ((1 << (32 - prefix)) - 1))) -eq 0 ]
}

# Submission requires STARTTLS by default (main.cf.defaults: encrypt); the operator may lower
# it explicitly. Say so once at start-up when it is lowered.
check_submission_tls() {
  local level="$TLS_LEVEL" source
  source=$(source_of smtpd_tls_security_level)
  case "$level" in
    encrypt) return 0 ;;
    none | may) ;;
    '') # Postfix's fallback: the legacy switches (smtpd_use_tls=yes is set by this image)
      if [ "$ENFORCE_TLS" = yes ]; then return 0; fi
      level=may
      ;;
    *) fail "$source: smtpd_tls_security_level '$TLS_LEVEL' is not one of none, may, encrypt" ;;
  esac
  log "WARNING: smtpd_tls_security_level=$level (from $source): submission on port 587 accepts mail without STARTTLS; the image default is encrypt"
}

# --- TLS -----------------------------------------------------------------------------------

check_tls() {
  [ -f "$CERT" ] || fail "$CERT: TLS certificate not found (mount fullchain.pem there)"
  [ -f "$CERT_KEY" ] || fail "$CERT_KEY: TLS key not found (mount privkey.pem there)"
  local cert_out cert_pub key_pub expired=no
  # One openssl run for both questions (each costs ~20 ms): -checkend fails when expired.
  cert_out=$(openssl x509 -noout -pubkey -checkend 0 -in "$CERT" 2>/dev/null) || expired=yes
  cert_pub=$(printf '%s\n' "$cert_out" | sed -n '/-BEGIN PUBLIC KEY-/,/-END PUBLIC KEY-/p')
  [ -n "$cert_pub" ] || fail "$CERT: not a PEM certificate"
  key_pub=$(openssl pkey -pubout -in "$CERT_KEY" 2>/dev/null) \
    || fail "$CERT_KEY: not a readable PEM private key"
  [ "$cert_pub" = "$key_pub" ] || fail "$CERT_KEY: does not match the certificate in $CERT"
  if [ "$expired" = yes ]; then
    log "WARNING: $CERT has expired; clients that verify it will refuse STARTTLS"
  fi
}

# --- DKIM ----------------------------------------------------------------------------------

# The DKIM domain follows myhostname; its key is the flat file $DKIM_MOUNT/<domain>.private.
check_dkim() {
  local key="$DKIM_MOUNT/$DOMAIN.private"
  [ -f "$key" ] || fail "$key: DKIM key not found for $DOMAIN (myhostname; mount the keys directory at $DKIM_MOUNT)"
  [ -r "$key" ] || fail "$key: DKIM key not readable"
  openssl pkey -noout -in "$key" >/dev/null 2>&1 || fail "$key: not a readable PEM private key"
}

# The selector named in opendkim.conf (Selector).
dkim_selector() {
  local name value
  while read -r name value; do
    [ "$name" = Selector ] && { printf '%s\n' "${value%%[[:space:]]*}"; return 0; }
  done <"$DKIM_CONF"
  fail "$DKIM_CONF: no Selector line"
}

# OpenDKIM wants its key owned by its own user with mode 600, which a read-only bind mount
# cannot give: it signs with private copies under $DKIM_RUN, with tables generated here for
# the domain (myhostname). Every client that Postfix lets relay (mynetworks) is an internal
# host OpenDKIM signs for.
prepare_opendkim() {
  local entry selector key="$DKIM_RUN/keys/$DOMAIN.private"
  selector=$(dkim_selector)
  install -d -o opendkim -g opendkim -m 700 "$DKIM_RUN" "$DKIM_RUN/keys"
  rm -f "$DKIM_RUN"/keys/*
  install -o opendkim -g opendkim -m 600 "$DKIM_MOUNT/$DOMAIN.private" "$key"

  printf '# Generated by entrypoint.sh from myhostname: the key that signs as d=%s.\n%s\t%s:%s:%s\n' \
    "$DOMAIN" "$selector._domainkey.$DOMAIN" "$DOMAIN" "$selector" "$key" >"$DKIM_RUN/KeyTable"
  # refile: patterns, first match wins. The catch-all last line: whatever submission's From:
  # policy let through (and Postfix's own mail) is signed for the domain, never relayed unsigned.
  {
    printf '# Generated by entrypoint.sh from myhostname (refile: patterns, first match wins).\n'
    printf '*@%s\t%s\n*@*.%s\t%s\n*\t%s\n' "$DOMAIN" "$selector._domainkey.$DOMAIN" \
      "$DOMAIN" "$selector._domainkey.$DOMAIN" "$selector._domainkey.$DOMAIN"
  } >"$DKIM_RUN/SigningTable"

  {
    grep -v '^[[:space:]]*\(#\|$\)' /etc/opendkim/TrustedHosts
    split_mynetworks
    for entry in "${NETWORKS[@]}"; do
      case "$entry" in
        \[*\]*) entry="${entry#[}"; printf '%s%s\n' "${entry%%]*}" "${entry#*]}" ;;
        *) printf '%s\n' "$entry" ;;
      esac
    done
  } | awk '!seen[$0]++' >"$DKIM_RUN/TrustedHosts"

  # The operator's opendkim.conf, with the lines this image owns set here.
  {
    grep -Ev '^(Socket|KeyTable|SigningTable|InternalHosts|ExternalIgnoreList)([[:space:]]|$)' "$DKIM_CONF"
    printf '%-24s%s\n' \
      Socket "local:$MILTER_SOCKET" \
      KeyTable "$DKIM_RUN/KeyTable" \
      SigningTable "refile:$DKIM_RUN/SigningTable" \
      InternalHosts "$DKIM_RUN/TrustedHosts" \
      ExternalIgnoreList "$DKIM_RUN/TrustedHosts"
  } >"$DKIM_RUN/opendkim.conf"
  install -d -o opendkim -g opendkim /var/run/opendkim
  opendkim -n -x "$DKIM_RUN/opendkim.conf" 2>&1 | sed 's/^/opendkim -n: /' >&2
  [ "${PIPESTATUS[0]}" -eq 0 ] || fail "$DKIM_CONF: opendkim rejects the configuration (see above)"
}

# --- submission's From: policy -------------------------------------------------------------

# Mail accepted on 587 leaves DKIM-signed for the domain, or is refused with a permanent 5xx
# (master.cf: submission's own cleanup service applies both tables):
#  - header_checks: a From: at the domain or a sub-domain passes; any other From: is refused;
#  - milter_header_checks: OpenDKIM adds "Authentication-Results: ...; dkim=permerror" (and
#    does not sign) when a message has no From: or one it cannot parse; that is refused too.
# A From: these patterns let through but OpenDKIM reads differently is still signed: the
# SigningTable ends with a catch-all.
prepare_submission_checks() {
  local d="${DOMAIN//./\\.}"
  local addr='[^<>@[:space:]",]+@([a-z0-9-]+\.)*'"$d"
  {
    printf '# Generated by entrypoint.sh from myhostname (%s): submission'"'"'s From: policy.\n' "$DOMAIN"
    printf '# regexp: case-insensitive; a folded header is matched as one string.\n'
    printf '/^From[[:space:]]*:[[:space:]]*([^<>@",]*|"[^"]*")[[:space:]]*<%s>[[:space:]]*$/ DUNNO\n' "$addr"
    printf '/^From[[:space:]]*:[[:space:]]*%s[[:space:]]*$/ DUNNO\n' "$addr"
    printf '/^From[[:space:]]*:/ REJECT 5.7.1 From: must be an address at %s or a sub-domain of it (this relay DKIM-signs mail only for %s)\n' "$DOMAIN" "$DOMAIN"
  } >"$SUBMISSION_HEADER_CHECKS"
  {
    printf '# Generated by entrypoint.sh from myhostname (%s): refuse what OpenDKIM could not sign.\n' "$DOMAIN"
    printf '/^Authentication-Results:.*[[:space:];]dkim=permerror/ REJECT 5.7.1 Message has no From: header, or one that cannot be parsed, so it cannot be DKIM-signed for %s\n' "$DOMAIN"
  } >"$SUBMISSION_MILTER_HEADER_CHECKS"
  # regexp, like the tables above: a texthash table written just now would make smtpd wait ~1.5 s
  # at start for it to "cool down" (as Postfix does for a just-written main.cf).
  printf '/^smtp-out-canary@%s$/ HOLD held for the DKIM canary (invoke canary)\n' "$d" >"$CANARY_SENDERS"
}

# --- queue directory and chroot ------------------------------------------------------------

# Postfix's chroot lives in the queue directory, which may be a volume persisted by the old
# Alpine image: copy the system files it needs, owned root:root whatever the volume's owner;
# replace stale time zone data with the zones Postfix can read (those of $TZ and
# /etc/localtime), once per tzdata version and TZ; fix foreign ownership of the queue; give
# OpenDKIM its socket directory (group postfix: Postfix's daemons run with that group only).
prepare_spool() {
  local file stamp want zone tz="${TZ:-}" version=""
  install -d -o root -g root -m 755 "$SPOOL" "$SPOOL/etc" "$SPOOL/usr" "$SPOOL/usr/share"
  for file in resolv.conf hosts nsswitch.conf services host.conf localtime; do
    [ -e "/etc/$file" ] || continue
    install -o root -g root -m 644 "$(readlink -f "/etc/$file")" "$SPOOL/etc/$file.tmp"
    mv -f "$SPOOL/etc/$file.tmp" "$SPOOL/etc/$file"
  done

  stamp="$SPOOL/usr/share/zoneinfo/.smtp-out-tzdata"
  read -r _ _ version </usr/share/zoneinfo/tzdata.zi || true # "# version 2024a"
  want="tzdata ${version:-unknown} TZ=$tz"
  if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    log "Refreshing time zone data in the Postfix chroot ($want)"
    rm -rf "$SPOOL/usr/share/zoneinfo"
    for zone in UTC Etc/UTC posixrules "${tz#:}" "$(readlink -f /etc/localtime | sed 's#^/usr/share/zoneinfo/##')"; do
      if [ -z "$zone" ] || ! is_zone_name "$zone"; then
        continue
      fi
      install -D -o root -g root -m 644 "/usr/share/zoneinfo/$zone" "$SPOOL/usr/share/zoneinfo/$zone"
    done
    printf '%s\n' "$want" >"$stamp"
  fi
  # Files kept from an earlier start on a volume chowned since (check-warn's "not owned by root").
  if [ -n "$(find "$SPOOL/etc" "$SPOOL/usr" ! -user root -print -quit)" ]; then
    log "Fixing ownership of the Postfix chroot's system files ($SPOOL/etc, $SPOOL/usr)"
    chown -R root:root "$SPOOL/etc" "$SPOOL/usr"
  fi

  # Missing queue directories (a fresh queue) are created as `postfix start` would (post-install
  # create-missing, which costs ~0.18 s), from postfix-files. Queue files and directories owned
  # by another image's postfix user (the Alpine queue) are given to this image's.
  local postfix_dirs=() root_dirs=() dir out
  for dir in "${QUEUE_DIRS[@]}"; do
    if [ ! -e "$SPOOL/$dir" ]; then
      if [ "${QUEUE_DIR_GROUP[$dir]}" = - ]; then
        install -d -o "${QUEUE_DIR_OWNER[$dir]}" -m "${QUEUE_DIR_MODE[$dir]}" "$SPOOL/$dir"
      else
        install -d -o "${QUEUE_DIR_OWNER[$dir]}" -g "${QUEUE_DIR_GROUP[$dir]}" -m "${QUEUE_DIR_MODE[$dir]}" "$SPOOL/$dir"
      fi
    elif [ "${QUEUE_DIR_OWNER[$dir]}" = root ]; then
      root_dirs+=("$SPOOL/$dir")
    else
      postfix_dirs+=("$SPOOL/$dir")
    fi
  done
  if [ "${#postfix_dirs[@]}" -gt 0 ] && [ -n "$(find "${postfix_dirs[@]}" ! -user "$MAIL_OWNER" -print -quit)" ]; then
    log "Fixing ownership of queue files left by another image (postfix set-permissions)"
    out=$(postfix set-permissions 2>&1) \
      || fail "$SPOOL: postfix set-permissions failed: $(printf '%s' "$out" | tail -n 1)"
  fi
  # pid holds the master's lock files, root's (set-permissions fixes only the directory).
  if [ "${#root_dirs[@]}" -gt 0 ] && [ -n "$(find "${root_dirs[@]}" ! -user root -print -quit)" ]; then
    log "Fixing ownership of ${root_dirs[*]} (root's)"
    chown -R root:root "${root_dirs[@]}"
  fi

  # The milter socket's directory: OpenDKIM (user opendkim, group postfix) creates the socket
  # and removes a stale one; Postfix (group postfix) may only search the directory.
  local socket_dir="${MILTER_SOCKET%/*}"
  if [ -L "$socket_dir" ] || { [ -e "$socket_dir" ] && [ ! -d "$socket_dir" ]; }; then
    rm -f "$socket_dir"
  fi
  install -d -o opendkim -g postfix -m 750 "$socket_dir"
  rm -f "$MILTER_SOCKET" # left by a killed OpenDKIM (docker kill): nothing listens on it
}

# `postfix start-fg` runs postsuper's structure check before postlogd exists, so a warning
# (queue files renamed to match their inode numbers: a restored or copied queue) makes postsuper
# open maillog_file=/dev/stdout itself as user postfix, which the container's root-owned stdout
# refuses: Postfix would not start. Run the check here, logging through syslog (the relay);
# `postfix start-fg` then skips its own checks ($SPOOL/quick-start, see main).
check_queue_structure() {
  local conf=/run/postfix-precheck
  rm -rf "$conf"
  install -d -m 755 "$conf"
  cp -p "$POSTFIX_DIR/master.cf" "$POSTFIX_DIR/dynamicmaps.cf" "$conf/"
  sed 's/^maillog_file = .*/maillog_file =/' "$POSTFIX_DIR/main.cf" >"$conf/main.cf"
  touch -d "@$((${EPOCHREALTIME%.*} - 60))" "$conf/main.cf"
  postsuper -c "$conf" || fail "$SPOOL: postsuper's queue structure check failed (see the lines above)"
}

# --- daemons -------------------------------------------------------------------------------

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
  rm -f /var/run/opendkim/opendkim.pid
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

main() {
  rm -f "$HEALTH_PASSED" # the healthcheck's first pass after this start returns at once
  check_environment
  build_main_cf
  read_postfix_settings
  read_queue_dirs
  check_domain
  check_mynetworks
  check_submission_tls
  check_tls
  check_dkim
  prepare_submission_checks
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
  exec postfix start-fg
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  main "$@"
fi
