#!/usr/bin/env bash
# The README's main job: build airlock (which carries its plugins as WASI components)
# and pipe the real airbyte-source-faker (PyPI, installed into .venv-faker) into the
# sandboxed built-in destination-local-json. Output lands in ./demo-output.
set -euo pipefail
cd "$(dirname "$0")/.."
SAMPLES="../shared/samples/airbyte-source-faker"
ROOT="${DEMO_OUT:-$PWD/demo-output}"
bash scripts/setup-rust.sh
bash scripts/setup-python.sh
cargo build --release -p airlock
export AIRLOCK_HOME="${AIRLOCK_HOME:-$PWD/.airlock}"
rm -rf "$ROOT"
echo '{"count": 1000, "seed": 1}' > .airlock-demo-faker.json
.venv-faker/bin/source-faker read --config .airlock-demo-faker.json --catalog "$SAMPLES/faker-configured-catalog.json" |
target/release/airlock write destination-local-json \
  --config '{"destination_path": "/local/faker"}' \
  --local-root "$ROOT" \
  --catalog "$SAMPLES/faker-configured-catalog.json" \
  --source-name source-faker
echo "demo: the sandboxed plugin wrote $(cat "$ROOT"/faker/_airbyte_raw_*.jsonl | wc -l) rows into $ROOT/faker:"
ls -l "$ROOT/faker"
