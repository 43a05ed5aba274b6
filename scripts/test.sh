#!/usr/bin/env bash
# The README's test command: installs what the tests need, then runs every test.
#   - the wasm32-wasip2 Rust target (the plugins build as components)
#   - the real airbyte-source-faker (PyPI) into .venv-faker
# Set CI=true to turn "optional component missing" skips into failures.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-rust.sh
# The faker's pip install (about a minute, mostly one core) overlaps the build.
python_log="$(mktemp)"
bash scripts/setup-python.sh >"$python_log" 2>&1 &
python_setup=$!
cargo build --workspace --all-targets
if ! wait "$python_setup"; then
  cat "$python_log" >&2
  echo "test: scripts/setup-python.sh failed (output above)" >&2
  exit 1
fi
cat "$python_log"
rm -f "$python_log"
# The integration tests mostly wait (on connector processes, containers, pip, a
# server), so six at a time keep two cores busy. Measured from the same cold test
# artifacts: 626 s with the default of one per core, 389 s with four; a whole cold
# .ci/run took 13 min 39 s with six.
export RUST_TEST_THREADS="${RUST_TEST_THREADS:-6}"
cargo test --workspace "$@"
