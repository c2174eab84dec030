# shellcheck shell=bash disable=SC2034,SC2153 # the stages share their variables (entrypoint.sh sources them all)
# Stage 2, configuration: main.cf rebuilt from Debian's stock copy + the image defaults +
# main.cf.override + the POSTFIX_* variables + what the image enforces, checked against the
# override policy (policy.sh) before it is written; then the effective values the later stages
# read. read_override and the settings bookkeeping need no Postfix tool
# (tests/unit/test_entrypoint_configuration.py); build_main_cf runs postconf (tests/docker).

: "${CONF_DIR:=/etc/postfix}"
MAIN_CF_DIST="$CONF_DIR/main.cf.dist"        # Debian's main.cf, saved at build time
DEFAULTS="$CONF_DIR/main.cf.defaults"        # this image's defaults (TLS)
OVERRIDE="${SMTP_OUT_OVERRIDE:-$CONF_DIR/main.cf.override}"
# OpenDKIM's milter socket, inside Postfix's chroot: smtpd and cleanup (chrooted to the queue
# directory) reach it as unix:/opendkim/opendkim.sock. A unix socket, not TCP on loopback:
# Nagle + delayed ACK cost ~88 ms per message over TCP, against 4.7 ms here (measured 2026-11-25,
# when the socket was chosen; figures for the present: bench/results/latest.md).
MILTER_SOCKET="$SPOOL/opendkim/opendkim.sock"
MILTER="unix:${MILTER_SOCKET#"$SPOOL"}"

# Print a main.cf-style file's settings as "name=value" lines (with a second argument, "N
# name=value": N the line the setting starts on): comments and blank lines dropped,
# continuation lines (starting with white space) joined, as Postfix itself reads main.cf.
# Fails naming the file and line when a line is not "name = value".
read_override() {
  local file="$1" numbered="${2:-}" line name value current="" lineno=0 start=0
  while IFS= read -r line || [ -n "$line" ]; do
    lineno=$((lineno + 1))
    case "$line" in
      *[$'\001'-$'\010'$'\012'-$'\037'$'\177']*) fail "$file line $lineno: control character (a carriage return?) in the line" ;;
      '#'* | '') continue ;;
      [[:space:]]*)
        line="${line#"${line%%[![:space:]]*}"}"
        case "$line" in '' | '#'*) continue ;; esac
        [ -n "$current" ] || fail "$file line $lineno: continuation line with no parameter before it"
        if [ "${current%=}" = "$current" ]; then current="$current $line"; else current="$current$line"; fi
        continue
        ;;
    esac
    [ -z "$current" ] || printf '%s%s\n' "${numbered:+$start }" "$current"
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
    start=$lineno
  done <"$file"
  [ -z "$current" ] || printf '%s%s\n' "${numbered:+$start }" "$current"
}

# Settings for main.cf, in a fixed order (first appearance), each with where it came from:
# a file (and the line: SETTING_LINE), or the POSTFIX_<name> variable.
SETTING_NAMES=()
declare -A SETTING_VALUE=() SETTING_SOURCE=() SETTING_LINE=()
add_setting() { # NAME VALUE SOURCE [LINE]
  [ -n "${SETTING_VALUE[$1]+set}" ] || SETTING_NAMES+=("$1")
  SETTING_VALUE[$1]="$2"
  SETTING_SOURCE[$1]="$3"
  SETTING_LINE[$1]="${4:-}"
}

# Where a parameter's value came from: the file or the variable, for error messages.
source_of() {
  printf '%s' "${SETTING_SOURCE[$1]:-$CONF_DIR/main.cf}"
}

# The same, with the file's line: "FILE line N" or "POSTFIX_<name>".
where_of() {
  source_of "$1"
  [ -z "${SETTING_LINE[$1]:-}" ] || printf ' line %s' "${SETTING_LINE[$1]}"
}

add_settings_from_file() { # FILE
  local line number
  # Validate in this shell first: a failure inside the process substitution below could not
  # stop the container.
  read_override "$1" >/dev/null
  while read -r number line; do
    add_setting "${line%%=*}" "${line#*=}" "$1" "$number"
  done < <(read_override "$1" numbered)
}

# The image defaults, main.cf.override and the POSTFIX_* variables, then what the image
# enforces (ENFORCED, in policy.sh, which refuses an override of these that differs).
ENFORCED_BY="this image's entrypoint"
collect_settings() {
  local var name
  [ -f "$DEFAULTS" ] || fail "$DEFAULTS: the image's default settings are missing"
  add_settings_from_file "$DEFAULTS"
  if [ -f "$OVERRIDE" ]; then
    add_settings_from_file "$OVERRIDE"
  else
    log "No $OVERRIDE found; using Debian's main.cf, the image defaults and the environment only"
  fi
  for var in "${POSTFIX_ENV_NAMES[@]}"; do
    add_setting "${var#POSTFIX_}" "${POSTFIX_ENV[$var]}" "$var"
  done
  check_override_policy # policy.sh: before anything is enforced or written
  for name in "${ENFORCED_NAMES[@]}"; do
    add_setting "$name" "${ENFORCED[$name]}" "$ENFORCED_BY"
  done
}

# main.cf = Debian's stock main.cf less every parameter set here, then the settings above.
# Written from scratch on every start in a fixed order, so the Nth start ends with the same
# main.cf as the first.
build_main_cf() {
  local name
  collect_settings
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
  } >"$CONF_DIR/main.cf.new"
  # Backdated: Postfix re-reads a configuration file modified within the last second until it
  # "cools down", which would cost every postconf below about two seconds.
  touch -d "@$((${EPOCHREALTIME%.*} - 60))" "$CONF_DIR/main.cf.new"
  mv -f "$CONF_DIR/main.cf.new" "$CONF_DIR/main.cf"
  check_unused_parameters
}

# Postfix accepts any name in main.cf and only warns at run time ("unused parameter").
# Turn that warning into an error that names where the parameter came from. A known name is a
# main.cf parameter, or <transport>_<parameter> for a transport that master.cf defines.
check_unused_parameters() {
  local warnings name where="" unused=()
  warnings=$(postconf -c "$CONF_DIR" -n 2>&1 >/dev/null || true)
  while IFS= read -r name; do
    [ -n "$name" ] || continue
    unused+=("$name")
    where="${where:-$(where_of "$name")}"
  done < <(printf '%s\n' "$warnings" | sed -n 's/.*unused parameter: \([^=]*\)=.*/\1/p' | sort -u)
  if [ "${#unused[@]}" -gt 0 ]; then
    fail "$where: unknown Postfix parameter(s): $(IFS=,; printf '%s' "${unused[*]}") (a main.cf parameter, or <transport>_<parameter> for a transport master.cf defines; see postconf(5))"
  fi
  [ -z "$warnings" ] || fail "$CONF_DIR/main.cf: postconf reports: $(printf '%s' "$warnings" | head -n 1)"
}

# The effective values (with $name expanded) of the parameters the later stages check, in one
# postconf.
DOMAIN="" MYNETWORKS="" MAIL_OWNER="" SETGID_GROUP="" META_DIR=""
declare -A EFFECTIVE=()
EFFECTIVE_NAMES=(myhostname mynetworks mail_owner setgid_group meta_directory)
read_postfix_settings() {
  local values name i=0
  local names=("${EFFECTIVE_NAMES[@]}" "${TLS_FLOOR_PARAMETERS[@]}")
  values=$(postconf -c "$CONF_DIR" -xh "${names[@]}") || fail "$CONF_DIR/main.cf: postconf cannot read it"
  while IFS= read -r name; do
    EFFECTIVE[${names[$i]}]="$name"
    i=$((i + 1))
  done <<<"$values"
  DOMAIN="${EFFECTIVE[myhostname]}" MYNETWORKS="${EFFECTIVE[mynetworks]}"
  MAIL_OWNER="${EFFECTIVE[mail_owner]}" SETGID_GROUP="${EFFECTIVE[setgid_group]}"
  META_DIR="${EFFECTIVE[meta_directory]}"
}

# myhostname is the DKIM signing domain (d=) and the domain submission's From: must be at.
check_domain() {
  local label='[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?'
  [[ "$DOMAIN" =~ ^$label(\.$label)+$ ]] \
    || fail "$(source_of myhostname): myhostname '$DOMAIN' is not a domain name (it is the DKIM signing domain)"
}
