//! `airlock sync`: a source into a destination, resuming from the last confirmed
//! state, through the read cache unless `--no-cache`.

use std::process::ExitCode;
use std::sync::Arc;

use airlock::config;
use airlock::state::StateStore;
use airlock::write::WriteOptions;

use super::build_destination;
use crate::cli::args::SyncArgs;
use crate::cli::progress;
use crate::cli::report::{
    Failure, from_destination, print_sync_result, source_failure, sync_failure, usage,
};

pub(crate) async fn run(args: SyncArgs) -> Result<ExitCode, Failure> {
    let source_config = config::read_config_arg(&args.source_config).map_err(usage)?;
    let destination_config = config::read_config_arg(&args.destination_config).map_err(usage)?;
    let mut destination =
        build_destination(&args.destination, &args.executor, Some(destination_config))?;
    if let Some(id) = &args.destination_id {
        destination = destination.with_id(id);
    }
    let mut source_options = args
        .executor
        .options()
        .map_err(|e| usage(anyhow::anyhow!(e)))?;
    source_options.local_executable = args.source_local_executable.clone();
    source_options.wasm = args.source_wasm.clone();
    source_options.docker_image = args.source_docker_image.clone();
    source_options.pip_url = args.source_pip_url.clone();
    source_options.version = args.source_version.clone();
    source_options.env.clear();
    let source = airlock::source::get_source(&args.source)
        .executor_options(source_options)
        .config(source_config)
        .build()
        .map_err(source_failure)?;
    source.validate_config().await.map_err(source_failure)?;
    destination
        .validate_config()
        .await
        .map_err(from_destination)?;
    let mut job = destination
        .write(&source)
        .strategy(args.strategy.into())
        .force_full_refresh(args.full_refresh)
        .options(WriteOptions {
            progress_interval: progress::interval(args.json),
            ..WriteOptions::default()
        });
    if !args.streams.is_empty() {
        job = job.streams(&args.streams);
    }
    if args.no_cache {
        job = job.no_cache();
    } else if let Some(path) = &args.cache_path {
        job = job.cache(airlock::cache::Cache::open(path).map_err(usage)?);
    }
    if !args.no_state {
        let path = args
            .state_db
            .clone()
            .unwrap_or_else(airlock::home::state_db);
        job = job.state_cache(Arc::new(StateStore::open(&path).map_err(usage)?));
    }
    let display = progress::Display::new(args.json);
    if let Some(callback) = display.callback() {
        job = job.on_progress(callback);
    }
    let outcome = job.run().await;
    display.finish();
    match outcome {
        Ok(result) => {
            print_sync_result(&result, args.json);
            Ok(ExitCode::SUCCESS)
        }
        Err(error) => Err(sync_failure(error, args.json)),
    }
}
