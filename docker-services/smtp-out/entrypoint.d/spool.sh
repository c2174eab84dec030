# shellcheck shell=bash disable=SC2034,SC2153 # the stages share their variables (entrypoint.sh sources them all)
# Stage 7, the queue directory: Postfix's chroot inside it, the queue directories and their
# owners, the milter socket's directory, and postsuper's structure check. The first write to the
# queue directory happens here, after every input was validated. Needs the postfix and opendkim
# users and Postfix's tools (tests/docker/test_entrypoint_stages.py runs it on a temporary root
# inside the image).

: "${ETC_DIR:=/etc}"                               # the system files copied into the chroot
: "${PRECHECK_DIR:=/run/postfix-precheck}"

# Postfix's queue directories and their owner, group and mode: read from Postfix's own
# manifest (postfix-files, see read_queue_dirs), the one list of them.
QUEUE_DIRS=()
declare -A QUEUE_DIR_OWNER=() QUEUE_DIR_GROUP=() QUEUE_DIR_MODE=()

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

# Postfix's chroot lives in the queue directory, which may be a volume persisted by the old
# Alpine image: copy the system files it needs, owned root:root whatever the volume's owner;
# replace stale time zone data with the zones Postfix can read (those of $TZ and
# /etc/localtime), once per tzdata version and TZ; fix foreign ownership of the queue; give
# OpenDKIM its socket directory (group postfix: Postfix's daemons run with that group only).
prepare_spool() {
  local file stamp want zone tz="${TZ:-}" version=""
  install -d -o root -g root -m 755 "$SPOOL" "$SPOOL/etc" "$SPOOL/usr" "$SPOOL/usr/share"
  for file in resolv.conf hosts nsswitch.conf services host.conf localtime; do
    [ -e "$ETC_DIR/$file" ] || continue
    install -o root -g root -m 644 "$(readlink -f "$ETC_DIR/$file")" "$SPOOL/etc/$file.tmp"
    mv -f "$SPOOL/etc/$file.tmp" "$SPOOL/etc/$file"
  done

  stamp="$SPOOL/usr/share/zoneinfo/.smtp-out-tzdata"
  read -r _ _ version <"$ZONEINFO_DIR/tzdata.zi" || true # "# version 2024a"
  want="tzdata ${version:-unknown} TZ=$tz"
  if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    log "Refreshing time zone data in the Postfix chroot ($want)"
    rm -rf "$SPOOL/usr/share/zoneinfo"
    for zone in UTC Etc/UTC posixrules "${tz#:}" "$(readlink -f "$ETC_DIR/localtime" | sed "s#^$ZONEINFO_DIR/##")"; do
      if [ -z "$zone" ] || ! is_zone_name "$zone"; then
        continue
      fi
      install -D -o root -g root -m 644 "$ZONEINFO_DIR/$zone" "$SPOOL/usr/share/zoneinfo/$zone"
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
# `postfix start-fg` then skips its own checks ($SPOOL/quick-start, see entrypoint.sh).
check_queue_structure() {
  local conf="$PRECHECK_DIR"
  rm -rf "$conf"
  install -d -m 755 "$conf"
  cp -p "$CONF_DIR/master.cf" "$CONF_DIR/dynamicmaps.cf" "$conf/"
  sed 's/^maillog_file = .*/maillog_file =/' "$CONF_DIR/main.cf" >"$conf/main.cf"
  touch -d "@$((${EPOCHREALTIME%.*} - 60))" "$conf/main.cf"
  postsuper -c "$conf" || fail "$SPOOL: postsuper's queue structure check failed (see the lines above)"
}
