//! `destination-csv`: the native CLI of [`destination_csv::Csv`].

use std::process::ExitCode;

fn main() -> ExitCode {
    airlock_plugin_sdk::run_cli(destination_csv::Csv)
}
