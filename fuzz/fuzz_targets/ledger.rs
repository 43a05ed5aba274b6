#![no_main]
//! The `ledger` target: see [`airlock::fuzzing::ledger_echoes`].
//!
//! `AIRLOCK_FUZZ_LEDGER_SKIP` (comma-separated) leaves out inputs whose failure
//! is already known, to fuzz on while it is open: `null-namespace` (an explicit
//! `"namespace":null` respelling), `huge-counts` (record counts past 2^63).

use std::sync::OnceLock;

use airlock::fuzzing::{Respellings, ledger_echoes_with};

fn respellings() -> Respellings {
    static RESPELLINGS: OnceLock<Respellings> = OnceLock::new();
    *RESPELLINGS.get_or_init(|| {
        let skip = std::env::var("AIRLOCK_FUZZ_LEDGER_SKIP").unwrap_or_default();
        Respellings {
            null_namespace: !skip.split(',').any(|s| s == "null-namespace"),
            huge_counts: !skip.split(',').any(|s| s == "huge-counts"),
        }
    })
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| ledger_echoes_with(data, respellings()));
