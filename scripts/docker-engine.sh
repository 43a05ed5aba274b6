#!/usr/bin/env bash
# Makes a Docker engine available for the tests.
#   scripts/docker-engine.sh start   installs Debian's docker.io if needed and starts
#                                    dockerd on its own socket when no engine answers;
#                                    prints the DOCKER_HOST to use
#   scripts/docker-engine.sh stop    stops the engine this script started
set -euo pipefail
SOCK="${AIRLOCK_DOCKER_SOCK:-/var/run/airlock-docker.sock}"
PIDFILE="${AIRLOCK_DOCKER_PIDFILE:-/var/run/airlock-dockerd.pid}"
LOG="${AIRLOCK_DOCKER_LOG:-/tmp/airlock-dockerd.log}"
EXEC_ROOT=/var/run/airlock-docker

case "${1:-start}" in
start)
  if [ -n "${DOCKER_HOST:-}" ] && docker info >/dev/null 2>&1; then
    echo "$DOCKER_HOST"; exit 0
  fi
  if [ -S "$SOCK" ] && DOCKER_HOST="unix://$SOCK" docker info >/dev/null 2>&1; then
    echo "unix://$SOCK"; exit 0
  fi
  if ! command -v dockerd >/dev/null 2>&1; then
    echo "docker-engine: installing docker.io" >&2
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io) >&2
  fi
  # Nothing answers on our socket: clear what a killed engine left behind (its pid
  # file makes a new dockerd refuse to start; its containerd holds the exec root).
  if [ -f "$PIDFILE" ]; then
    kill -9 "$(cat "$PIDFILE")" 2>/dev/null || true
    rm -f "$PIDFILE"
  fi
  pkill -9 -f "containerd.*airlock-docker" 2>/dev/null || true
  sleep 1
  # Stale runtime state: pid files and sockets (a dead containerd's pid may be reused).
  find "$EXEC_ROOT" \( -name '*.pid' -o -name '*.sock' \) -type f -delete 2>/dev/null || true
  find "$EXEC_ROOT" -name '*.sock' -type s -delete 2>/dev/null || true
  rm -f "$SOCK"
  echo "docker-engine: starting dockerd on $SOCK (log: $LOG)" >&2
  nohup dockerd --iptables=false --ip6tables=false --bridge=none --storage-driver=vfs \
    --host "unix://$SOCK" --pidfile "$PIDFILE" --data-root /var/lib/airlock-docker \
    --exec-root "$EXEC_ROOT" >"$LOG" 2>&1 &
  for _ in $(seq 1 60); do
    if DOCKER_HOST="unix://$SOCK" docker info >/dev/null 2>&1; then
      echo "unix://$SOCK"; exit 0
    fi
    sleep 1
  done
  echo "docker-engine: dockerd did not come up; last log lines:" >&2
  tail -20 "$LOG" >&2
  exit 1
  ;;
stop)
  if [ -f "$PIDFILE" ]; then
    kill "$(cat "$PIDFILE")" 2>/dev/null || true
    for _ in $(seq 1 20); do [ -f "$PIDFILE" ] || break; sleep 0.5; done
  fi
  ;;
*)
  echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
