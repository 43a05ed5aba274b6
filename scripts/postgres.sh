#!/usr/bin/env bash
# A throwaway PostgreSQL 15 server for the tests, on loopback only.
#   scripts/postgres.sh start   installs Debian's postgresql if needed, creates a
#                               cluster in $AIRLOCK_PG_DIR (default /tmp/airlock-pg),
#                               starts it on 127.0.0.1:$AIRLOCK_PG_PORT (default
#                               55432) and prints its URL (user airlock, password
#                               airlock, SCRAM authentication)
#   scripts/postgres.sh stop    stops it and removes the cluster
#   scripts/postgres.sh kill    stops it at once, as a crash would, keeping the data
#   scripts/postgres.sh resume  starts a killed cluster again (crash recovery)
# The server refuses to run as root, so the cluster belongs to the postgres user.
set -euo pipefail
DIR="${AIRLOCK_PG_DIR:-/tmp/airlock-pg}"
PORT="${AIRLOCK_PG_PORT:-55432}"
BIN="${AIRLOCK_PG_BIN:-/usr/lib/postgresql/15/bin}"
URL="postgres://airlock:airlock@127.0.0.1:$PORT/postgres"
as_postgres() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

start_server() {
  as_postgres "$BIN/pg_ctl" -D "$DIR/data" -l "$DIR/server.log" -w -t 60 \
    -o "-p $PORT -k $DIR -c listen_addresses=127.0.0.1" start >/dev/null || {
    echo "postgres: the server did not start:" >&2; tail -20 "$DIR/server.log" >&2; exit 1; }
}

case "${1:-start}" in
start)
  if [ ! -x "$BIN/initdb" ]; then
    echo "postgres: installing postgresql" >&2
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql) >&2
  fi
  if "$BIN/pg_isready" -q -h 127.0.0.1 -p "$PORT"; then
    echo "$URL"; exit 0
  fi
  if [ -f "$DIR/data/postmaster.pid" ]; then
    as_postgres "$BIN/pg_ctl" -D "$DIR/data" -m immediate stop >/dev/null 2>&1 || true
  fi
  rm -rf "$DIR"
  mkdir -p "$DIR"
  printf 'airlock\n' >"$DIR/pwfile"
  if [ "$(id -u)" = 0 ]; then chown -R postgres: "$DIR"; fi
  chmod 700 "$DIR"
  as_postgres "$BIN/initdb" -D "$DIR/data" -U airlock --pwfile="$DIR/pwfile" \
    --auth=scram-sha-256 --encoding=UTF8 --locale=C.UTF-8 >"$DIR/initdb.log" 2>&1 || {
    echo "postgres: initdb failed:" >&2; tail -20 "$DIR/initdb.log" >&2; exit 1; }
  echo "postgres: starting on 127.0.0.1:$PORT (log: $DIR/server.log)" >&2
  start_server
  echo "$URL"
  ;;
kill)
  as_postgres "$BIN/pg_ctl" -D "$DIR/data" -m immediate -w stop >/dev/null
  ;;
resume)
  start_server
  echo "$URL"
  ;;
stop)
  if [ -f "$DIR/data/postmaster.pid" ]; then
    as_postgres "$BIN/pg_ctl" -D "$DIR/data" -m fast -w stop >/dev/null || true
  fi
  rm -rf "$DIR"
  ;;
*)
  echo "usage: $0 start|stop|kill|resume" >&2; exit 2 ;;
esac
