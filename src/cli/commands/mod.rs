//! One module per command: each turns its parsed arguments into library calls and
//! hands results and errors to [`super::report`].

pub(crate) mod bench;
pub(crate) mod check;
pub(crate) mod discover;
pub(crate) mod docker;
pub(crate) mod k8s;
pub(crate) mod plugin;
pub(crate) mod spec;
pub(crate) mod sync;
pub(crate) mod write;

use super::args::ExecutorFlags;
use super::report::{Failure, from_destination, usage};

/// The destination `name`, run as `flags` say, with `config`.
pub(crate) fn build_destination(
    name: &str,
    flags: &ExecutorFlags,
    config: Option<serde_json::Value>,
) -> Result<airlock::Destination, Failure> {
    let mut builder = airlock::get_destination(name);
    if let Some(config) = config {
        builder = builder.config(config);
    }
    let options = flags.options().map_err(|e| usage(anyhow::anyhow!(e)))?;
    builder = builder.executor_options(options);
    builder.build().map_err(from_destination)
}
