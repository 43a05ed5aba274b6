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

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use airlock_plugin_sdk::stream_files::{StreamFiles, push_integer};
use airlock_plugin_sdk::{
    ConfiguredCatalog, Context, Destination, DestinationError, Emitter, Record, RecordWriter,
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
        fs::create_dir_all(&folder).map_err(|e| {
            format!(
                "could not create the destination folder {}: {e}",
                folder.display()
            )
        })?;
        let token: String = std::iter::repeat_with(fastrand::alphanumeric)
            .take(12)
            .collect();
        let probe = folder.join(format!("_airbyte_connection_check_{token}"));
        fs::write(&probe, b"{}\n").map_err(|e| {
            format!(
                "could not write to the destination folder {}: {e}",
                folder.display()
            )
        })?;
        fs::remove_file(&probe)
            .map_err(|e| format!("could not remove the check file {}: {e}", probe.display()))
    }

    fn open(
        &self,
        config: &Value,
        catalog: &ConfiguredCatalog,
        ctx: &Context,
    ) -> Result<Box<dyn RecordWriter>, DestinationError> {
        let folder = destination_folder(config, ctx)?;
        JsonlWriter::open(&folder, catalog).map(|writer| Box::new(writer) as Box<dyn RecordWriter>)
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

/// Writes the records of one run to staged `.jsonl` files.
struct JsonlWriter {
    files: StreamFiles,
    /// Generates the record ids; seeded once per run.
    rng: fastrand::Rng,
    /// The line being built.
    line: Vec<u8>,
}

impl JsonlWriter {
    fn open(folder: &Path, catalog: &ConfiguredCatalog) -> Result<Self, DestinationError> {
        Ok(Self {
            files: StreamFiles::open(folder, catalog, EXTENSION, b"")?,
            rng: fastrand::Rng::new(),
            line: Vec::with_capacity(1024),
        })
    }
}

impl RecordWriter for JsonlWriter {
    fn write(
        &mut self,
        record: &Record<'_>,
        _out: &mut Emitter<'_>,
    ) -> Result<(), DestinationError> {
        let id = uuid::Builder::from_random_bytes(self.rng.u128(..).to_le_bytes()).into_uuid();
        let mut id_text = [0; uuid::fmt::Hyphenated::LENGTH];
        let line = &mut self.line;
        line.clear();
        line.extend_from_slice(br#"{"_airbyte_ab_id":""#);
        line.extend_from_slice(id.hyphenated().encode_lower(&mut id_text).as_bytes());
        line.extend_from_slice(br#"","_airbyte_emitted_at":"#);
        push_integer(line, record.emitted_at);
        line.extend_from_slice(br#","_airbyte_data":"#);
        line.extend_from_slice(record.data.get().as_bytes());
        line.extend_from_slice(b"}\n");
        let file = self.files.for_stream(record.stream_index());
        file.write_all(line).map_err(|e| {
            DestinationError::system(format!(
                "could not write {}: {e}",
                file.temp_path().display()
            ))
        })
    }

    fn flush(&mut self) -> Result<(), DestinationError> {
        self.files.flush()
    }

    fn stream_complete(&mut self, stream_index: usize) -> Result<(), DestinationError> {
        self.files.stream_complete(stream_index);
        Ok(())
    }

    /// Closes every file, even after a failure, and reports the first error.
    fn close(self: Box<Self>, clean: bool) -> Result<(), DestinationError> {
        self.files.close(clean)
    }
}

#[cfg(test)]
mod tests;
