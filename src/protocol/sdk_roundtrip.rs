//! What the host writes is what the plugin SDK reads, and back.
//!
//! The host builds a configured catalog and an input batch with its own types and
//! serialises them; the SDK reads them through the entry points a plugin really
//! runs ([`BatchWriter::open`] parses the catalog, [`BatchWriter::write_batch`]
//! the lines, borrowed and zero-copy); a probe destination records what it was
//! handed; and the host parses what the SDK writes back (echoed states, logs,
//! TRACE ERRORs). Every comparison is between JSON values.

use std::sync::{Arc, Mutex};

use airlock_plugin_sdk::component::BatchWriter;
use airlock_plugin_sdk::message::{write_connection_status, write_log, write_trace_error};
use airlock_plugin_sdk::{
    ConfiguredCatalog, Context, Destination, DestinationError, Emitter, Record, RecordWriter,
};
use serde_json::{Number, Value, json};

use super::*;

/// One record as the SDK handed it to the destination.
#[derive(Debug, Clone, PartialEq)]
struct Seen {
    stream: String,
    namespace: Option<String>,
    data: Value,
    emitted_at: i64,
    meta: Option<Value>,
    stream_index: usize,
}

/// What the probe destination was given.
#[derive(Debug, Default)]
struct Probe {
    catalog: Option<ConfiguredCatalog>,
    records: Vec<Seen>,
    completed: Vec<usize>,
    closed: Option<bool>,
}

type Shared = Arc<Mutex<Probe>>;

struct ProbeDestination(Shared);
struct ProbeWriter(Shared);

fn lock(probe: &Shared) -> std::sync::MutexGuard<'_, Probe> {
    probe
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Destination for ProbeDestination {
    fn spec(&self) -> Value {
        json!({"connectionSpecification": {}})
    }

    fn check(&self, _config: &Value, _ctx: &Context) -> Result<(), String> {
        Ok(())
    }

    fn open(
        &self,
        _config: &Value,
        catalog: &ConfiguredCatalog,
        _ctx: &Context,
    ) -> Result<Box<dyn RecordWriter>, DestinationError> {
        lock(&self.0).catalog = Some(catalog.clone());
        Ok(Box::new(ProbeWriter(self.0.clone())))
    }
}

impl RecordWriter for ProbeWriter {
    fn write(
        &mut self,
        record: &Record<'_>,
        _out: &mut Emitter<'_>,
    ) -> Result<(), DestinationError> {
        let parse = |raw: &str| serde_json::from_str::<Value>(raw).expect("raw JSON from the SDK");
        lock(&self.0).records.push(Seen {
            stream: record.stream.to_string(),
            namespace: record.namespace.as_ref().map(ToString::to_string),
            data: parse(record.data.get()),
            emitted_at: record.emitted_at,
            meta: record.meta.map(|meta| parse(meta.get())),
            stream_index: record.stream_index(),
        });
        Ok(())
    }

    fn flush(&mut self) -> Result<(), DestinationError> {
        Ok(())
    }

    fn stream_complete(&mut self, stream_index: usize) -> Result<(), DestinationError> {
        lock(&self.0).completed.push(stream_index);
        Ok(())
    }

    fn close(self: Box<Self>, clean: bool) -> Result<(), DestinationError> {
        lock(&self.0).closed = Some(clean);
        Ok(())
    }
}

fn extra(pairs: Value) -> Extra {
    match pairs {
        Value::Object(map) => map,
        other => panic!("not an object: {other}"),
    }
}

fn paths(paths: &[&[&str]]) -> Vec<Vec<String>> {
    paths
        .iter()
        .map(|path| path.iter().map(ToString::to_string).collect())
        .collect()
}

/// A configured stream built with the host's types.
fn configured(
    name: &str,
    namespace: Option<&str>,
    sync_mode: SyncMode,
    destination_sync_mode: DestinationSyncMode,
) -> ConfiguredAirbyteStream {
    ConfiguredAirbyteStream {
        stream: AirbyteStream {
            name: name.into(),
            json_schema: json!({"type": "object", "properties": {"id": {"type": "integer"}}}),
            supported_sync_modes: vec![SyncMode::FullRefresh, SyncMode::Incremental],
            source_defined_cursor: None,
            default_cursor_field: None,
            source_defined_primary_key: None,
            namespace: namespace.map(Into::into),
            is_resumable: None,
            is_file_based: None,
            extra: Extra::new(),
        },
        sync_mode,
        cursor_field: None,
        destination_sync_mode,
        primary_key: None,
        generation_id: None,
        minimum_generation_id: None,
        sync_id: None,
        extra: Extra::new(),
    }
}

/// Every sync mode and destination sync mode, namespaces (none, two for one name),
/// composite primary keys, cursors, generations and unknown fields at each level.
fn host_catalog() -> ConfiguredAirbyteCatalog {
    use DestinationSyncMode as D;
    let mut users = configured(
        "users",
        Some("public"),
        SyncMode::Incremental,
        D::AppendDedup,
    );
    users.primary_key = Some(paths(&[&["id"], &["org", "id"]]));
    users.cursor_field = Some(vec!["updated_at".into()]);
    users.generation_id = Some(3);
    users.minimum_generation_id = Some(2);
    users.sync_id = Some(99);
    users.extra = extra(json!({"x_configured": {"kept": [1, 2]}}));
    users.stream.source_defined_cursor = Some(true);
    users.stream.default_cursor_field = Some(vec!["updated_at".into()]);
    users.stream.source_defined_primary_key = Some(paths(&[&["id"]]));
    users.stream.is_resumable = Some(true);
    users.stream.is_file_based = Some(false);
    users.stream.extra = extra(json!({"x_stream": "s"}));
    let mut events = configured("events", Some("public"), SyncMode::Incremental, D::Update);
    events.primary_key = Some(paths(&[&["id"]]));
    events.cursor_field = Some(vec!["at".into()]);
    let mut gone = configured("gone", None, SyncMode::FullRefresh, D::SoftDelete);
    gone.primary_key = Some(Vec::new());
    ConfiguredAirbyteCatalog {
        streams: vec![
            users,
            configured("users", Some("other"), SyncMode::FullRefresh, D::Overwrite),
            configured("products", None, SyncMode::FullRefresh, D::Append),
            events,
            gone,
        ],
        extra: extra(json!({"x_catalog": true})),
    }
}

fn record(stream: &str, namespace: Option<&str>, data: Value, emitted_at: i64) -> AirbyteMessage {
    Payload::Record(AirbyteRecordMessage {
        namespace: namespace.map(Into::into),
        stream: stream.into(),
        data,
        emitted_at,
        meta: None,
        file_reference: None,
        extra: Extra::new(),
    })
    .into()
}

fn trace(trace_type: TraceType) -> AirbyteTraceMessage {
    AirbyteTraceMessage {
        trace_type,
        emitted_at: Number::from_f64(1_795_600_668_302.398).expect("finite"),
        error: None,
        estimate: None,
        stream_status: None,
        analytics: None,
        extra: Extra::new(),
    }
}

/// The input batch, built with the host's types: records of every catalog stream
/// and of one outside it, STREAM / GLOBAL / LEGACY states, stream statuses and an
/// error trace.
fn host_messages() -> Vec<AirbyteMessage> {
    let mut first = record(
        "users",
        Some("public"),
        json!({"id": 1, "org": {"id": 7}, "name": "sp\u{e9}cial\n\r\u{2028}", "tags": [true, null, 1.5]}),
        1_795_600_668_304,
    );
    if let Payload::Record(r) = &mut first.payload {
        r.meta = Some(AirbyteRecordMessageMeta {
            changes: Some(vec![AirbyteRecordMessageMetaChange {
                field: "name".into(),
                change: ChangeKind::Truncated,
                reason: "SOURCE_FIELD_SIZE_LIMITATION".into(),
                extra: Extra::new(),
            }]),
            extra: Extra::new(),
        });
        r.extra = extra(json!({"x_record": 1}));
    }
    first.extra = extra(json!({"x_top": "level"}));

    let mut users_state = AirbyteStateMessage::stream(
        StreamDescriptor::with_namespace("users", Some("public".into())),
        json!({"updated_at": "2024-01-01T00:00:00Z"}),
    );
    users_state.source_stats = Some(AirbyteStateStats {
        record_count: Some(2.0),
        rejected_record_count: None,
        extra: Extra::new(),
    });
    users_state.extra = extra(json!({"id": 7}));

    let global = AirbyteStateMessage {
        state_type: Some(StateType::Global),
        stream: None,
        global: Some(AirbyteGlobalState {
            shared_state: Some(json!({"lsn": 42})),
            stream_states: vec![AirbyteStreamState {
                stream_descriptor: StreamDescriptor::new("products"),
                stream_state: Some(json!({"cursor": 1})),
                extra: Extra::new(),
            }],
            extra: Extra::new(),
        }),
        data: None,
        source_stats: None,
        destination_stats: None,
        extra: Extra::new(),
    };
    let legacy = AirbyteStateMessage {
        state_type: None,
        stream: None,
        global: None,
        data: Some(json!({"legacy": ["blob"]})),
        source_stats: None,
        destination_stats: None,
        extra: Extra::new(),
    };

    let mut complete = trace(TraceType::StreamStatus);
    complete.stream_status = Some(AirbyteStreamStatusTraceMessage {
        stream_descriptor: StreamDescriptor::new("products"),
        status: StreamStatus::Complete,
        reasons: None,
        extra: Extra::new(),
    });
    let mut complete_other = complete.clone();
    if let Some(status) = &mut complete_other.stream_status {
        status.stream_descriptor = StreamDescriptor::with_namespace("users", Some("other".into()));
    }
    let mut error = trace(TraceType::Error);
    error.error = Some(AirbyteErrorTraceMessage {
        message: "a source hiccup".into(),
        internal_message: None,
        stack_trace: None,
        failure_type: Some(FailureType::TransientError),
        stream_descriptor: Some(StreamDescriptor::new("products")),
        extra: Extra::new(),
    });

    vec![
        first,
        record(
            "users",
            Some("public"),
            json!({"id": 2, "org": {"id": 7}}),
            2,
        ),
        record("users", Some("other"), json!({"id": 3}), 3),
        record("products", None, json!({"id": 4, "price": "9.99"}), 4),
        record("nowhere", None, json!({"id": 5}), 5),
        users_state.into(),
        record("events", Some("public"), json!({"id": 6, "at": 1}), 6),
        record("gone", None, json!({}), 7),
        Payload::Trace(complete).into(),
        Payload::Trace(complete_other).into(),
        Payload::Trace(error).into(),
        global.into(),
        AirbyteMessage::log(LogLevel::Info, "a source log"),
        legacy.into(),
    ]
}

fn output_messages(out: &[u8]) -> Vec<AirbyteMessage> {
    out.split(|b| *b == b'\n')
        .filter(|line| !line.is_empty())
        .map(|line| {
            parse_message(line).unwrap_or_else(|e| {
                panic!(
                    "the host cannot parse {}: {e}",
                    String::from_utf8_lossy(line)
                )
            })
        })
        .collect()
}

fn to_value(value: &impl serde::Serialize) -> Value {
    serde_json::to_value(value).expect("serialises")
}

#[test]
fn the_sdk_reads_the_catalog_and_batch_the_host_writes_and_the_host_reads_its_echoes() {
    let catalog = host_catalog();
    let catalog_json = serde_json::to_vec(&catalog).expect("catalog JSON");
    let messages = host_messages();
    let batch: Vec<u8> = messages
        .iter()
        .flat_map(|m| (m.to_line() + "\n").into_bytes())
        .collect();

    let probe = Shared::default();
    let writer = BatchWriter::open(
        &ProbeDestination(probe.clone()),
        b"{}",
        &catalog_json,
        &Context::native(),
    )
    .expect("the SDK opens the host's catalog");
    let out = writer.write_batch(&batch).expect("write-batch");
    let tail = writer.close().expect("close");
    assert!(tail.is_empty(), "{}", String::from_utf8_lossy(&tail));

    let probe = lock(&probe);
    // The catalog: the very value the host wrote, read back and written again.
    let seen = probe.catalog.as_ref().expect("opened");
    assert_eq!(to_value(seen), to_value(&catalog));
    assert_eq!(
        serde_json::from_slice::<Value>(&catalog_json).expect("json"),
        to_value(seen)
    );
    assert_eq!(seen, &catalog);

    // The records: every catalog stream's, with the stream found by name and
    // namespace; the one outside the catalog skipped.
    let expected: Vec<Seen> = messages
        .iter()
        .filter_map(|m| match &m.payload {
            Payload::Record(r) => {
                let descriptor =
                    StreamDescriptor::with_namespace(r.stream.clone(), r.namespace.clone());
                let index = catalog
                    .descriptors()
                    .iter()
                    .position(|d| *d == descriptor)?;
                Some(Seen {
                    stream: r.stream.clone(),
                    namespace: r.namespace.clone(),
                    data: r.data.clone(),
                    emitted_at: r.emitted_at,
                    meta: r.meta.as_ref().map(to_value),
                    stream_index: index,
                })
            }
            _ => None,
        })
        .collect();
    assert_eq!(probe.records, expected);
    assert_eq!(probe.records.len(), 6);
    // COMPLETE reached the writer for `products` (index 2) and `other.users` (1).
    assert_eq!(probe.completed, [2, 1]);
    assert_eq!(probe.closed, Some(true));

    // The output, parsed by the host: the unknown stream's warning, then each
    // state exactly as sent plus `destinationStats`, in order.
    let output = output_messages(&out);
    let (logs, states): (Vec<_>, Vec<_>) = output
        .iter()
        .partition(|m| matches!(m.payload, Payload::Log(_)));
    let [log] = logs.as_slice() else {
        panic!("one warning expected: {logs:?}")
    };
    let Payload::Log(log) = &log.payload else {
        unreachable!("partitioned on LOG")
    };
    assert_eq!(log.level, LogLevel::Warn);
    assert!(log.message.contains("nowhere"), "{}", log.message);

    let sent: Vec<&AirbyteMessage> = messages
        .iter()
        .filter(|m| matches!(m.payload, Payload::State(_)))
        .collect();
    assert_eq!(states.len(), sent.len());
    // users/public: its 2 records; GLOBAL: the 2 records since that state (the
    // one outside the catalog is not counted); LEGACY: none since the GLOBAL.
    for ((echo, sent), count) in states.iter().zip(&sent).zip([2.0, 2.0, 0.0]) {
        let mut echo = (*echo).clone();
        let Payload::State(state) = &mut echo.payload else {
            panic!("not a state: {echo:?}")
        };
        let stats = state.destination_stats.take().expect("destinationStats");
        assert_eq!(stats.record_count, Some(count), "{}", sent.to_line());
        assert_eq!(to_value(&echo), to_value(*sent));
        assert_eq!(&echo, *sent);
    }
}

#[test]
fn the_host_reads_every_line_the_sdk_writes_losslessly() {
    let mut out = Vec::new();
    let levels = [
        LogLevel::Fatal,
        LogLevel::Error,
        LogLevel::Warn,
        LogLevel::Info,
        LogLevel::Debug,
        LogLevel::Trace,
    ];
    for level in levels {
        write_log(&mut out, level, &format!("{level} line\nwith a break"));
    }
    let failures = [
        FailureType::SystemError,
        FailureType::ConfigError,
        FailureType::TransientError,
    ];
    for failure in failures {
        write_trace_error(
            &mut out,
            &DestinationError::new(failure, format!("{failure}!")),
        );
    }
    write_connection_status(&mut out, &Ok(Some("fine".into())));
    write_connection_status(&mut out, &Err("no".into()));

    let raw: Vec<Value> = out
        .split(|b| *b == b'\n')
        .filter(|line| !line.is_empty())
        .map(|line| serde_json::from_slice(line).expect("JSON"))
        .collect();
    let parsed = output_messages(&out);
    assert_eq!(parsed.len(), raw.len());
    for (message, raw) in parsed.iter().zip(&raw) {
        // Nothing the SDK writes is lost or changed by the host's model.
        assert_eq!(&to_value(message), raw);
    }
    for (message, level) in parsed.iter().zip(levels) {
        let Payload::Log(log) = &message.payload else {
            panic!("a LOG: {message:?}")
        };
        assert_eq!(log.level, level);
        assert_eq!(
            log.message,
            format!("{} line\nwith a break", level.as_str())
        );
    }
    for (message, failure) in parsed[levels.len()..].iter().zip(failures) {
        let Payload::Trace(trace) = &message.payload else {
            panic!("a TRACE: {message:?}")
        };
        assert_eq!(trace.trace_type, TraceType::Error);
        let error = trace.error.as_ref().expect("error");
        assert_eq!(error.failure_type, Some(failure));
        assert_eq!(error.message, format!("{failure}!"));
    }
    let statuses: Vec<_> = parsed[levels.len() + failures.len()..]
        .iter()
        .map(|m| match &m.payload {
            Payload::ConnectionStatus(s) => (s.status, s.message.clone()),
            other => panic!("a CONNECTION_STATUS: {other:?}"),
        })
        .collect();
    assert_eq!(
        statuses,
        [
            (ConnectionStatus::Succeeded, Some("fine".into())),
            (ConnectionStatus::Failed, Some("no".into()))
        ]
    );
}
