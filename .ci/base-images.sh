#!/usr/bin/env bash
# Local stand-ins for the public base images, for machines where no image registry answers
# (see shared/CONTAINERS.md). Idempotent: an image that exists is kept, unless the host's proxy CA
# changed since the Python base was built (it is rewritten at each boot) or --force is given.
#
#   .ci/base-images.sh                 native architecture: debian, python, uv, postgres, moto
#   .ci/base-images.sh --arch arm64    arm64 debian, python and uv (under qemu when the host is not arm64)
#   .ci/base-images.sh --force         rebuild even what exists
#   .ci/base-images.sh --print         print the tags as DAGOPS_*_IMAGE=... lines (for `export $(...)`),
#                                      build nothing (with --arch arm64 on amd64: DAGOPS_ARM64_*_IMAGE)
#
# Tags (ARCH is amd64 or arm64; images/Dockerfile takes PYTHON_IMAGE and UV_IMAGE as build args):
#   dagops-local/debian:bookworm-ARCH       debootstrap --variant=minbase rootfs
#   dagops-local/python:3.11-bookworm-ARCH  Debian's python3 + the host's proxy CA, SSL_CERT_FILE set
#   dagops-local/uv:UV_VERSION-ARCH         FROM scratch with /uv and /uvx from the uv wheel on PyPI
#   dagops-local/postgres:15                Debian's PostgreSQL 15, the official image's env contract
#   dagops-local/moto:MOTO_VERSION          moto's server (S3 endpoint) on port 5000
# Each is first pulled from its public source (debian:bookworm-slim, python:3.11-slim-bookworm,
# ghcr.io/astral-sh/uv, postgres:15, motoserver/moto) and tagged with the local name; only when that pull
# fails (no registry answers) is it built here.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
HERE=$ROOT/images/local-base

UV_VERSION=0.13.9
MOTO_VERSION=$(awk '/^name = "moto"$/ {getline; gsub(/[^0-9.]/, "", $0); print; exit}' uv.lock)
PG_MAJOR=15
NATIVE=$(dpkg --print-architecture 2>/dev/null || uname -m)
case "$NATIVE" in x86_64) NATIVE=amd64 ;; aarch64) NATIVE=arm64 ;; esac

ARCH=$NATIVE
FORCE=0
PRINT=0
while [ $# -gt 0 ]; do
  case "$1" in
  --arch)
    ARCH=$2
    shift 2
    ;;
  --force)
    FORCE=1
    shift
    ;;
  --print)
    PRINT=1
    shift
    ;;
  *)
    echo "usage: $0 [--arch amd64|arm64] [--force] [--print]" >&2
    exit 2
    ;;
  esac
done
case "$ARCH" in amd64 | arm64) ;; *)
  echo "error: --arch must be amd64 or arm64, not '$ARCH'." >&2
  exit 2
  ;;
esac

DEBIAN_IMAGE=dagops-local/debian:bookworm-$ARCH
PYTHON_IMAGE=dagops-local/python:3.11-bookworm-$ARCH
UV_IMAGE=dagops-local/uv:$UV_VERSION-$ARCH
POSTGRES_IMAGE=dagops-local/postgres:$PG_MAJOR
MOTO_IMAGE=dagops-local/moto:$MOTO_VERSION

if [ "$PRINT" = 1 ]; then
  if [ "$ARCH" = "$NATIVE" ]; then
    printf 'DAGOPS_PYTHON_IMAGE=%s\nDAGOPS_UV_IMAGE=%s\nDAGOPS_POSTGRES_IMAGE=%s\nDAGOPS_MOTO_IMAGE=%s\n' \
      "$PYTHON_IMAGE" "$UV_IMAGE" "$POSTGRES_IMAGE" "$MOTO_IMAGE"
  else # the foreign architecture's bases, for tests/containers/test_arm64.py
    arch_upper=$(echo "$ARCH" | tr '[:lower:]' '[:upper:]')
    printf 'DAGOPS_%s_PYTHON_IMAGE=%s\nDAGOPS_%s_UV_IMAGE=%s\n' \
      "$arch_upper" "$PYTHON_IMAGE" "$arch_upper" "$UV_IMAGE"
  fi
  exit 0
fi

docker info >/dev/null 2>&1 || {
  echo "error: no Docker engine answers (start one with .ci/docker-engine.sh start)." >&2
  exit 1
}
export DOCKER_BUILDKIT=1
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

have() { [ "$FORCE" = 0 ] && docker image inspect "$1" >/dev/null 2>&1; }
# pulled PUBLIC LOCAL: pull the public image for $ARCH and give it the local tag; fails fast offline.
pulled() {
  timeout 120 docker pull -q --platform "linux/$ARCH" "$1" >/dev/null 2>&1 || return 1
  docker tag "$1" "$2"
  echo "  pulled $1 as $2"
}
took() { echo "  built $1 in $(($(date +%s) - $2)) s, $(docker image inspect -f '{{.Size}}' "$1" | awk '{printf "%d MB", $1/1e6}')"; }

mirror=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
mirror=${mirror:-http://deb.debian.org/debian}

apt_quiet() { DEBIAN_FRONTEND=noninteractive apt-get "$@" -qq >/dev/null; }

# Emulation for a foreign architecture: qemu-user-static registers itself with binfmt_misc.
need_qemu() {
  [ "$ARCH" = "$NATIVE" ] && return 0
  if [ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]; then
    command -v update-binfmts >/dev/null 2>&1 && command -v qemu-aarch64-static >/dev/null 2>&1 || {
      echo "installing qemu-user-static and binfmt-support"
      apt_quiet update
      apt_quiet install -y qemu-user-static binfmt-support
    }
    mountpoint -q /proc/sys/fs/binfmt_misc || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
    update-binfmts --enable qemu-aarch64 >/dev/null 2>&1 || true
  fi
  [ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ] || {
    echo "error: qemu-aarch64 is not registered with binfmt_misc; cannot build for $ARCH." >&2
    exit 1
  }
}

build_debian() {
  have "$DEBIAN_IMAGE" && return 0
  pulled debian:bookworm-slim "$DEBIAN_IMAGE" && return 0
  local t0
  t0=$(date +%s)
  command -v debootstrap >/dev/null 2>&1 || {
    apt_quiet update
    apt_quiet install -y debootstrap
  }
  need_qemu
  echo "debootstrap bookworm ($ARCH) from $mirror"
  debootstrap --variant=minbase --arch="$ARCH" bookworm "$WORK/rootfs" "$mirror" >"$WORK/debootstrap.log" 2>&1 || {
    tail -20 "$WORK/debootstrap.log" >&2
    exit 1
  }
  rm -rf "$WORK"/rootfs/var/cache/apt/archives/*.deb "$WORK"/rootfs/var/lib/apt/lists/*
  mkdir -p "$WORK/debian"
  tar -C "$WORK/rootfs" -cf "$WORK/debian/rootfs.tar" .
  rm -rf "$WORK/rootfs"
  # FROM scratch + ADD (not `docker import`) so the image is marked with its own architecture.
  printf 'FROM scratch\nADD rootfs.tar /\nCMD ["bash"]\n' >"$WORK/debian/Dockerfile"
  docker build -q --platform "linux/$ARCH" -t "$DEBIAN_IMAGE" "$WORK/debian" >/dev/null
  rm -rf "$WORK/debian"
  took "$DEBIAN_IMAGE" "$t0"
}

ca_sha() { cat /usr/local/share/ca-certificates/*.crt 2>/dev/null | sha256sum | cut -c1-16; }

build_python() {
  local want
  want=$(ca_sha)
  if have "$PYTHON_IMAGE"; then
    # A pulled public image has no label; one built here must trust today's proxy CA.
    local got
    got=$(docker image inspect -f '{{index .Config.Labels "org.dagops.ca-sha256"}}' "$PYTHON_IMAGE")
    [ -z "$got" ] || [ "$got" = "$want" ] && return 0
  fi
  pulled python:3.11-slim-bookworm "$PYTHON_IMAGE" && return 0
  need_qemu
  local t0
  t0=$(date +%s)
  mkdir -p "$WORK/python/certs"
  cp "$HERE/python.Dockerfile" "$WORK/python/Dockerfile"
  cp /usr/local/share/ca-certificates/*.crt "$WORK/python/certs/" 2>/dev/null || true
  docker build -q --platform "linux/$ARCH" --build-arg ROOTFS_IMAGE="$DEBIAN_IMAGE" \
    --build-arg CA_SHA256="$want" -t "$PYTHON_IMAGE" "$WORK/python" >/dev/null
  # The moto image carries the old CA too.
  [ "$ARCH" = "$NATIVE" ] && docker image rm -f "$MOTO_IMAGE" >/dev/null 2>&1 || true
  took "$PYTHON_IMAGE" "$t0"
}

build_uv() {
  have "$UV_IMAGE" && return 0
  pulled "ghcr.io/astral-sh/uv:$UV_VERSION" "$UV_IMAGE" && return 0
  local t0 plat
  t0=$(date +%s)
  case "$ARCH" in amd64) plat=manylinux2014_x86_64 ;; arm64) plat=manylinux2014_aarch64 ;; esac
  mkdir -p "$WORK/uv/wheel"
  python3 -m pip download --quiet --no-deps --only-binary=:all: --platform "$plat" \
    --dest "$WORK/uv/wheel" "uv==$UV_VERSION"
  python3 - "$WORK/uv" <<'PY'
import pathlib, sys, zipfile
out = pathlib.Path(sys.argv[1])
wheel = next((out / "wheel").glob("uv-*.whl"))
with zipfile.ZipFile(wheel) as z:
    for name in z.namelist():
        if name.endswith((".data/scripts/uv", ".data/scripts/uvx")):
            target = out / name.rsplit("/", 1)[1]
            target.write_bytes(z.read(name))
            target.chmod(0o755)
PY
  cp "$HERE/uv.Dockerfile" "$WORK/uv/Dockerfile"
  printf 'wheel\n' >"$WORK/uv/.dockerignore"
  docker build -q --platform "linux/$ARCH" -t "$UV_IMAGE" "$WORK/uv" >/dev/null
  took "$UV_IMAGE" "$t0"
}

build_postgres() {
  have "$POSTGRES_IMAGE" && return 0
  pulled "postgres:$PG_MAJOR" "$POSTGRES_IMAGE" && return 0
  local t0
  t0=$(date +%s)
  docker build -q -f "$HERE/postgres.Dockerfile" --build-arg ROOTFS_IMAGE="$DEBIAN_IMAGE" \
    --build-arg PG_MAJOR="$PG_MAJOR" -t "$POSTGRES_IMAGE" "$HERE" >/dev/null
  took "$POSTGRES_IMAGE" "$t0"
}

build_moto() {
  have "$MOTO_IMAGE" && return 0
  pulled "motoserver/moto:$MOTO_VERSION" "$MOTO_IMAGE" && return 0
  local t0
  t0=$(date +%s)
  docker build -q -f "$HERE/moto.Dockerfile" --build-arg PYTHON_IMAGE="$PYTHON_IMAGE" \
    --build-arg UV_IMAGE="$UV_IMAGE" --build-arg MOTO_VERSION="$MOTO_VERSION" \
    -t "$MOTO_IMAGE" "$HERE" >/dev/null
  took "$MOTO_IMAGE" "$t0"
}

echo "local base images ($ARCH)"
build_debian
build_python
build_uv
if [ "$ARCH" = "$NATIVE" ]; then
  build_postgres
  build_moto
fi
docker image ls --format '  {{.Repository}}:{{.Tag}}\t{{.Size}}' 'dagops-local/*' | sort
