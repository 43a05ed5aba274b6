//! `airlock discover`: print a source's catalog.

use std::process::ExitCode;

use airlock::config;

use crate::cli::args::DiscoverArgs;
use crate::cli::report::{Failure, source_failure, usage};

pub(crate) async fn run(args: DiscoverArgs) -> Result<ExitCode, Failure> {
    let config = config::read_config_arg(&args.config).map_err(usage)?;
    let options = args
        .executor
        .options()
        .map_err(|e| usage(anyhow::anyhow!(e)))?;
    let source = airlock::source::get_source(&args.source)
        .executor_options(options)
        .config(config)
        .build()
        .map_err(source_failure)?;
    source.validate_config().await.map_err(source_failure)?;
    let catalog = source.discover().await.map_err(source_failure)?;
    println!(
        "{}",
        serde_json::to_string_pretty(catalog).unwrap_or_default()
    );
    Ok(ExitCode::SUCCESS)
}
