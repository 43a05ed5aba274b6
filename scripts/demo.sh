#!/usr/bin/env bash
# The README's main job: build airlock and the local-json destination, then pipe the
# real airbyte-source-faker (PyPI, installed into .venv-faker) into it.
set -euo pipefail
cd "$(dirname "$0")/.."
SAMPLES="../shared/samples/airbyte-source-faker"
OUT="${DEMO_OUT:-$PWD/demo-output}"
bash scripts/setup-rust.sh
bash scripts/setup-python.sh
cargo build --release -p airlock -p destination-local-json
export AIRLOCK_HOME="${AIRLOCK_HOME:-$PWD/.airlock}"
rm -rf "$OUT"
echo '{"count": 1000, "seed": 1}' > .airlock-demo-faker.json
.venv-faker/bin/source-faker read --config .airlock-demo-faker.json --catalog "$SAMPLES/faker-configured-catalog.json" |
target/release/airlock write destination-local-json \
  --local-executable target/release/destination-local-json \
  --config "{\"destination_path\": \"$OUT\"}" \
  --catalog "$SAMPLES/faker-configured-catalog.json" \
  --source-name source-faker
echo "demo: wrote $(cat "$OUT"/_airbyte_raw_*.jsonl | wc -l) rows into $OUT:"
ls -l "$OUT"
