#!/usr/bin/env bash
# The README's main job: build airlock (which carries its plugins as WASI components)
# and sync the built-in source-faker (a Rust port of airbyte-source-faker, run as a
# sandboxed WASI command) into the sandboxed built-in destination-local-json, on the
# embedded defaults. Nothing else is installed. Output lands in ./demo-output; state
# and the read cache in ./.airlock (run it twice: the second sync resumes from the
# stored state and reads nothing new).
#
# The host is built with the dev profile, the build scripts/test.sh reuses, so a
# first run moves records within minutes; the plugins it carries are always built
# optimised (the `plugin` profile). For loads and measurements build release
# (`cargo build --release`), or run this with AIRLOCK_DEMO_PROFILE=release.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="${DEMO_OUT:-$PWD/demo-output}"
PROFILE="${AIRLOCK_DEMO_PROFILE:-dev}"
bash scripts/setup-rust.sh
cargo build --profile "$PROFILE" -p airlock
case "$PROFILE" in dev) BIN=target/debug/airlock ;; *) BIN="target/$PROFILE/airlock" ;; esac
export AIRLOCK_HOME="${AIRLOCK_HOME:-$PWD/.airlock}"
"$BIN" sync \
  --source source-faker --source-config '{"count": 1000, "seed": 1, "always_updated": false}' \
  --destination destination-local-json --destination-config '{"destination_path": "/local/faker"}' \
  --local-root "$ROOT"
echo "demo: the sandboxed plugin wrote $(cat "$ROOT"/faker/_airbyte_raw_*.jsonl | wc -l) rows into $ROOT/faker:"
ls -l "$ROOT/faker"
