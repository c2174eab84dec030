#!/usr/bin/env bash
# Provide the base image debian:bookworm-slim.
#
# Keeps an image that is already there. Otherwise tries `docker pull`; where no registry is
# reachable it builds the image with debootstrap (minbase) from the Debian mirror that this
# machine's apt configuration names, trims it like the official slim image, and imports it.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh source-path=SCRIPTDIR
. "$here/lib.sh"

IMAGE="${BASE_IMAGE:-debian:bookworm-slim}"
SUITE="${BASE_SUITE:-bookworm}"
PULL_TIMEOUT="${PULL_TIMEOUT:-20}"

docker_ready || die "no Docker engine answers: run scripts/provision-docker.sh first"

if docker image inspect "$IMAGE" >/dev/null 2>&1; then
  log "$IMAGE is already present; keeping it"
  exit 0
fi

if [ "${SKIP_PULL:-0}" != 1 ] && timeout "$PULL_TIMEOUT" docker pull -q "$IMAGE" >/dev/null 2>&1; then
  log "Pulled $IMAGE"
  exit 0
fi
log "Cannot pull $IMAGE; building it with debootstrap"

mirror=$(apt_uri_for_suite "$SUITE") || die "no apt source for suite '$SUITE' in /etc/apt: cannot choose a Debian mirror"
security=$(apt_uri_for_suite "$SUITE-security") || security=""

if ! command -v debootstrap >/dev/null 2>&1; then
  log "Installing debootstrap"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null
fi

rootfs=$(mktemp -d /tmp/bookworm-rootfs.XXXXXX)
cleanup() { rm -rf "$rootfs"; }
trap cleanup EXIT

log "debootstrap --variant=minbase $SUITE (mirror from apt configuration)"
debootstrap --variant=minbase "$SUITE" "$rootfs" "$mirror" >/tmp/smtp-out-debootstrap.log 2>&1 \
  || { tail -n 20 /tmp/smtp-out-debootstrap.log >&2; die "debootstrap failed; see /tmp/smtp-out-debootstrap.log"; }

# apt sources as in the official image: the release, its updates and its security suite.
rm -f "$rootfs/etc/apt/sources.list"
{
  printf 'Types: deb\nURIs: %s\nSuites: %s %s-updates\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
    "$mirror" "$SUITE" "$SUITE"
  if [ -n "$security" ]; then
    printf '\nTypes: deb\nURIs: %s\nSuites: %s-security\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
      "$security" "$SUITE"
  fi
} >"$rootfs/etc/apt/sources.list.d/debian.sources"

# Trim like the official slim variant: no docs, man pages or translations now or later.
cat >"$rootfs/etc/dpkg/dpkg.cfg.d/docker-slim" <<'CFG'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
CFG
cat >"$rootfs/etc/apt/apt.conf.d/docker-clean" <<'CFG'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
CFG
printf 'Acquire::GzipIndexes "true";\n' >"$rootfs/etc/apt/apt.conf.d/docker-gzip-indexes"
find "$rootfs/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete 2>/dev/null || true
find "$rootfs/usr/share/doc" -mindepth 1 -type d -empty -delete 2>/dev/null || true
rm -rf "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* "$rootfs"/usr/share/locale/* \
  "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/cache/apt/archives/*.deb \
  "$rootfs"/var/log/* "$rootfs"/tmp/* "$rootfs"/root/.cache
: >"$rootfs/etc/machine-id"

log "Importing the root file system as $IMAGE"
tar --numeric-owner -C "$rootfs" -c . \
  | docker import --change 'CMD ["bash"]' --message "debootstrap $SUITE minbase (local build)" - "$IMAGE" >/dev/null
log "Built $IMAGE ($(docker image inspect --format '{{.Size}}' "$IMAGE") bytes)"
