# shellcheck shell=bash disable=SC2034 # its variables are for the scripts that source it
# smtp-out's shared shell helpers, sourced by entrypoint.sh and healthcheck.sh (both look for
# this file next to themselves). Read-only checks on /proc and main.cf, in pure bash: no forks.

# Paths are variables with the image's defaults, so the entrypoint's stages can run against a
# temporary root in the tests.
: "${SPOOL:=/var/spool/postfix}"
: "${POSTFIX_MAIN_CF:=/etc/postfix/main.cf}"
# The healthcheck's state (see healthcheck.sh): the image creates the directory and the FIFO;
# entrypoint.sh removes HEALTH_PASSED at every start.
: "${HEALTH_DIR:=/run/smtp-out}"
HEALTH_PASSED="$HEALTH_DIR/health-passed" # a check has passed since the container started
HEALTH_PACE="$HEALTH_DIR/health-pace"     # a FIFO nobody writes: `read -t 1` on it waits 1 s

# True when a process with this command name (/proc/PID/comm) runs.
running() {
  local comm_file comm
  for comm_file in /proc/[0-9]*/comm; do
    comm=""
    read -r comm <"$comm_file" 2>/dev/null || true
    [ "$comm" = "$1" ] && return 0
  done
  return 1
}

# True when a TCP socket listens on PORT (any address). /proc/net/tcp is read whole (mapfile):
# the kernel regenerates it for every read(), ~4 ms each here, and bash's `read` builtin would
# re-read it for every line. /proc/net/tcp6 only when IPv4 has no listener (inet_protocols).
tcp_listening() {
  local want file line fields lines
  printf -v want ':%04X' "$1"
  for file in /proc/net/tcp /proc/net/tcp6; do
    [ -r "$file" ] || continue
    mapfile -t lines <"$file"
    for line in "${lines[@]:1}"; do
      read -r -a fields <<<"$line" # sl local_address rem_address st ...
      [ "${fields[3]}" = 0A ] && [ "${fields[1]%"$want"}" != "${fields[1]}" ] && return 0
    done
  done
  return 1
}

# True when a unix stream socket listens at PATH (bound in this container's network namespace:
# /proc/net/unix lists it; a file left behind by a killed daemon is not a listening socket).
unix_listening() {
  local line fields lines
  mapfile -t lines </proc/net/unix
  for line in "${lines[@]:1}"; do
    [ "${line%" $1"}" != "$line" ] || continue
    read -r -a fields <<<"$line" # Num RefCount Protocol Flags Type St Inode Path
    # Flags 00010000 = __SO_ACCEPTCON (listen() was called); Type 0001 = SOCK_STREAM
    [ "${fields[7]}" = "$1" ] && [ "${fields[3]}" = 00010000 ] && [ "${fields[4]}" = 0001 ] && return 0
  done
  return 1
}

# Set variable VAR to the value main.cf gives parameter NAME (its last assignment), without
# running postconf: for values this image writes itself, on one line, with no $name expansion.
# main_cf_value NAME VAR [FILE]; fails when main.cf does not set NAME.
main_cf_value() {
  local line found=1 lines
  mapfile -t lines <"${3:-$POSTFIX_MAIN_CF}"
  for line in "${lines[@]}"; do
    case "$line" in
      "$1"[[:space:]=]*)
        line="${line#"$1"}"
        line="${line#"${line%%[![:space:]]*}"}"
        [ "${line:0:1}" = "=" ] || continue
        line="${line#=}"
        printf -v "$2" '%s' "${line#"${line%%[![:space:]]*}"}"
        found=0
        ;;
    esac
  done
  return "$found"
}

# Where the milter at a Postfix milter address is served, as its chrooted Postfix clients
# (smtpd, cleanup) reach it: sets MILTER_KIND=unix and MILTER_WHERE=the socket's path on the
# container's file system (inside the queue directory), or MILTER_KIND=inet and
# MILTER_WHERE=the port. Fails for any other form.
milter_endpoint() {
  case "$1" in
    unix:/*) MILTER_KIND=unix MILTER_WHERE="$SPOOL${1#unix:}" ;;
    inet:*:[0-9]*) MILTER_KIND=inet MILTER_WHERE="${1##*:}" ;;
    *) return 1 ;;
  esac
}

# True when something accepts connections at this Postfix milter address.
milter_listening() {
  milter_endpoint "$1" || return 1
  case "$MILTER_KIND" in
    unix) unix_listening "$MILTER_WHERE" ;;
    inet) tcp_listening "$MILTER_WHERE" ;;
  esac
}
