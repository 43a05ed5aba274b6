//! The fuzz targets' inputs, replayed: every crash the fuzzer found
//! (`fuzz/regressions/<target>/`, kept after the fix) and the hand-written seeds
//! (`fuzz/seeds/`), through the same harness functions the targets call
//! (`airlock::fuzzing`, `airlock_plugin_sdk::fuzzing`). See fuzz/RESULTS.md.

use std::path::{Path, PathBuf};

/// The files of `fuzz/<dir>`, sorted.
fn inputs(dir: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz").join(dir);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.is_file())
        .collect();
    files.sort();
    files
}

/// Runs `harness` on every file of the given folders, naming the file that fails.
fn replay(dirs: &[&str], harness: fn(&[u8])) {
    let mut replayed = 0;
    for dir in dirs {
        for path in inputs(dir) {
            let data = std::fs::read(&path).unwrap();
            if let Err(panic) = std::panic::catch_unwind(|| harness(&data)) {
                let why = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                panic!("{} fails again: {why}", path.display());
            }
            replayed += 1;
        }
    }
    assert!(replayed > 0, "no inputs in {dirs:?}");
}

#[test]
fn framing_inputs_pass() {
    replay(
        &["regressions/framing", "seeds/framing"],
        airlock::fuzzing::framing,
    );
}

#[test]
fn peek_inputs_pass() {
    replay(&["regressions/peek", "seeds/line"], airlock::fuzzing::peek);
}

#[test]
fn message_inputs_pass() {
    replay(
        &["regressions/message", "seeds/line"],
        airlock::fuzzing::message,
    );
}

#[test]
fn ledger_inputs_pass() {
    replay(
        &["regressions/ledger", "seeds/ledger"],
        airlock::fuzzing::ledger_echoes,
    );
}

#[test]
fn sdk_batch_inputs_pass() {
    replay(
        &["regressions/sdk_batch", "seeds/batch", "seeds/line"],
        airlock_plugin_sdk::fuzzing::session_lines,
    );
}

#[test]
fn wit_batch_inputs_pass() {
    replay(
        &["regressions/wit_batch", "seeds/batch", "seeds/line"],
        airlock_plugin_sdk::fuzzing::batch_writer,
    );
}
