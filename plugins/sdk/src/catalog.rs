//! `catalog`: the lean model of Airbyte's configured catalog that a
//! destination receives with `write`, and the stream descriptor that names a
//! stream everywhere else.
//!
//! Only the fields a destination acts on are modelled; unknown fields are
//! ignored, and fields that peers write as an explicit `null` read as absent.

use serde::{Deserialize, Deserializer, Serialize};

use crate::DestinationError;

/// The streams a `write` will receive, and how each is to be written.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ConfiguredCatalog {
    /// The configured streams, in catalog order. A stream's position here is
    /// the index that [`Record::stream_index`](crate::Record::stream_index)
    /// and [`RecordWriter::stream_complete`](crate::RecordWriter::stream_complete)
    /// refer to.
    pub streams: Vec<ConfiguredStream>,
}

impl ConfiguredCatalog {
    /// Parses a configured catalog from its JSON text.
    ///
    /// # Errors
    ///
    /// A [`FailureType::SystemError`](crate::FailureType::SystemError) naming the
    /// JSON problem: the catalog is written by the platform, not by the user.
    pub fn from_json(json: &[u8]) -> Result<Self, DestinationError> {
        serde_json::from_slice(json).map_err(|e| {
            DestinationError::system(format!("the configured catalog is invalid: {e}"))
        })
    }
}

/// One stream of a [`ConfiguredCatalog`].
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ConfiguredStream {
    /// The stream as the source declared it.
    pub stream: AirbyteStream,
    /// How the source reads the stream.
    #[serde(default, deserialize_with = "null_as_default")]
    pub sync_mode: SyncMode,
    /// How the destination must write the stream.
    #[serde(default, deserialize_with = "null_as_default")]
    pub destination_sync_mode: DestinationSyncMode,
    /// The primary key, as a list of field paths.
    #[serde(default, deserialize_with = "null_as_default")]
    pub primary_key: Vec<Vec<String>>,
    /// The cursor field path used by incremental reads.
    #[serde(default, deserialize_with = "null_as_default")]
    pub cursor_field: Vec<String>,
    /// The generation of the stream's data (`_airbyte_generation_id`); 0 when absent.
    #[serde(default, deserialize_with = "null_as_default")]
    pub generation_id: i64,
    /// The oldest generation a destination must keep; 0 when absent.
    #[serde(default, deserialize_with = "null_as_default")]
    pub minimum_generation_id: i64,
    /// The sync's id (`_airbyte_meta.sync_id`); 0 when absent.
    #[serde(default, deserialize_with = "null_as_default")]
    pub sync_id: i64,
}

/// A stream's declaration: its name, namespace and JSON schema.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct AirbyteStream {
    /// The stream name.
    pub name: String,
    /// The namespace (schema, database, folder), if any.
    #[serde(default)]
    pub namespace: Option<String>,
    /// The JSON Schema of the stream's records.
    #[serde(default)]
    pub json_schema: serde_json::Value,
}

impl AirbyteStream {
    /// The stream's name and namespace.
    pub fn descriptor(&self) -> StreamDescriptor {
        StreamDescriptor {
            name: self.name.clone(),
            namespace: self.namespace.clone(),
        }
    }
}

/// Names a stream: its name plus, optionally, its namespace.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct StreamDescriptor {
    /// The stream name.
    pub name: String,
    /// The namespace, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

impl std::fmt::Display for StreamDescriptor {
    /// `namespace.name`, or `name` when there is no namespace.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.namespace {
            Some(namespace) => write!(f, "{namespace}.{}", self.name),
            None => f.write_str(&self.name),
        }
    }
}

/// How the source reads a stream.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SyncMode {
    /// Every sync reads the whole stream.
    #[default]
    FullRefresh,
    /// A sync reads what changed since the last committed state.
    Incremental,
}

/// How the destination writes a stream.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DestinationSyncMode {
    /// Add the new records to what is there.
    #[default]
    Append,
    /// Replace what is there with the new records (once the stream completes).
    Overwrite,
    /// Add the new records, then deduplicate on the primary key.
    AppendDedup,
    /// Update existing records in place by primary key.
    Update,
    /// Mark deleted records instead of removing them.
    SoftDelete,
}

/// Reads `null` as the type's default, so peers that write every absent field
/// as an explicit `null` are accepted.
fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_faker_catalog_shape_and_ignores_unknown_fields() {
        let json = br#"{"streams":[{"stream":{"name":"products","json_schema":{"type":"object"},
            "supported_sync_modes":["full_refresh","incremental"],"source_defined_cursor":true,
            "default_cursor_field":["updated_at"],"source_defined_primary_key":[["id"]],"is_resumable":true},
            "sync_mode":"incremental","destination_sync_mode":"append_dedup","primary_key":[["id"]],
            "cursor_field":["updated_at"],"generation_id":0,"minimum_generation_id":0,"sync_id":1}]}"#;
        let catalog = ConfiguredCatalog::from_json(json).expect("parse");
        let stream = &catalog.streams[0];
        assert_eq!(stream.stream.name, "products");
        assert_eq!(stream.stream.namespace, None);
        assert_eq!(stream.sync_mode, SyncMode::Incremental);
        assert_eq!(
            stream.destination_sync_mode,
            DestinationSyncMode::AppendDedup
        );
        assert_eq!(stream.primary_key, vec![vec!["id".to_string()]]);
        assert_eq!(stream.cursor_field, vec!["updated_at".to_string()]);
        assert_eq!((stream.generation_id, stream.sync_id), (0, 1));
    }

    #[test]
    fn explicit_nulls_read_as_absent() {
        let json = br#"{"streams":[{"stream":{"name":"s","namespace":null,"json_schema":null},
            "sync_mode":null,"destination_sync_mode":"overwrite","primary_key":null,"cursor_field":null}]}"#;
        let catalog = ConfiguredCatalog::from_json(json).expect("parse");
        let stream = &catalog.streams[0];
        assert_eq!(stream.destination_sync_mode, DestinationSyncMode::Overwrite);
        assert!(stream.primary_key.is_empty());
        assert_eq!(stream.stream.descriptor().to_string(), "s");
    }

    #[test]
    fn all_destination_sync_modes_parse() {
        for (text, mode) in [
            ("append", DestinationSyncMode::Append),
            ("overwrite", DestinationSyncMode::Overwrite),
            ("append_dedup", DestinationSyncMode::AppendDedup),
            ("update", DestinationSyncMode::Update),
            ("soft_delete", DestinationSyncMode::SoftDelete),
        ] {
            let parsed: DestinationSyncMode =
                serde_json::from_str(&format!("\"{text}\"")).expect("parse");
            assert_eq!(parsed, mode);
        }
    }

    #[test]
    fn a_broken_catalog_is_a_system_error() {
        let err = ConfiguredCatalog::from_json(b"{").expect_err("must fail");
        assert_eq!(err.failure_type, crate::FailureType::SystemError);
        assert!(err.message.contains("configured catalog"));
    }

    #[test]
    fn descriptor_displays_namespace_dot_name() {
        let d = StreamDescriptor {
            name: "users".into(),
            namespace: Some("public".into()),
        };
        assert_eq!(d.to_string(), "public.users");
    }
}
