//! The Airbyte message model: every message type of protocol 0.18 and every field.
//!
//! Owns the typed shapes and their JSON form. It does not read or write streams
//! (that is [`crate::protocol::framing`]) and does not decide what a message means for a
//! sync (that is [`crate::write`]).
//!
//! Every struct keeps the fields it does not know in an `extra` map, so a message
//! survives a round trip unchanged. Absent and explicit-`null` optional fields both
//! read as `None`. The words shared with the plugins (stream descriptors, catalogs,
//! sync modes, log levels, failure types) come from the `airbyte_protocol` crate.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use airbyte_protocol::{AirbyteCatalog, Extra, FailureType, LogLevel, StreamDescriptor};

/// The `type` of an Airbyte message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum MessageType {
    /// A data record.
    Record,
    /// A checkpoint.
    State,
    /// A log line.
    Log,
    /// A connector specification.
    Spec,
    /// The result of `check`.
    ConnectionStatus,
    /// The result of `discover`.
    Catalog,
    /// Errors, estimates, stream statuses and analytics.
    Trace,
    /// A request to the host, such as storing an updated config.
    Control,
    /// The operations a destination supports (protocol 0.16+).
    DestinationCatalog,
}

impl MessageType {
    /// The wire name, e.g. `"RECORD"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Record => "RECORD",
            Self::State => "STATE",
            Self::Log => "LOG",
            Self::Spec => "SPEC",
            Self::ConnectionStatus => "CONNECTION_STATUS",
            Self::Catalog => "CATALOG",
            Self::Trace => "TRACE",
            Self::Control => "CONTROL",
            Self::DestinationCatalog => "DESTINATION_CATALOG",
        }
    }

    /// The field that holds this type's payload. Note the one camelCase name.
    pub fn payload_field(self) -> &'static str {
        match self {
            Self::Record => "record",
            Self::State => "state",
            Self::Log => "log",
            Self::Spec => "spec",
            Self::ConnectionStatus => "connectionStatus",
            Self::Catalog => "catalog",
            Self::Trace => "trace",
            Self::Control => "control",
            Self::DestinationCatalog => "destination_catalog",
        }
    }
}

/// One Airbyte message: its payload plus any top-level fields this model does not name.
#[derive(Debug, Clone, PartialEq)]
pub struct AirbyteMessage {
    /// The typed payload; its variant is the message's `type`.
    pub payload: Payload,
    /// Unknown top-level fields, kept for the round trip.
    pub extra: Extra,
}

/// The payload of an [`AirbyteMessage`], one variant per [`MessageType`].
#[derive(Debug, Clone, PartialEq)]
#[allow(
    missing_docs,
    reason = "each variant is the payload of the message type of the same name"
)]
pub enum Payload {
    Record(AirbyteRecordMessage),
    State(AirbyteStateMessage),
    Log(AirbyteLogMessage),
    Spec(ConnectorSpecification),
    ConnectionStatus(AirbyteConnectionStatus),
    Catalog(AirbyteCatalog),
    Trace(AirbyteTraceMessage),
    Control(AirbyteControlMessage),
    DestinationCatalog(DestinationCatalog),
}

impl AirbyteMessage {
    /// The message's `type`.
    pub fn kind(&self) -> MessageType {
        match &self.payload {
            Payload::Record(_) => MessageType::Record,
            Payload::State(_) => MessageType::State,
            Payload::Log(_) => MessageType::Log,
            Payload::Spec(_) => MessageType::Spec,
            Payload::ConnectionStatus(_) => MessageType::ConnectionStatus,
            Payload::Catalog(_) => MessageType::Catalog,
            Payload::Trace(_) => MessageType::Trace,
            Payload::Control(_) => MessageType::Control,
            Payload::DestinationCatalog(_) => MessageType::DestinationCatalog,
        }
    }

    /// A LOG message at `level`.
    pub fn log(level: LogLevel, message: impl Into<String>) -> Self {
        Payload::Log(AirbyteLogMessage {
            level,
            message: message.into(),
            stack_trace: None,
            extra: Extra::new(),
        })
        .into()
    }

    /// Serialises the message as one line of JSON, without the trailing newline.
    pub fn to_line(&self) -> String {
        // Serialising a tree of plain structs and `Value`s cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

impl From<Payload> for AirbyteMessage {
    fn from(payload: Payload) -> Self {
        Self {
            payload,
            extra: Extra::new(),
        }
    }
}

macro_rules! payload_from {
    ($($variant:ident($ty:ty)),* $(,)?) => {$(
        impl From<$ty> for AirbyteMessage {
            fn from(value: $ty) -> Self {
                Payload::$variant(value).into()
            }
        }
    )*};
}
payload_from!(
    Record(AirbyteRecordMessage),
    State(AirbyteStateMessage),
    Log(AirbyteLogMessage),
    Spec(ConnectorSpecification),
    ConnectionStatus(AirbyteConnectionStatus),
    Catalog(AirbyteCatalog),
    Trace(AirbyteTraceMessage),
    Control(AirbyteControlMessage),
    DestinationCatalog(DestinationCatalog),
);

/// The wire shape: every payload field optional, the rest kept.
#[derive(Deserialize)]
struct WireMessage {
    #[serde(rename = "type")]
    kind: MessageType,
    #[serde(default)]
    record: Option<Value>,
    #[serde(default)]
    state: Option<Value>,
    #[serde(default)]
    log: Option<Value>,
    #[serde(default)]
    spec: Option<Value>,
    #[serde(default, rename = "connectionStatus")]
    connection_status: Option<Value>,
    #[serde(default)]
    catalog: Option<Value>,
    #[serde(default)]
    trace: Option<Value>,
    #[serde(default)]
    control: Option<Value>,
    #[serde(default)]
    destination_catalog: Option<Value>,
    #[serde(flatten)]
    extra: Extra,
}

impl<'de> Deserialize<'de> for AirbyteMessage {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let mut wire = WireMessage::deserialize(deserializer)?;
        let kind = wire.kind;
        let mut slots = [
            (MessageType::Record, wire.record.take()),
            (MessageType::State, wire.state.take()),
            (MessageType::Log, wire.log.take()),
            (MessageType::Spec, wire.spec.take()),
            (MessageType::ConnectionStatus, wire.connection_status.take()),
            (MessageType::Catalog, wire.catalog.take()),
            (MessageType::Trace, wire.trace.take()),
            (MessageType::Control, wire.control.take()),
            (
                MessageType::DestinationCatalog,
                wire.destination_catalog.take(),
            ),
        ];
        let mut body = None;
        let mut extra = wire.extra;
        for (slot_kind, value) in &mut slots {
            let Some(value) = value.take() else { continue };
            if *slot_kind == kind {
                body = Some(value);
            } else {
                // A payload field of another type: not ours to interpret, but kept.
                extra.insert(slot_kind.payload_field().to_owned(), value);
            }
        }
        let body = body.ok_or_else(|| {
            D::Error::custom(format_args!(
                "{} message has no `{}` field",
                kind.as_str(),
                kind.payload_field()
            ))
        })?;
        let payload = match kind {
            MessageType::Record => Payload::Record(from_value(body)?),
            MessageType::State => Payload::State(from_value(body)?),
            MessageType::Log => Payload::Log(from_value(body)?),
            MessageType::Spec => Payload::Spec(from_value(body)?),
            MessageType::ConnectionStatus => Payload::ConnectionStatus(from_value(body)?),
            MessageType::Catalog => Payload::Catalog(from_value(body)?),
            MessageType::Trace => Payload::Trace(from_value(body)?),
            MessageType::Control => Payload::Control(from_value(body)?),
            MessageType::DestinationCatalog => Payload::DestinationCatalog(from_value(body)?),
        };
        Ok(Self { payload, extra })
    }
}

fn from_value<T: serde::de::DeserializeOwned, E: serde::de::Error>(value: Value) -> Result<T, E> {
    serde_json::from_value(value).map_err(E::custom)
}

impl Serialize for AirbyteMessage {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let kind = self.kind();
        let mut map = serializer.serialize_map(Some(2 + self.extra.len()))?;
        map.serialize_entry("type", &kind)?;
        let field = kind.payload_field();
        match &self.payload {
            Payload::Record(p) => map.serialize_entry(field, p)?,
            Payload::State(p) => map.serialize_entry(field, p)?,
            Payload::Log(p) => map.serialize_entry(field, p)?,
            Payload::Spec(p) => map.serialize_entry(field, p)?,
            Payload::ConnectionStatus(p) => map.serialize_entry(field, p)?,
            Payload::Catalog(p) => map.serialize_entry(field, p)?,
            Payload::Trace(p) => map.serialize_entry(field, p)?,
            Payload::Control(p) => map.serialize_entry(field, p)?,
            Payload::DestinationCatalog(p) => map.serialize_entry(field, p)?,
        }
        for (key, value) in &self.extra {
            map.serialize_entry(key, value)?;
        }
        map.end()
    }
}

/// RECORD: one row of a stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AirbyteRecordMessage {
    /// Namespace of the stream, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Stream name.
    pub stream: String,
    /// The row.
    pub data: Value,
    /// When the source emitted it, in ms since the epoch.
    pub emitted_at: i64,
    /// Changes made to the row in flight.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta: Option<AirbyteRecordMessageMeta>,
    /// A file staged beside the record (file-transfer streams).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_reference: Option<AirbyteRecordMessageFileReference>,
    /// Unknown fields.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `record.meta`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AirbyteRecordMessageMeta {
    /// What was changed in the row, and why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changes: Option<Vec<AirbyteRecordMessageMetaChange>>,
    /// Unknown fields.
    #[serde(flatten)]
    pub extra: Extra,
}

/// One entry of `record.meta.changes`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AirbyteRecordMessageMetaChange {
    /// The field that was changed.
    pub field: String,
    /// What happened to it.
    pub change: ChangeKind,
    /// Why, e.g. `SOURCE_FIELD_SIZE_LIMITATION`.
    pub reason: String,
    /// Unknown fields.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `NULLED` or `TRUNCATED`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[allow(missing_docs, reason = "protocol enum values")]
pub enum ChangeKind {
    Nulled,
    Truncated,
}

/// `record.file_reference`: a file staged by the source for the destination.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AirbyteRecordMessageFileReference {
    /// Where the staged file lies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub staging_file_url: Option<String>,
    /// Its path relative to the source's root.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_file_relative_path: Option<String>,
    /// Its size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_size_bytes: Option<i64>,
    /// Unknown fields.
    #[serde(flatten)]
    pub extra: Extra,
}

/// The kind of a STATE message. Absent means [`StateType::Legacy`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum StateType {
    /// One stream's state, in `stream`.
    Stream,
    /// State shared by all streams, in `global`.
    Global,
    /// The old whole-connection blob, in `data`.
    #[default]
    Legacy,
}

/// STATE: a checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AirbyteStateMessage {
    /// Which of `stream`, `global` or `data` holds the state. Absent means LEGACY.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub state_type: Option<StateType>,
    /// STREAM state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<AirbyteStreamState>,
    /// GLOBAL state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub global: Option<AirbyteGlobalState>,
    /// LEGACY state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
    /// Records the source emitted for this state.
    #[serde(
        rename = "sourceStats",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub source_stats: Option<AirbyteStateStats>,
    /// Records the destination committed for this state.
    #[serde(
        rename = "destinationStats",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub destination_stats: Option<AirbyteStateStats>,
    /// Unknown fields.
    #[serde(flatten)]
    pub extra: Extra,
}

impl AirbyteStateMessage {
    /// The effective type: the declared one, or LEGACY when absent.
    pub fn effective_type(&self) -> StateType {
        self.state_type.unwrap_or_default()
    }

    /// A STREAM state for `descriptor`.
    pub fn stream(descriptor: StreamDescriptor, stream_state: Value) -> Self {
        Self {
            state_type: Some(StateType::Stream),
            stream: Some(AirbyteStreamState {
                stream_descriptor: descriptor,
                stream_state: Some(stream_state),
                extra: Extra::new(),
            }),
            global: None,
            data: None,
            source_stats: None,
            destination_stats: None,
            extra: Extra::new(),
        }
    }
}

/// `state.stream`, and one entry of `state.global.stream_states`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AirbyteStreamState {
    /// The stream this state belongs to.
    pub stream_descriptor: StreamDescriptor,
    /// The state blob.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_state: Option<Value>,
    /// Unknown fields.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `state.global`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AirbyteGlobalState {
    /// State shared by every stream (e.g. a CDC position).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shared_state: Option<Value>,
    /// Per-stream states.
    #[serde(default)]
    pub stream_states: Vec<AirbyteStreamState>,
    /// Unknown fields.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `sourceStats` / `destinationStats`. Counts are JSON numbers written with a point (`3.0`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct AirbyteStateStats {
    /// Records counted for this state.
    #[serde(
        rename = "recordCount",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub record_count: Option<f64>,
    /// Records rejected for this state.
    #[serde(
        rename = "rejectedRecordCount",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub rejected_record_count: Option<f64>,
    /// Unknown fields.
    #[serde(flatten)]
    pub extra: Extra,
}

/// LOG.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AirbyteLogMessage {
    /// Severity.
    pub level: LogLevel,
    /// Text.
    pub message: String,
    /// A stack trace, for exceptions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stack_trace: Option<String>,
    /// Unknown fields.
    #[serde(flatten)]
    pub extra: Extra,
}

/// The kind of a TRACE message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[allow(missing_docs, reason = "protocol enum values")]
pub enum TraceType {
    Error,
    Estimate,
    StreamStatus,
    Analytics,
}

/// TRACE.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AirbyteTraceMessage {
    /// Which of the optional fields below is set.
    #[serde(rename = "type")]
    pub trace_type: TraceType,
    /// When, in ms since the epoch. A float on the wire from most peers, an integer
    /// from some; kept as written.
    pub emitted_at: serde_json::Number,
    /// ERROR.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<AirbyteErrorTraceMessage>,
    /// ESTIMATE.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub estimate: Option<AirbyteEstimateTraceMessage>,
    /// STREAM_STATUS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_status: Option<AirbyteStreamStatusTraceMessage>,
    /// ANALYTICS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analytics: Option<AirbyteAnalyticsTraceMessage>,
    /// Unknown fields.
    #[serde(flatten)]
    pub extra: Extra,
}

/// TRACE ERROR.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AirbyteErrorTraceMessage {
    /// A message for the user.
    pub message: String,
    /// The internal cause.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub internal_message: Option<String>,
    /// A stack trace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stack_trace: Option<String>,
    /// Who is to blame.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_type: Option<FailureType>,
    /// The stream concerned, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_descriptor: Option<StreamDescriptor>,
    /// Unknown fields.
    #[serde(flatten)]
    pub extra: Extra,
}

/// TRACE ESTIMATE.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AirbyteEstimateTraceMessage {
    /// Stream name.
    pub name: String,
    /// `STREAM` or `SYNC`.
    #[serde(rename = "type")]
    pub estimate_type: String,
    /// Stream namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Estimated rows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub row_estimate: Option<i64>,
    /// Estimated bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub byte_estimate: Option<i64>,
    /// Unknown fields.
    #[serde(flatten)]
    pub extra: Extra,
}

/// A stream's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[allow(missing_docs, reason = "protocol enum values")]
pub enum StreamStatus {
    Started,
    Running,
    Complete,
    Incomplete,
}

/// TRACE STREAM_STATUS.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AirbyteStreamStatusTraceMessage {
    /// The stream.
    pub stream_descriptor: StreamDescriptor,
    /// Its status.
    pub status: StreamStatus,
    /// Why (e.g. rate limited).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasons: Option<Vec<Value>>,
    /// Unknown fields.
    #[serde(flatten)]
    pub extra: Extra,
}

/// TRACE ANALYTICS.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AirbyteAnalyticsTraceMessage {
    /// Event type.
    #[serde(rename = "type")]
    pub event_type: String,
    /// Event value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// Unknown fields.
    #[serde(flatten)]
    pub extra: Extra,
}

/// CONTROL.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AirbyteControlMessage {
    /// Always `CONNECTOR_CONFIG` in protocol 0.18.
    #[serde(rename = "type")]
    pub control_type: String,
    /// When, in ms since the epoch, kept as written.
    pub emitted_at: serde_json::Number,
    /// The updated config to store.
    #[serde(
        rename = "connectorConfig",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub connector_config: Option<AirbyteControlConnectorConfigMessage>,
    /// Unknown fields.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `control.connectorConfig`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AirbyteControlConnectorConfigMessage {
    /// The new config.
    pub config: Value,
    /// Unknown fields.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `SUCCEEDED` or `FAILED`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[allow(missing_docs, reason = "protocol enum values")]
pub enum ConnectionStatus {
    Succeeded,
    Failed,
}

/// CONNECTION_STATUS: the result of `check`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AirbyteConnectionStatus {
    /// Outcome.
    pub status: ConnectionStatus,
    /// Why, usually set on failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Unknown fields.
    #[serde(flatten)]
    pub extra: Extra,
}

/// SPEC: what a connector accepts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConnectorSpecification {
    /// The JSON Schema of the connector's config.
    #[serde(rename = "connectionSpecification")]
    pub connection_specification: Value,
    /// Docs link.
    #[serde(
        rename = "documentationUrl",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub documentation_url: Option<String>,
    /// Changelog link.
    #[serde(
        rename = "changelogUrl",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub changelog_url: Option<String>,
    /// (Deprecated) whether a source supports incremental.
    #[serde(
        rename = "supportsIncremental",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub supports_incremental: Option<bool>,
    /// Whether a destination supports normalization.
    #[serde(
        rename = "supportsNormalization",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub supports_normalization: Option<bool>,
    /// Whether a destination supports dbt.
    #[serde(
        rename = "supportsDBT",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub supports_dbt: Option<bool>,
    /// The destination sync modes a destination supports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub supported_destination_sync_modes: Option<Vec<crate::protocol::DestinationSyncMode>>,
    /// OAuth description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub advanced_auth: Option<Value>,
    /// The protocol version the connector speaks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol_version: Option<String>,
    /// Unknown fields.
    #[serde(flatten)]
    pub extra: Extra,
}

/// DESTINATION_CATALOG: the operations a destination supports (protocol 0.16+).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DestinationCatalog {
    /// The operations, as the destination describes them.
    #[serde(default)]
    pub operations: Vec<Value>,
    /// Unknown fields.
    #[serde(flatten)]
    pub extra: Extra,
}

/// The current time in ms since the epoch, as TRACE and CONTROL messages carry it.
pub fn emitted_at_now() -> serde_json::Number {
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64() * 1000.0)
        .unwrap_or(0.0);
    serde_json::Number::from_f64(millis).unwrap_or_else(|| 0.into())
}
