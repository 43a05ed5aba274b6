#!/usr/bin/env bash
# Installs the Rust target the plugins build for (WASI Preview 2 components).
set -euo pipefail
if ! rustup target list --installed | grep -qx wasm32-wasip2; then
  rustup target add wasm32-wasip2
fi
