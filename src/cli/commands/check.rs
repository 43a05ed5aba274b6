//! `airlock check`: validate a config against the spec, then run the destination's check.

use std::process::ExitCode;

use airlock::config;
use airlock::protocol::ConnectionStatus;

use super::build_destination;
use crate::cli::args::CheckArgs;
use crate::cli::report::{Failure, from_destination, usage};

pub(crate) async fn run(args: CheckArgs) -> Result<ExitCode, Failure> {
    let config = config::read_config_arg(&args.config).map_err(usage)?;
    let destination = build_destination(&args.destination, &args.executor, Some(config))?;
    let status = destination.check().await.map_err(from_destination)?;
    if args.json {
        println!("{}", serde_json::to_string(&status).unwrap_or_default());
    } else {
        match (&status.status, &status.message) {
            (ConnectionStatus::Succeeded, _) => println!("{}: check succeeded", args.destination),
            (ConnectionStatus::Failed, message) => {
                println!(
                    "{}: check FAILED: {}",
                    args.destination,
                    message.as_deref().unwrap_or("(no message)")
                )
            }
        }
    }
    Ok(match status.status {
        ConnectionStatus::Succeeded => ExitCode::SUCCESS,
        ConnectionStatus::Failed => ExitCode::from(1),
    })
}
