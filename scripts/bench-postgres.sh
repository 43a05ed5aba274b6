#!/usr/bin/env bash
# bench-postgres.sh — destination-postgres side by side, in one run (not part of the tests).
#
# N faker `users` (default 1,000,000; config {"count": N, "seed": 1}, generated once by our
# Rust source-faker) go into one PostgreSQL server, each case into a fresh table:
#   * airlock write destination-postgres, as the built-in WASM component (sandboxed, the
#     network grant derived from the config), as the native executable, and as the Docker
#     image airlock/destination-postgres:dev (skipped, and said, without an engine);
#   * the floor: `psql \copy` of the very rows the WASM case loaded, as CSV, into an
#     identical table (CREATE TABLE … (LIKE …)) — no host can load faster than this;
#   * PyAirbyte's PostgresCache reading the same records, replayed from the file
#     (PYAIRBYTE_RECORDS of them, default 100,000: it runs at a few thousand rows/s).
# The airlock times are whole processes (startup, the component's compile-cache lookup,
# connecting, DDL and every commit included). Rates are rows/s; ratios are of rates.
#
# Usage: scripts/bench-postgres.sh [--records N] [--pyairbyte-records M] [--keep]
# Env: AIRLOCK_TEST_PG_URL picks the server (default: scripts/postgres.sh start);
#      PYAIRBYTE_VERSION (default 0.71.3); BENCH_TMPDIR.
# Needs: cargo, python3, PyPI, PostgreSQL 15 (scripts/postgres.sh installs it).
set -euo pipefail
die() { echo "bench-postgres: FAILED: $*" >&2; exit 1; }
step() { echo "bench-postgres: $*" >&2; }
cd "$(dirname "$0")/.."
ROOT="$PWD"
HELPERS="$ROOT/scripts/bench_pyairbyte"
RECORDS="${BENCH_RECORDS:-1000000}"
PY_RECORDS="${PYAIRBYTE_RECORDS:-100000}"
KEEP=0
while [ $# -gt 0 ]; do
  case "$1" in
    --records) RECORDS="$2"; shift 2 ;;
    --pyairbyte-records) PY_RECORDS="$2"; shift 2 ;;
    --keep) KEEP=1; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument: $1 (try --help)" ;;
  esac
done
[[ "$RECORDS" =~ ^[1-9][0-9]*$ && "$PY_RECORDS" =~ ^[0-9]+$ ]] || die "record counts must be integers"

URL="${AIRLOCK_TEST_PG_URL:-$(bash scripts/postgres.sh start)}"
rest="${URL#postgres://}"; auth="${rest%%@*}"; hostpart="${rest#*@}"
PGUSER_="${auth%%:*}"; PGPASS_="${auth#*:}"; hostport="${hostpart%%/*}"; DB="${hostpart#*/}"
PGHOST_="${hostport%:*}"; PGPORT_="${hostport##*:}"
psqlc() { psql "$URL" -X -q -A -t -v ON_ERROR_STOP=1 "$@"; }
psqlc -c 'SELECT 1' >/dev/null || die "cannot reach PostgreSQL at $URL"

step "building release binaries (airlock, source-faker, destination-postgres)"
cargo build --quiet --release -p airlock || die "cargo build --release -p airlock failed"
cargo build --quiet --release -p source-faker -p destination-postgres --target-dir target/bench-native \
  || die "building the native plugins failed"
AIRLOCK="$ROOT/target/release/airlock"
FAKER="$ROOT/target/bench-native/release/source-faker"
NATIVE="$ROOT/target/bench-native/release/destination-postgres"

WORK="$(mktemp -d "${BENCH_TMPDIR:-/tmp}/bench-postgres.XXXXXX")"
chmod 755 "$WORK"
cleanup() { if [ "$KEEP" = 1 ]; then step "kept $WORK"; else rm -rf "$WORK"; fi; }
trap cleanup EXIT
export AIRLOCK_HOME="$WORK/home"

printf '{"count": %s, "seed": 1}\n' "$RECORDS" > "$WORK/faker.json"
"$FAKER" discover --config "$WORK/faker.json" > "$WORK/discover.jsonl" || die "faker discover failed"
python3 "$HELPERS/bench.py" catalog "$WORK/discover.jsonl" users "$WORK/catalog.json" >/dev/null \
  || die "could not build the catalog"
step "generating $RECORDS faker users"
"$FAKER" read --config "$WORK/faker.json" --catalog "$WORK/catalog.json" > "$WORK/records.jsonl" \
  || die "faker read failed"

config() { printf '{"host":"%s","port":%s,"database":"%s","username":"%s","password":"%s","schema":"%s","ssl_mode":{"mode":"disable"}}' \
  "$PGHOST_" "$PGPORT_" "$DB" "$PGUSER_" "$PGPASS_" "$1"; }
now() { date +%s.%N; }
elapsed() { python3 -c 'import sys; print(float(sys.argv[2]) - float(sys.argv[1]))' "$1" "$2"; }
RESULTS="$WORK/results.tsv"; : > "$RESULTS"
record() { printf '%s\t%s\t%s\n' "$1" "$2" "$3" >> "$RESULTS"; }

run_airlock() { # case-name schema executor-flags...
  local name="$1" schema="$2"; shift 2
  psqlc -c "DROP SCHEMA IF EXISTS \"$schema\" CASCADE" >/dev/null
  local t0 t1; t0="$(now)"
  "$AIRLOCK" write destination-postgres "$@" --config "$(config "$schema")" \
    --catalog "$WORK/catalog.json" --input "$WORK/records.jsonl" --no-state --json \
    > "$WORK/$schema.json" 2> "$WORK/$schema.err" || { tail -3 "$WORK/$schema.err" >&2; die "$name failed"; }
  t1="$(now)"
  local n; n="$(psqlc -c "SELECT count(*) FROM \"$schema\".users")"
  [ "$n" = "$RECORDS" ] || die "$name loaded $n rows, expected $RECORDS"
  record "$name" "$RECORDS" "$(elapsed "$t0" "$t1")"
  step "$name: $(tail -1 "$RESULTS" | cut -f3) s"
}

# Compile the component into the cache first, as any later sync finds it.
"$AIRLOCK" spec destination-postgres >/dev/null || die "airlock spec destination-postgres failed"
run_airlock "airlock, WASM component (sandboxed)" bench_wasm
run_airlock "airlock, native process" bench_native --local-executable "$NATIVE"
if docker info >/dev/null 2>&1; then
  bash scripts/package-docker.sh destination-postgres >/dev/null
  run_airlock "airlock, Docker image" bench_docker --docker-image airlock/destination-postgres:dev
else
  step "no Docker engine: the Docker case is skipped (scripts/docker-engine.sh start)"
fi

step "floor: psql \\copy of the same rows as CSV into an identical table"
psqlc -c "\\copy (SELECT * FROM bench_wasm.users) TO '$WORK/users.csv' WITH (FORMAT csv)"
psqlc -c "DROP SCHEMA IF EXISTS bench_floor CASCADE; CREATE SCHEMA bench_floor; CREATE TABLE bench_floor.users (LIKE bench_wasm.users)"
t0="$(now)"
psqlc -c "\\copy bench_floor.users FROM '$WORK/users.csv' WITH (FORMAT csv)"
t1="$(now)"
record "psql \\copy, CSV (the floor)" "$RECORDS" "$(elapsed "$t0" "$t1")"

if [ "$PY_RECORDS" -gt 0 ]; then
  VENV="$ROOT/.venv-pyairbyte"; PY="$VENV/bin/python"; want="${PYAIRBYTE_VERSION:-0.71.3}"
  have="$("$PY" -c 'from importlib.metadata import version; print(version("airbyte"))' 2>/dev/null || true)"
  if [ "$have" != "$want" ]; then
    step "installing airbyte==$want into $VENV"
    [ -x "$PY" ] || python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check "airbyte==$want" || die "pip install airbyte==$want failed"
  fi
  export AIRBYTE_OFFLINE_MODE=1 DO_NOT_TRACK=1 NO_LIVE_PROGRESS=1
  export AIRBYTE_PROJECT_DIR="$WORK/pyairbyte" AIRBYTE_CACHE_ROOT="$WORK/pyairbyte/cache" \
         AIRBYTE_LOGGING_ROOT="$WORK/pyairbyte/logs" AIRBYTE_TEMP_DIR="$WORK/pyairbyte/tmp"
  mkdir -p "$AIRBYTE_CACHE_ROOT" "$AIRBYTE_LOGGING_ROOT" "$AIRBYTE_TEMP_DIR"
  printf '{"count": %s, "seed": 1}\n' "$PY_RECORDS" > "$WORK/faker-py.json"
  "$FAKER" read --config "$WORK/faker-py.json" --catalog "$WORK/catalog.json" > "$WORK/records-py.jsonl"
  chmod +x "$HELPERS/source_replay.py"
  psqlc -c "DROP SCHEMA IF EXISTS bench_pyairbyte CASCADE" >/dev/null
  step "PyAirbyte $want PostgresCache ($PY_RECORDS records)"
  (cd "$WORK/pyairbyte" && "$PY" "$HELPERS/postgres_cache.py" --records-file "$WORK/records-py.jsonl" \
     --discover-file "$WORK/discover.jsonl" --source-exe "$HELPERS/source_replay.py" --stream users \
     --host "$PGHOST_" --port "$PGPORT_" --user "$PGUSER_" --password "$PGPASS_" --database "$DB" \
     --schema bench_pyairbyte --expect "$PY_RECORDS" > "$WORK/pyairbyte.json" 2> "$WORK/pyairbyte.log") \
    || { tail -5 "$WORK/pyairbyte.log" >&2; die "PyAirbyte failed"; }
  record "PyAirbyte $want PostgresCache" "$PY_RECORDS" "$(python3 -c 'import json,sys; print(json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])["seconds"])' "$WORK/pyairbyte.json")"
fi

echo
python3 - "$RESULTS" <<'PY'
import json, sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
rate = {name: int(n) / float(s) for name, n, s in rows}
print(f"| case | rows | seconds | rows/s |")
print(f"|---|---:|---:|---:|")
for name, n, s in rows:
    print(f"| {name} | {int(n):,} | {float(s):.2f} | {rate[name]:,.0f} |")
wasm = rate.get("airlock, WASM component (sandboxed)")
def ratio(label, other, goal):
    if wasm and other in rate:
        r = wasm / rate[other]
        print(f"WASM / {label}: {r:.2f}x (target >= {goal}x: {'met' if r >= goal else 'NOT met'})")
print()
ratio("floor (psql \\copy)", "psql \\copy, CSV (the floor)", 0.8)
ratio("native", "airlock, native process", 0.9)
py = [k for k in rate if k.startswith("PyAirbyte")]
if py:
    ratio("PyAirbyte", py[0], 20)
print(json.dumps({"bench": "postgres", "rows_per_s": {k: round(v) for k, v in rate.items()}}))
PY
