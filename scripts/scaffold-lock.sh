#!/usr/bin/env bash
# Regenerates the lockfile `airlock plugin new` ships with a new plugin crate
# (src/cli/scaffold/template/Cargo.lock.tmpl), pinning its dependencies to the
# versions this workspace builds and tests with (Cargo.lock). Run it after changing
# the SDK's dependencies or the template's Cargo.toml; the scaffold test builds the
# new crate with --locked and fails while the shipped lockfile is stale.
set -euo pipefail
cd "$(dirname "$0")/.."
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cargo build -q -p airlock --bin airlock
target/debug/airlock plugin new destination-lock-template --dir "$work/crate" >/dev/null
cp Cargo.lock "$work/crate/Cargo.lock"   # start from the workspace's versions
( cd "$work/crate" && cargo update -q --workspace --offline 2>/dev/null || cargo update -q --workspace )
sed -e 's/destination-lock-template/{{name}}/g' "$work/crate/Cargo.lock" \
  > src/cli/scaffold/template/Cargo.lock.tmpl
echo "scaffold-lock: wrote src/cli/scaffold/template/Cargo.lock.tmpl"
