//! Streams and the configured catalog: what a sync moves and how.
//!
//! Owns [`AirbyteStream`], [`ConfiguredAirbyteCatalog`] and the sync-mode enums. It
//! does not choose modes for the user (that is the write strategy, in [`crate::write`]).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::protocol::message::{Extra, StreamDescriptor};

/// How a source reads a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SyncMode {
    /// Read everything.
    FullRefresh,
    /// Read what changed since the last state.
    Incremental,
}

/// How a destination writes a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DestinationSyncMode {
    /// Add the records to what is there.
    Append,
    /// Replace what is there.
    Overwrite,
    /// Add, then keep the latest record per primary key.
    AppendDedup,
    /// Update rows in place by primary key.
    Update,
    /// Mark rows deleted by primary key.
    SoftDelete,
}

/// A stream a source offers.
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
    /// The cursor the source suggests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_cursor_field: Option<Vec<String>>,
    /// The primary key the source defines, as field paths.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_defined_primary_key: Option<Vec<Vec<String>>>,
    /// Namespace.
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
    /// The stream's identity.
    pub fn descriptor(&self) -> StreamDescriptor {
        StreamDescriptor::with_namespace(self.name.clone(), self.namespace.clone())
    }
}

/// One stream of a configured catalog.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConfiguredAirbyteStream {
    /// The stream.
    pub stream: AirbyteStream,
    /// How to read it.
    pub sync_mode: SyncMode,
    /// The cursor, required for incremental reads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor_field: Option<Vec<String>>,
    /// How to write it.
    pub destination_sync_mode: DestinationSyncMode,
    /// The primary key, required for `*_dedup`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary_key: Option<Vec<Vec<String>>>,
    /// The generation of the stream's data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation_id: Option<i64>,
    /// Generations below this may be deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minimum_generation_id: Option<i64>,
    /// The sync's id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync_id: Option<i64>,
    /// Unknown fields.
    #[serde(flatten)]
    pub extra: Extra,
}

/// The streams of a sync and how to read and write each.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct ConfiguredAirbyteCatalog {
    /// The streams.
    pub streams: Vec<ConfiguredAirbyteStream>,
    /// Unknown fields.
    #[serde(flatten)]
    pub extra: Extra,
}

impl ConfiguredAirbyteCatalog {
    /// The configured stream for `descriptor`, if the catalog has it.
    pub fn find(&self, descriptor: &StreamDescriptor) -> Option<&ConfiguredAirbyteStream> {
        self.streams.iter().find(|s| {
            s.stream.name == descriptor.name && s.stream.namespace == descriptor.namespace
        })
    }

    /// Every stream's identity, in catalog order.
    pub fn descriptors(&self) -> Vec<StreamDescriptor> {
        self.streams.iter().map(|s| s.stream.descriptor()).collect()
    }
}
