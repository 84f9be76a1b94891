#!/usr/bin/env bash
# Make a Docker engine answer, with the compose v2 plugin and buildx (see shared/CONTAINERS.md).
#   .ci/docker-engine.sh start   install what is missing, start dockerd unless `docker info` answers
#   .ci/docker-engine.sh stop    stop the dockerd that `start` started (no-op otherwise)
# The PID of a dockerd started here is kept in .ci/.dockerd.pid so `stop` ends only what `start` began.
set -euo pipefail
cd "$(dirname "$0")"
PIDFILE="$PWD/.dockerd.pid"
LOG="${TMPDIR:-/tmp}/dagops-dockerd.log"

apt_quiet() { DEBIAN_FRONTEND=noninteractive apt-get "$@" -qq >/dev/null; }

install_engine() {
  if ! command -v dockerd >/dev/null 2>&1; then
    echo "installing docker.io (Debian's engine)"
    apt_quiet update
    apt_quiet install -y docker.io containerd runc iptables
  fi
}

# bookworm ships compose v1 only; the v2 plugin and buildx come from trixie and need only libc6 >= 2.34.
install_plugins() {
  local need=()
  docker compose version >/dev/null 2>&1 || need+=(docker-compose)
  docker buildx version >/dev/null 2>&1 || need+=(docker-buildx)
  [ ${#need[@]} -eq 0 ] && return 0
  echo "installing ${need[*]} from Debian trixie"
  local work
  work=$(mktemp -d)
  local mirror
  mirror=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
  mirror=${mirror:-http://deb.debian.org/debian}
  mkdir -p "$work/lists/partial" "$work/cache/archives/partial"
  echo "deb $mirror trixie main" >"$work/trixie.list"
  local opts=(-o "Dir::Etc::SourceList=$work/trixie.list" -o "Dir::Etc::SourceParts=-"
    -o "Dir::State::Lists=$work/lists" -o "Dir::Cache=$work/cache")
  apt-get "${opts[@]}" update -qq >/dev/null
  (cd "$work" && apt-get "${opts[@]}" download "${need[@]}" >/dev/null)
  dpkg -i "$work"/*.deb >/dev/null
  rm -rf "$work"
}

start() {
  install_engine
  if ! docker info >/dev/null 2>&1; then
    echo "starting dockerd (log: $LOG)"
    nohup dockerd >"$LOG" 2>&1 &
    echo $! >"$PIDFILE"
    for _ in $(seq 1 60); do
      docker info >/dev/null 2>&1 && break
      sleep 0.5
    done
    docker info >/dev/null 2>&1 || { echo "dockerd did not answer within 30 s; see $LOG" >&2; exit 1; }
  fi
  install_plugins
  docker version --format 'engine {{.Server.Version}}'
  docker compose version
}

stop() {
  [ -f "$PIDFILE" ] || return 0
  local pid
  pid=$(cat "$PIDFILE")
  rm -f "$PIDFILE"
  kill "$pid" 2>/dev/null || return 0
  for _ in $(seq 1 40); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.5
  done
  kill -9 "$pid" 2>/dev/null || true
}

case "${1:-}" in
start) start ;;
stop) stop ;;
*)
  echo "usage: $0 start|stop" >&2
  exit 2
  ;;
esac
