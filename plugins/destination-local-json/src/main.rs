//! `destination-local-json`: the native CLI of
//! [`destination_local_json::LocalJson`].

use std::process::ExitCode;

fn main() -> ExitCode {
    airlock_plugin_sdk::run_cli(destination_local_json::LocalJson)
}
