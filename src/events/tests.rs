//! The named events as a subscriber sees them: captured by a collecting layer
//! around a write into an in-memory destination (no process is started).

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use serde_json::json;
use tokio::sync::{mpsc, oneshot};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;

use crate::config::SecretMask;
use crate::executor::{Diagnostics, Executor, ExecutorError, Invocation, OutputEvent, Session};
use crate::protocol::{ConfiguredAirbyteCatalog, LineBatch};
use crate::write::WriteJob;

type Fields = BTreeMap<String, String>;

/// One event as it reached the subscriber, with the spans around it, outermost
/// first.
#[derive(Debug, Clone)]
struct Seen {
    target: String,
    level: Level,
    fields: Fields,
    spans: Vec<(String, Fields)>,
}

impl Seen {
    fn field(&self, name: &str) -> Option<&str> {
        self.fields.get(name).map(String::as_str)
    }

    fn span(&self, name: &str) -> Option<&Fields> {
        self.spans.iter().find(|(n, _)| n == name).map(|(_, f)| f)
    }
}

struct Record<'a>(&'a mut Fields);

impl Visit for Record<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
}

/// The fields a span was created with, kept in its extensions.
struct SpanFields(Fields);

#[derive(Clone, Default)]
struct Collect(Arc<Mutex<Vec<Seen>>>);

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Collect {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut fields = Fields::new();
        attrs.record(&mut Record(&mut fields));
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(SpanFields(fields));
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let mut fields = Fields::new();
        event.record(&mut Record(&mut fields));
        let spans = ctx
            .event_scope(event)
            .map(|scope| {
                scope
                    .from_root()
                    .map(|span| {
                        let fields = span
                            .extensions()
                            .get::<SpanFields>()
                            .map(|f| f.0.clone())
                            .unwrap_or_default();
                        (span.name().to_owned(), fields)
                    })
                    .collect()
            })
            .unwrap_or_default();
        self.0.lock().expect("events").push(Seen {
            target: event.metadata().target().to_owned(),
            level: *event.metadata().level(),
            fields,
            spans,
        });
    }
}

impl Collect {
    fn named(&self, event: &str) -> Vec<Seen> {
        self.0
            .lock()
            .expect("events")
            .iter()
            .filter(|e| e.field("event") == Some(event))
            .cloned()
            .collect()
    }

    fn all(&self) -> Vec<Seen> {
        self.0.lock().expect("events").clone()
    }
}

const SECRET: &str = "events-test-secret-7f3a";

/// A destination that echoes every STATE it is sent, and says a few things on
/// the way (its secret among them).
#[derive(Debug)]
struct EchoingDestination;

#[async_trait]
impl Executor for EchoingDestination {
    fn connector(&self) -> &str {
        "echoing-destination"
    }

    async fn run(&self, invocation: Invocation) -> Result<Session, ExecutorError> {
        let secrets = invocation.secrets();
        let diagnostics = Diagnostics::new(self.connector(), secrets.clone());
        let (input_tx, mut input_rx) = mpsc::channel::<LineBatch>(4);
        let (output_tx, output_rx) = mpsc::channel(16);
        let (abort_tx, _abort_rx) = oneshot::channel();
        let task = tokio::spawn(async move {
            diagnostics.note(format!("connecting with password {SECRET}"));
            let log = json!({"type": "LOG", "log": {"level": "WARN", "message": format!("slow, {SECRET}")}});
            diagnostics.note_protocol_line(log.to_string().as_bytes());
            while let Some(batch) = input_rx.recv().await {
                let mut echo = LineBatch::with_capacity(batch.byte_len());
                for line in batch.lines() {
                    if line.starts_with(br#"{"type":"STATE""#) {
                        echo.push_line(line);
                    }
                }
                if !echo.is_empty() && output_tx.send(OutputEvent::Lines(echo)).await.is_err() {
                    break;
                }
            }
            Ok(())
        });
        Ok(Session::from_task(
            self.connector(),
            secrets,
            Some(input_tx),
            output_rx,
            task,
            abort_tx,
        ))
    }
}

fn catalog() -> ConfiguredAirbyteCatalog {
    let stream = |name: &str, namespace: Option<&str>| {
        json!({
            "stream": {"name": name, "namespace": namespace, "json_schema": {},
                       "supported_sync_modes": ["full_refresh"]},
            "sync_mode": "full_refresh",
            "destination_sync_mode": "append"
        })
    };
    serde_json::from_value(
        json!({"streams": [stream("users", Some("public")), stream("orders", None)]}),
    )
    .expect("catalog")
}

fn input() -> Vec<u8> {
    let record = |stream: &str, namespace: Option<&str>, id: u64| {
        let mut record = json!({"stream": stream, "data": {"id": id}, "emitted_at": 1});
        if let Some(namespace) = namespace {
            record["namespace"] = json!(namespace);
        }
        json!({"type": "RECORD", "record": record}).to_string()
    };
    let state = json!({"type": "STATE", "state": {"type": "STREAM", "stream": {
        "stream_descriptor": {"name": "users", "namespace": "public"},
        "stream_state": {"cursor": 2}}}});
    [
        record("users", Some("public"), 1),
        record("orders", None, 1),
        record("users", Some("public"), 2),
        state.to_string(),
        record("orders", None, 2),
    ]
    .map(|line| line + "\n")
    .concat()
    .into_bytes()
}

/// Runs a write of [`input`] into [`EchoingDestination`] with every event
/// collected.
async fn collected_write() -> Collect {
    let collect = Collect::default();
    let subscriber = tracing_subscriber::registry().with(collect.clone());
    let _default = tracing::subscriber::set_default(subscriber);
    let schema = json!({"properties": {"password": {"type": "string", "airbyte_secret": true}}});
    let secrets = SecretMask::new(&schema, &json!({ "password": SECRET }));
    let result = WriteJob::new(
        &EchoingDestination,
        json!({ "password": SECRET }),
        catalog(),
    )
    .secrets(secrets)
    .input(std::io::Cursor::new(input()))
    .run()
    .await
    .expect("the write succeeds");
    assert_eq!(result.records_confirmed, 4, "{result:?}");
    collect
}

fn stream_span(seen: &Seen) -> (Option<&str>, Option<&str>) {
    let fields = seen.span("stream");
    (
        fields.and_then(|f| f.get("stream")).map(String::as_str),
        fields.and_then(|f| f.get("namespace")).map(String::as_str),
    )
}

// A current-thread runtime: the spawned tasks run on the thread whose default
// subscriber collects.
#[tokio::test(flavor = "current_thread")]
async fn a_write_commits_states_inside_the_stream_span() {
    let collect = collected_write().await;
    let committed = collect.named("state_committed");
    assert_eq!(committed.len(), 1, "{:#?}", collect.all());
    let committed = &committed[0];
    assert_eq!(committed.level, Level::DEBUG);
    assert_eq!(stream_span(committed), (Some("users"), Some("public")));
    assert_eq!(
        committed.span("write").and_then(|f| f.get("destination")),
        Some(&"echoing-destination".to_owned())
    );
    assert_eq!(committed.field("stream"), Some("users"));
    assert_eq!(committed.field("namespace"), Some("public"));
    assert_eq!(committed.field("states"), Some("1"));
    assert_eq!(committed.field("records"), Some("2"));

    let confirmed = collect.named("records_confirmed");
    let by = |by: &str| -> Vec<(Option<&str>, Option<&str>)> {
        confirmed
            .iter()
            .filter(|e| e.field("by") == Some(by))
            .map(|e| (e.field("count"), stream_span(e).0))
            .collect()
    };
    // A state confirms every record sent before it, of every stream (the
    // destination has committed them); the clean completion confirms the rest.
    assert_eq!(
        by("state"),
        [(Some("2"), Some("users")), (Some("1"), Some("orders"))]
    );
    assert_eq!(by("completion"), [(Some("1"), Some("orders"))]);
}

#[tokio::test(flavor = "current_thread")]
async fn each_stream_starts_and_completes_in_its_own_span() {
    let collect = collected_write().await;
    let started: Vec<_> = collect
        .named("stream_started")
        .iter()
        .map(|e| stream_span(e).0.map(str::to_owned))
        .collect();
    assert_eq!(
        started,
        [Some("users".to_owned()), Some("orders".to_owned())]
    );
    let completed = collect.named("stream_completed");
    assert_eq!(completed.len(), 2, "{:#?}", collect.all());
    for event in &completed {
        assert_eq!(event.level, Level::INFO);
        assert_eq!(event.field("sent"), Some("2"));
        assert_eq!(event.field("confirmed"), Some("2"));
    }
    let finished = collect.named("write_finished");
    assert_eq!(finished.len(), 1);
    assert_eq!(finished[0].field("completed"), Some("true"));
    assert_eq!(finished[0].spans.len(), 1, "in the write span only");
}

#[tokio::test(flavor = "current_thread")]
async fn connector_lines_are_masked_events_with_the_connector_inside_the_write() {
    let collect = collected_write().await;
    let lines = collect.named("connector_log");
    assert_eq!(lines.len(), 2, "{:#?}", collect.all());
    for line in &lines {
        assert_eq!(line.target, "airlock::connector");
        assert_eq!(line.field("connector"), Some("echoing-destination"));
        assert!(line.span("write").is_some(), "{line:?}");
    }
    assert_eq!(
        lines[0].field("message"),
        Some(format!("connecting with password {}", crate::config::MASK).as_str())
    );
    assert_eq!(
        lines[0].level,
        Level::INFO,
        "stderr text has no level of its own"
    );
    assert_eq!(
        lines[1].field("message"),
        Some(format!("slow, {}", crate::config::MASK).as_str())
    );
    assert_eq!(lines[1].level, Level::WARN, "the LOG message's level");
    for event in collect.all() {
        let text = format!("{event:?}");
        assert!(!text.contains(SECRET), "{text}");
    }
}

#[test]
fn sync_ids_are_short_hex_and_differ() {
    let a = super::new_sync_id();
    let b = super::new_sync_id();
    assert_eq!(a.len(), 12, "{a}");
    assert!(a.chars().all(|c| c.is_ascii_hexdigit()), "{a}");
    assert_ne!(a, b);
}
