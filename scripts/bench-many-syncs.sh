#!/usr/bin/env bash
# bench-many-syncs.sh — syncs as workers (not part of the tests).
#
# N = 1, 2 and 4 workers at once, each an `airlock sync` of the built-in faker's
# `users` (TOTAL/N records each, its own seed) into the built-in destination-postgres
# (sandboxed), each into a schema of its own, all with their state in one PostgreSQL
# state database (--state-db postgres://…) and their own leases. Prints the total
# rows/s for each N, then the per-commit latency of the state stores (SQLite file
# against that PostgreSQL) from `airlock bench --state-commits`.
#
# Usage: scripts/bench-many-syncs.sh [--records TOTAL]   (default 300000)
# Needs: a release airlock (cargo build --release -p airlock) and the PostgreSQL of
# scripts/postgres.sh (started if AIRLOCK_TEST_PG_URL is not set).
set -euo pipefail
cd "$(dirname "$0")/.."
TOTAL=300000
if [ "${1:-}" = "--records" ]; then TOTAL="$2"; fi
AIRLOCK="$PWD/target/release/airlock"
[ -x "$AIRLOCK" ] || { echo "bench-many-syncs: build it first: cargo build --release -p airlock" >&2; exit 1; }
URL="${AIRLOCK_TEST_PG_URL:-$(bash scripts/postgres.sh start)}"
BASE="${URL%/*}"
DB="airlock_bench_$$"
psql "$URL" -X -q -c "CREATE DATABASE $DB" >/dev/null
STATE="$BASE/$DB"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"; psql "$URL" -X -q -c "DROP DATABASE IF EXISTS $DB" >/dev/null 2>&1 || true' EXIT
hostport="${BASE#*@}"; host="${hostport%:*}"; port="${hostport##*:}"
userpass="${BASE#*://}"; userpass="${userpass%@*}"; user="${userpass%%:*}"; pass="${userpass#*:}"
export AIRLOCK_HOME="$WORK/home"
# Warm the compile cache, so no worker pays for it.
"$AIRLOCK" spec destination-postgres >/dev/null
"$AIRLOCK" discover source-faker --config '{"count": 1}' >/dev/null
echo "| workers | rows | seconds | rows/s | ratio to 1 |"
echo "|---:|---:|---:|---:|---:|"
first=""
for n in 1 2 4; do
  per=$((TOTAL / n))
  start=$(date +%s.%N)
  pids=()
  for i in $(seq 1 "$n"); do
    schema="bench_${n}_${i}"
    dest=$(printf '{"host":"%s","port":%s,"database":"%s","username":"%s","password":"%s","schema":"%s","ssl_mode":{"mode":"disable"}}' \
      "$host" "$port" "$DB" "$user" "$pass" "$schema")
    "$AIRLOCK" sync --source source-faker --source-config "{\"count\": $per, \"seed\": $i}" \
      --streams users --destination destination-postgres --destination-config "$dest" \
      --allow-net "$host:$port" --state-db "$STATE" --no-cache --json \
      >"$WORK/w$n-$i.json" 2>"$WORK/w$n-$i.err" &
    pids+=($!)
  done
  for pid in "${pids[@]}"; do
    wait "$pid" || { echo "bench-many-syncs: a worker failed:" >&2; cat "$WORK"/w"$n"-*.err >&2; exit 1; }
  done
  end=$(date +%s.%N)
  rows=0
  for i in $(seq 1 "$n"); do
    got=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["records_confirmed"])' "$WORK/w$n-$i.json")
    rows=$((rows + got))
  done
  secs=$(python3 -c "print(f'{$end - $start:.2f}')")
  rate=$(python3 -c "print(round($rows / ($end - $start)))")
  [ -n "$first" ] || first="$rate"
  ratio=$(python3 -c "print(f'{$rate / $first:.2f}')")
  echo "| $n | $rows | $secs | $rate | $ratio |"
done
echo
"$AIRLOCK" bench --state-commits "$STATE" --records 2000
