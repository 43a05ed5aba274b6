#!/usr/bin/env bash
# The README's test command: installs what the tests need, then runs every test.
#   - the wasm32-wasip2 Rust target (the plugins build as components)
#   - the real airbyte-source-faker (PyPI) into .venv-faker
# Set CI=true to turn "optional component missing" skips into failures.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-rust.sh
bash scripts/setup-python.sh
cargo build --workspace --all-targets
cargo test --workspace "$@"
