//! `catalog`: a stream's identity ([`StreamDescriptor`]), the streams a
//! source offers ([`AirbyteStream`], [`AirbyteCatalog`]) and the configured
//! catalog of a sync ([`ConfiguredAirbyteCatalog`]) with its sync modes.
//!
//! Serde reads these strictly, as the protocol's schema says (a configured
//! stream needs `sync_mode` and `destination_sync_mode`, a stream needs
//! `json_schema`); [`ConfiguredAirbyteCatalog::from_json`] is the forgiving
//! reader a connector uses. Neither chooses modes for a user.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::Extra;

/// A stream's name and optional namespace: the identity of a stream.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct StreamDescriptor {
    /// Stream name.
    pub name: String,
    /// Namespace (schema, database, folder…), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

impl StreamDescriptor {
    /// A descriptor without a namespace.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            namespace: None,
        }
    }

    /// A descriptor with an optional namespace.
    pub fn with_namespace(name: impl Into<String>, namespace: Option<String>) -> Self {
        Self {
            name: name.into(),
            namespace,
        }
    }
}

impl std::fmt::Display for StreamDescriptor {
    /// `namespace.name`, or `name` when there is no namespace.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{ns}.{}", self.name),
            None => f.write_str(&self.name),
        }
    }
}

/// How a source reads a stream: the `sync_mode` of a configured stream.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SyncMode {
    /// `full_refresh`: every sync reads the whole stream. The default.
    #[default]
    FullRefresh,
    /// `incremental`: a sync reads what changed since the last committed state.
    Incremental,
}

impl SyncMode {
    /// The wire name, e.g. `"full_refresh"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::FullRefresh => "full_refresh",
            Self::Incremental => "incremental",
        }
    }
}

/// How a destination writes a stream: the `destination_sync_mode` of a
/// configured stream.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DestinationSyncMode {
    /// `append`: add the records to what is there. The default, as in
    /// Airbyte's schema.
    #[default]
    Append,
    /// `overwrite`: replace what is there (once the stream completes).
    Overwrite,
    /// `append_dedup`: add, then keep the latest record per primary key.
    AppendDedup,
    /// `update`: update rows in place by primary key.
    Update,
    /// `soft_delete`: mark rows deleted by primary key instead of removing them.
    SoftDelete,
}

impl DestinationSyncMode {
    /// The wire name, e.g. `"append_dedup"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Append => "append",
            Self::Overwrite => "overwrite",
            Self::AppendDedup => "append_dedup",
            Self::Update => "update",
            Self::SoftDelete => "soft_delete",
        }
    }
}

/// A stream a source offers: one entry of a CATALOG, and the `stream` of a
/// configured stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AirbyteStream {
    /// Stream name.
    pub name: String,
    /// JSON Schema of its records.
    pub json_schema: Value,
    /// The read modes the source supports for it.
    #[serde(default)]
    pub supported_sync_modes: Vec<SyncMode>,
    /// Whether the source picks the cursor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_defined_cursor: Option<bool>,
    /// The cursor the source suggests, as a field path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_cursor_field: Option<Vec<String>>,
    /// The primary key the source defines, as field paths.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_defined_primary_key: Option<Vec<Vec<String>>>,
    /// Namespace (schema, database, folder…), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Whether a full refresh can resume.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_resumable: Option<bool>,
    /// Whether the stream carries files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_file_based: Option<bool>,
    /// Unknown fields.
    #[serde(flatten)]
    pub extra: Extra,
}

impl AirbyteStream {
    /// The stream's identity: its name and namespace.
    pub fn descriptor(&self) -> StreamDescriptor {
        StreamDescriptor::with_namespace(self.name.clone(), self.namespace.clone())
    }
}

/// One stream of a [`ConfiguredAirbyteCatalog`]: the stream and how to read
/// and write it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConfiguredAirbyteStream {
    /// The stream as the source declared it.
    pub stream: AirbyteStream,
    /// How the source reads it.
    pub sync_mode: SyncMode,
    /// The cursor field path, required for incremental reads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor_field: Option<Vec<String>>,
    /// How the destination writes it.
    pub destination_sync_mode: DestinationSyncMode,
    /// The primary key as field paths, required for `append_dedup`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary_key: Option<Vec<Vec<String>>>,
    /// The generation of the stream's data (`_airbyte_generation_id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation_id: Option<i64>,
    /// Generations below this one may be deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minimum_generation_id: Option<i64>,
    /// The sync's id (`_airbyte_meta.sync_id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync_id: Option<i64>,
    /// Unknown fields.
    #[serde(flatten)]
    pub extra: Extra,
}

impl ConfiguredAirbyteStream {
    /// The stream's identity: its name and namespace.
    pub fn descriptor(&self) -> StreamDescriptor {
        self.stream.descriptor()
    }

    /// The primary key's field paths; empty when the catalog sets none.
    pub fn primary_key(&self) -> &[Vec<String>] {
        self.primary_key.as_deref().unwrap_or_default()
    }

    /// The cursor's field path; empty when the catalog sets none.
    pub fn cursor_field(&self) -> &[String] {
        self.cursor_field.as_deref().unwrap_or_default()
    }

    /// The generation of the stream's data; 0 when the catalog sets none.
    pub fn generation_id(&self) -> i64 {
        self.generation_id.unwrap_or(0)
    }

    /// The oldest generation to keep; 0 when the catalog sets none.
    pub fn minimum_generation_id(&self) -> i64 {
        self.minimum_generation_id.unwrap_or(0)
    }

    /// The sync's id; 0 when the catalog sets none.
    pub fn sync_id(&self) -> i64 {
        self.sync_id.unwrap_or(0)
    }
}

/// The streams of a sync and how to read and write each: what a
/// destination's `write` (and a source's `read`) gets with `--catalog`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ConfiguredAirbyteCatalog {
    /// The configured streams, in catalog order.
    pub streams: Vec<ConfiguredAirbyteStream>,
    /// Unknown fields.
    #[serde(flatten)]
    pub extra: Extra,
}

impl ConfiguredAirbyteCatalog {
    /// Reads a configured catalog as a connector should: forgiving where
    /// peers differ, strict where a mistake would lose data.
    ///
    /// Unlike plain serde, an explicit `null` anywhere in a configured stream
    /// or its `stream` reads as absent, a missing `sync_mode` or
    /// `destination_sync_mode` reads as its default ([`SyncMode::FullRefresh`],
    /// [`DestinationSyncMode::Append`]) and a missing `json_schema` as `null`.
    /// Unknown fields are kept, as with serde.
    ///
    /// ```
    /// use airbyte_protocol::{ConfiguredAirbyteCatalog, DestinationSyncMode};
    ///
    /// let json = br#"{"streams":[{"stream":{"name":"s","namespace":null},"primary_key":null}]}"#;
    /// let catalog = ConfiguredAirbyteCatalog::from_json(json).unwrap();
    /// assert_eq!(catalog.streams[0].destination_sync_mode, DestinationSyncMode::Append);
    /// assert!(catalog.streams[0].primary_key().is_empty());
    /// ```
    ///
    /// # Errors
    ///
    /// The JSON error when the text is not JSON, has no `streams` list, or a
    /// field has the wrong type or an unknown mode.
    pub fn from_json(json: &[u8]) -> Result<Self, serde_json::Error> {
        let mut catalog: Value = serde_json::from_slice(json)?;
        if let Some(streams) = catalog.get_mut("streams").and_then(Value::as_array_mut) {
            for configured in streams.iter_mut().filter_map(Value::as_object_mut) {
                configured.retain(|_, value| !value.is_null());
                configured
                    .entry("sync_mode")
                    .or_insert_with(|| SyncMode::default().as_str().into());
                configured
                    .entry("destination_sync_mode")
                    .or_insert_with(|| DestinationSyncMode::default().as_str().into());
                if let Some(stream) = configured.get_mut("stream").and_then(Value::as_object_mut) {
                    stream.retain(|_, value| !value.is_null());
                    stream.entry("json_schema").or_insert(Value::Null);
                }
            }
        }
        serde_json::from_value(catalog)
    }

    /// The configured stream for `descriptor`, if the catalog has it.
    pub fn find(&self, descriptor: &StreamDescriptor) -> Option<&ConfiguredAirbyteStream> {
        self.streams.iter().find(|s| {
            s.stream.name == descriptor.name && s.stream.namespace == descriptor.namespace
        })
    }

    /// Every stream's identity, in catalog order.
    pub fn descriptors(&self) -> Vec<StreamDescriptor> {
        self.streams
            .iter()
            .map(ConfiguredAirbyteStream::descriptor)
            .collect()
    }
}

/// The payload of a CATALOG message: the streams a source offers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AirbyteCatalog {
    /// The streams.
    pub streams: Vec<AirbyteStream>,
    /// Unknown fields.
    #[serde(flatten)]
    pub extra: Extra,
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const FULL: &str = r#"{"streams":[
        {"stream":{"name":"users","json_schema":{"type":"object"},"supported_sync_modes":["full_refresh","incremental"],
          "source_defined_cursor":true,"default_cursor_field":["updated_at"],"source_defined_primary_key":[["id"]],
          "namespace":"public","is_resumable":true,"is_file_based":false,"x_stream":[1]},
         "sync_mode":"incremental","cursor_field":["updated_at"],"destination_sync_mode":"append_dedup",
         "primary_key":[["id"],["org","id"]],"generation_id":3,"minimum_generation_id":2,"sync_id":9,"x_configured":"k"},
        {"stream":{"name":"products","json_schema":{},"supported_sync_modes":["full_refresh"]},
         "sync_mode":"full_refresh","destination_sync_mode":"overwrite"}],
        "x_catalog":{"a":null}}"#;

    #[test]
    fn a_configured_catalog_round_trips_with_unknown_fields() {
        let catalog: ConfiguredAirbyteCatalog = serde_json::from_str(FULL).expect("parse");
        let again = serde_json::to_value(&catalog).expect("serialise");
        let original: Value = serde_json::from_str(FULL).expect("json");
        assert_eq!(again, original);
        let users = &catalog.streams[0];
        assert_eq!(users.descriptor().to_string(), "public.users");
        assert_eq!(users.primary_key().len(), 2);
        assert_eq!(users.cursor_field(), ["updated_at"]);
        assert_eq!(
            (
                users.generation_id(),
                users.minimum_generation_id(),
                users.sync_id()
            ),
            (3, 2, 9)
        );
        assert_eq!(users.extra["x_configured"], json!("k"));
        assert_eq!(users.stream.extra["x_stream"], json!([1]));
        let products = &catalog.streams[1];
        assert!(products.primary_key().is_empty() && products.cursor_field().is_empty());
        assert_eq!(products.sync_id(), 0);
        assert_eq!(
            catalog.descriptors(),
            [
                StreamDescriptor::with_namespace("users", Some("public".into())),
                StreamDescriptor::new("products")
            ]
        );
        assert!(catalog.find(&StreamDescriptor::new("users")).is_none());
        assert!(catalog.find(&StreamDescriptor::new("products")).is_some());
    }

    #[test]
    fn from_json_reads_what_serde_reads_and_forgives_nulls_and_missing_modes() {
        let strict: ConfiguredAirbyteCatalog = serde_json::from_str(FULL).expect("serde");
        let forgiving = ConfiguredAirbyteCatalog::from_json(FULL.as_bytes()).expect("from_json");
        assert_eq!(forgiving, strict);

        let sparse =
            br#"{"streams":[{"stream":{"name":"s","namespace":null,"supported_sync_modes":null},
            "sync_mode":null,"primary_key":null,"cursor_field":null,"generation_id":null}]}"#;
        assert!(serde_json::from_slice::<ConfiguredAirbyteCatalog>(sparse).is_err());
        let catalog = ConfiguredAirbyteCatalog::from_json(sparse).expect("from_json");
        let s = &catalog.streams[0];
        assert_eq!(s.sync_mode, SyncMode::FullRefresh);
        assert_eq!(s.destination_sync_mode, DestinationSyncMode::Append);
        assert_eq!(s.stream.json_schema, Value::Null);
        assert_eq!(s.descriptor(), StreamDescriptor::new("s"));
        assert!(s.primary_key.is_none() && s.generation_id.is_none());

        for bad in [
            &b"{"[..],
            b"{}",
            br#"{"streams":[{"stream":{"name":"s"},"sync_mode":"sometimes"}]}"#,
        ] {
            assert!(ConfiguredAirbyteCatalog::from_json(bad).is_err());
        }
    }

    #[test]
    fn sync_modes_use_the_wire_names() {
        for mode in [SyncMode::FullRefresh, SyncMode::Incremental] {
            let json = serde_json::to_string(&mode).expect("serialise");
            assert_eq!(json, format!("\"{}\"", mode.as_str()));
            assert_eq!(
                serde_json::from_str::<SyncMode>(&json).expect("parse"),
                mode
            );
        }
        for mode in [
            DestinationSyncMode::Append,
            DestinationSyncMode::Overwrite,
            DestinationSyncMode::AppendDedup,
            DestinationSyncMode::Update,
            DestinationSyncMode::SoftDelete,
        ] {
            let json = serde_json::to_string(&mode).expect("serialise");
            assert_eq!(json, format!("\"{}\"", mode.as_str()));
            let back: DestinationSyncMode = serde_json::from_str(&json).expect("parse");
            assert_eq!(back, mode);
        }
    }

    #[test]
    fn a_stream_descriptor_omits_an_absent_namespace_and_reads_null_as_absent() {
        let plain = StreamDescriptor::new("s");
        assert_eq!(
            serde_json::to_value(&plain).expect("json"),
            json!({"name": "s"})
        );
        let parsed: StreamDescriptor =
            serde_json::from_str(r#"{"name":"s","namespace":null}"#).expect("parse");
        assert_eq!(parsed, plain);
        let namespaced = StreamDescriptor::with_namespace("s", Some("n".into()));
        assert_eq!(namespaced.to_string(), "n.s");
        assert_eq!(
            serde_json::to_value(&namespaced).expect("json"),
            json!({"name": "s", "namespace": "n"})
        );
    }

    #[test]
    fn a_catalog_message_payload_round_trips() {
        let text = r#"{"streams":[{"name":"s","json_schema":{},"supported_sync_modes":["incremental"],"namespace":"n","z":true}],"y":1}"#;
        let catalog: AirbyteCatalog = serde_json::from_str(text).expect("parse");
        assert_eq!(catalog.streams[0].descriptor().to_string(), "n.s");
        assert_eq!(
            serde_json::to_value(&catalog).expect("json"),
            serde_json::from_str::<Value>(text).expect("json")
        );
    }
}
