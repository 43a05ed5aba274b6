//! `airlock docker …`: Docker housekeeping.

use std::process::ExitCode;

use crate::cli::args::DockerCommand;
use crate::cli::report::{Failure, from_executor};

/// Runs `airlock docker gc`: removes containers a killed airlock left behind.
pub(crate) async fn run(command: DockerCommand) -> Result<ExitCode, Failure> {
    match command {
        DockerCommand::Gc => {
            let docker = airlock::executor::docker::connect("airlock")
                .await
                .map_err(from_executor)?;
            let removed = airlock::executor::docker::collect_garbage(&docker)
                .await
                .map_err(|e| Failure {
                    error: e.into(),
                    code: 1,
                })?;
            println!("removed {removed} orphaned airlock containers");
            Ok(ExitCode::SUCCESS)
        }
    }
}
