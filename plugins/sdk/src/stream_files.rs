//! `stream_files`: one staged output file per stream, for destinations that write
//! `_airbyte_raw_<stream>.<ext>` files (local-json, csv).
//!
//! Owns the mapping from catalog streams to files (namespaced streams go into a
//! subfolder named after the transformed namespace; streams whose names transform
//! alike share a file), the COMPLETE bookkeeping, and closing every file. The
//! row format belongs to the destination.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use crate::naming::{convert_stream_name, raw_table_name};
use crate::staging::StagedFile;
use std::io::Write as _;

use crate::{
    AirbyteStream, ConfiguredCatalog, DestinationError, DestinationSyncMode, Emitter, Record,
    RecordWriter,
};

/// The files of one run, indexed by catalog stream.
#[derive(Debug)]
pub struct StreamFiles {
    files: Vec<StagedFile>,
    /// Per catalog stream: its index in `files`.
    file_of_stream: Vec<usize>,
    /// Per file: how many of its streams have yet to complete.
    incomplete_streams: Vec<usize>,
}

/// The file a stream is written to inside `folder`: `[<namespace>/]_airbyte_raw_<stream>.<extension>`.
pub fn stream_file(folder: &Path, stream: &AirbyteStream, extension: &str) -> PathBuf {
    let mut path = folder.to_path_buf();
    if let Some(namespace) = stream.namespace.as_deref().filter(|ns| !ns.is_empty()) {
        path.push(convert_stream_name(namespace));
    }
    path.push(format!("{}.{extension}", raw_table_name(&stream.name)));
    path
}

impl StreamFiles {
    /// Stages one file per stream of `catalog` in `folder`, each starting with
    /// `header` (empty for none).
    ///
    /// # Errors
    /// The first file that cannot be staged (the ones staged before are closed).
    pub fn open(
        folder: &Path,
        catalog: &ConfiguredCatalog,
        extension: &str,
        header: &[u8],
    ) -> Result<Self, DestinationError> {
        let mut paths: Vec<(PathBuf, DestinationSyncMode)> = Vec::new();
        let mut by_path: HashMap<PathBuf, usize> = HashMap::new();
        let mut file_of_stream = Vec::with_capacity(catalog.streams.len());
        let mut incomplete_streams: Vec<usize> = Vec::new();
        let mut seen = HashSet::new();
        for configured in &catalog.streams {
            let path = stream_file(folder, &configured.stream, extension);
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
            match StagedFile::open_with_header(path, mode, header) {
                Ok(file) => files.push(file),
                Err(e) => {
                    // Move the (empty) temp files staged so far out of the way;
                    // the open error is the one to report.
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
        })
    }

    /// The file of the catalog stream at `stream_index`.
    pub fn for_stream(&mut self, stream_index: usize) -> &mut StagedFile {
        &mut self.files[self.file_of_stream[stream_index]]
    }

    /// Flushes every file (before a state is echoed).
    ///
    /// # Errors
    /// The first file that cannot be flushed.
    pub fn flush(&mut self) -> Result<(), DestinationError> {
        self.files.iter_mut().try_for_each(StagedFile::flush)
    }

    /// Notes a stream's COMPLETE; a file is complete once all its streams are.
    pub fn stream_complete(&mut self, stream_index: usize) {
        let file = self.file_of_stream[stream_index];
        let incomplete = &mut self.incomplete_streams[file];
        *incomplete = incomplete.saturating_sub(1);
        if *incomplete == 0 {
            self.files[file].mark_complete();
        }
    }

    /// Closes every file, even after a failure, and reports the first error.
    ///
    /// # Errors
    /// The first file that cannot be moved into place.
    pub fn close(self, clean: bool) -> Result<(), DestinationError> {
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

/// A file destination's `check`: creates `folder`, then writes `probe` into a file
/// in it and removes that file.
///
/// # Errors
/// A message naming the folder or file and what failed.
pub fn check_folder(folder: &Path, probe: &[u8]) -> Result<(), String> {
    std::fs::create_dir_all(folder).map_err(|e| {
        format!(
            "could not create the destination folder {}: {e}",
            folder.display()
        )
    })?;
    let token: String = std::iter::repeat_with(fastrand::alphanumeric)
        .take(12)
        .collect();
    let file = folder.join(format!("_airbyte_connection_check_{token}"));
    std::fs::write(&file, probe).map_err(|e| {
        format!(
            "could not write to the destination folder {}: {e}",
            folder.display()
        )
    })?;
    std::fs::remove_file(&file)
        .map_err(|e| format!("could not remove the check file {}: {e}", file.display()))
}

/// How a file destination turns a record into its row: one line, ending in `\n`.
pub trait RowFormat: Send {
    /// Appends the row of `record` to `line`; `id` is its new `_airbyte_ab_id`.
    fn encode(&self, id: &str, record: &Record<'_>, line: &mut Vec<u8>);
}

/// A [`RecordWriter`] that writes one row per record, in format `F`, into the
/// stream's file of a [`StreamFiles`], with a fresh uuid v4 for each.
#[derive(Debug)]
pub struct RowWriter<F> {
    files: StreamFiles,
    format: F,
    /// Generates the record ids; seeded once per run, not one OS call a record.
    rng: fastrand::Rng,
    /// The row being built.
    line: Vec<u8>,
}

impl<F: RowFormat> RowWriter<F> {
    /// A writer of `format` rows into `files`.
    pub fn new(files: StreamFiles, format: F) -> Self {
        Self {
            files,
            format,
            rng: fastrand::Rng::new(),
            line: Vec::with_capacity(1024),
        }
    }
}

impl<F: RowFormat> RecordWriter for RowWriter<F> {
    fn write(
        &mut self,
        record: &Record<'_>,
        _out: &mut Emitter<'_>,
    ) -> Result<(), DestinationError> {
        let id = uuid::Builder::from_random_bytes(self.rng.u128(..).to_le_bytes()).into_uuid();
        let mut id_text = [0; uuid::fmt::Hyphenated::LENGTH];
        let id = id.hyphenated().encode_lower(&mut id_text);
        self.line.clear();
        self.format.encode(id, record, &mut self.line);
        let file = self.files.for_stream(record.stream_index());
        file.write_all(&self.line).map_err(|e| {
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

/// Appends the decimal digits of `n` without going through `fmt`.
pub fn push_integer(line: &mut Vec<u8>, n: i64) {
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
mod tests {
    use super::*;
    use std::io::Write;

    fn catalog(streams: &[(&str, Option<&str>, &str)]) -> ConfiguredCatalog {
        let streams: Vec<serde_json::Value> = streams
            .iter()
            .map(|(name, namespace, mode)| {
                serde_json::json!({"stream": {"name": name, "namespace": namespace},
                                   "sync_mode": "full_refresh", "destination_sync_mode": mode})
            })
            .collect();
        let catalog = serde_json::json!({ "streams": streams }).to_string();
        ConfiguredCatalog::from_json(catalog.as_bytes()).expect("catalog")
    }

    #[test]
    fn stream_files_are_named_after_the_transformed_names() {
        let catalog = catalog(&[
            ("my stream", None, "append"),
            ("users", Some("crm 1"), "append"),
        ]);
        let folder = Path::new("/out");
        assert_eq!(
            stream_file(folder, &catalog.streams[0].stream, "csv"),
            Path::new("/out/_airbyte_raw_my_stream.csv")
        );
        assert_eq!(
            stream_file(folder, &catalog.streams[1].stream, "jsonl"),
            Path::new("/out/crm_1/_airbyte_raw_users.jsonl")
        );
    }

    #[test]
    fn streams_that_transform_alike_share_a_file_that_completes_with_both() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("_airbyte_raw_a_b.txt");
        std::fs::write(&path, "old\n").expect("prior data");
        let catalog = catalog(&[("a b", None, "overwrite"), ("a+b", None, "overwrite")]);
        let mut files = StreamFiles::open(dir.path(), &catalog, "txt", b"").expect("open");
        files.for_stream(0).write_all(b"one\n").expect("write");
        files.for_stream(1).write_all(b"two\n").expect("write");
        files.stream_complete(0);
        files.flush().expect("flush");
        files.close(true).expect("close");
        // Only one of the two streams completed: the prior data stays.
        assert_eq!(
            std::fs::read_to_string(&path).expect("read"),
            "old\none\ntwo\n"
        );

        let mut files = StreamFiles::open(dir.path(), &catalog, "txt", b"").expect("open");
        files.for_stream(1).write_all(b"three\n").expect("write");
        files.stream_complete(0);
        files.stream_complete(1);
        files.close(true).expect("close");
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "three\n");
    }

    #[test]
    fn integers_are_written_in_decimal() {
        for n in [0, 7, -5, 1_700_000_000_123, i64::MAX, i64::MIN] {
            let mut line = b"x".to_vec();
            push_integer(&mut line, n);
            assert_eq!(line, format!("x{n}").into_bytes());
        }
    }
}
