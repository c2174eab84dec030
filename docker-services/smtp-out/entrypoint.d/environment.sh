# shellcheck shell=bash disable=SC2034,SC2153 # the stages share their variables (entrypoint.sh sources them all)
# Stage 1, the environment: every variable the image reads, checked before anything is written.
# Sourced by entrypoint.sh; needs no Postfix tool (tests/unit/test_entrypoint_environment.py).
#
# The POSTFIX_<parameter> variables are read from the process environment (env -0), not from
# bash's variables: bash drops names it cannot hold (a hyphen: ms-throttle_destination_rate_delay,
# a transport's parameter), and those must be applied too. Sets POSTFIX_ENV_NAMES (sorted, the
# order main.cf gets them in) and POSTFIX_ENV[name]=value, and MILTER_WAIT_SECONDS.

: "${ZONEINFO_DIR:=/usr/share/zoneinfo}"

POSTFIX_ENV_NAMES=()
declare -A POSTFIX_ENV=()
MILTER_WAIT_SECONDS=10 # SMTP_OUT_MILTER_WAIT_SECONDS, validated

# Fill POSTFIX_ENV_NAMES and POSTFIX_ENV from the process environment.
read_postfix_environment() {
  local entry name
  POSTFIX_ENV_NAMES=()
  POSTFIX_ENV=()
  while IFS= read -r -d '' entry; do
    name="${entry%%=*}"
    POSTFIX_ENV_NAMES+=("$name")
    POSTFIX_ENV[$name]="${entry#*=}"
  done < <(env -0 | LC_ALL=C sort -z | grep -z '^POSTFIX_' || true)
}

# The POSTFIX_* variables, sorted, one a line (the order main.cf gets them in).
postfix_variables() {
  [ "${#POSTFIX_ENV_NAMES[@]}" -eq 0 ] || printf '%s\n' "${POSTFIX_ENV_NAMES[@]}"
}

check_environment() {
  local var name quoted wait="${SMTP_OUT_MILTER_WAIT_SECONDS:-10}"
  read_postfix_environment

  # POSTFIX_<parameter>=value becomes one main.cf line: a line break (or any other control
  # character) in the value would let it set further parameters.
  for var in "${POSTFIX_ENV_NAMES[@]}"; do
    name="${var#POSTFIX_}"
    if [[ ! "$name" =~ ^[A-Za-z0-9_-]+$ ]]; then
      printf -v quoted '%q' "$var"
      fail "environment variable $quoted: '${name//[[:cntrl:]]/?}' is not a Postfix parameter name"
    fi
    case "${POSTFIX_ENV[$var]}" in
      *[[:cntrl:]]*) fail "$var: the value contains a line break or another control character (a main.cf value is one line)" ;;
    esac
  done

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
  [ -f "$ZONEINFO_DIR/$1" ] || return 1
  read -r -n 4 magic <"$ZONEINFO_DIR/$1" 2>/dev/null || true
  [ "$magic" = TZif ]
}
