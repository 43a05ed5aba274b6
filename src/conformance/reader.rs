//! Reading back what a destination wrote, for the cases that verify rows.
//!
//! Owns the formats the suite can read: Airbyte's raw JSON Lines files (local-json)
//! and raw CSV files (csv), laid out as `[<namespace>/]_airbyte_raw_<stream>.<ext>`
//! with Airbyte's name transformation. It reads files only; it runs nothing.

use std::path::{Path, PathBuf};

use airlock_plugin_sdk::naming::{convert_stream_name, raw_table_name};
use serde_json::Value;

/// A file layout the suite can read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReaderFormat {
    /// `{"_airbyte_ab_id":…,"_airbyte_emitted_at":…,"_airbyte_data":{…}}` per line.
    AirbyteRawJsonl,
    /// A header, then `_airbyte_ab_id,_airbyte_emitted_at,_airbyte_data` rows.
    AirbyteRawCsv,
}

impl ReaderFormat {
    /// Parses `airbyte-raw-jsonl` or `airbyte-raw-csv`.
    ///
    /// # Errors
    /// A message listing the formats.
    pub fn parse(name: &str) -> Result<Self, String> {
        match name {
            "airbyte-raw-jsonl" => Ok(Self::AirbyteRawJsonl),
            "airbyte-raw-csv" => Ok(Self::AirbyteRawCsv),
            other => Err(format!(
                "unknown reader format {other:?}; airlock reads airbyte-raw-jsonl and airbyte-raw-csv"
            )),
        }
    }

    fn extension(self) -> &'static str {
        match self {
            Self::AirbyteRawJsonl => "jsonl",
            Self::AirbyteRawCsv => "csv",
        }
    }
}

/// How to read back a destination's output: a format, and the config field that
/// names the output folder (the suite points it at a fresh folder per case).
#[derive(Debug, Clone)]
pub struct Reader {
    /// The layout.
    pub format: ReaderFormat,
    /// The config field holding the folder, e.g. `destination_path`.
    pub path_field: String,
}

impl Reader {
    /// From a spec's `x-airlock-conformance.reader`.
    ///
    /// # Errors
    /// A message naming the bad field.
    pub fn from_declaration(declared: &Value) -> Result<Self, String> {
        let format = declared
            .get("format")
            .and_then(Value::as_str)
            .ok_or("x-airlock-conformance.reader.format is missing (a string)")?;
        let path_field = declared
            .get("path_field")
            .and_then(Value::as_str)
            .ok_or("x-airlock-conformance.reader.path_field is missing (a string)")?;
        Ok(Self {
            format: ReaderFormat::parse(format)?,
            path_field: path_field.to_owned(),
        })
    }

    /// The file of a stream in `folder`.
    pub fn stream_file(&self, folder: &Path, name: &str, namespace: Option<&str>) -> PathBuf {
        let mut path = folder.to_path_buf();
        if let Some(ns) = namespace.filter(|ns| !ns.is_empty()) {
            path.push(convert_stream_name(ns));
        }
        path.push(format!(
            "{}.{}",
            raw_table_name(name),
            self.format.extension()
        ));
        path
    }

    /// The `data` of every row of a stream's file (none when there is no file).
    ///
    /// # Errors
    /// A message naming the file and line that cannot be read.
    pub fn read(
        &self,
        folder: &Path,
        name: &str,
        namespace: Option<&str>,
    ) -> Result<Vec<Value>, String> {
        let path = self.stream_file(folder, name, namespace);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(format!("reading {}: {e}", path.display())),
        };
        let mut rows = Vec::new();
        let mut lines = text.split('\n').enumerate().filter(|(_, l)| !l.is_empty());
        if self.format == ReaderFormat::AirbyteRawCsv {
            lines.next(); // the header
        }
        for (index, line) in lines {
            let data = match self.format {
                ReaderFormat::AirbyteRawJsonl => serde_json::from_str::<Value>(line)
                    .map_err(|e| e.to_string())
                    .map(|mut row| row["_airbyte_data"].take()),
                ReaderFormat::AirbyteRawCsv => csv_fields(line)
                    .get(2)
                    .ok_or_else(|| "fewer than 3 fields".to_owned())
                    .and_then(|f| serde_json::from_str::<Value>(f).map_err(|e| e.to_string())),
            }
            .map_err(|e| format!("{} line {}: {e}", path.display(), index + 1))?;
            rows.push(data);
        }
        Ok(rows)
    }
}

/// The fields of one CSV line (RFC 4180 quoting, comma-delimited).
fn csv_fields(line: &str) -> Vec<String> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = line.strip_suffix('\r').unwrap_or(line).chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            ('"', true) => quoted = false,
            ('"', false) if field.is_empty() => quoted = true,
            (',', false) => fields.push(std::mem::take(&mut field)),
            (c, _) => field.push(c),
        }
    }
    fields.push(field);
    fields
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_unquote_rfc_4180() {
        assert_eq!(
            csv_fields(r#"a,1,"{""x"":""y,z""}""#),
            ["a", "1", r#"{"x":"y,z"}"#]
        );
    }

    #[test]
    fn files_follow_airbyte_naming() {
        let reader = Reader {
            format: ReaderFormat::AirbyteRawJsonl,
            path_field: "destination_path".into(),
        };
        assert_eq!(
            reader.stream_file(Path::new("/o"), "spécial", Some("my ns")),
            Path::new("/o/my_ns/_airbyte_raw_special.jsonl")
        );
    }
}
