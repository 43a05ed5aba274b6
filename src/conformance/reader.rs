//! Reading back what a destination wrote, for the cases that verify rows.
//!
//! Owns the formats the suite can read: Airbyte's raw JSON Lines files (local-json)
//! and raw CSV files (csv), laid out as `[<namespace>/]_airbyte_raw_<stream>.<ext>`
//! with Airbyte's name transformation, and the typed tables of destination-postgres
//! (`"<schema>"."<stream>"`, one column per declared field), read over the
//! connection the case's config names. It reads; it runs no plugin.

use std::path::{Path, PathBuf};

use airlock_plugin_sdk::naming::{convert_stream_name, raw_table_name};
use destination_postgres::client::{Connection, quote_ident};
use destination_postgres::schema::identifier;
use destination_postgres::settings::Settings;
use serde_json::Value;

/// A file layout the suite can read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReaderFormat {
    /// `{"_airbyte_ab_id":…,"_airbyte_emitted_at":…,"_airbyte_data":{…}}` per line.
    AirbyteRawJsonl,
    /// A header, then `_airbyte_ab_id,_airbyte_emitted_at,_airbyte_data` rows.
    AirbyteRawCsv,
    /// One typed table per stream in PostgreSQL, as destination-postgres writes them.
    PostgresTables,
}

impl ReaderFormat {
    /// Parses `airbyte-raw-jsonl`, `airbyte-raw-csv` or `postgres-tables`.
    ///
    /// # Errors
    /// A message listing the formats.
    pub fn parse(name: &str) -> Result<Self, String> {
        match name {
            "airbyte-raw-jsonl" => Ok(Self::AirbyteRawJsonl),
            "airbyte-raw-csv" => Ok(Self::AirbyteRawCsv),
            "postgres-tables" => Ok(Self::PostgresTables),
            other => Err(format!(
                "unknown reader format {other:?}; airlock reads airbyte-raw-jsonl, airbyte-raw-csv \
                 and postgres-tables"
            )),
        }
    }

    fn extension(self) -> &'static str {
        match self {
            Self::AirbyteRawJsonl => "jsonl",
            Self::AirbyteRawCsv | Self::PostgresTables => "csv",
        }
    }
}

/// Where one case's output lives.
#[derive(Debug, Clone)]
pub enum Place {
    /// A fresh host folder (mounted under `/local`).
    Folder(PathBuf),
    /// A fresh PostgreSQL schema, on the server the case's config names.
    Postgres {
        /// The case's destination config (host, port, database, credentials).
        config: Value,
        /// The schema of streams without a namespace.
        schema: String,
    },
}

impl Place {
    /// The namespace the case sends for `namespace`: as is for folders; for
    /// PostgreSQL prefixed with the case's schema, so that a case never writes
    /// into (or drops) a schema of the user's.
    pub fn namespace(&self, namespace: &str) -> String {
        match self {
            Self::Folder(_) => namespace.to_owned(),
            Self::Postgres { schema, .. } => format!("{schema}_{namespace}"),
        }
    }

    fn connect(config: &Value) -> Result<Connection, String> {
        let settings = Settings::read(config).map_err(|e| format!("the reader's config: {e}"))?;
        Connection::connect(&settings.connect).map_err(|e| format!("the reader: {e}"))
    }

    /// Empties the place before a case: removes the folder, or drops the schema
    /// and the case's namespace schemas (`namespaces` as sent, already mapped).
    ///
    /// # Errors
    /// A message naming what could not be removed.
    pub fn reset(&self, namespaces: &[String]) -> Result<(), String> {
        match self {
            Self::Folder(folder) => {
                let _ = std::fs::remove_dir_all(folder);
                Ok(())
            }
            Self::Postgres { config, schema } => {
                let mut conn = Self::connect(config)?;
                for name in std::iter::once(schema).chain(namespaces) {
                    conn.execute(&format!(
                        "DROP SCHEMA IF EXISTS {} CASCADE",
                        quote_ident(&identifier(name))
                    ))
                    .map_err(|e| format!("dropping schema {name:?} before the case: {e}"))?;
                }
                conn.close();
                Ok(())
            }
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

/// Sorts every object's keys, so that rows compare as text whatever order a
/// destination stored their fields in.
pub fn canonical(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            Value::Object(
                entries
                    .into_iter()
                    .map(|(k, v)| (k.clone(), canonical(v)))
                    .collect(),
            )
        }
        Value::Array(items) => Value::Array(items.iter().map(canonical).collect()),
        other => other.clone(),
    }
}

impl Reader {
    /// True for a format that keeps only the fields the stream's schema
    /// declares (typed tables), as Airbyte's direct-load destinations do.
    pub fn typed(&self) -> bool {
        self.format == ReaderFormat::PostgresTables
    }

    /// Where a stream's rows are, for messages and to group streams that share it.
    pub fn location(&self, place: &Place, name: &str, namespace: Option<&str>) -> String {
        match place {
            Place::Folder(folder) => self
                .stream_file(folder, name, namespace)
                .display()
                .to_string(),
            Place::Postgres { schema, .. } => {
                let schema = namespace.filter(|ns| !ns.is_empty()).unwrap_or(schema);
                format!(
                    "{}.{}",
                    quote_ident(&identifier(schema)),
                    quote_ident(&identifier(name))
                )
            }
        }
    }

    /// The data of every row of a stream (none when nothing was written).
    ///
    /// # Errors
    /// A message naming the file, line or table that cannot be read.
    pub fn read_at(
        &self,
        place: &Place,
        name: &str,
        namespace: Option<&str>,
    ) -> Result<Vec<Value>, String> {
        match place {
            Place::Folder(folder) => self.read(folder, name, namespace),
            Place::Postgres { config, .. } => {
                let table = self.location(place, name, namespace);
                let mut conn = Place::connect(config)?;
                let sql = format!(
                    "SELECT jsonb_strip_nulls(to_jsonb(t) - '_airbyte_raw_id' - '_airbyte_extracted_at' \
                     - '_airbyte_meta' - '_airbyte_generation_id')::text FROM {table} AS t"
                );
                let rows = match conn.simple_query(&sql) {
                    Ok(rows) => rows,
                    // No table: nothing was written.
                    Err(e) if e.code() == Some("42P01") => Vec::new(),
                    Err(e) => return Err(format!("reading {table}: {e}")),
                };
                conn.close();
                rows.into_iter()
                    .map(|row| {
                        let text = row.into_iter().next().flatten().unwrap_or_default();
                        serde_json::from_str(&text).map_err(|e| format!("a row of {table}: {e}"))
                    })
                    .collect()
            }
        }
    }

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
                ReaderFormat::PostgresTables => {
                    Err("postgres-tables reads tables (read_at), not files".to_owned())
                }
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
