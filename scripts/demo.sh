#!/usr/bin/env bash
# The README's main job: build airlock (which carries its plugins as WASI components)
# and sync the real airbyte-source-faker (PyPI, installed into .venv-faker) into the
# sandboxed built-in destination-local-json. Output lands in ./demo-output; state in
# ./.airlock (run it twice: the second sync resumes from the confirmed state).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="${DEMO_OUT:-$PWD/demo-output}"
bash scripts/setup-rust.sh
bash scripts/setup-python.sh
cargo build --release -p airlock
export AIRLOCK_HOME="${AIRLOCK_HOME:-$PWD/.airlock}"
target/release/airlock sync \
  --source source-faker --source-local-executable .venv-faker/bin/source-faker \
  --source-config '{"count": 1000, "seed": 1}' \
  --destination destination-local-json --destination-config '{"destination_path": "/local/faker"}' \
  --local-root "$ROOT"
echo "demo: the sandboxed plugin wrote $(cat "$ROOT"/faker/_airbyte_raw_*.jsonl | wc -l) rows into $ROOT/faker:"
ls -l "$ROOT/faker"
