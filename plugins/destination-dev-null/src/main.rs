//! `destination-dev-null`: the native CLI of [`destination_dev_null::DevNull`].

use std::process::ExitCode;

fn main() -> ExitCode {
    airlock_plugin_sdk::run_cli(destination_dev_null::DevNull)
}
