//! `message`: Airbyte protocol messages as they cross a destination's
//! boundary — the borrowed, allocation-light parse of input lines
//! ([`Record`] and the envelope around it) and the encoding of every line a
//! destination writes (LOG, SPEC, CONNECTION_STATUS, TRACE ERROR), including
//! the [`Emitter`] that writers log through. [`LogLevel`] is the shared
//! `airbyte_protocol` one.
//!
//! Every output line is one JSON object followed by `\n`.

use std::borrow::Cow;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

pub use airbyte_protocol::LogLevel;

use crate::DestinationError;

/// One RECORD message, borrowed from the input line it was parsed from.
///
/// Parsing never builds a JSON tree: `data` and `meta` stay raw text, so a
/// writer can copy them to its output untouched.
#[derive(Debug, Deserialize)]
pub struct Record<'a> {
    /// The stream the record belongs to.
    #[serde(borrow)]
    pub stream: Cow<'a, str>,
    /// The stream's namespace, if any.
    #[serde(borrow, default)]
    pub namespace: Option<Cow<'a, str>>,
    /// The record itself, as the raw JSON text received.
    #[serde(borrow)]
    pub data: RawJson<'a>,
    /// When the source extracted the record, in milliseconds since the Unix
    /// epoch. Any JSON number is accepted; a fraction is truncated.
    #[serde(deserialize_with = "epoch_millis")]
    pub emitted_at: i64,
    /// The record's `meta` (e.g. `changes[]`), raw, if present and not null.
    #[serde(borrow, default)]
    pub meta: Option<RawJson<'a>>,
    /// Set by the write session once the record's stream is found in the
    /// catalog.
    #[serde(skip)]
    pub(crate) stream_index: usize,
}

impl Record<'_> {
    /// The position of this record's stream in
    /// [`ConfiguredCatalog::streams`](crate::ConfiguredCatalog::streams), as
    /// passed to [`Destination::open`](crate::Destination::open).
    pub fn stream_index(&self) -> usize {
        self.stream_index
    }
}

/// JSON text, raw, borrowed from the input: a record's `data` or `meta` as it
/// was received. Nothing is parsed until a writer asks for it with
/// [`RawJson::parse`]; [`RawJson::get`] is the text itself.
///
/// ```
/// use airlock_plugin_sdk::message::RawJson;
/// let data = RawJson::new(r#"{"id":1}"#).expect("JSON");
/// assert_eq!(data.get(), r#"{"id":1}"#);
/// let value: serde_json::Value = data.parse().expect("parses");
/// assert_eq!(value["id"], 1);
/// assert!(RawJson::new("{nope").is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawJson<'a>(&'a str);

impl<'a> RawJson<'a> {
    /// Checks that `text` is one JSON value and borrows it.
    ///
    /// # Errors
    /// The parser's error when it is not.
    pub fn new(text: &'a str) -> Result<Self, serde_json::Error> {
        let raw: &'a RawValue = serde_json::from_str(text)?;
        Ok(Self(raw.get()))
    }

    /// Borrows text the host has already checked to be a JSON object (a record's
    /// `data` in a framed batch: the host's peek validated it).
    pub(crate) fn trusted(text: &'a str) -> Self {
        Self(text)
    }

    /// The JSON text, exactly as received.
    pub fn get(&self) -> &'a str {
        self.0
    }

    /// Parses the text into `T`.
    ///
    /// # Errors
    /// The parser's error when the text does not fit `T`.
    pub fn parse<T: Deserialize<'a>>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_str(self.0)
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for RawJson<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        <&'de RawValue>::deserialize(deserializer).map(|raw| Self(raw.get()))
    }
}

/// Reads an `emitted_at`: an integer, or a float truncated toward zero.
fn epoch_millis<'de, D: Deserializer<'de>>(deserializer: D) -> Result<i64, D::Error> {
    struct Millis;
    impl Visitor<'_> for Millis {
        type Value = i64;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a number of milliseconds since the Unix epoch")
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<i64, E> {
            Ok(v)
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<i64, E> {
            Ok(i64::try_from(v).unwrap_or(i64::MAX))
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<i64, E> {
            // `as` saturates and maps NaN to 0, which is what we want here.
            Ok(v as i64)
        }
    }
    deserializer.deserialize_any(Millis)
}

/// The outer shape of an input line: its `type` and the payloads this SDK
/// acts on. Every other field is skipped without being built.
#[derive(Deserialize)]
pub(crate) struct Envelope<'a> {
    #[serde(rename = "type", borrow, default)]
    pub(crate) kind: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub(crate) record: Option<Record<'a>>,
    #[serde(borrow, default)]
    pub(crate) trace: Option<&'a RawValue>,
}

/// The part of a TRACE message that matters to a destination: a stream
/// status.
#[derive(Deserialize)]
pub(crate) struct Trace<'a> {
    #[serde(rename = "type", borrow, default)]
    pub(crate) kind: Option<Cow<'a, str>>,
    #[serde(default)]
    pub(crate) stream_status: Option<StreamStatus>,
}

/// A TRACE STREAM_STATUS payload.
#[derive(Deserialize)]
pub(crate) struct StreamStatus {
    pub(crate) stream_descriptor: crate::StreamDescriptor,
    #[serde(default)]
    pub(crate) status: Option<String>,
}

/// Lets a [`RecordWriter`](crate::RecordWriter) emit LOG messages into the
/// destination's output, in order with the STATE messages around them.
#[derive(Debug)]
pub struct Emitter<'a> {
    out: &'a mut Vec<u8>,
}

impl<'a> Emitter<'a> {
    /// An emitter that appends its lines to `out`.
    pub fn new(out: &'a mut Vec<u8>) -> Self {
        Self { out }
    }

    /// Emits a LOG message at `level`.
    pub fn log(&mut self, level: LogLevel, message: &str) {
        write_log(self.out, level, message);
    }

    /// Emits any Airbyte message (a TRACE ESTIMATE, say). The host checks what it
    /// gets: a STATE emitted here that it never sent stops the write.
    pub fn message(&mut self, message: &serde_json::Value) {
        write_line(self.out, message);
    }
}

/// Milliseconds since the Unix epoch, with a fraction, as TRACE messages
/// carry them.
pub(crate) fn now_millis() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

/// Serialises `message` as one output line.
fn write_line(out: &mut Vec<u8>, message: &impl Serialize) {
    // Serialising these plain structs into a Vec cannot fail: there are no
    // maps with non-string keys and no fallible Serialize impls.
    if serde_json::to_writer(&mut *out, message).is_ok() {
        out.push(b'\n');
    }
}

/// Appends a LOG line.
pub fn write_log(out: &mut Vec<u8>, level: LogLevel, message: &str) {
    #[derive(Serialize)]
    struct Log<'m> {
        level: LogLevel,
        message: &'m str,
    }
    #[derive(Serialize)]
    struct Line<'m> {
        #[serde(rename = "type")]
        kind: &'static str,
        log: Log<'m>,
    }
    write_line(
        out,
        &Line {
            kind: "LOG",
            log: Log { level, message },
        },
    );
}

/// Appends a SPEC line carrying `spec`, the whole ConnectorSpecification.
pub fn write_spec(out: &mut Vec<u8>, spec: &serde_json::Value) {
    #[derive(Serialize)]
    struct Line<'s> {
        #[serde(rename = "type")]
        kind: &'static str,
        spec: &'s serde_json::Value,
    }
    write_line(out, &Line { kind: "SPEC", spec });
}

/// Appends a CONNECTION_STATUS line: SUCCEEDED (with the message, if any)
/// for `Ok`, FAILED with the message for `Err`.
pub fn write_connection_status(out: &mut Vec<u8>, status: &Result<Option<String>, String>) {
    #[derive(Serialize)]
    struct Status<'m> {
        status: &'static str,
        #[serde(skip_serializing_if = "Option::is_none")]
        message: Option<&'m str>,
    }
    #[derive(Serialize)]
    struct Line<'m> {
        #[serde(rename = "type")]
        kind: &'static str,
        #[serde(rename = "connectionStatus")]
        connection_status: Status<'m>,
    }
    let connection_status = match status {
        Ok(message) => Status {
            status: "SUCCEEDED",
            message: message.as_deref(),
        },
        Err(message) => Status {
            status: "FAILED",
            message: Some(message),
        },
    };
    write_line(
        out,
        &Line {
            kind: "CONNECTION_STATUS",
            connection_status,
        },
    );
}

/// Appends a TRACE ERROR line reporting `error`.
pub fn write_trace_error(out: &mut Vec<u8>, error: &DestinationError) {
    #[derive(Serialize)]
    struct Error<'e> {
        message: &'e str,
        internal_message: &'e str,
        failure_type: crate::FailureType,
    }
    #[derive(Serialize)]
    struct Trace<'e> {
        #[serde(rename = "type")]
        kind: &'static str,
        emitted_at: f64,
        error: Error<'e>,
    }
    #[derive(Serialize)]
    struct Line<'e> {
        #[serde(rename = "type")]
        kind: &'static str,
        trace: Trace<'e>,
    }
    write_line(
        out,
        &Line {
            kind: "TRACE",
            trace: Trace {
                kind: "ERROR",
                emitted_at: now_millis(),
                error: Error {
                    message: &error.message,
                    internal_message: &error.message,
                    failure_type: error.failure_type,
                },
            },
        },
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn lines(out: &[u8]) -> Vec<Value> {
        out.split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| serde_json::from_slice(l).expect("each line is JSON"))
            .collect()
    }

    #[test]
    fn record_borrows_its_fields_and_keeps_data_raw() {
        let line = br#"{"type":"RECORD","record":{"stream":"users","namespace":"public","data":{"a": 1, "b":"x"},"emitted_at":1795600668304}}"#;
        let envelope: Envelope<'_> = serde_json::from_slice(line).expect("parse");
        let record = envelope.record.expect("record");
        assert!(matches!(record.stream, Cow::Borrowed("users")));
        assert_eq!(record.namespace.as_deref(), Some("public"));
        assert_eq!(record.data.get(), r#"{"a": 1, "b":"x"}"#);
        assert_eq!(record.emitted_at, 1_795_600_668_304);
        assert!(record.meta.is_none());
    }

    #[test]
    fn emitted_at_accepts_floats_and_truncates() {
        let line = br#"{"stream":"s","data":{},"emitted_at":1795600668302.998,"meta":null,"namespace":null}"#;
        let record: Record<'_> = serde_json::from_slice(line).expect("parse");
        assert_eq!(record.emitted_at, 1_795_600_668_302);
        assert!(record.namespace.is_none());
        assert!(record.meta.is_none());
    }

    #[test]
    fn escaped_stream_names_are_decoded() {
        let line = br#"{"stream":"sp\u00e9cial","data":{},"emitted_at":1,"meta":{"changes":[]}}"#;
        let record: Record<'_> = serde_json::from_slice(line).expect("parse");
        assert_eq!(record.stream, "spécial");
        assert_eq!(record.meta.map(|m| m.get()), Some(r#"{"changes":[]}"#));
    }

    #[test]
    fn output_lines_have_the_airbyte_shape() {
        let mut out = Vec::new();
        write_log(&mut out, LogLevel::Warn, "careful");
        write_spec(&mut out, &json!({"connectionSpecification": {}}));
        write_connection_status(&mut out, &Ok(None));
        write_connection_status(&mut out, &Err("nope".into()));
        write_trace_error(&mut out, &DestinationError::config("bad path"));
        write_connection_status(&mut out, &Ok(Some("fine".into())));
        let lines = lines(&out);
        assert_eq!(
            lines[0],
            json!({"type":"LOG","log":{"level":"WARN","message":"careful"}})
        );
        assert_eq!(
            lines[1],
            json!({"type":"SPEC","spec":{"connectionSpecification":{}}})
        );
        assert_eq!(
            lines[2],
            json!({"type":"CONNECTION_STATUS","connectionStatus":{"status":"SUCCEEDED"}})
        );
        assert_eq!(
            lines[3],
            json!({"type":"CONNECTION_STATUS","connectionStatus":{"status":"FAILED","message":"nope"}})
        );
        let trace = &lines[4]["trace"];
        assert_eq!(lines[4]["type"], "TRACE");
        assert_eq!(trace["type"], "ERROR");
        assert!(trace["emitted_at"].is_f64());
        assert_eq!(trace["error"]["message"], "bad path");
        assert_eq!(trace["error"]["internal_message"], "bad path");
        assert_eq!(trace["error"]["failure_type"], "config_error");
        assert_eq!(
            lines[5],
            json!({"type":"CONNECTION_STATUS","connectionStatus":{"status":"SUCCEEDED","message":"fine"}})
        );
    }

    #[test]
    fn emitter_passes_any_message_through() {
        let mut out = Vec::new();
        Emitter::new(&mut out).message(&json!({"type":"TRACE","trace":{"type":"ESTIMATE"}}));
        assert_eq!(
            out,
            b"{\"type\":\"TRACE\",\"trace\":{\"type\":\"ESTIMATE\"}}\n"
        );
    }

    #[test]
    fn emitter_appends_log_lines() {
        let mut out = Vec::new();
        Emitter::new(&mut out).log(LogLevel::Info, "line\nbreak");
        assert_eq!(
            lines(&out),
            vec![json!({"type":"LOG","log":{"level":"INFO","message":"line\nbreak"}})]
        );
    }
}
