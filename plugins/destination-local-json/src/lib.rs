//! `destination-local-json`: Airbyte's local-json destination. Each stream is
//! written to `_airbyte_raw_<stream>.jsonl` in the configured folder, one
//! line per record:
//!
//! ```text
//! {"_airbyte_ab_id":"<uuid v4>","_airbyte_emitted_at":<ms>,"_airbyte_data":<data as received>}
//! ```
//!
//! The stream name goes through Airbyte's name transformer
//! ([`airlock_plugin_sdk::naming::convert_stream_name`]). A stream with a namespace is written to a
//! subfolder named by its transformed namespace
//! (`<destination_path>/<namespace>/_airbyte_raw_<stream>.jsonl`), so the same
//! stream name in two namespaces does not collide; a stream without one is
//! written to the folder itself. Distinct streams whose names transform to
//! the same file share that file (see [`StreamFiles`]).
//!
//! Files are staged through [`StagedFile`]: flushed before each state is
//! echoed, and moved into place at the end — an overwrite stream that
//! completed replaces the file, everything else is appended to it.

#![deny(missing_docs)]

use std::path::PathBuf;

use airlock_plugin_sdk::stream_files::{
    RowFormat, RowWriter, StreamFiles, check_folder, push_integer,
};
use airlock_plugin_sdk::{
    ConfiguredCatalog, Context, Destination, DestinationError, Record, RecordWriter,
};
use serde_json::Value;

/// The configuration field naming the output folder.
const DESTINATION_PATH: &str = "destination_path";

/// The extension of the output files.
const EXTENSION: &str = "jsonl";

/// The local-json destination.
#[derive(Debug, Clone, Copy, Default)]
pub struct LocalJson;

airlock_plugin_sdk::export_destination!(LocalJson);

impl Destination for LocalJson {
    fn spec(&self) -> Value {
        serde_json::from_str(include_str!("spec.json"))
            .expect("spec.json is valid JSON (checked by a test)")
    }

    /// Resolves the folder, creates it, and writes and removes a probe file
    /// in it.
    fn check(&self, config: &Value, ctx: &Context) -> Result<(), String> {
        let folder = destination_folder(config, ctx).map_err(|e| e.message)?;
        check_folder(&folder, b"{}\n")
    }

    fn open(
        &self,
        config: &Value,
        catalog: &ConfiguredCatalog,
        ctx: &Context,
    ) -> Result<Box<dyn RecordWriter>, DestinationError> {
        let folder = destination_folder(config, ctx)?;
        let files = StreamFiles::open(&folder, catalog, EXTENSION, b"")?;
        Ok(Box::new(RowWriter::new(files, JsonlRow)))
    }
}

/// The output folder named by the configuration, resolved for `ctx`.
fn destination_folder(config: &Value, ctx: &Context) -> Result<PathBuf, DestinationError> {
    match config.get(DESTINATION_PATH) {
        None | Some(Value::Null) => Err(DestinationError::config(format!(
            "{DESTINATION_PATH} is required"
        ))),
        Some(Value::String(path)) => ctx.resolve_local_path(path),
        Some(other) => Err(DestinationError::config(format!(
            "{DESTINATION_PATH} must be a string, got {other}"
        ))),
    }
}

/// Airbyte's raw JSON line: `{"_airbyte_ab_id":…,"_airbyte_emitted_at":…,"_airbyte_data":…}`,
/// the data copied as received.
struct JsonlRow;

impl RowFormat for JsonlRow {
    fn encode(&self, id: &str, record: &Record<'_>, line: &mut Vec<u8>) {
        line.extend_from_slice(br#"{"_airbyte_ab_id":""#);
        line.extend_from_slice(id.as_bytes());
        line.extend_from_slice(br#"","_airbyte_emitted_at":"#);
        push_integer(line, record.emitted_at);
        line.extend_from_slice(br#","_airbyte_data":"#);
        line.extend_from_slice(record.data.get().as_bytes());
        line.extend_from_slice(b"}\n");
    }
}

#[cfg(test)]
mod tests;
