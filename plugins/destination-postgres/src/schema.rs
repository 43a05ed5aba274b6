//! `schema`: what a stream becomes in PostgreSQL — the table's name, its
//! columns and their types — from the configured stream, as Airbyte's
//! destination-postgres 3.x lays it out. Pure: it builds names and SQL text
//! and talks to no server.

use std::collections::HashSet;

use airlock_plugin_sdk::{ConfiguredStream, DestinationError, DestinationSyncMode};
use serde_json::Value;

use crate::client::quote_ident;

/// PostgreSQL's identifier limit (NAMEDATALEN − 1), in bytes.
pub const MAX_IDENTIFIER_BYTES: usize = 63;

/// The Airbyte columns every final table starts with, and their types.
pub const META_COLUMNS: [(&str, &str); 4] = [
    ("_airbyte_raw_id", "varchar"),
    ("_airbyte_extracted_at", "timestamp with time zone"),
    ("_airbyte_meta", "jsonb"),
    ("_airbyte_generation_id", "bigint"),
];

/// The column a CDC source sets on a deleted row.
pub const CDC_DELETED_AT: &str = "_ab_cdc_deleted_at";

/// A column's type, and so how a JSON value is checked and written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    /// `integer`.
    BigInt,
    /// `number`.
    Numeric,
    /// `boolean`.
    Boolean,
    /// `string` without a format Airbyte types.
    Text,
    /// `string`, `format: date`.
    Date,
    /// `string`, `format: time`, without a time zone.
    Time,
    /// `string`, `format: time`, `airbyte_type: time_with_timezone`.
    TimeTz,
    /// `string`, `format: date-time`, `airbyte_type: timestamp_without_timezone`.
    Timestamp,
    /// `string`, `format: date-time` (with a time zone, the default).
    TimestampTz,
    /// Objects, arrays, unions and anything untyped.
    Jsonb,
}

impl ColumnType {
    /// The type as PostgreSQL names it in `information_schema.columns.data_type`.
    pub fn sql(self) -> &'static str {
        match self {
            Self::BigInt => "bigint",
            Self::Numeric => "numeric",
            Self::Boolean => "boolean",
            Self::Text => "text",
            Self::Date => "date",
            Self::Time => "time without time zone",
            Self::TimeTz => "time with time zone",
            Self::Timestamp => "timestamp without time zone",
            Self::TimestampTz => "timestamp with time zone",
            Self::Jsonb => "jsonb",
        }
    }

    /// The column type of a property's JSON schema.
    pub fn of_schema(schema: &Value) -> Self {
        let types: Vec<&str> = match schema.get("type") {
            Some(Value::String(t)) => vec![t.as_str()],
            Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        let non_null: Vec<&str> = types.into_iter().filter(|t| *t != "null").collect();
        if schema.get("oneOf").is_some() || schema.get("anyOf").is_some() {
            return Self::Jsonb;
        }
        let [only] = non_null.as_slice() else {
            return Self::Jsonb;
        };
        let airbyte_type = schema.get("airbyte_type").and_then(Value::as_str);
        match *only {
            "integer" => Self::BigInt,
            "number" if airbyte_type == Some("integer") => Self::BigInt,
            "number" => Self::Numeric,
            "boolean" => Self::Boolean,
            "string" => match (schema.get("format").and_then(Value::as_str), airbyte_type) {
                (Some("date"), _) => Self::Date,
                (Some("time"), Some("time_with_timezone")) => Self::TimeTz,
                (Some("time"), _) => Self::Time,
                (Some("date-time"), Some("timestamp_without_timezone")) => Self::Timestamp,
                (Some("date-time"), _) => Self::TimestampTz,
                _ => Self::Text,
            },
            _ => Self::Jsonb,
        }
    }
}

/// One data column: the record field it holds, its name in the table, its type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    /// The top-level field of the record.
    pub field: String,
    /// The column name (the field, made a valid identifier that fits 63 bytes).
    pub name: String,
    /// The type.
    pub kind: ColumnType,
}

/// The layout of one stream's table.
#[derive(Debug, Clone)]
pub struct TableLayout {
    /// The schema: the stream's namespace, else the configured default.
    pub schema: String,
    /// The table name.
    pub table: String,
    /// The data columns, in the order of the stream's JSON schema.
    pub columns: Vec<Column>,
    /// The primary key's column indexes (into `columns`), for `append_dedup`.
    pub primary_key: Vec<usize>,
    /// The cursor's column index, for `append_dedup`.
    pub cursor: Option<usize>,
    /// The `_ab_cdc_deleted_at` column's index, when the schema declares it.
    pub cdc_deleted_at: Option<usize>,
}

impl TableLayout {
    /// The layout of `stream`, written into `default_schema` when it has no namespace.
    ///
    /// # Errors
    ///
    /// A config error for an `append_dedup` stream without a primary key, or
    /// with a key or cursor the schema does not declare at the top level.
    pub fn of(stream: &ConfiguredStream, default_schema: &str) -> Result<Self, DestinationError> {
        let descriptor = stream.stream.descriptor();
        let schema = stream
            .stream
            .namespace
            .as_deref()
            .filter(|ns| !ns.is_empty())
            .unwrap_or(default_schema);
        let schema = identifier(schema);
        let table = identifier(&stream.stream.name);
        let mut used: HashSet<String> = META_COLUMNS.iter().map(|(n, _)| (*n).to_owned()).collect();
        let mut columns = Vec::new();
        if let Some(Value::Object(properties)) = stream.stream.json_schema.get("properties") {
            for (field, property) in properties {
                let mut name = identifier(field);
                if used.contains(&name) {
                    // A field named like an Airbyte column, or two long
                    // fields that truncate alike: keep both, told apart.
                    name = hashed_identifier(&format!("{field}\u{0}{}", columns.len()));
                }
                used.insert(name.clone());
                columns.push(Column {
                    field: field.clone(),
                    name,
                    kind: ColumnType::of_schema(property),
                });
            }
        }
        let find =
            |path: &[String], what: &str| -> Result<usize, DestinationError> {
                let [field] = path else {
                    return Err(DestinationError::config(format!(
                        "stream {descriptor}: the {what} {path:?} is nested; destination-postgres \
                     dedups on top-level fields only. Fix: pick a top-level field as the {what}, \
                     or write the stream with append"
                    )));
                };
                columns.iter().position(|c| &c.field == field).ok_or_else(|| {
                DestinationError::config(format!(
                    "stream {descriptor}: the {what} field {field:?} is not in the stream's \
                     JSON schema. Fix: declare it under properties, or write the stream with append"
                ))
            })
            };
        let (primary_key, cursor) = if stream.destination_sync_mode
            == DestinationSyncMode::AppendDedup
        {
            if stream.primary_key().is_empty() {
                return Err(DestinationError::config(format!(
                    "stream {descriptor} is configured append_dedup but has no primary key. Fix: \
                     set primary_key in the configured catalog, or write the stream with append \
                     or overwrite"
                )));
            }
            let primary_key = stream
                .primary_key()
                .iter()
                .map(|path| find(path, "primary key"))
                .collect::<Result<Vec<_>, _>>()?;
            let cursor = if stream.cursor_field().is_empty() {
                None
            } else {
                Some(find(stream.cursor_field(), "cursor")?)
            };
            (primary_key, cursor)
        } else {
            (Vec::new(), None)
        };
        let cdc_deleted_at = columns.iter().position(|c| c.field == CDC_DELETED_AT);
        Ok(Self {
            schema,
            table,
            columns,
            primary_key,
            cursor,
            cdc_deleted_at,
        })
    }

    /// `"schema"."table"`.
    pub fn qualified(&self) -> String {
        format!("{}.{}", quote_ident(&self.schema), quote_ident(&self.table))
    }

    /// The name of the staging table of an overwrite: fixed per table, so a
    /// killed run's staging table is found again.
    pub fn staging_table(&self) -> String {
        staging_name(&self.table)
    }

    /// Every column name, Airbyte's first, quoted and comma-separated.
    pub fn column_list(&self) -> String {
        META_COLUMNS
            .iter()
            .map(|(name, _)| quote_ident(name))
            .chain(self.columns.iter().map(|c| quote_ident(&c.name)))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The column definitions of a `CREATE TABLE`.
    pub fn column_definitions(&self) -> String {
        META_COLUMNS
            .iter()
            .map(|(name, kind)| {
                let not_null = if *name == "_airbyte_meta" {
                    ""
                } else {
                    " NOT NULL"
                };
                format!("{} {kind}{not_null}", quote_ident(name))
            })
            .chain(
                self.columns
                    .iter()
                    .map(|c| format!("{} {}", quote_ident(&c.name), c.kind.sql())),
            )
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// `name` as a PostgreSQL identifier: NUL bytes (which no identifier may
/// hold) become `_`, and a name over 63 bytes is cut at a character boundary
/// and ends in 8 hex digits of a hash of the whole name, so two long names
/// sharing a prefix stay apart.
///
/// ```
/// use destination_postgres::schema::identifier;
///
/// assert_eq!(identifier("Select"), "Select");
/// let long = "x".repeat(100);
/// assert_eq!(identifier(&long).len(), 63);
/// assert_ne!(identifier(&long), identifier(&format!("{long}y")));
/// ```
pub fn identifier(name: &str) -> String {
    let clean = name.replace('\0', "_");
    if clean.len() <= MAX_IDENTIFIER_BYTES && !clean.is_empty() {
        return clean;
    }
    if clean.is_empty() {
        return "_".to_owned();
    }
    hashed_identifier(name)
}

/// A prefix of `name` and a hash of all of it, within 63 bytes.
fn hashed_identifier(name: &str) -> String {
    let hash = format!("_{:08x}", fnv1a(name.as_bytes()));
    let clean = name.replace('\0', "_");
    let room = MAX_IDENTIFIER_BYTES - hash.len();
    let mut cut = room.min(clean.len());
    while !clean.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}{hash}", &clean[..cut])
}

/// The staging table of `table`.
pub fn staging_name(table: &str) -> String {
    let hash = format!("{:08x}", fnv1a(table.as_bytes()));
    let prefix = format!("_airbyte_tmp_{hash}_");
    let room = MAX_IDENTIFIER_BYTES - prefix.len();
    let mut cut = room.min(table.len());
    while !table.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{prefix}{}", &table[..cut])
}

/// 32-bit FNV-1a: short, stable across builds and platforms.
fn fnv1a(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5_u32, |hash, &b| {
        (hash ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn stream(schema: Value, mode: &str, pk: Value, cursor: Value) -> ConfiguredStream {
        let catalog = json!({"streams": [{"stream": {"name": "users", "json_schema": schema},
            "destination_sync_mode": mode, "primary_key": pk, "cursor_field": cursor}]});
        airlock_plugin_sdk::ConfiguredCatalog::from_json(catalog.to_string().as_bytes())
            .expect("catalog")
            .streams
            .remove(0)
    }

    #[test]
    fn json_schema_types_map_as_airbyte_maps_them() {
        let cases = [
            (json!({"type": "integer"}), ColumnType::BigInt),
            (json!({"type": ["null", "integer"]}), ColumnType::BigInt),
            (json!({"type": "number"}), ColumnType::Numeric),
            (
                json!({"type": "number", "airbyte_type": "integer"}),
                ColumnType::BigInt,
            ),
            (json!({"type": "boolean"}), ColumnType::Boolean),
            (json!({"type": "string"}), ColumnType::Text),
            (
                json!({"type": "string", "format": "date"}),
                ColumnType::Date,
            ),
            (
                json!({"type": "string", "format": "time"}),
                ColumnType::Time,
            ),
            (
                json!({"type": "string", "format": "time", "airbyte_type": "time_with_timezone"}),
                ColumnType::TimeTz,
            ),
            (
                json!({"type": "string", "format": "date-time"}),
                ColumnType::TimestampTz,
            ),
            (
                json!({"type": "string", "format": "date-time", "airbyte_type": "timestamp_without_timezone"}),
                ColumnType::Timestamp,
            ),
            (json!({"type": "object"}), ColumnType::Jsonb),
            (json!({"type": "array"}), ColumnType::Jsonb),
            (json!({"type": ["string", "integer"]}), ColumnType::Jsonb),
            (json!({"oneOf": [{"type": "string"}]}), ColumnType::Jsonb),
            (json!({}), ColumnType::Jsonb),
        ];
        for (schema, want) in cases {
            assert_eq!(ColumnType::of_schema(&schema), want, "{schema}");
        }
    }

    #[test]
    fn long_names_truncate_without_collisions() {
        let a = format!("{}a", "n".repeat(70));
        let b = format!("{}b", "n".repeat(70));
        assert_ne!(identifier(&a), identifier(&b));
        assert!(identifier(&a).len() <= MAX_IDENTIFIER_BYTES);
        let unicode = "é".repeat(40); // 80 bytes
        let cut = identifier(&unicode);
        assert!(cut.len() <= MAX_IDENTIFIER_BYTES);
        assert!(cut.starts_with("éé"));
        assert!(staging_name(&a).len() <= MAX_IDENTIFIER_BYTES);
        assert_ne!(staging_name(&a), staging_name(&b));
    }

    #[test]
    fn a_field_named_like_an_airbyte_column_gets_its_own_column() {
        let s = stream(
            json!({"properties": {"_airbyte_meta": {"type": "string"}, "id": {"type": "integer"}}}),
            "append",
            json!(null),
            json!(null),
        );
        let layout = TableLayout::of(&s, "public").expect("layout");
        assert_ne!(layout.columns[0].name, "_airbyte_meta");
        assert_eq!(layout.columns[1].name, "id");
    }

    #[test]
    fn dedup_needs_a_declared_top_level_key() {
        let schema = json!({"properties": {"id": {"type": "integer"}, "at": {"type": "integer"}}});
        let none = stream(schema.clone(), "append_dedup", json!(null), json!(null));
        let err = TableLayout::of(&none, "public").expect_err("no key");
        assert!(err.message.contains("no primary key"), "{}", err.message);
        let undeclared = stream(
            schema.clone(),
            "append_dedup",
            json!([["nope"]]),
            json!(null),
        );
        assert!(TableLayout::of(&undeclared, "public").is_err());
        let ok = stream(schema, "append_dedup", json!([["id"]]), json!(["at"]));
        let layout = TableLayout::of(&ok, "public").expect("layout");
        assert_eq!(layout.primary_key, [0]);
        assert_eq!(layout.cursor, Some(1));
    }
}
