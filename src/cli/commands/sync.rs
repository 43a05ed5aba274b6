//! `airlock sync`: a source into a destination, resuming from the last confirmed
//! state, through the read cache unless `--no-cache`; named by flags, or by a sync
//! file and the name of one of its syncs (`--file FILE NAME`).

use std::process::ExitCode;
use std::sync::Arc;

use std::path::PathBuf;

use airlock::config;
use airlock::executor::sandbox::SandboxPolicy;
use airlock::registry::ExecutorOptions;
use airlock::source::WriteStrategy;
use airlock::state::StateStore;
use airlock::sync_file::{ConnectorEntry, SyncFile};
use airlock::write::WriteOptions;

use crate::cli::args::{StrategyArg, SyncArgs};
use crate::cli::progress;
use crate::cli::report::{
    Failure, from_destination, print_sync_result, source_failure, sync_failure, usage,
};

/// Everything one sync needs, from the flags or from a sync file.
struct Plan {
    source: String,
    source_config: serde_json::Value,
    source_options: ExecutorOptions,
    destination: String,
    destination_config: serde_json::Value,
    destination_options: ExecutorOptions,
    destination_id: Option<String>,
    source_id: Option<String>,
    streams: Vec<String>,
    strategy: WriteStrategy,
    full_refresh: bool,
    /// `None`: no cache; `Some(None)`: the default cache.
    cache: Option<Option<PathBuf>>,
    /// `None`: no state; `Some(None)`: the default state database.
    state: Option<Option<PathBuf>>,
}

fn flag_error(e: String) -> Failure {
    usage(anyhow::anyhow!(e))
}

/// The plan the flags give.
fn plan_from_flags(args: &SyncArgs) -> Result<Plan, Failure> {
    let (Some(source), Some(source_config), Some(destination), Some(destination_config)) = (
        args.source.as_deref(),
        args.source_config.as_deref(),
        args.destination.as_deref(),
        args.destination_config.as_deref(),
    ) else {
        return Err(usage(anyhow::anyhow!(
            "name --source, --source-config, --destination and --destination-config, or a sync file with --file FILE NAME"
        )));
    };
    let mut source_options = args.executor.options().map_err(flag_error)?;
    source_options.local_executable = args.source_local_executable.clone();
    source_options.wasm = args.source_wasm.clone();
    source_options.docker_image = args.source_docker_image.clone();
    source_options.pip_url = args.source_pip_url.clone();
    source_options.version = args.source_version.clone();
    source_options.env.clear();
    Ok(Plan {
        source: source.to_owned(),
        source_config: config::read_config_arg(source_config).map_err(usage)?,
        source_options,
        destination: destination.to_owned(),
        destination_config: config::read_config_arg(destination_config).map_err(usage)?,
        destination_options: args.executor.options().map_err(flag_error)?,
        destination_id: args.destination_id.clone(),
        source_id: args.source_id.clone(),
        streams: args.streams.clone(),
        strategy: args.strategy.into(),
        full_refresh: args.full_refresh,
        cache: match (&args.no_cache, &args.cache_path) {
            (true, _) => None,
            (false, path) => Some(path.clone()),
        },
        state: (!args.no_state).then(|| args.state_db.clone()),
    })
}

/// The plan of sync `name` in the sync file at `path`; the flags still win.
fn plan_from_file(args: &SyncArgs, path: &std::path::Path, name: &str) -> Result<Plan, Failure> {
    let file = SyncFile::read(path).map_err(|e| usage(anyhow::anyhow!(e)))?;
    let entry = file.sync(name).map_err(|e| usage(anyhow::anyhow!(e)))?;
    let source = &file.sources[&entry.source];
    let destination = &file.destinations[&entry.destination];
    let resolve = |what: String, connector| {
        file.resolve_config(&what, connector)
            .map_err(|e| usage(anyhow::anyhow!(e)))
    };
    let source_config = resolve(format!("sources.{}", entry.source), source)?;
    let destination_config = resolve(format!("destinations.{}", entry.destination), destination)?;
    let base = entry
        .sandbox
        .as_ref()
        .map_or_else(SandboxPolicy::new, |p| SandboxPolicy::new().with_file(p));
    let policy = args.executor.policy_over(base).map_err(flag_error)?;
    let options = |connector: &ConnectorEntry| -> Result<ExecutorOptions, Failure> {
        let mut options = args.executor.options().map_err(flag_error)?;
        options.policy = Some(policy.clone());
        let flags_chose = options.local_executable.is_some()
            || options.wasm.is_some()
            || options.docker_image.is_some()
            || options.pip_url.is_some();
        if !flags_chose {
            options.local_executable = connector
                .local_executable
                .as_deref()
                .map(|p| file.relative(p));
            options.wasm = connector.wasm.as_deref().map(|p| file.relative(p));
            options.docker_image = connector.docker_image.clone();
            options.pip_url = connector.pip_url.clone();
        }
        if options.version.is_none() {
            options.version = connector.version.clone();
        }
        Ok(options)
    };
    let mut source_options = options(source)?;
    source_options.env.clear();
    let strategy = match (args.strategy, entry.strategy.as_deref()) {
        (StrategyArg::Auto, Some("append")) => WriteStrategy::Append,
        (StrategyArg::Auto, Some("replace")) => WriteStrategy::Replace,
        (StrategyArg::Auto, Some("merge")) => WriteStrategy::Merge,
        (flag, _) => flag.into(),
    };
    let in_file = |value: &Option<String>| -> Option<Option<PathBuf>> {
        match value.as_deref() {
            Some("none") => None,
            Some(url) if url.contains("://") => Some(Some(PathBuf::from(url))),
            Some(path) => Some(Some(file.relative(std::path::Path::new(path)))),
            None => Some(None),
        }
    };
    Ok(Plan {
        source: source.connector.clone(),
        source_config,
        source_options,
        destination: destination.connector.clone(),
        destination_config,
        destination_options: options(destination)?,
        destination_id: args
            .destination_id
            .clone()
            .or_else(|| entry.destination_id.clone())
            .or_else(|| destination.id.clone()),
        source_id: args.source_id.clone().or_else(|| source.id.clone()),
        streams: if args.streams.is_empty() {
            entry.streams.clone()
        } else {
            args.streams.clone()
        },
        strategy,
        full_refresh: args.full_refresh || entry.full_refresh,
        cache: if args.no_cache {
            None
        } else if args.cache_path.is_some() {
            Some(args.cache_path.clone())
        } else {
            in_file(&entry.cache)
        },
        state: if args.no_state {
            None
        } else if args.state_db.is_some() {
            Some(args.state_db.clone())
        } else {
            let location = file
                .state_location(name, entry)
                .map_err(|e| usage(anyhow::anyhow!(e)))?;
            in_file(&location)
        },
    })
}

pub(crate) async fn run(args: SyncArgs) -> Result<ExitCode, Failure> {
    let plan = match (&args.file, &args.name) {
        (Some(path), Some(name)) => plan_from_file(&args, path, name)?,
        _ => plan_from_flags(&args)?,
    };
    let mut destination = airlock::get_destination(&plan.destination)
        .config(plan.destination_config)
        .executor_options(plan.destination_options)
        .build()
        .map_err(from_destination)?;
    if let Some(id) = &plan.destination_id {
        destination = destination.with_id(id);
    }
    let mut source = airlock::source::get_source(&plan.source)
        .executor_options(plan.source_options)
        .config(plan.source_config);
    if let Some(id) = &plan.source_id {
        source = source.id(id);
    }
    let source = source.build().map_err(source_failure)?;
    source.validate_config().await.map_err(source_failure)?;
    destination
        .validate_config()
        .await
        .map_err(from_destination)?;
    let mut job = destination
        .write(&source)
        .strategy(plan.strategy)
        .force_full_refresh(plan.full_refresh)
        .wait_for_lease(args.wait)
        .lease_ttl(std::time::Duration::from_secs(
            args.lease_secs.clamp(1, 86_400),
        ))
        .options(WriteOptions {
            progress_interval: progress::interval(args.json),
            ..WriteOptions::default()
        });
    if !plan.streams.is_empty() {
        job = job.streams(&plan.streams);
    }
    match &plan.cache {
        None => job = job.no_cache(),
        Some(Some(path)) => job = job.cache(airlock::cache::Cache::open(path).map_err(usage)?),
        Some(None) => {}
    }
    if let Some(path) = &plan.state {
        let path = path.clone().unwrap_or_else(airlock::home::state_db);
        job = job.state_cache(Arc::new(
            StateStore::connect(&path.to_string_lossy()).map_err(usage)?,
        ));
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
        Err(error) => {
            // A run stopped mid-way (its lease lost) dropped its connectors; their
            // containers are removed here, before this process exits under them.
            airlock::executor::stop_all().await;
            Err(sync_failure(error, args.json))
        }
    }
}
