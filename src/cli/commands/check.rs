//! `airlock check`: validate a config against the spec, then run the destination's
//! check; with `--file`, validate every entry of a sync file instead and list all
//! its problems at once (the rules are [`airlock::sync_file`]'s).

use std::process::ExitCode;

use airlock::config;
use airlock::protocol::ConnectionStatus;
use airlock::sync_file::SyncFile;

use super::build_destination;
use crate::cli::args::CheckArgs;
use crate::cli::report::{Failure, from_destination, usage};

pub(crate) async fn run(args: CheckArgs) -> Result<ExitCode, Failure> {
    if let Some(path) = &args.file {
        return check_file(path, args.json);
    }
    let (Some(name), Some(config)) = (args.destination.as_deref(), args.config.as_deref()) else {
        return Err(usage(anyhow::anyhow!(
            "name a destination and its --config, or a sync file with --file"
        )));
    };
    let config = config::read_config_arg(config).map_err(usage)?;
    let destination = build_destination(name, &args.executor, Some(config))?;
    let status = destination.check().await.map_err(from_destination)?;
    if args.json {
        println!("{}", serde_json::to_string(&status).unwrap_or_default());
    } else {
        match (&status.status, &status.message) {
            (ConnectionStatus::Succeeded, _) => println!("{name}: check succeeded"),
            (ConnectionStatus::Failed, message) => {
                println!(
                    "{name}: check FAILED: {}",
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

/// `airlock check --file`: the sync file's structure, references and secrets,
/// every problem at once.
fn check_file(path: &std::path::Path, json: bool) -> Result<ExitCode, Failure> {
    let file = SyncFile::read(path)
        .and_then(|file| file.check_secrets().map(|()| file))
        .map_err(|e| usage(anyhow::anyhow!(e)))?;
    if json {
        println!(
            "{}",
            serde_json::json!({
                "file": path.display().to_string(),
                "ok": true,
                "sources": file.sources.keys().collect::<Vec<_>>(),
                "destinations": file.destinations.keys().collect::<Vec<_>>(),
                "syncs": file.syncs.keys().collect::<Vec<_>>(),
            })
        );
    } else {
        println!(
            "{}: ok ({} sources, {} destinations, {} syncs: {})",
            path.display(),
            file.sources.len(),
            file.destinations.len(),
            file.syncs.len(),
            file.syncs.keys().cloned().collect::<Vec<_>>().join(", ")
        );
    }
    Ok(ExitCode::SUCCESS)
}
