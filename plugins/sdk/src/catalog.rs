//! `catalog`: the configured catalog that a destination receives with
//! `write`, and the stream descriptor that names a stream everywhere else.
//!
//! The types are the shared Airbyte vocabulary of the `airbyte_protocol` crate
//! (the host writes the very same types), under the names plugins use:
//! [`ConfiguredCatalog`] and [`ConfiguredStream`]. Reading is forgiving, as
//! [`ConfiguredCatalog::from_json`] says: fields that peers write as an
//! explicit `null` read as absent, and unknown fields are kept.

pub use airbyte_protocol::{
    AirbyteStream, ConfiguredAirbyteCatalog as ConfiguredCatalog,
    ConfiguredAirbyteStream as ConfiguredStream, DestinationSyncMode, StreamDescriptor, SyncMode,
};

use crate::DestinationError;

/// Parses the configured catalog a `write` was given, from its JSON text.
///
/// # Errors
///
/// A [`FailureType::SystemError`](crate::FailureType::SystemError) naming the
/// JSON problem: the catalog is written by the platform, not by the user.
pub(crate) fn parse_catalog(json: &[u8]) -> Result<ConfiguredCatalog, DestinationError> {
    ConfiguredCatalog::from_json(json)
        .map_err(|e| DestinationError::system(format!("the configured catalog is invalid: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_faker_catalog_shape_and_keeps_unknown_fields() {
        let json = br#"{"streams":[{"stream":{"name":"products","json_schema":{"type":"object"},
            "supported_sync_modes":["full_refresh","incremental"],"source_defined_cursor":true,
            "default_cursor_field":["updated_at"],"source_defined_primary_key":[["id"]],"is_resumable":true},
            "sync_mode":"incremental","destination_sync_mode":"append_dedup","primary_key":[["id"]],
            "cursor_field":["updated_at"],"generation_id":0,"minimum_generation_id":0,"sync_id":1,"x_unknown":true}]}"#;
        let catalog = parse_catalog(json).expect("parse");
        let stream = &catalog.streams[0];
        assert_eq!(stream.stream.name, "products");
        assert_eq!(stream.stream.namespace, None);
        assert_eq!(stream.sync_mode, SyncMode::Incremental);
        assert_eq!(
            stream.destination_sync_mode,
            DestinationSyncMode::AppendDedup
        );
        assert_eq!(stream.primary_key(), [vec!["id".to_string()]]);
        assert_eq!(stream.cursor_field(), ["updated_at".to_string()]);
        assert_eq!((stream.generation_id(), stream.sync_id()), (0, 1));
        assert_eq!(stream.extra["x_unknown"], serde_json::Value::Bool(true));
    }

    #[test]
    fn explicit_nulls_read_as_absent() {
        let json = br#"{"streams":[{"stream":{"name":"s","namespace":null,"json_schema":null},
            "sync_mode":null,"destination_sync_mode":"overwrite","primary_key":null,"cursor_field":null}]}"#;
        let catalog = parse_catalog(json).expect("parse");
        let stream = &catalog.streams[0];
        assert_eq!(stream.destination_sync_mode, DestinationSyncMode::Overwrite);
        assert!(stream.primary_key().is_empty());
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
        let err = parse_catalog(b"{").expect_err("must fail");
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
