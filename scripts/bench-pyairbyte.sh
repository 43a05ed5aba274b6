#!/usr/bin/env bash
# bench-pyairbyte.sh — side-by-side write benchmark: PyAirbyte vs airlock (not part of the tests).
#
# What it measures: how fast each host moves one replayed stream of N faker `users` records
# (default 1,000,000) into the same destination, twice: the native `destination-dev-null`
# (SILENT) built from this workspace, which parses every record (its own cost bounds the
# ratio), and scripts/bench_pyairbyte/destination_state_echo.sh, which drops records
# unparsed and echoes states (grep), so that the hosts are what is measured. Both tools get byte-identical input, produced once by our Rust
# `source-faker` (config {"count": N, "seed": 1}).
#   * PyAirbyte: wall-clock of `destination.write(source, cache=False, state_cache=False)` only,
#     where `source` is scripts/bench_pyairbyte/source_replay.py (a local executable that
#     `cat`s the saved messages). Interpreter start, imports, spec/discover are outside it.
#   * airlock:   wall-clock of the whole `airlock write destination-dev-null --local-executable
#     ... --input FILE --no-state --json` process, i.e. including airlock's own startup (and
#     the destination's spawn), which only favours PyAirbyte.
# Result: a table (tool, records, seconds, records/s, ratio airlock/PyAirbyte; goal >= 20x)
# and, as the last line on stdout, the same as one JSON object. For reference it also times the
# destination alone fed the file directly: no host can be faster, so PyAirbyte's time divided by
# it is the highest ratio reachable with this destination on this machine.
#
# Usage: scripts/bench-pyairbyte.sh [--records N] [--keep]
#   --records N  records to replay (or env BENCH_RECORDS; default 1000000)
#   --keep       keep the temp dir with the replay file, catalog and results
# Env: PYAIRBYTE_VERSION pins the PyPI `airbyte` version (default: latest, venv reused if present);
#      BENCH_TMPDIR parent of the temp dir.
# Needs: python3 (3.10+), cargo, PyPI. Creates .venv-pyairbyte/ in the repo root (git-ignored);
# builds source-faker into target/faker-dev and destination-dev-null into target/bench-native;
# builds target/release/airlock only if it is missing.
set -euo pipefail

die() { echo "bench-pyairbyte: FAILED: $*" >&2; exit 1; }
step() { echo "bench-pyairbyte: $*" >&2; }

cd "$(dirname "$0")/.."
ROOT="$PWD"
HELPERS="$ROOT/scripts/bench_pyairbyte"

RECORDS="${BENCH_RECORDS:-1000000}"
KEEP=0
while [ $# -gt 0 ]; do
  case "$1" in
    --records) [ $# -ge 2 ] || die "--records needs a value"; RECORDS="$2"; shift 2 ;;
    --records=*) RECORDS="${1#*=}"; shift ;;
    --keep) KEEP=1; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument: $1 (try --help)" ;;
  esac
done
[[ "$RECORDS" =~ ^[1-9][0-9]*$ ]] || die "--records must be a positive integer, got '$RECORDS'"

# --- 1. PyAirbyte venv -------------------------------------------------------------------------
VENV="$ROOT/.venv-pyairbyte"
PY="$VENV/bin/python"
want_spec="airbyte${PYAIRBYTE_VERSION:+==$PYAIRBYTE_VERSION}"
have_version="$("$PY" -c 'from importlib.metadata import version; print(version("airbyte"))' 2>/dev/null || true)"
if [ -z "$have_version" ] || { [ -n "${PYAIRBYTE_VERSION:-}" ] && [ "$have_version" != "$PYAIRBYTE_VERSION" ]; }; then
  step "installing $want_spec into $VENV (takes a minute or two)"
  [ -x "$PY" ] || python3 -m venv "$VENV" || die "could not create the venv $VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "$want_spec" \
    || die "pip install $want_spec failed"
  have_version="$("$PY" -c 'from importlib.metadata import version; print(version("airbyte"))')" \
    || die "airbyte is not importable from $VENV after install"
fi
step "PyAirbyte $have_version in $VENV"

# Keep PyAirbyte off the network and out of the repo: no registry look-ups, no telemetry,
# no Rich live view, and its caches/logs/temp files under our temp dir.
export AIRBYTE_OFFLINE_MODE=1   # registry disabled + telemetry off (airbyte/constants.py)
export DO_NOT_TRACK=1           # telemetry opt-out (airbyte/_util/telemetry.py)
export NO_LIVE_PROGRESS=1       # plain progress instead of a Rich live view (airbyte/progress.py)

# --- 2./3. native binaries -------------------------------------------------------------------
step "building source-faker and destination-dev-null (release)"
cargo build --quiet --release -p source-faker --target-dir target/faker-dev \
  || die "cargo build -p source-faker failed"
cargo build --quiet --release -p destination-dev-null --target-dir target/bench-native \
  || die "cargo build -p destination-dev-null failed"
FAKER="$ROOT/target/faker-dev/release/source-faker"
DEVNULL="$ROOT/target/bench-native/release/destination-dev-null"
AIRLOCK="$ROOT/target/release/airlock"
if [ ! -x "$AIRLOCK" ]; then
  step "target/release/airlock missing: building it (heavy)"
  cargo build --release -p airlock || die "cargo build --release -p airlock failed"
fi
for exe in "$FAKER" "$DEVNULL" "$AIRLOCK"; do [ -x "$exe" ] || die "missing executable $exe"; done
SOURCE_REPLAY="$HELPERS/source_replay.py"
[ -x "$SOURCE_REPLAY" ] || chmod +x "$SOURCE_REPLAY" || die "$SOURCE_REPLAY is not executable"
DEST_CONFIG='{"test_destination": {"test_destination_type": "SILENT"}}'

# --- temp dir ------------------------------------------------------------------------------------
WORK="$(mktemp -d "${BENCH_TMPDIR:-${TMPDIR:-/tmp}}/bench-pyairbyte.XXXXXX")"
cleanup() { if [ "$KEEP" = 1 ]; then step "kept $WORK"; else rm -rf "$WORK"; fi; }
trap cleanup EXIT
export AIRBYTE_PROJECT_DIR="$WORK/pyairbyte" AIRBYTE_CACHE_ROOT="$WORK/pyairbyte/cache" \
       AIRBYTE_LOGGING_ROOT="$WORK/pyairbyte/logs" AIRBYTE_TEMP_DIR="$WORK/pyairbyte/tmp"
mkdir -p "$AIRBYTE_CACHE_ROOT" "$AIRBYTE_LOGGING_ROOT" "$AIRBYTE_TEMP_DIR"

# --- 2. the replay file --------------------------------------------------------------------------
FAKER_CONFIG="$WORK/faker-config.json"
printf '{"count": %s, "seed": 1}\n' "$RECORDS" > "$FAKER_CONFIG"
DISCOVER="$WORK/discover.jsonl"
CATALOG="$WORK/catalog.json"
RECORDS_FILE="$WORK/records.jsonl"
"$FAKER" discover --config "$FAKER_CONFIG" > "$DISCOVER" || die "source-faker discover failed"
python3 "$HELPERS/bench.py" catalog "$DISCOVER" users "$CATALOG" >/dev/null \
  || die "could not build the configured catalog"
step "generating $RECORDS faker users records"
"$FAKER" read --config "$FAKER_CONFIG" --catalog "$CATALOG" > "$RECORDS_FILE" \
  || die "source-faker read failed"
n_records="$(grep -c '"type":"RECORD"' "$RECORDS_FILE" || true)"
[ "$n_records" = "$RECORDS" ] || die "replay file has $n_records RECORD lines, expected $RECORDS"
step "replay file: $(wc -l < "$RECORDS_FILE") lines, $(du -h "$RECORDS_FILE" | cut -f1), $n_records records"

# Two destinations: the native dev-null (SILENT; it parses every record, so its own
# cost bounds the ratio), and a state-echo destination that drops records without
# parsing them (grep), so the hosts themselves are what is measured.
STATE_ECHO="$HELPERS/destination_state_echo.sh"
[ -x "$STATE_ECHO" ] || chmod +x "$STATE_ECHO" || die "$STATE_ECHO is not executable"
for dest in "destination-dev-null=$DEVNULL" "state-echo=$STATE_ECHO"; do
  label="${dest%%=*}"; exe="${dest#*=}"
  # --- 5. airlock -------------------------------------------------------------------------------
  step "$label: airlock write ($RECORDS records) ..."
  python3 "$HELPERS/bench.py" --out "$WORK/airlock-$label.json" airlock \
    --airlock "$AIRLOCK" --dest-exe "$exe" --dest-config "$DEST_CONFIG" \
    --catalog "$CATALOG" --records-file "$RECORDS_FILE" --expect "$RECORDS" \
    || die "$label: airlock run failed (see the reason above)"

  # --- 4. PyAirbyte ------------------------------------------------------------------------------
  step "$label: PyAirbyte destination.write ($RECORDS records) ..."
  (cd "$WORK/pyairbyte" && "$PY" "$HELPERS/bench.py" --out "$WORK/pyairbyte-$label.json" pyairbyte \
    --records-file "$RECORDS_FILE" --discover-file "$DISCOVER" --source-exe "$SOURCE_REPLAY" \
    --dest-exe "$exe" --dest-config "$DEST_CONFIG" --stream users --expect "$RECORDS" \
    >"$WORK/pyairbyte-$label.log" 2>&1) \
    || { reason="$(grep '^bench:' "$WORK/pyairbyte-$label.log" | tail -n 1 || true)"
         [ -n "$reason" ] || { tail -n 5 "$WORK/pyairbyte-$label.log" >&2; reason="see the log lines above"; }
         die "$label: PyAirbyte run failed: $reason"; }

  # --- reference: the destination by itself (bounds the reachable ratio; not a tool) -----------
  python3 "$HELPERS/bench.py" --out "$WORK/dest-alone-$label.json" dest-alone \
    --dest-exe "$exe" --dest-config "$DEST_CONFIG" --catalog "$CATALOG" \
    --records-file "$RECORDS_FILE" || die "$label: destination-alone reference run failed"
done

# --- 6. report ---------------------------------------------------------------------------------
for label in destination-dev-null state-echo; do
  echo
  python3 "$HELPERS/bench.py" report --label "$label" "$WORK/pyairbyte-$label.json" \
    "$WORK/airlock-$label.json" "$WORK/dest-alone-$label.json" || die "report failed"
done

