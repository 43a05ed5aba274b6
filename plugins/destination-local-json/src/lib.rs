//! `destination-local-json`: Airbyte's local-json destination. Each stream is
//! written to `_airbyte_raw_<stream>.jsonl` in the configured folder, one
//! line per record:
//!
//! ```text
//! {"_airbyte_ab_id":"<uuid v4>","_airbyte_emitted_at":<ms>,"_airbyte_data":<data as received>}
//! ```
//!
//! The stream name goes through Airbyte's name transformer
//! ([`convert_stream_name`]). A stream with a namespace is written to a
//! subfolder named by its transformed namespace
//! (`<destination_path>/<namespace>/_airbyte_raw_<stream>.jsonl`), so the same
//! stream name in two namespaces does not collide; a stream without one is
//! written to the folder itself. Distinct streams whose names transform to
//! the same file share that file.
//!
//! Files are staged through [`StagedFile`]: flushed before each state is
//! echoed, and moved into place at the end — an overwrite stream that
//! completed replaces the file, everything else is appended to it.

#![deny(missing_docs)]

use std::collections::{HashMap, HashSet};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use airlock_plugin_sdk::naming::{convert_stream_name, raw_table_name};
use airlock_plugin_sdk::staging::StagedFile;
use airlock_plugin_sdk::{
    AirbyteStream, ConfiguredCatalog, Context, Destination, DestinationError, DestinationSyncMode,
    Emitter, Record, RecordWriter,
};
use serde_json::Value;

/// The configuration field naming the output folder.
const DESTINATION_PATH: &str = "destination_path";

/// The extension of the output files.
const EXTENSION: &str = "jsonl";

/// The local-json destination.
#[derive(Debug, Clone, Copy, Default)]
pub struct LocalJson;

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

/// The file a stream is written to inside `folder`.
fn stream_file(folder: &Path, stream: &AirbyteStream) -> PathBuf {
    let mut path = folder.to_path_buf();
    if let Some(namespace) = stream.namespace.as_deref().filter(|ns| !ns.is_empty()) {
        path.push(convert_stream_name(namespace));
    }
    path.push(format!("{}.{EXTENSION}", raw_table_name(&stream.name)));
    path
}

/// Writes the records of one run to staged `.jsonl` files.
struct JsonlWriter {
    files: Vec<StagedFile>,
    /// Per catalog stream: its index in `files`.
    file_of_stream: Vec<usize>,
    /// Per file: how many of its streams have yet to complete.
    incomplete_streams: Vec<usize>,
    /// Generates the record ids; seeded once per run.
    rng: fastrand::Rng,
    /// The line being built.
    line: Vec<u8>,
}

impl JsonlWriter {
    fn open(folder: &Path, catalog: &ConfiguredCatalog) -> Result<Self, DestinationError> {
        // Group the streams by file: distinct streams can share one.
        let mut paths: Vec<(PathBuf, DestinationSyncMode)> = Vec::new();
        let mut by_path: HashMap<PathBuf, usize> = HashMap::new();
        let mut file_of_stream = Vec::with_capacity(catalog.streams.len());
        let mut incomplete_streams: Vec<usize> = Vec::new();
        let mut seen = HashSet::new();
        for configured in &catalog.streams {
            let path = stream_file(folder, &configured.stream);
            let mode = configured.destination_sync_mode;
            let file = *by_path.entry(path.clone()).or_insert_with(|| {
                paths.push((path, mode));
                incomplete_streams.push(0);
                paths.len() - 1
            });
            // A shared file is only overwritten if every one of its streams is.
            if mode != DestinationSyncMode::Overwrite {
                paths[file].1 = DestinationSyncMode::Append;
            }
            // A stream listed twice completes once.
            if seen.insert(configured.stream.descriptor()) {
                incomplete_streams[file] += 1;
            }
            file_of_stream.push(file);
        }
        let mut files = Vec::with_capacity(paths.len());
        for (path, mode) in paths {
            match StagedFile::open(path, mode) {
                Ok(file) => files.push(file),
                Err(e) => {
                    // Move the (empty) temp files staged so far out of the
                    // way; the open error is the one to report.
                    for file in files {
                        let _ = file.close(false);
                    }
                    return Err(e);
                }
            }
        }
        Ok(Self {
            files,
            file_of_stream,
            incomplete_streams,
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
        let file = &mut self.files[self.file_of_stream[record.stream_index()]];
        file.write_all(line).map_err(|e| {
            DestinationError::system(format!(
                "could not write {}: {e}",
                file.temp_path().display()
            ))
        })
    }

    fn flush(&mut self) -> Result<(), DestinationError> {
        self.files.iter_mut().try_for_each(StagedFile::flush)
    }

    fn stream_complete(&mut self, stream_index: usize) -> Result<(), DestinationError> {
        let file = self.file_of_stream[stream_index];
        let incomplete = &mut self.incomplete_streams[file];
        *incomplete = incomplete.saturating_sub(1);
        if *incomplete == 0 {
            self.files[file].mark_complete();
        }
        Ok(())
    }

    /// Closes every file, even after a failure, and reports the first error.
    fn close(self: Box<Self>, clean: bool) -> Result<(), DestinationError> {
        let mut result = Ok(());
        for file in self.files {
            let closed = file.close(clean);
            if result.is_ok() {
                result = closed;
            }
        }
        result
    }
}

/// Appends the decimal digits of `n` without going through `fmt`.
fn push_integer(line: &mut Vec<u8>, n: i64) {
    let mut digits = [0u8; 20];
    let mut start = digits.len();
    let mut rest = n.unsigned_abs();
    loop {
        start -= 1;
        digits[start] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    if n < 0 {
        line.push(b'-');
    }
    line.extend_from_slice(&digits[start..]);
}

#[cfg(test)]
mod tests;
