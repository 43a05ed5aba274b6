//! The native Airbyte CLI of destination-csv.

fn main() -> std::process::ExitCode {
    airlock_plugin_sdk::run_cli(destination_csv::Csv)
}
