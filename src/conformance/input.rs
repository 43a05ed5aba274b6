//! The suite's inputs: catalogs and newline-delimited Airbyte messages.
//!
//! Owns building them; it does not run anything.

use serde_json::{Value, json};

use crate::protocol::ConfiguredAirbyteCatalog;

/// One stream of a test catalog.
#[derive(Debug, Clone)]
pub struct TestStream {
    pub name: String,
    pub namespace: Option<String>,
    /// `append`, `overwrite` or `append_dedup`.
    pub mode: &'static str,
    pub primary_key: Option<Vec<Vec<String>>>,
}

impl TestStream {
    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            namespace: None,
            mode: "append",
            primary_key: None,
        }
    }

    pub fn namespace(mut self, namespace: &str) -> Self {
        self.namespace = Some(namespace.to_owned());
        self
    }

    pub fn mode(mut self, mode: &'static str) -> Self {
        self.mode = mode;
        self
    }

    pub fn primary_key(mut self, key: &[&str]) -> Self {
        self.primary_key = Some(key.iter().map(|k| vec![(*k).to_owned()]).collect());
        self
    }
}

/// The fields the cases' records carry, with their JSON schemas. Every test
/// stream declares them all, so a typed destination has a column for each;
/// `undeclared` (of the fields-not-in-schema case) is left out on purpose.
fn properties() -> Value {
    let string = json!({"type": ["null", "string"]});
    let integer = json!({"type": ["null", "integer"]});
    let timestamp = json!({"type": ["null", "string"], "format": "date-time",
        "airbyte_type": "timestamp_with_timezone"});
    let object = json!({"type": ["null", "object"]});
    json!({
        "id": integer, "stream_index": integer, "stream": integer, "value": integer,
        "version": integer, "name": string, "email": string, "note": string, "blob": string,
        "text": string, "where": string, "region": string, "padding": string,
        "created_at": timestamp, "updated_at": timestamp, "address": object, "nested": object,
    })
}

/// `row` without the fields the test schema does not declare: what a typed
/// destination keeps of it.
pub fn declared_only(row: &Value) -> Value {
    let declared = properties();
    match row {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(k, _)| declared.get(k.as_str()).is_some())
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// A configured catalog of `streams`, each with the schema of [`properties`].
pub fn catalog(streams: &[TestStream]) -> ConfiguredAirbyteCatalog {
    let streams: Vec<Value> = streams
        .iter()
        .map(|s| {
            let mut stream = json!({
                "name": s.name,
                "json_schema": {"type": "object", "properties": properties()},
                "supported_sync_modes": ["full_refresh", "incremental"],
            });
            if let Some(ns) = &s.namespace {
                stream["namespace"] = json!(ns);
            }
            let mut configured = json!({
                "stream": stream,
                "sync_mode": "full_refresh",
                "destination_sync_mode": s.mode,
            });
            if let Some(key) = &s.primary_key {
                configured["primary_key"] = json!(key);
                configured["stream"]["source_defined_primary_key"] = json!(key);
            }
            configured
        })
        .collect();
    serde_json::from_value(json!({ "streams": streams })).unwrap_or_default()
}

/// Builds an input, line by line.
#[derive(Debug, Default)]
pub struct Messages {
    bytes: Vec<u8>,
}

impl Messages {
    pub fn new() -> Self {
        Self::default()
    }

    fn push(&mut self, message: &Value) {
        serde_json::to_writer(&mut self.bytes, message).unwrap_or_default();
        self.bytes.push(b'\n');
    }

    /// A RECORD.
    pub fn record(&mut self, stream: &TestStream, data: &Value) -> &mut Self {
        let mut record =
            json!({"stream": stream.name, "data": data, "emitted_at": 1_700_000_000_000u64});
        if let Some(ns) = &stream.namespace {
            record["namespace"] = json!(ns);
        }
        self.push(&json!({"type": "RECORD", "record": record}));
        self
    }

    /// A STREAM state.
    pub fn stream_state(&mut self, stream: &TestStream, cursor: u64) -> &mut Self {
        let mut descriptor = json!({"name": stream.name});
        if let Some(ns) = &stream.namespace {
            descriptor["namespace"] = json!(ns);
        }
        self.push(
            &json!({"type": "STATE", "state": {"type": "STREAM", "stream": {
            "stream_descriptor": descriptor, "stream_state": {"cursor": cursor}}}}),
        );
        self
    }

    /// A GLOBAL state over `streams`.
    pub fn global_state(&mut self, streams: &[TestStream], cursor: u64) -> &mut Self {
        let stream_states: Vec<Value> = streams
            .iter()
            .map(|s| {
                let mut descriptor = json!({"name": s.name});
                if let Some(ns) = &s.namespace {
                    descriptor["namespace"] = json!(ns);
                }
                json!({"stream_descriptor": descriptor, "stream_state": {"cursor": cursor}})
            })
            .collect();
        self.push(
            &json!({"type": "STATE", "state": {"type": "GLOBAL", "global": {
            "shared_state": {"lsn": cursor}, "stream_states": stream_states}}}),
        );
        self
    }

    /// A TRACE STREAM_STATUS COMPLETE.
    pub fn complete(&mut self, stream: &TestStream) -> &mut Self {
        let mut descriptor = json!({"name": stream.name});
        if let Some(ns) = &stream.namespace {
            descriptor["namespace"] = json!(ns);
        }
        self.push(
            &json!({"type": "TRACE", "trace": {"type": "STREAM_STATUS", "emitted_at": 1.0,
            "stream_status": {"stream_descriptor": descriptor, "status": "COMPLETE"}}}),
        );
        self
    }

    /// A raw line, as is (for malformed input).
    pub fn raw(&mut self, line: &str) -> &mut Self {
        self.bytes.extend_from_slice(line.as_bytes());
        self.bytes.push(b'\n');
        self
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }
}
