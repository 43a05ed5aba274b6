//! `destination-postgres`: the native CLI of [`destination_postgres::Postgres`].

use std::process::ExitCode;

fn main() -> ExitCode {
    airlock_plugin_sdk::run_cli(destination_postgres::Postgres)
}
