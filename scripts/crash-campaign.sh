#!/usr/bin/env bash
# crash-campaign.sh — kill syncs at random points and check what is left (not part of the tests).
#
# Each run syncs the built-in faker (users, products, purchases; a few thousand users, a random
# seed and slice size from a handful of configs) into the native destination-local-json, run as a
# separate process (--local-executable), with a fresh AIRLOCK_HOME, state database, cache and
# output folder; half the runs with the cache (--cache-path), half with --no-cache. Then:
#   * destination runs: the destination process is SIGKILLed once its files hold a random number
#     of records in [1, total);
#   * host runs: the airlock process is SIGKILLed after a random delay within the wall time of a
#     clean run of the same config and cache mode (its orphaned destination is waited for).
# After each kill it checks that
#   * the state database (and the cache) pass `PRAGMA integrity_check`;
#   * no stored state is ahead of the destination: every record the faker emitted up to a stored
#     state's `loop_offset` (users with id <= it, purchases of those users; products: all, their one
#     state comes last) is in the destination's files, final or staged, complete lines only;
#   * the same sync, run again without a kill, exits 0, and every record id of a clean reference
#     run of the same config is then in the destination (at-least-once: duplicates are counted).
# The faker runs with its default `always_updated: true`, so a rerun re-emits every record (new
# `updated_at`) from the start: what the killed run delivered arrives twice, which the duplicate
# figures show. (With `always_updated: false` the faker emits nothing for a stream whose state has
# `updated_at`, so a --no-cache rerun would leave the rest of that stream undelivered: the source's
# documented incremental behaviour, not a host's loss.)
# It prints the figures per kill mode and cache mode, and the runs that broke a rule with their
# folder (kept) and commands. Exit 1 if any run broke one.
#
# Usage: scripts/crash-campaign.sh [--dest-runs N] [--host-runs N] [--seed S] [--out FILE] [--keep]
#   --dest-runs N  runs whose destination is killed (default 100)
#   --host-runs N  runs whose host is SIGKILLed (default 100)
#   --seed S       seed of every random choice (default 1); the same seed replays the same plan
#   --out FILE     also write the figures to FILE
#   --keep         keep every run's folder (by default only those of runs that broke a rule)
#   (see scripts/crash_campaign/campaign.py --help for the rest: --configs, --min-count, ...)
# Env: CRASH_TMPDIR parent of the work folder (default: $TMPDIR or /tmp).
# Needs: python3 (standard library only) and Linux (/proc). Builds target/release/airlock and
# target/release/destination-local-json if either is missing.
set -euo pipefail

cd "$(dirname "$0")/.."

if [ ! -x target/release/airlock ] || [ ! -x target/release/destination-local-json ]; then
  echo "crash-campaign: building target/release/{airlock,destination-local-json}" >&2
  CARGO_BUILD_JOBS="${CARGO_BUILD_JOBS:-1}" nice -n 19 \
    cargo build --release -p airlock -p destination-local-json >&2
fi

tmp_args=()
if [ -n "${CRASH_TMPDIR:-}" ]; then
  tmp_args=(--tmpdir "$CRASH_TMPDIR")
fi
exec python3 scripts/crash_campaign/campaign.py \
  --airlock target/release/airlock \
  --destination target/release/destination-local-json \
  "${tmp_args[@]}" "$@"
