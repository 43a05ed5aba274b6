#!/usr/bin/env bash
# Runs every fuzz target (fuzz/, cargo-fuzz + libFuzzer) briefly:
#   scripts/fuzz.sh [SECONDS_PER_TARGET]     (default 30, at most 60)
# Without cargo-fuzz it says so and exits 0. cargo-fuzz needs -Z flags, which the
# stable toolchain takes with RUSTC_BOOTSTRAP=1 (set here). A crash stops the run
# with exit 1; its input is in fuzz/artifacts/<target>/ (keep it in
# fuzz/regressions/<target>/ once fixed: tests/fuzz_regressions.rs replays it).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-30}
if ! [[ $seconds =~ ^[0-9]+$ ]] || (( seconds < 1 || seconds > 60 )); then
    echo "fuzz.sh: SECONDS_PER_TARGET must be 1-60, not $seconds" >&2
    exit 2
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz.sh: cargo-fuzz is not installed (cargo install cargo-fuzz); the fuzzer is not available, skipping"
    exit 0
fi
export RUSTC_BOOTSTRAP=1
# The fuzz crate uses airlock without its backends (default-features = false), so
# neither wasmtime nor the nested build of the built-in plugins is needed.
# -s none: safe Rust, so AddressSanitizer adds build time and little else;
# -a: debug assertions and overflow checks.
flags=(-s none -a)
cd fuzz
cargo fuzz build "${flags[@]}"
for target in framing peek message ledger sdk_batch wit_batch; do
    case $target in
        framing) seeds=(seeds/framing) ;;
        ledger) seeds=(seeds/ledger) ;;
        sdk_batch | wit_batch) seeds=(seeds/batch seeds/line) ;;
        *) seeds=(seeds/line) ;;
    esac
    mkdir -p "corpus/$target" "artifacts/$target"
    echo "fuzz.sh: $target for ${seconds}s"
    log=$(mktemp)
    if cargo fuzz run "${flags[@]}" "$target" "corpus/$target" "${seeds[@]}" -- \
        -dict=airbyte.dict -max_total_time="$seconds" -print_final_stats=1 >"$log" 2>&1; then
        grep -E '^stat::(number_of_executed_units|average_exec_per_sec)' "$log" || true
        rm -f "$log"
    else
        tail -n 40 "$log" >&2
        echo "fuzz.sh: $target crashed; the input is in fuzz/artifacts/$target/ (log: $log)" >&2
        exit 1
    fi
done
echo "fuzz.sh: every target ran ${seconds}s without a crash"
