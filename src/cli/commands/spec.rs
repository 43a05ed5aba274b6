//! `airlock spec`: print a connector's spec.

use std::process::ExitCode;

use super::build_destination;
use crate::cli::args::SpecArgs;
use crate::cli::report::{Failure, from_destination};

pub(crate) async fn run(args: SpecArgs) -> Result<ExitCode, Failure> {
    let destination = build_destination(&args.destination, &args.executor, None)?;
    let spec = destination.spec().await.map_err(from_destination)?;
    println!("{}", serde_json::to_string_pretty(spec).unwrap_or_default());
    Ok(ExitCode::SUCCESS)
}
