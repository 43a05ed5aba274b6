//! `airbyte_protocol`: the words of the Airbyte protocol (0.18) that both
//! sides of a connector boundary use — a stream's identity
//! ([`StreamDescriptor`]), the sync modes, the catalogs ([`AirbyteCatalog`],
//! [`ConfiguredAirbyteCatalog`]), log levels and failure types, and the
//! framing table of a batch ([`Frame`]) — defined once
//! so that what the airlock host writes is what a plugin reads.
//!
//! Owns these types and their JSON form, spelled exactly as the protocol
//! spells it. Every struct keeps the fields it does not name in an `extra`
//! map, so a catalog survives a round trip unchanged, and optional fields read
//! an explicit `null` as absent. It does not own the message envelope, reading
//! lines or anything that does I/O: those stay with the host and the plugin
//! SDK. Depends on serde and serde_json only, so it builds for
//! `wasm32-wasip2`.
//!
//! ```
//! use airbyte_protocol::{ConfiguredAirbyteCatalog, DestinationSyncMode, StreamDescriptor};
//!
//! let json = br#"{"streams":[{"stream":{"name":"users","namespace":"public","json_schema":{}},
//!     "sync_mode":"incremental","destination_sync_mode":"append_dedup","primary_key":[["id"]],
//!     "future_field":1}]}"#;
//! let catalog: ConfiguredAirbyteCatalog = serde_json::from_slice(json).unwrap();
//! let users = StreamDescriptor::with_namespace("users", Some("public".into()));
//! let stream = catalog.find(&users).unwrap();
//! assert_eq!(stream.destination_sync_mode, DestinationSyncMode::AppendDedup);
//! assert_eq!(stream.primary_key(), [vec!["id".to_string()]]);
//! // Fields the model does not name survive the round trip.
//! assert!(serde_json::to_string(&catalog).unwrap().contains(r#""future_field":1"#));
//! ```

#![deny(missing_docs)]

mod catalog;
mod frame;
mod severity;

pub use catalog::{
    AirbyteCatalog, AirbyteStream, ConfiguredAirbyteCatalog, ConfiguredAirbyteStream,
    DestinationSyncMode, StreamDescriptor, SyncMode,
};
pub use frame::{Frame, FrameError, FrameKind, Span, check_frames};
pub use severity::{FailureType, LogLevel};

/// Fields an object carried that this model does not name; written back
/// unchanged.
pub type Extra = serde_json::Map<String, serde_json::Value>;
