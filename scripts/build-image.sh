#!/usr/bin/env bash
# Build Skriptoteket's container images without a container registry (the air-gapped path), or from a registry's
# python:3.11-slim where one is reachable. docs/docker.md explains the images and the options.
#
#   ./scripts/build-image.sh                 the user image (skriptoteket-user:latest), cached by content hash
#   ./scripts/build-image.sh --hub           also the hub image (skriptoteket-hub:latest) for docker-compose.yml
#   ./scripts/build-image.sh --force         rebuild even when an image with the same content hash exists
#   ./scripts/build-image.sh --base-image python:3.11-slim   use a registry's base instead of debootstrap
#   ./scripts/build-image.sh --print-hash    print the user image's content hash and exit
#
# Steps (each skipped when its result already exists):
#   1. base image (skriptoteket-base:bookworm): debootstrap --variant=minbase bookworm + Python, tini and
#      WeasyPrint's system libraries, then `docker import`. Needs root, debootstrap and Debian's archive
#      (plain HTTP; a local mirror works: DEBIAN_MIRROR=http://mirror.local/debian).
#   2. wheelhouse: the project's wheel (pip wheel --no-deps .) + every dependency (extras tools,authoring) +
#      jupyterhub-idle-culler, downloaded on this host with pip's configuration ignored (--isolated).
#   3. docker build runner_kernel/Dockerfile with BASE_IMAGE and the wheelhouse; installs with --no-index. The
#      dependencies (wheelhouse/) and the project's wheel (project/) are installed in separate layers, so after a
#      change to the sources only the project's layers are rebuilt (seconds) and the dependency layer is reused.
#
# Environment: SKRIPTOTEKET_IMAGE (default skriptoteket-user:latest), SKRIPTOTEKET_HUB_IMAGE
# (skriptoteket-hub:latest), SKRIPTOTEKET_BASE_IMAGE (skriptoteket-base:bookworm), SKRIPTOTEKET_CACHE
# (/var/cache/skriptoteket: debootstrap root and wheelhouse, kept between runs), PIP_CERT_FILE (CA bundle for
# pip download; default the system's), DEBIAN_MIRROR.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

IMAGE=${SKRIPTOTEKET_IMAGE:-skriptoteket-user:latest}
HUB_IMAGE=${SKRIPTOTEKET_HUB_IMAGE:-skriptoteket-hub:latest}
DEPS_IMAGE="${IMAGE%:*}-deps:${IMAGE##*:}"   # the Dockerfile's dependency stage, kept for the layer cache
BASE=${SKRIPTOTEKET_BASE_IMAGE:-skriptoteket-base:bookworm}
CACHE=${SKRIPTOTEKET_CACHE:-/var/cache/skriptoteket}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
CERT=${PIP_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}
LABEL=org.skriptoteket.content-hash

# System packages of the base image: Python, tini (PID 1 that reaps kernels), WeasyPrint's Pango/HarfBuzz and
# fonts. (The hub image adds this host's node binary and configurable-http-proxy: see --hub.)
BASE_PACKAGES="python3 python3-venv python3-pip ca-certificates tini libpango-1.0-0 libpangoft2-1.0-0 \
libharfbuzz0b libharfbuzz-subset0 libfontconfig1 fontconfig fonts-dejavu-core shared-mime-info"
EXTRA_REQUIREMENTS="jupyterhub-idle-culler>=1.4,<2"
# The hub image's own system packages: iptables for the firewall rules of the users' network (docs/docker.md).
HUB_SYSTEM_PACKAGES="iptables"

want_hub=0; force=0; print_hash=0; registry_base=""
while [ $# -gt 0 ]; do
  case "$1" in
    --hub) want_hub=1 ;;
    --force) force=1 ;;
    --print-hash) print_hash=1 ;;
    --base-image) registry_base=$2; shift ;;
    -h|--help) sed -n '2,25p' "$0"; exit 0 ;;
    *) echo "unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

log() { printf '==> %s\n' "$*" >&2; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN{printf "%.1f s", b-a}'; }

# The content hash: everything that goes into the user image. Untracked files count too (a developer's build is
# of the working tree); __pycache__ does not.
content_hash() {
  {
    echo "base=${registry_base:-$BASE} packages=$BASE_PACKAGES extra=$EXTRA_REQUIREMENTS"
    for f in runner_kernel/Dockerfile scripts/build-image.sh scripts/image/* pyproject.toml; do sha256sum "$f"; done
    git ls-files -co --exclude-standard -- skriptoteket_ext runner_kernel notebooks voila_templates migrations \
      | grep -v __pycache__ | LC_ALL=C sort | while read -r f; do [ -f "$f" ] && sha256sum "$f"; done
  } | sha256sum | cut -c1-16
}
HASH=$(content_hash)
HUB_HASH=$({ echo "$HASH"; sha256sum deploy/hub.Dockerfile; git ls-files -co --exclude-standard -- hub_config \
  | grep -v __pycache__ | LC_ALL=C sort | while read -r f; do [ -f "$f" ] && sha256sum "$f"; done; } \
  | sha256sum | cut -c1-16)
if [ "$print_hash" = 1 ]; then echo "$HASH"; exit 0; fi

command -v docker >/dev/null || { echo "docker is not installed" >&2; exit 1; }
docker info >/dev/null 2>&1 || { echo "the Docker engine is not reachable (is dockerd running?)" >&2; exit 1; }

image_hash() { docker image inspect -f "{{ index .Config.Labels \"$LABEL\" }}" "$1" 2>/dev/null || true; }

build_user=1; [ "$force" = 0 ] && [ "$(image_hash "$IMAGE")" = "$HASH" ] && build_user=0
build_hub=$want_hub; [ "$force" = 0 ] && [ "$(image_hash "$HUB_IMAGE")" = "$HUB_HASH" ] && build_hub=0
if [ "$build_user" = 0 ] && [ "$build_hub" = 0 ]; then
  log "$IMAGE is up to date (content hash $HASH)"
  exit 0
fi
T_ALL=$(now)

# ---- 1. the base image ------------------------------------------------------------------------------------------
if [ -n "$registry_base" ]; then
  BASE=$registry_base
  log "base image: $BASE (from a registry)"
else
  base_hash=$(printf '%s\n' "$BASE_PACKAGES" "$MIRROR" "bookworm-minbase-v2" | sha256sum | cut -c1-16)
  if [ "$(image_hash "$BASE")" != "$base_hash" ]; then
    t=$(now)
    command -v debootstrap >/dev/null || { echo "debootstrap is missing: apt-get install debootstrap" >&2; exit 1; }
    [ "$(id -u)" = 0 ] || { echo "building the base image needs root (debootstrap, chroot)" >&2; exit 1; }
    rootfs="$CACHE/rootfs-bookworm"
    rm -rf "$rootfs"; mkdir -p "$rootfs"
    log "debootstrap --variant=minbase bookworm ($MIRROR)"
    debootstrap --variant=minbase bookworm "$rootfs" "$MIRROR" >"$CACHE/debootstrap.log" 2>&1 \
      || { tail -20 "$CACHE/debootstrap.log" >&2; exit 1; }
    cat >"$rootfs/etc/apt/sources.list" <<EOF
deb $MIRROR bookworm main
deb $MIRROR bookworm-updates main
deb ${DEBIAN_SECURITY_MIRROR:-http://security.debian.org/debian-security} bookworm-security main
EOF
    # no daemons may start inside the chroot; no docs/man pages in the image
    printf '#!/bin/sh\nexit 101\n' >"$rootfs/usr/sbin/policy-rc.d"; chmod +x "$rootfs/usr/sbin/policy-rc.d"
    cat >"$rootfs/etc/dpkg/dpkg.cfg.d/01-nodoc" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/lintian/*
EOF
    log "apt-get install (in the chroot): $BASE_PACKAGES"
    mount -t proc proc "$rootfs/proc"
    trap 'umount "$rootfs/proc" 2>/dev/null || true' EXIT
    chroot "$rootfs" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive sh -euc "
      apt-get update -qq
      apt-get upgrade -y -qq >/dev/null
      apt-get install -y -qq --no-install-recommends $BASE_PACKAGES >/dev/null
      apt-get clean
      rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/*.log /var/log/apt/* /tmp/*
    " >"$CACHE/chroot-apt.log" 2>&1 || { tail -30 "$CACHE/chroot-apt.log" >&2; exit 1; }
    umount "$rootfs/proc"; trap - EXIT
    rm -f "$rootfs/usr/sbin/policy-rc.d"
    log "docker import -> $BASE"
    tar -C "$rootfs" --numeric-owner -c . | docker import \
      --change "LABEL $LABEL=$base_hash" \
      --change 'ENV LANG=C.UTF-8 PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
      --change 'CMD ["/bin/bash"]' - "$BASE" >/dev/null
    rm -rf "$rootfs"
    log "base image built in $(since "$t")"
  else
    log "base image $BASE is up to date"
  fi
fi

# ---- 2. the wheelhouse --------------------------------------------------------------------------------------------
t=$(now)
ctx="$ROOT/build/image-context"
rm -rf "$ctx"; mkdir -p "$ctx/wheelhouse" "$CACHE"
# the base image's Python decides which wheels fit (Debian bookworm has 3.11.2; a package may want >= 3.11.5)
PYVER=$(docker run --rm --network none --entrypoint python3 "$BASE" -c 'import platform; print(platform.python_version())')
dep_hash=$(printf '%s\n' "$(sha256sum pyproject.toml)" "$EXTRA_REQUIREMENTS" "$PYVER" | sha256sum | cut -c1-16)
deps="$CACHE/wheelhouse-$dep_hash"
# pip's host configuration (constraints, extra indexes, find-links) must not leak into the wheelhouse
pip_isolated() { env -u PIP_FIND_LINKS -u PIP_CONSTRAINT -u PIP_EXTRA_INDEX_URL -u PIP_INDEX_URL -u PIP_NO_INDEX \
  PIP_CONFIG_FILE=/dev/null "$ROOT/.venv/bin/python" -m pip --isolated --disable-pip-version-check \
  --cert "$CERT" "$@"; }
log "project wheel (pip wheel --no-deps .)"
# the project's wheel goes to project/, apart from the dependencies: the Dockerfile installs wheelhouse/ in a layer
# of its own, which Docker's cache keeps as long as wheelhouse/ is unchanged (any source change alters the wheel)
mkdir -p "$ctx/project"
# a cached build environment (setuptools, wheel) instead of pip's isolated one, which is downloaded anew each time
# (~30 s here); it is made once, and again when it is missing
buildenv="$CACHE/buildenv-setuptools"
if [ ! -x "$buildenv/bin/python" ] || ! "$buildenv/bin/python" -c 'import setuptools, wheel' 2>/dev/null; then
  rm -rf "$buildenv"
  "$ROOT/.venv/bin/python" -m venv "$buildenv"
  env -u PIP_FIND_LINKS -u PIP_CONSTRAINT -u PIP_EXTRA_INDEX_URL -u PIP_INDEX_URL -u PIP_NO_INDEX \
    PIP_CONFIG_FILE=/dev/null "$buildenv/bin/python" -m pip --isolated --disable-pip-version-check \
    --cert "$CERT" install --quiet "setuptools>=77" wheel >/dev/null
fi
env -u PIP_FIND_LINKS -u PIP_CONSTRAINT -u PIP_EXTRA_INDEX_URL -u PIP_INDEX_URL -u PIP_NO_INDEX \
  PIP_CONFIG_FILE=/dev/null "$buildenv/bin/python" -m pip --isolated --disable-pip-version-check \
  wheel --quiet --no-deps --no-build-isolation --no-index -w "$ctx/project" . >/dev/null
rm -rf build/lib build/bdist* 2>/dev/null || true
project_wheel=$(ls "$ctx"/project/skriptoteket-*.whl)
if [ ! -f "$deps/.complete" ]; then
  log "pip download dependencies (Python $PYVER wheels) into $deps"
  rm -rf "$deps"; mkdir -p "$deps"
  # wheels only, for the image's Python; a dependency published only as a source distribution (e.g. onetimepass)
  # is built into a wheel here and offered through --find-links, so the image needs no compiler
  for attempt in 1 2 3 4 5 6; do
    if pip_isolated download --quiet --only-binary=:all: --python-version "$PYVER" --find-links "$deps" \
        -d "$deps" "skriptoteket[tools,authoring] @ file://$project_wheel" "$EXTRA_REQUIREMENTS" \
        2>"$CACHE/download.err"; then break; fi
    missing=$(sed -n 's/.*No matching distribution found for \([A-Za-z0-9_.-]*\).*/\1/p' "$CACHE/download.err" | head -1)
    [ -n "$missing" ] && [ "$attempt" -lt 6 ] || { cat "$CACHE/download.err" >&2; exit 1; }
    log "  $missing has no wheel: building one"
    pip_isolated wheel --quiet --no-deps -w "$deps" "$missing"
  done
  rm -f "$deps"/skriptoteket-*.whl
  touch "$deps/.complete"
fi
cp -l "$deps"/*.whl "$ctx/wheelhouse/" 2>/dev/null || cp "$deps"/*.whl "$ctx/wheelhouse/"
# what each image installs from the wheelhouse, from pyproject.toml (so the list changes only with it)
"$ROOT/.venv/bin/python" - "$ctx/wheelhouse" "$EXTRA_REQUIREMENTS" <<'PY'
import pathlib, sys, tomllib
project = tomllib.loads(pathlib.Path("pyproject.toml").read_text())["project"]
base, extras = project["dependencies"], project["optional-dependencies"]
out = pathlib.Path(sys.argv[1])
(out / "requirements-user.txt").write_text("\n".join([*base, *extras["tools"], *extras["authoring"]]) + "\n")
(out / "requirements-hub.txt").write_text("\n".join([*base, sys.argv[2]]) + "\n")
PY
cp -r notebooks voila_templates "$ctx/"
cp -r scripts/image "$ctx/image"
cp runner_kernel/Dockerfile deploy/hub.Dockerfile "$ctx/" 2>/dev/null || cp runner_kernel/Dockerfile "$ctx/"
find "$ctx" -name __pycache__ -prune -exec rm -rf {} +
log "wheelhouse ready ($(ls "$ctx/wheelhouse" | wc -l) wheels, $(du -sh "$ctx/wheelhouse" | cut -f1)) in $(since "$t")"

# ---- 3. docker build -------------------------------------------------------------------------------------------------
if [ "$build_user" = 1 ]; then
  t=$(now)
  # The dependency stage first, tagged: a tag keeps it (and so the layer cache of the slow install) out of the
  # prune below, which would otherwise remove it as a dangling image labelled through the base image.
  log "docker build $DEPS_IMAGE (the dependency stage; cached while wheelhouse/ is unchanged)"
  DOCKER_BUILDKIT=0 docker build --quiet --force-rm -f "$ctx/Dockerfile" --target deps \
    --build-arg BASE_IMAGE="$BASE" -t "$DEPS_IMAGE" "$ctx" >/dev/null 2>"$CACHE/build.err" \
    || { cat "$CACHE/build.err" >&2; exit 1; }
  log "dependency stage ready in $(since "$t")"
  t=$(now)
  log "docker build $IMAGE (FROM $BASE)"
  DOCKER_BUILDKIT=0 docker build --quiet --force-rm -f "$ctx/Dockerfile" \
    --build-arg BASE_IMAGE="$BASE" --label "$LABEL=$HASH" -t "$IMAGE" "$ctx" >/dev/null 2>"$CACHE/build.err" \
    || { cat "$CACHE/build.err" >&2; exit 1; }
  log "user image built in $(since "$t"): $(docker image inspect -f '{{.Size}}' "$IMAGE" | awk '{printf "%.0f MB", $1/1e6}')"
else
  log "$IMAGE is up to date (content hash $HASH)"
fi

if [ "$build_hub" = 1 ]; then
  t=$(now)
  [ -x node_modules/.bin/configurable-http-proxy ] || ./scripts/setup.sh >/dev/null
  node_bin=$(readlink -f "$(command -v node)") || { echo "node is needed for the hub image" >&2; exit 1; }
  mkdir -p "$ctx/node" "$ctx/src"
  cp "$node_bin" "$ctx/node/node"
  cp -r node_modules "$ctx/node/node_modules"
  cp -r hub_config migrations skriptoteket_ext runner_kernel "$ctx/src/"
  # the .debs of HUB_SYSTEM_PACKAGES not in the base, resolved by the base's own apt (so they fit it, whatever this
  # host runs) in a throw-away container, and cached; the Dockerfile installs them with dpkg, no network
  debs="$CACHE/hub-debs-$(printf '%s\n' "$HUB_SYSTEM_PACKAGES" "$(docker image inspect -f '{{.Id}}' "$BASE")" \
    | sha256sum | cut -c1-16)"
  if [ ! -f "$debs/.complete" ]; then
    log "apt-get install --download-only (in a container of $BASE): $HUB_SYSTEM_PACKAGES"
    rm -rf "$debs"; mkdir -p "$debs"
    docker run --rm -v "$debs:/out" --entrypoint sh "$BASE" -euc "
      apt-get update -qq
      mkdir -p /tmp/archives/partial
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --download-only --no-install-recommends \
        -o Dir::Cache::archives=/tmp/archives $HUB_SYSTEM_PACKAGES >/dev/null
      for f in /tmp/archives/*.deb; do [ -f \"\$f\" ] && cp \"\$f\" /out/; done; true
    " >"$CACHE/hub-debs.log" 2>&1 || { tail -20 "$CACHE/hub-debs.log" >&2; exit 1; }
    touch "$debs/.complete"
  fi
  mkdir -p "$ctx/debs"
  for f in "$debs"/*.deb; do if [ -f "$f" ]; then cp "$f" "$ctx/debs/"; fi; done
  find "$ctx" -name __pycache__ -prune -exec rm -rf {} +
  log "docker build $HUB_IMAGE (FROM $BASE)"
  DOCKER_BUILDKIT=0 docker build --quiet --force-rm -f "$ctx/hub.Dockerfile" \
    --build-arg BASE_IMAGE="$BASE" --label "$LABEL=$HUB_HASH" -t "$HUB_IMAGE" "$ctx" >/dev/null 2>"$CACHE/build.err" \
    || { cat "$CACHE/build.err" >&2; exit 1; }
  log "hub image built in $(since "$t")"
fi
docker image prune -f --filter "label=$LABEL" >/dev/null 2>&1 || true
log "done in $(since "$T_ALL") (content hash $HASH)"
