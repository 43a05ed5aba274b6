//! `airlock write`: Airbyte messages from a file or stdin into a destination.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use airlock::config::{self, ConfigError};
use airlock::executor::sandbox::{MAX_TIMEOUT_SECS, check_limit};
use airlock::protocol::ConfiguredAirbyteCatalog;
use airlock::state::{StateStore, StateTarget, SyncKey};
use airlock::write::WriteOptions;

use super::build_destination;
use crate::cli::args::{MAX_LINE_BYTES, WriteArgs};
use crate::cli::progress;
use crate::cli::report::{Failure, from_destination, print_result, usage, write_failure};

fn read_catalog(arg: &str) -> Result<ConfiguredAirbyteCatalog, ConfigError> {
    let value = config::read_json_arg("catalog", arg)?;
    serde_json::from_value(value).map_err(|e| ConfigError::Shape {
        what: "catalog",
        origin: arg.chars().take(60).collect(),
        reason: e.to_string(),
    })
}

pub(crate) async fn run(args: WriteArgs) -> Result<ExitCode, Failure> {
    let (name, config) = match (&args.destination, &args.config) {
        (Some(name), Some(config)) => (
            name.clone(),
            config::read_config_arg(config).map_err(usage)?,
        ),
        (_, config) => {
            let config = match config {
                Some(config) => config::read_config_arg(config).map_err(usage)?,
                None => {
                    serde_json::json!({"test_destination": {"test_destination_type": "SILENT"}})
                }
            };
            ("destination-dev-null".to_owned(), config)
        }
    };
    let catalog = read_catalog(&args.catalog).map_err(usage)?;
    let input: Box<dyn tokio::io::AsyncRead + Send + Unpin> = if args.input == "-" {
        Box::new(tokio::io::stdin())
    } else {
        let file = tokio::fs::File::open(&args.input).await.map_err(|e| {
            usage(anyhow::anyhow!(
                "input {}: {e}; pass a readable file or - for stdin",
                args.input
            ))
        })?;
        Box::new(file)
    };
    let mut destination = build_destination(&name, &args.executor, Some(config))?;
    if let Some(id) = &args.destination_id {
        destination = destination.with_id(id);
    }
    destination
        .validate_config()
        .await
        .map_err(from_destination)?;

    let stall_timeout = check_limit(
        "--stall-timeout",
        args.stall_timeout,
        MAX_TIMEOUT_SECS,
        "seconds",
    )
    .map_err(|e| usage(anyhow::anyhow!(e)))?;
    if args.max_line_bytes == 0 || args.max_line_bytes > MAX_LINE_BYTES {
        return Err(usage(anyhow::anyhow!(
            "--max-line-bytes {}: give a length of at least 1 and at most {MAX_LINE_BYTES} bytes",
            args.max_line_bytes
        )));
    }
    let options = WriteOptions {
        max_line_bytes: args.max_line_bytes,
        stall_timeout: Duration::from_secs(stall_timeout),
        progress_interval: progress::interval(args.json),
        ..WriteOptions::default()
    };
    let mut job = destination
        .write_messages(input, catalog)
        .map_err(from_destination)?
        .options(options);
    if !args.no_state {
        let path = args
            .state_db
            .clone()
            .unwrap_or_else(airlock::home::state_db);
        let store = StateStore::connect(&path.to_string_lossy()).map_err(usage)?;
        job = job.state(StateTarget {
            store: Arc::new(store),
            key: SyncKey::new(&args.source_name, destination.identity().await),
            fence: Vec::new(),
            refuse_shared: false,
        });
    }
    let display = progress::Display::new(args.json);
    if let Some(callback) = display.callback() {
        job = job.on_progress(callback);
    }
    let outcome = job.run().await;
    display.finish();
    match outcome {
        Ok(result) => {
            print_result(&result, args.json);
            Ok(ExitCode::SUCCESS)
        }
        Err(error) => Err(write_failure(error, args.json)),
    }
}
