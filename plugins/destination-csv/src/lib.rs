//! `destination-csv`: Airbyte's CSV destination. Each stream is written to
//! `_airbyte_raw_<stream>.csv` in the configured folder: a header row
//! `_airbyte_ab_id,_airbyte_emitted_at,_airbyte_data`, then one row per
//! record — a uuid v4, the emission time in ms, and the record's data as the
//! JSON text received.
//!
//! The delimiter is Airbyte's `delimiter_type.delimiter`: comma (the
//! default), semicolon, pipe, tab or space, written as Airbyte writes it
//! (`"\\u002c"`) or as the character itself. Fields are quoted as RFC 4180
//! says ([`push_field`]): a field holding the delimiter, `"`, `\r` or `\n` is
//! wrapped in quotes, with inner quotes doubled. A row is always one line:
//! the data text comes from one input line, so it holds no `\n`.
//!
//! Files, namespaces (a subfolder named after the transformed namespace) and
//! the overwrite / append rules are those of [`StreamFiles`]; the header
//! starts each file once, also across append runs and crash recovery.

#![deny(missing_docs)]

use std::path::PathBuf;

use airlock_plugin_sdk::stream_files::{
    RowFormat, RowWriter, StreamFiles, check_folder, push_integer,
};
use airlock_plugin_sdk::{
    ConfiguredCatalog, Context, Destination, DestinationError, Record, RecordWriter,
};
use serde_json::Value;

/// The header row of every file (with the default delimiter).
pub const HEADER: &str = "_airbyte_ab_id,_airbyte_emitted_at,_airbyte_data";

/// The configuration field naming the output folder.
const DESTINATION_PATH: &str = "destination_path";

/// The extension of the output files.
const EXTENSION: &str = "csv";

/// Airbyte's delimiter choices: (name, the spec's escaped form, the byte).
const DELIMITERS: [(&str, &str, u8); 5] = [
    ("comma", "\\u002c", b','),
    ("semicolon", "\\u003b", b';'),
    ("pipe", "\\u007c", b'|'),
    ("tab", "\\u0009", b'\t'),
    ("space", "\\u0020", b' '),
];

/// The delimiter when none is configured.
const DEFAULT_DELIMITER: u8 = b',';

/// The CSV destination.
#[derive(Debug, Clone, Copy, Default)]
pub struct Csv;

airlock_plugin_sdk::export_destination!(Csv);

/// The configuration: where, and with which delimiter.
#[derive(Debug, PartialEq)]
struct Settings {
    folder: PathBuf,
    delimiter: u8,
}

impl Settings {
    fn read(config: &Value, ctx: &Context) -> Result<Self, DestinationError> {
        let folder = match config.get(DESTINATION_PATH) {
            Some(Value::String(path)) => ctx.resolve_local_path(path)?,
            None | Some(Value::Null) => {
                return Err(DestinationError::config(format!(
                    "{DESTINATION_PATH} is required"
                )));
            }
            Some(other) => {
                return Err(DestinationError::config(format!(
                    "{DESTINATION_PATH} must be a string, got {other}"
                )));
            }
        };
        let delimiter = match config.get("delimiter_type") {
            None | Some(Value::Null) => DEFAULT_DELIMITER,
            Some(Value::Object(choice)) => match choice.get("delimiter") {
                None | Some(Value::Null) => DEFAULT_DELIMITER,
                Some(Value::String(text)) => parse_delimiter(text).ok_or_else(|| {
                    DestinationError::config(format!(
                        "delimiter_type.delimiter {text:?} is not one of comma (\\u002c), \
                         semicolon (\\u003b), pipe (\\u007c), tab (\\u0009) or space (\\u0020)"
                    ))
                })?,
                Some(other) => {
                    return Err(DestinationError::config(format!(
                        "delimiter_type.delimiter must be a string, got {other}"
                    )));
                }
            },
            Some(other) => {
                return Err(DestinationError::config(format!(
                    "delimiter_type must be an object, got {other}"
                )));
            }
        };
        Ok(Self { folder, delimiter })
    }
}

/// The delimiter byte of Airbyte's escaped form (`\u002c`), of the character
/// itself, or of its name.
fn parse_delimiter(text: &str) -> Option<u8> {
    DELIMITERS.iter().find_map(|&(name, escaped, byte)| {
        let matches =
            text == escaped || text.eq_ignore_ascii_case(name) || text.as_bytes() == [byte];
        matches.then_some(byte)
    })
}

/// The header row, with `delimiter` between the names, and its line end.
fn header(delimiter: u8) -> Vec<u8> {
    HEADER
        .bytes()
        .map(|b| if b == b',' { delimiter } else { b })
        .chain([b'\n'])
        .collect()
}

impl Destination for Csv {
    fn spec(&self) -> Value {
        serde_json::from_str(include_str!("spec.json"))
            .expect("spec.json is valid JSON (checked by a test)")
    }

    /// Reads the settings, creates the folder, and writes and removes a
    /// probe file in it.
    fn check(&self, config: &Value, ctx: &Context) -> Result<(), String> {
        let settings = Settings::read(config, ctx).map_err(|e| e.message)?;
        check_folder(&settings.folder, &header(settings.delimiter))
    }

    fn open(
        &self,
        config: &Value,
        catalog: &ConfiguredCatalog,
        ctx: &Context,
    ) -> Result<Box<dyn RecordWriter>, DestinationError> {
        let settings = Settings::read(config, ctx)?;
        let files = StreamFiles::open(
            &settings.folder,
            catalog,
            EXTENSION,
            &header(settings.delimiter),
        )?;
        let writer = RowWriter::new(
            files,
            CsvRow {
                delimiter: settings.delimiter,
            },
        );
        Ok(Box::new(writer))
    }
}

/// Airbyte's raw CSV row: the id, the emission time and the data as JSON text.
struct CsvRow {
    delimiter: u8,
}

impl RowFormat for CsvRow {
    fn encode(&self, id: &str, record: &Record<'_>, line: &mut Vec<u8>) {
        line.extend_from_slice(id.as_bytes());
        line.push(self.delimiter);
        push_integer(line, record.emitted_at);
        line.push(self.delimiter);
        push_field(line, record.data.get().as_bytes(), self.delimiter);
        line.push(b'\n');
    }
}

/// Appends `field` to `line` as RFC 4180 says: as is, or — when it holds
/// `delimiter`, a quote, `\r` or `\n` — wrapped in quotes with each inner
/// quote doubled.
///
/// ```
/// use destination_csv::push_field;
///
/// let mut line = Vec::new();
/// push_field(&mut line, b"plain", b',');
/// line.push(b',');
/// push_field(&mut line, br#"{"a":"x,y"}"#, b',');
/// assert_eq!(line, br#"plain,"{""a"":""x,y""}""#);
/// ```
pub fn push_field(line: &mut Vec<u8>, field: &[u8], delimiter: u8) {
    let needs_quotes = field
        .iter()
        .any(|&b| b == delimiter || matches!(b, b'"' | b'\n' | b'\r'));
    if !needs_quotes {
        line.extend_from_slice(field);
        return;
    }
    line.reserve(field.len() + 2);
    line.push(b'"');
    for chunk in field.split_inclusive(|&b| b == b'"') {
        line.extend_from_slice(chunk);
        if chunk.last() == Some(&b'"') {
            line.push(b'"');
        }
    }
    line.push(b'"');
}

#[cfg(test)]
mod tests;
