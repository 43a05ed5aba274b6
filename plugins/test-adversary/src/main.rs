//! `test-adversary`: the native CLI of [`test_adversary::Adversary`]. Its
//! attacks are real: it exists for airlock's sandbox tests only.

use std::process::ExitCode;

fn main() -> ExitCode {
    airlock_plugin_sdk::run_cli(test_adversary::Adversary)
}
