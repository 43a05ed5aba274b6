//! `destination-csv`: Airbyte's CSV destination. Each stream is written to
//! `_airbyte_raw_<stream>.csv` in the configured folder, with the header
//! `_airbyte_ab_id,_airbyte_emitted_at,_airbyte_data` and one row per record: a
//! uuid, the emission time in ms, and the record's data as JSON text.
//!
//! Fields are quoted as RFC 4180 says: a field holding the delimiter, `"`, `\r` or
//! `\n` is wrapped in quotes, with inner quotes doubled. Files, namespaces and the
//! overwrite / append rules are those of [`StreamFiles`]; the header is written
//! once per file, also across append runs.

#![deny(missing_docs)]

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use airlock_plugin_sdk::stream_files::{StreamFiles, push_integer};
use airlock_plugin_sdk::{
    ConfiguredCatalog, Context, Destination, DestinationError, Emitter, Record, RecordWriter,
};
use serde_json::Value;

/// The header row of every file.
pub const HEADER: &str = "_airbyte_ab_id,_airbyte_emitted_at,_airbyte_data";

/// The CSV destination.
#[derive(Debug, Clone, Copy, Default)]
pub struct Csv;

airlock_plugin_sdk::export_destination!(Csv);

/// The configuration: where, and with which delimiter.
struct Settings {
    folder: PathBuf,
    delimiter: u8,
}

impl Settings {
    fn read(config: &Value, ctx: &Context) -> Result<Self, DestinationError> {
        let folder = match config.get("destination_path") {
            Some(Value::String(path)) => ctx.resolve_local_path(path)?,
            None | Some(Value::Null) => {
                return Err(DestinationError::config("destination_path is required"));
            }
            Some(other) => {
                return Err(DestinationError::config(format!(
                    "destination_path must be a string, got {other}"
                )));
            }
        };
        let delimiter = match config.get("delimiter_type").and_then(|d| d.get("delimiter")) {
            None | Some(Value::Null) => b',',
            Some(Value::String(text)) => parse_delimiter(text).ok_or_else(|| {
                DestinationError::config(format!(
                    "delimiter_type.delimiter {text:?} is not one of comma, semicolon, pipe, tab or space"
                ))
            })?,
            Some(other) => return Err(DestinationError::config(format!("delimiter_type.delimiter must be a string, got {other}"))),
        };
        Ok(Self { folder, delimiter })
    }
}

/// Airbyte writes the delimiter as an escape (`"\\u002c"`); the character itself is
/// accepted too.
fn parse_delimiter(text: &str) -> Option<u8> {
    let c = match text {
        "\\u002c" | "," => b',',
        "\\u003b" | ";" => b';',
        "\\u007c" | "|" => b'|',
        "\\u0009" | "\t" => b'\t',
        "\\u0020" | " " => b' ',
        _ => return None,
    };
    Some(c)
}

impl Destination for Csv {
    fn spec(&self) -> Value {
        serde_json::from_str(include_str!("spec.json"))
            .expect("spec.json is valid JSON (checked by a test)")
    }

    /// Resolves the folder, creates it, and writes and removes a probe file in it.
    fn check(&self, config: &Value, ctx: &Context) -> Result<(), String> {
        let settings = Settings::read(config, ctx).map_err(|e| e.message)?;
        let folder = &settings.folder;
        fs::create_dir_all(folder).map_err(|e| {
            format!(
                "could not create the destination folder {}: {e}",
                folder.display()
            )
        })?;
        let token: String = std::iter::repeat_with(fastrand::alphanumeric)
            .take(12)
            .collect();
        let probe = folder.join(format!("_airbyte_connection_check_{token}"));
        fs::write(&probe, HEADER).map_err(|e| {
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
        let settings = Settings::read(config, ctx)?;
        Ok(Box::new(CsvWriter::open(
            &settings.folder,
            settings.delimiter,
            catalog,
        )?))
    }
}

/// Writes the records of one run to staged `.csv` files.
struct CsvWriter {
    files: StreamFiles,
    delimiter: u8,
    rng: fastrand::Rng,
    line: Vec<u8>,
}

impl CsvWriter {
    fn open(
        folder: &Path,
        delimiter: u8,
        catalog: &ConfiguredCatalog,
    ) -> Result<Self, DestinationError> {
        let header: Vec<u8> = HEADER
            .bytes()
            .map(|b| if b == b',' { delimiter } else { b })
            .chain([b'\n'])
            .collect();
        Ok(Self {
            files: StreamFiles::open(folder, catalog, "csv", &header)?,
            delimiter,
            rng: fastrand::Rng::new(),
            line: Vec::with_capacity(1024),
        })
    }
}

/// Appends `field`, quoted if it holds the delimiter, a quote or a line break.
pub fn push_field(line: &mut Vec<u8>, field: &[u8], delimiter: u8) {
    let needs_quotes = field
        .iter()
        .any(|&b| b == delimiter || b == b'"' || b == b'\n' || b == b'\r');
    if !needs_quotes {
        line.extend_from_slice(field);
        return;
    }
    line.push(b'"');
    for &b in field {
        if b == b'"' {
            line.push(b'"');
        }
        line.push(b);
    }
    line.push(b'"');
}

impl RecordWriter for CsvWriter {
    fn write(
        &mut self,
        record: &Record<'_>,
        _out: &mut Emitter<'_>,
    ) -> Result<(), DestinationError> {
        let id = uuid::Builder::from_random_bytes(self.rng.u128(..).to_le_bytes()).into_uuid();
        let mut id_text = [0; uuid::fmt::Hyphenated::LENGTH];
        let line = &mut self.line;
        line.clear();
        line.extend_from_slice(id.hyphenated().encode_lower(&mut id_text).as_bytes());
        line.push(self.delimiter);
        push_integer(line, record.emitted_at);
        line.push(self.delimiter);
        push_field(line, record.data.get().as_bytes(), self.delimiter);
        line.push(b'\n');
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

    fn close(self: Box<Self>, clean: bool) -> Result<(), DestinationError> {
        self.files.close(clean)
    }
}

#[cfg(test)]
mod tests {
    use airlock_plugin_sdk::WriteSession;
    use serde_json::json;

    use super::*;

    fn catalog(mode: &str) -> ConfiguredCatalog {
        let text = json!({"streams": [{"stream": {"name": "users", "json_schema": {}}, "sync_mode": "full_refresh", "destination_sync_mode": mode}]});
        ConfiguredCatalog::from_json(text.to_string().as_bytes()).expect("catalog")
    }

    fn run(dir: &Path, mode: &str, config: Value, records: &[Value]) {
        let mut session =
            WriteSession::open(&Csv, &config, &catalog(mode), &Context::native()).expect("open");
        let mut out = Vec::new();
        for data in records {
            let line = json!({"type": "RECORD", "record": {"stream": "users", "data": data, "emitted_at": 7}}).to_string();
            session
                .push_line(line.as_bytes(), &mut out)
                .expect("record");
        }
        let complete = json!({"type":"TRACE","trace":{"type":"STREAM_STATUS","emitted_at":1.0,"stream_status":{"stream_descriptor":{"name":"users"},"status":"COMPLETE"}}});
        session
            .push_line(complete.to_string().as_bytes(), &mut out)
            .expect("complete");
        session.finish(&mut out).expect("finish");
        let _ = dir;
    }

    /// Parses RFC 4180 text into rows of fields.
    fn parse_csv(text: &str, delimiter: char) -> Vec<Vec<String>> {
        let mut rows = vec![];
        let mut row = vec![];
        let mut field = String::new();
        let mut chars = text.chars().peekable();
        let mut quoted = false;
        while let Some(c) = chars.next() {
            match (quoted, c) {
                (true, '"') if chars.peek() == Some(&'"') => {
                    field.push('"');
                    chars.next();
                }
                (true, '"') => quoted = false,
                (true, c) => field.push(c),
                (false, '"') => quoted = true,
                (false, c) if c == delimiter => row.push(std::mem::take(&mut field)),
                (false, '\n') => {
                    row.push(std::mem::take(&mut field));
                    rows.push(std::mem::take(&mut row));
                }
                (false, c) => field.push(c),
            }
        }
        rows
    }

    #[test]
    fn rows_quote_what_needs_quoting_and_round_trip() {
        let dir = tempfile::tempdir().expect("tmp");
        let data = json!({"a": "x,y", "b": "say \"hi\"", "c": "line\nbreak\r", "d": "sep\u{2028}"});
        run(
            dir.path(),
            "overwrite",
            json!({"destination_path": dir.path()}),
            std::slice::from_ref(&data),
        );
        let text = fs::read_to_string(dir.path().join("_airbyte_raw_users.csv")).expect("csv");
        let rows = parse_csv(&text, ',');
        assert_eq!(
            rows[0],
            ["_airbyte_ab_id", "_airbyte_emitted_at", "_airbyte_data"]
        );
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[1][0].len(), 36);
        assert_eq!(rows[1][1], "7");
        let parsed: Value = serde_json::from_str(&rows[1][2]).expect("data is JSON text");
        assert_eq!(parsed, data);
    }

    #[test]
    fn the_header_is_written_once_across_append_runs() {
        let dir = tempfile::tempdir().expect("tmp");
        let config = json!({"destination_path": dir.path()});
        run(dir.path(), "append", config.clone(), &[json!({"n": 1})]);
        run(dir.path(), "append", config.clone(), &[json!({"n": 2})]);
        let text = fs::read_to_string(dir.path().join("_airbyte_raw_users.csv")).expect("csv");
        assert_eq!(text.matches(HEADER).count(), 1, "{text}");
        assert_eq!(text.lines().count(), 3);
        run(dir.path(), "overwrite", config, &[json!({"n": 3})]);
        let text = fs::read_to_string(dir.path().join("_airbyte_raw_users.csv")).expect("csv");
        assert_eq!(text.lines().count(), 2, "overwrite replaced: {text}");
    }

    #[test]
    fn delimiters_follow_airbytes_config() {
        let dir = tempfile::tempdir().expect("tmp");
        let config =
            json!({"destination_path": dir.path(), "delimiter_type": {"delimiter": "\\u003b"}});
        run(dir.path(), "overwrite", config, &[json!({"a": "x;y"})]);
        let text = fs::read_to_string(dir.path().join("_airbyte_raw_users.csv")).expect("csv");
        assert!(
            text.starts_with("_airbyte_ab_id;_airbyte_emitted_at;_airbyte_data\n"),
            "{text}"
        );
        assert!(text.contains(r#";"{""a"":""x;y""}""#), "{text}");
        let bad = Settings::read(
            &json!({"destination_path": "/x", "delimiter_type": {"delimiter": "#"}}),
            &Context::native(),
        );
        assert!(bad.is_err());
    }

    #[test]
    fn check_reports_bad_configs_as_failed() {
        assert!(
            Csv.check(&json!({}), &Context::native())
                .expect_err("missing")
                .contains("destination_path")
        );
        let sandbox = Context::sandboxed("/tmp/root");
        assert!(
            Csv.check(&json!({"destination_path": "/local/../../etc"}), &sandbox)
                .is_err()
        );
    }

    #[test]
    fn the_spec_is_valid_json() {
        assert_eq!(Csv.spec()["connectionSpecification"]["type"], "object");
    }
}
