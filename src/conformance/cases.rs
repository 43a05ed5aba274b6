//! The conformance cases, in the order they run.
//!
//! Owns each case's input, what it checks and its verdict. Writes go through the
//! write loop (which refuses states echoed out of order or never sent); the two
//! cases the loop would hide from the destination — a malformed line, a cancel —
//! drive an executor session directly.

use std::collections::BTreeMap;
use std::time::Duration;

use futures_util::future::BoxFuture;
use serde_json::{Value, json};

use super::input::{Messages, TestStream, catalog, declared_only};
use super::reader::{Place, ReaderFormat, canonical};
use super::{Outcome, Suite};
use crate::executor::{Invocation, OutputEvent};
use crate::protocol::{
    ConfiguredAirbyteCatalog, ConnectionStatus, LineBatch, OutputLine, Payload, classify_output,
};
use crate::write::{WriteError, WriteFailure, WriteJob, WriteOptions, WriteResult};

/// A case's verdict.
pub(super) struct Verdict {
    pub outcome: Outcome,
    pub detail: String,
    pub log_tail: Vec<String>,
}

fn pass(detail: impl Into<String>) -> Verdict {
    Verdict {
        outcome: Outcome::Pass,
        detail: detail.into(),
        log_tail: Vec::new(),
    }
}

fn fail(detail: impl Into<String>) -> Verdict {
    Verdict {
        outcome: Outcome::Fail,
        detail: detail.into(),
        log_tail: Vec::new(),
    }
}

fn not_applicable(detail: impl Into<String>) -> Verdict {
    Verdict {
        outcome: Outcome::NotApplicable,
        detail: detail.into(),
        log_tail: Vec::new(),
    }
}

/// A failed write as a verdict, with the destination's log tail.
fn write_failed(what: &str, error: &WriteError) -> Verdict {
    let log_tail = match &error.cause {
        WriteFailure::Destination(e) => e.log_tail().map(|t| t.0.clone()).unwrap_or_default(),
        _ => Vec::new(),
    };
    Verdict {
        outcome: Outcome::Fail,
        detail: format!(
            "{what}: {error} ({} of {} states confirmed before it)",
            error.partial.states_confirmed, error.partial.states_sent
        ),
        log_tail,
    }
}

/// One case.
pub(super) struct Case {
    pub name: &'static str,
    pub checks: &'static str,
    pub run: for<'s, 'e> fn(&'s Suite<'e>) -> BoxFuture<'s, Verdict>,
}

macro_rules! case {
    ($name:literal, $checks:literal, $body:ident) => {
        Case {
            name: $name,
            checks: $checks,
            run: |suite| Box::pin($body(suite)),
        }
    };
}

/// Every case, in order.
pub(super) const ALL: &[Case] = &[
    case!("spec", "spec is a valid JSON Schema of an object", spec),
    case!(
        "check-good-config",
        "check with the test config returns SUCCEEDED",
        check_good
    ),
    case!(
        "check-bad-config",
        "check with a config its spec rejects returns FAILED, not a crash",
        check_bad
    ),
    case!(
        "states-in-order",
        "3 interleaved streams with STREAM states: echoes come in order, destinationStats agree",
        states_in_order
    ),
    case!(
        "last-state-echoed",
        "the state after the last records is echoed, so every record is confirmed",
        last_state
    ),
    case!(
        "large-batch",
        "many ~300-byte records in one run are all confirmed",
        large_batch
    ),
    case!(
        "large-record",
        "one record of 10 MiB is accepted and written whole",
        large_record
    ),
    case!(
        "line-breaks",
        "values with \\n, \\r, U+2028 and U+2029 are written unchanged",
        line_breaks
    ),
    case!(
        "odd-stream-names",
        "camelCase, ALL_CAPS, spécial, operator+1 and a leading digit are written",
        odd_names
    ),
    case!(
        "namespaces",
        "no namespace, a namespace, and one stream name in two namespaces stay apart",
        namespaces
    ),
    case!(
        "fields-not-in-schema",
        "fields the schema does not declare are kept",
        extra_fields
    ),
    case!(
        "empty-input",
        "a write with no messages at all ends cleanly",
        empty_input
    ),
    case!(
        "malformed-line",
        "a line that is not an Airbyte message is skipped, not fatal",
        malformed_line
    ),
    case!(
        "append-then-overwrite",
        "append adds rows to earlier ones; overwrite replaces them",
        append_then_overwrite
    ),
    case!(
        "append-dedup-composite-key",
        "append_dedup with a two-column primary key keeps each key's latest record",
        append_dedup
    ),
    case!(
        "stream-and-global-states",
        "STREAM states and GLOBAL states are both echoed",
        stream_and_global
    ),
    case!(
        "cancelled-mid-stream",
        "a write cancelled mid-stream stops promptly and the next write succeeds",
        cancelled
    ),
];

impl Suite<'_> {
    /// The config of `case` and the place it writes to (with a reader, a fresh
    /// folder under the local root or a fresh PostgreSQL schema, emptied now;
    /// without, the config as given).
    fn case_config(&self, case: &str) -> (Value, Option<Place>) {
        let mut config = self.config.clone();
        let Some(reader) = &self.reader else {
            return (config, None);
        };
        let (value, schema) = match reader.format {
            ReaderFormat::PostgresTables => {
                // The config's own schema (when not `public`) prefixes the case
                // schemas, so that two suites on one server stay apart.
                let prefix = match config.get(&reader.path_field).and_then(Value::as_str) {
                    Some(schema) if !schema.is_empty() && schema != "public" => schema,
                    _ => "airlock_conformance",
                };
                let schema = format!("{prefix}_{}", case.replace('-', "_"));
                (json!(schema), Some(schema))
            }
            _ => (json!(format!("/local/conformance/{case}")), None),
        };
        if let Some(map) = config.as_object_mut() {
            map.insert(reader.path_field.clone(), value);
        }
        let place = match schema {
            Some(schema) => Place::Postgres {
                config: config.clone(),
                schema,
            },
            None => Place::Folder(self.local_root.join("conformance").join(case)),
        };
        // A place that cannot be emptied shows up as a failed read-back.
        let _ = place.reset(&[]);
        (config, Some(place))
    }

    /// The secrets of `config`, from the destination's spec.
    async fn secrets(&self, config: &Value) -> crate::config::SecretMask {
        let spec = self.executor.spec().await;
        crate::config::SecretMask::for_connector(self.executor.connector(), spec.as_ref(), config)
    }

    async fn write(
        &self,
        config: &Value,
        catalog: ConfiguredAirbyteCatalog,
        input: Vec<u8>,
    ) -> Result<WriteResult, WriteError> {
        WriteJob::new(self.executor, config.clone(), catalog)
            .options(WriteOptions {
                stall_timeout: Duration::from_secs(120),
                ..WriteOptions::default()
            })
            .input(std::io::Cursor::new(input))
            .run()
            .await
    }

    /// [`Suite::write`], which must also confirm every state and record; else the
    /// failing verdict.
    async fn write_confirmed(
        &self,
        config: &Value,
        catalog: ConfiguredAirbyteCatalog,
        input: Vec<u8>,
    ) -> Result<WriteResult, Verdict> {
        let result = self
            .write(config, catalog, input)
            .await
            .map_err(|error| write_failed("the write failed", &error))?;
        all_confirmed(&result).map_err(fail)?;
        Ok(result)
    }

    /// The destination's `supported_destination_sync_modes`, when its spec lists them.
    async fn supported_modes(&self) -> Option<Vec<String>> {
        let spec = self.executor.spec().await.ok()?;
        let spec = serde_json::to_value(spec).ok()?;
        spec.get("supported_destination_sync_modes")?
            .as_array()
            .map(|modes| {
                modes
                    .iter()
                    .filter_map(|m| m.as_str().map(str::to_owned))
                    .collect()
            })
    }

    /// Reads back each stream's rows and compares them with what was sent, as
    /// multisets (streams sharing a file are compared together). A typed reader
    /// sees only the fields the test schema declares, so only those are compared.
    fn verify_rows(
        &self,
        place: &Place,
        expected: &[(&TestStream, Vec<Value>)],
    ) -> Result<String, String> {
        let Some(reader) = &self.reader else {
            return Err("no reader".into());
        };
        let typed = reader.typed();
        let mut by_place: BTreeMap<String, (Vec<String>, Vec<&TestStream>)> = BTreeMap::new();
        for (stream, rows) in expected {
            let at = reader.location(place, &stream.name, stream.namespace.as_deref());
            let entry = by_place.entry(at).or_default();
            entry.0.extend(rows.iter().map(|row| {
                let row = if typed {
                    declared_only(row)
                } else {
                    row.clone()
                };
                canonical(&row).to_string()
            }));
            entry.1.push(stream);
        }
        let mut total = 0;
        for (at, (mut want, streams)) in by_place {
            let first = streams[0];
            let mut got: Vec<String> = reader
                .read_at(place, &first.name, first.namespace.as_deref())?
                .iter()
                .map(|row| canonical(row).to_string())
                .collect();
            want.sort();
            got.sort();
            if want != got {
                let missing = want.iter().find(|w| !got.contains(w));
                let unexpected = got.iter().find(|g| !want.contains(g));
                let shorten = |s: &String| s.chars().take(120).collect::<String>();
                return Err(format!(
                    "{at}: expected {} rows, found {}{}{}",
                    want.len(),
                    got.len(),
                    missing
                        .map(|m| format!("; missing {}", shorten(m)))
                        .unwrap_or_default(),
                    unexpected
                        .map(|u| format!("; unexpected {}", shorten(u)))
                        .unwrap_or_default(),
                ));
            }
            total += got.len();
        }
        Ok(format!("{total} rows read back and equal to what was sent"))
    }

    /// Writes `streams` with `rows` each (a STREAM state after each stream's
    /// records), checks every record is confirmed, and reads them back. Without
    /// a reader the verdict is `not applicable` if reading back is the point.
    async fn write_and_verify(
        &self,
        case: &str,
        streams: &[(TestStream, Vec<Value>)],
        readback_is_the_point: bool,
    ) -> Verdict {
        let (config, folder) = self.case_config(case);
        // Namespaces go where the place puts them (PostgreSQL: a schema of the case's own).
        let streams: Vec<(TestStream, Vec<Value>)> = streams
            .iter()
            .map(|(stream, rows)| {
                let mut stream = stream.clone();
                if let (Some(place), Some(ns)) = (&folder, &stream.namespace) {
                    stream.namespace = Some(place.namespace(ns));
                }
                (stream, rows.clone())
            })
            .collect();
        if let Some(place) = &folder {
            let namespaces: Vec<String> = streams
                .iter()
                .filter_map(|(s, _)| s.namespace.clone())
                .collect();
            if let Err(why) = place.reset(&namespaces) {
                return fail(why);
            }
        }
        let mut input = Messages::new();
        for (stream, rows) in &streams {
            for row in rows {
                input.record(stream, row);
            }
            input.stream_state(stream, rows.len() as u64);
        }
        let owned: Vec<TestStream> = streams.iter().map(|(s, _)| s.clone()).collect();
        let result = match self
            .write_confirmed(&config, catalog(&owned), input.into_bytes())
            .await
        {
            Ok(result) => result,
            Err(verdict) => return verdict,
        };
        let confirmed = format!("{} records confirmed", result.records_confirmed);
        match folder {
            Some(folder) => {
                let expected: Vec<(&TestStream, Vec<Value>)> =
                    streams.iter().map(|(s, rows)| (s, rows.clone())).collect();
                match self.verify_rows(&folder, &expected) {
                    Ok(read) => pass(format!("{confirmed}; {read}")),
                    Err(why) => fail(why),
                }
            }
            None if readback_is_the_point => not_applicable(format!(
                "{confirmed}, but the rows cannot be read back: the plugin declares no reader \
                 (x-airlock-conformance.reader in its spec, or a reader given to the suite)"
            )),
            None => pass(format!("{confirmed} (rows not read back: no reader)")),
        }
    }
}

/// Every state echoed, every record confirmed.
fn all_confirmed(result: &WriteResult) -> Result<(), String> {
    if result.states_confirmed != result.states_sent {
        return Err(format!(
            "{} of {} states echoed; the last one was not, so {} of {} records are unconfirmed",
            result.states_confirmed,
            result.states_sent,
            result.records_sent - result.records_confirmed,
            result.records_sent
        ));
    }
    if result.records_confirmed != result.records_sent {
        return Err(format!(
            "{} of {} records confirmed",
            result.records_confirmed, result.records_sent
        ));
    }
    Ok(())
}

fn rows(n: u64, extra: impl Fn(u64) -> Value) -> Vec<Value> {
    (1..=n)
        .map(|id| {
            let mut row = json!({"id": id});
            if let (Some(map), Value::Object(more)) = (row.as_object_mut(), extra(id)) {
                map.extend(more);
            }
            row
        })
        .collect()
}

async fn spec(s: &Suite<'_>) -> Verdict {
    let spec = match s.executor.spec().await {
        Ok(spec) => spec,
        Err(error) => {
            return Verdict {
                outcome: Outcome::Fail,
                detail: format!("spec failed: {error}"),
                log_tail: error.log_tail().map(|t| t.0.clone()).unwrap_or_default(),
            };
        }
    };
    let schema = &spec.connection_specification;
    if let Err(error) = jsonschema::meta::validate(schema) {
        return fail(format!(
            "connectionSpecification is not a valid JSON Schema: {error} at {}",
            error.instance_path()
        ));
    }
    if let Err(error) = jsonschema::validator_for(schema) {
        return fail(format!("connectionSpecification does not compile: {error}"));
    }
    if schema.get("type").and_then(Value::as_str) != Some("object") {
        return fail("connectionSpecification must describe an object (\"type\": \"object\")");
    }
    let properties = schema
        .get("properties")
        .and_then(Value::as_object)
        .map_or(0, |p| p.len());
    pass(format!(
        "a valid JSON Schema of an object with {properties} properties"
    ))
}

async fn check_good(s: &Suite<'_>) -> Verdict {
    let (config, _) = s.case_config("check-good-config");
    if let Ok(spec) = s.executor.spec().await
        && let Err(error) = crate::config::validate(
            s.executor.connector(),
            &spec.connection_specification,
            &config,
        )
    {
        return fail(format!("the test config does not match the spec: {error}"));
    }
    match s.executor.check(&config, &s.secrets(&config).await).await {
        Ok(status) if status.status == ConnectionStatus::Succeeded => pass("SUCCEEDED"),
        Ok(status) => fail(format!(
            "FAILED: {}",
            status.message.unwrap_or_else(|| "(no message)".into())
        )),
        Err(error) => Verdict {
            outcome: Outcome::Fail,
            detail: format!("check crashed: {error}"),
            log_tail: error.log_tail().map(|t| t.0.clone()).unwrap_or_default(),
        },
    }
}

/// A value of another JSON type than `schema` asks for.
fn wrong_value(schema: &Value) -> Value {
    match schema.get("type").and_then(Value::as_str) {
        Some("string") => json!(12345),
        Some("integer" | "number") => json!("not a number"),
        Some("boolean") => json!("not a boolean"),
        Some("array") => json!({"not": "an array"}),
        _ => json!(["not", "an", "object"]),
    }
}

async fn check_bad(s: &Suite<'_>) -> Verdict {
    let Ok(spec) = s.executor.spec().await else {
        return fail("spec failed (see the spec case)");
    };
    let schema = &spec.connection_specification;
    let (good, _) = s.case_config("check-bad-config");
    // Break the first required field, else add a field the spec forbids.
    let mut bad = good.clone();
    let required = schema
        .get("required")
        .and_then(Value::as_array)
        .and_then(|r| r.first())
        .and_then(Value::as_str);
    let how = match (required, bad.as_object_mut()) {
        (Some(field), Some(map)) => {
            let field_schema = schema["properties"].get(field).cloned().unwrap_or_default();
            map.insert(field.to_owned(), wrong_value(&field_schema));
            format!("required field {field} of the wrong type")
        }
        (None, Some(map)) if schema.get("additionalProperties") == Some(&json!(false)) => {
            map.insert("airlock_conformance_unknown_field".into(), json!(true));
            "a field the spec does not allow".to_owned()
        }
        _ => return not_applicable("the spec accepts any object: there is no bad config to send"),
    };
    if crate::config::validate(s.executor.connector(), schema, &bad).is_ok() {
        return not_applicable(format!("the spec accepts a config with {how}"));
    }
    match s.executor.check(&bad, &s.secrets(&bad).await).await {
        Ok(status) if status.status == ConnectionStatus::Failed => pass(format!(
            "FAILED for {how}: {}",
            status.message.unwrap_or_default()
        )),
        Ok(_) => fail(format!(
            "check SUCCEEDED for a config with {how}, which its own spec rejects"
        )),
        Err(error) => Verdict {
            outcome: Outcome::Fail,
            detail: format!("check crashed instead of returning FAILED for {how}: {error}"),
            log_tail: error.log_tail().map(|t| t.0.clone()).unwrap_or_default(),
        },
    }
}

async fn states_in_order(s: &Suite<'_>) -> Verdict {
    let (config, folder) = s.case_config("states-in-order");
    let streams = [
        TestStream::new("alpha"),
        TestStream::new("beta"),
        TestStream::new("gamma"),
    ];
    let mut input = Messages::new();
    let mut expected: Vec<(&TestStream, Vec<Value>)> =
        streams.iter().map(|s| (s, Vec::new())).collect();
    for round in 0..5u64 {
        for (i, stream) in streams.iter().enumerate() {
            for k in 0..10u64 {
                let row = json!({"id": round * 10 + k, "stream_index": i});
                input.record(stream, &row);
                expected[i].1.push(row);
            }
            input.stream_state(stream, round);
        }
    }
    let result = match s
        .write(&config, catalog(&streams), input.into_bytes())
        .await
    {
        Ok(result) => result,
        Err(error) => return write_failed("the write failed", &error),
    };
    if !result.warnings.is_empty() {
        return fail(format!(
            "destinationStats disagree: {}",
            result.warnings.join("; ")
        ));
    }
    if result.states_confirmed == 0 {
        return fail(format!(
            "none of the {} states was echoed",
            result.states_sent
        ));
    }
    let mut detail = format!(
        "{} states sent, {} confirmed in order",
        result.states_sent, result.states_confirmed
    );
    if let (Some(folder), true) = (folder, result.states_confirmed == result.states_sent) {
        match s.verify_rows(&folder, &expected) {
            Ok(read) => detail.push_str(&format!("; {read}")),
            Err(why) => return fail(why),
        }
    }
    pass(detail)
}

async fn last_state(s: &Suite<'_>) -> Verdict {
    let (config, _) = s.case_config("last-state-echoed");
    let stream = TestStream::new("tail");
    let mut input = Messages::new();
    for id in 1..=25 {
        input.record(&stream, &json!({"id": id}));
        if id % 10 == 0 {
            input.stream_state(&stream, id);
        }
    }
    input.stream_state(&stream, 25);
    match s
        .write(&config, catalog(&[stream]), input.into_bytes())
        .await
    {
        Ok(result) => match all_confirmed(&result) {
            Ok(()) => pass(format!(
                "all {} states echoed, all 25 records confirmed",
                result.states_sent
            )),
            Err(why) => fail(why),
        },
        Err(error) => write_failed("the write failed", &error),
    }
}

async fn large_batch(s: &Suite<'_>) -> Verdict {
    let (config, folder) = s.case_config("large-batch");
    let stream = TestStream::new("users");
    let n = s.large_batch_records;
    let mut input = Messages::new();
    for id in 1..=n {
        input.record(&stream, &json!({
            "id": id, "name": format!("user {id}"), "email": format!("user.{id}@example.com"),
            "address": {"city": "Lisbon", "zip": format!("{:05}", id % 100_000)},
            "created_at": "2024-01-01T00:00:00+00:00", "updated_at": "2024-06-01T12:00:00+00:00",
            "note": "lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod"
        }));
        if id % 10_000 == 0 || id == n {
            input.stream_state(&stream, id);
        }
    }
    let result = match s
        .write_confirmed(
            &config,
            catalog(std::slice::from_ref(&stream)),
            input.into_bytes(),
        )
        .await
    {
        Ok(result) => result,
        Err(verdict) => return verdict,
    };
    let mut detail = format!(
        "{n} records ({:.1} MB) confirmed in {:.2}s",
        result.bytes_sent as f64 / 1e6,
        result.duration_secs
    );
    if let (Some(folder), Some(reader)) = (folder, &s.reader) {
        match reader.read_at(&folder, &stream.name, None) {
            Ok(rows) if rows.len() as u64 == n => detail.push_str("; all rows read back"),
            Ok(rows) => {
                return fail(format!(
                    "{n} records confirmed but {} rows written",
                    rows.len()
                ));
            }
            Err(why) => return fail(why),
        }
    }
    pass(detail)
}

async fn large_record(s: &Suite<'_>) -> Verdict {
    let stream = TestStream::new("blobs");
    let blob = "x".repeat(10 * 1024 * 1024);
    let row = json!({"id": 1, "blob": blob});
    s.write_and_verify("large-record", &[(stream, vec![row])], false)
        .await
}

async fn line_breaks(s: &Suite<'_>) -> Verdict {
    let values = [
        "a\nb",
        "c\rd",
        "e\r\nf",
        "g\u{2028}h",
        "i\u{2029}j",
        "\n\n",
        "tab\there",
    ];
    let data: Vec<Value> = values
        .iter()
        .enumerate()
        .map(|(i, v)| json!({"id": i, "text": v, "nested": {"text": v}}))
        .collect();
    s.write_and_verify("line-breaks", &[(TestStream::new("texts"), data)], true)
        .await
}

async fn odd_names(s: &Suite<'_>) -> Verdict {
    let streams: Vec<(TestStream, Vec<Value>)> = [
        "camelCase",
        "ALL_CAPS",
        "spécial",
        "operator+1",
        "1leading_digit",
    ]
    .iter()
    .enumerate()
    .map(|(i, name)| {
        (
            TestStream::new(name),
            rows(3, |id| json!({"stream": i, "value": id * 7})),
        )
    })
    .collect();
    s.write_and_verify("odd-stream-names", &streams, false)
        .await
}

async fn namespaces(s: &Suite<'_>) -> Verdict {
    let streams = vec![
        (
            TestStream::new("users"),
            rows(3, |_| json!({"where": "no namespace"})),
        ),
        (
            TestStream::new("users").namespace("alpha"),
            rows(4, |_| json!({"where": "alpha"})),
        ),
        (
            TestStream::new("users").namespace("beta"),
            rows(5, |_| json!({"where": "beta"})),
        ),
    ];
    s.write_and_verify("namespaces", &streams, true).await
}

async fn extra_fields(s: &Suite<'_>) -> Verdict {
    let data = rows(
        4,
        |id| json!({"undeclared": format!("extra {id}"), "nested": {"deep": [id, null, true]}}),
    );
    let mut verdict = s
        .write_and_verify(
            "fields-not-in-schema",
            &[(TestStream::new("loose"), data)],
            true,
        )
        .await;
    if verdict.outcome == Outcome::Pass && s.reader.as_ref().is_some_and(|r| r.typed()) {
        verdict.detail.push_str(
            " (typed tables keep the declared fields only, as Airbyte's direct load does: \
             `undeclared` has no column)",
        );
    }
    verdict
}

async fn empty_input(s: &Suite<'_>) -> Verdict {
    let (config, _) = s.case_config("empty-input");
    match s
        .write(&config, catalog(&[TestStream::new("nothing")]), Vec::new())
        .await
    {
        Ok(result) if result.completed => pass("ended cleanly with nothing written"),
        Ok(_) => fail("the write did not complete"),
        Err(error) => write_failed("a write of no messages failed", &error),
    }
}

/// What a destination did with raw input, bypassing the write loop's filters.
struct RawRun {
    states_echoed: usize,
    exit: Result<(), crate::executor::ExecutorError>,
}

/// Runs `write` with `batches` sent as they are, reading the destination's output
/// while it is fed (a destination may write as much as it reads: feeding first
/// and reading after could deadlock it); when `cancel_after` is set, the session
/// is cancelled once that many batches went in and a state came back (or 10 s
/// passed), and must then end within 30 s.
async fn raw_write(
    s: &Suite<'_>,
    config: Value,
    catalog: ConfiguredAirbyteCatalog,
    batches: Vec<Vec<u8>>,
    cancel_after: Option<usize>,
) -> Result<RawRun, String> {
    let mut session = s
        .executor
        .run(Invocation::Write {
            secrets: s.secrets(&config).await,
            config,
            catalog,
        })
        .await
        .map_err(|e| format!("the destination did not start: {e}"))?;
    let input = session
        .input
        .take()
        .ok_or("the executor gave no input channel")?;
    let mut states_echoed = 0;
    let count_states = |event: OutputEvent, states: &mut usize| {
        if let OutputEvent::Lines(batch) = event {
            for line in batch.lines() {
                if let OutputLine::Message(m) = classify_output(line)
                    && matches!(m.payload, Payload::State(_))
                {
                    *states += 1;
                }
            }
        }
    };
    // Sends the batches; hands the input back, still open, at the cancel point,
    // and closes it after the last batch otherwise.
    let feed = async move {
        for (i, batch) in batches.into_iter().enumerate() {
            if input.send(LineBatch::from_lines(batch)).await.is_err() {
                return None; // the destination closed its input: its exit says why
            }
            if cancel_after == Some(i + 1) {
                return Some(input);
            }
        }
        None
    };
    let mut feed = std::pin::pin!(feed);
    let mut output_open = true;
    let held_input = loop {
        tokio::select! {
            held = &mut feed => break held,
            event = session.output.recv(), if output_open => match event {
                Some(event) => count_states(event, &mut states_echoed),
                None => output_open = false,
            },
        }
    };
    if let Some(input) = held_input {
        let waited = tokio::time::timeout(Duration::from_secs(10), async {
            while states_echoed == 0 {
                match session.output.recv().await {
                    Some(event) => count_states(event, &mut states_echoed),
                    None => break,
                }
            }
        })
        .await;
        let _ = waited;
        session.abort();
        let ended = tokio::time::timeout(Duration::from_secs(30), async {
            while session.output.recv().await.is_some() {}
            (&mut session.exit).await
        })
        .await;
        drop(input);
        return match ended {
            Ok(exit) => Ok(RawRun {
                states_echoed,
                exit,
            }),
            Err(_) => Err("the destination did not stop within 30 s of being cancelled".into()),
        };
    }
    let drained = tokio::time::timeout(Duration::from_secs(120), async {
        while let Some(event) = session.output.recv().await {
            count_states(event, &mut states_echoed);
        }
        (&mut session.exit).await
    })
    .await;
    match drained {
        Ok(exit) => Ok(RawRun {
            states_echoed,
            exit,
        }),
        Err(_) => {
            session.abort();
            Err("the destination did not finish within 120 s of its input ending".into())
        }
    }
}

async fn malformed_line(s: &Suite<'_>) -> Verdict {
    let (config, folder) = s.case_config("malformed-line");
    let stream = TestStream::new("survivors");
    let mut input = Messages::new();
    input
        .record(&stream, &json!({"id": 1}))
        .raw("this is not JSON")
        .raw(r#"{"type":"RECORD","record":{"stream":"survivors""#)
        .raw(r#"{"type":"NO_SUCH_TYPE"}"#)
        .record(&stream, &json!({"id": 2}))
        .stream_state(&stream, 2);
    let run = match raw_write(
        s,
        config,
        catalog(std::slice::from_ref(&stream)),
        vec![input.into_bytes()],
        None,
    )
    .await
    {
        Ok(run) => run,
        Err(why) => return fail(why),
    };
    if let Err(error) = run.exit {
        return Verdict {
            outcome: Outcome::Fail,
            detail: format!("a malformed line was fatal: {error}"),
            log_tail: error.log_tail().map(|t| t.0.clone()).unwrap_or_default(),
        };
    }
    if run.states_echoed != 1 {
        return fail(format!(
            "the state after the malformed lines was echoed {} times, not once",
            run.states_echoed
        ));
    }
    match folder {
        Some(folder) => match s.verify_rows(
            &folder,
            &[(&stream, vec![json!({"id": 1}), json!({"id": 2})])],
        ) {
            Ok(read) => pass(format!("skipped 3 bad lines, echoed the state; {read}")),
            Err(why) => fail(why),
        },
        None => pass("skipped 3 bad lines and echoed the state (rows not read back: no reader)"),
    }
}

async fn append_then_overwrite(s: &Suite<'_>) -> Verdict {
    if let Some(modes) = s.supported_modes().await
        && !(modes.iter().any(|m| m == "append") && modes.iter().any(|m| m == "overwrite"))
    {
        return not_applicable(format!(
            "the spec lists sync modes {modes:?}, not both append and overwrite"
        ));
    }
    let (config, folder) = s.case_config("append-then-overwrite");
    let append = TestStream::new("history");
    let overwrite = TestStream::new("history").mode("overwrite");
    let step = |stream: &TestStream, ids: &[u64]| {
        let mut input = Messages::new();
        for id in ids {
            input.record(stream, &json!({"id": id}));
        }
        input
            .stream_state(stream, ids.len() as u64)
            .complete(stream);
        input.into_bytes()
    };
    let mut steps_done = Vec::new();
    for (label, stream, ids, expected) in [
        ("append 1,2", &append, &[1u64, 2][..], &[1u64, 2][..]),
        ("append 3,4", &append, &[3, 4], &[1, 2, 3, 4]),
        ("overwrite with 5", &overwrite, &[5], &[5]),
        ("append 6", &append, &[6], &[5, 6]),
    ] {
        match s
            .write(
                &config,
                catalog(std::slice::from_ref(stream)),
                step(stream, ids),
            )
            .await
        {
            Ok(result) => {
                if let Err(why) = all_confirmed(&result) {
                    return fail(format!("{label}: {why}"));
                }
            }
            Err(error) => return write_failed(label, &error),
        }
        if let Some(folder) = &folder {
            let want: Vec<Value> = expected.iter().map(|id| json!({"id": id})).collect();
            if let Err(why) = s.verify_rows(folder, &[(&append, want)]) {
                return fail(format!("after {label}: {why}"));
            }
        }
        steps_done.push(label);
    }
    if folder.is_none() {
        return not_applicable(format!(
            "{} confirmed, but the rows cannot be read back: the plugin declares no reader",
            steps_done.join(", ")
        ));
    }
    pass(format!(
        "{}: rows as expected after each",
        steps_done.join(", ")
    ))
}

async fn append_dedup(s: &Suite<'_>) -> Verdict {
    match s.supported_modes().await {
        Some(modes) if !modes.iter().any(|m| m == "append_dedup") => {
            return not_applicable(format!(
                "the spec lists sync modes {modes:?}, without append_dedup"
            ));
        }
        _ => {}
    }
    let (config, folder) = s.case_config("append-dedup-composite-key");
    let stream = TestStream::new("accounts")
        .mode("append_dedup")
        .primary_key(&["id", "region"]);
    let sent = [
        json!({"id": 1, "region": "eu", "version": 1}),
        json!({"id": 1, "region": "us", "version": 1}),
        json!({"id": 2, "region": "eu", "version": 1}),
        json!({"id": 1, "region": "eu", "version": 2}),
        json!({"id": 2, "region": "eu", "version": 2}),
    ];
    let mut input = Messages::new();
    for row in &sent {
        input.record(&stream, row);
    }
    input.stream_state(&stream, 5).complete(&stream);
    if let Err(verdict) = s
        .write_confirmed(
            &config,
            catalog(std::slice::from_ref(&stream)),
            input.into_bytes(),
        )
        .await
    {
        return verdict;
    }
    let (Some(folder), Some(reader)) = (folder, &s.reader) else {
        return not_applicable(
            "5 records confirmed, but the rows cannot be read back: the plugin declares no reader",
        );
    };
    let rows = match reader.read_at(&folder, &stream.name, None) {
        Ok(rows) => rows,
        Err(why) => return fail(why),
    };
    let latest = [&sent[1], &sent[3], &sent[4]];
    if let Some(missing) = latest.iter().find(|l| !rows.contains(l)) {
        return fail(format!(
            "the latest record of key {missing} is not among the {} rows",
            rows.len()
        ));
    }
    if let Some(stranger) = rows.iter().find(|r| !sent.contains(r)) {
        return fail(format!("a row that was never sent: {stranger}"));
    }
    let deduped = rows.len() == latest.len();
    pass(format!(
        "each key's latest record is there ({} rows: {})",
        rows.len(),
        if deduped {
            "deduplicated"
        } else {
            "raw, all versions kept"
        }
    ))
}

async fn stream_and_global(s: &Suite<'_>) -> Verdict {
    let (config, _) = s.case_config("stream-and-global-states");
    let streams = [TestStream::new("left"), TestStream::new("right")];
    let mut global = Messages::new();
    for round in 1..=3u64 {
        for stream in &streams {
            for id in 0..5 {
                global.record(stream, &json!({"id": round * 10 + id}));
            }
        }
        global.global_state(&streams, round);
    }
    let mut per_stream = Messages::new();
    for stream in &streams {
        per_stream.record(stream, &json!({"id": 100}));
        per_stream.stream_state(stream, 100);
    }
    let mut seen = Vec::new();
    for (label, input) in [("STREAM states", per_stream), ("GLOBAL states", global)] {
        match s
            .write(&config, catalog(&streams), input.into_bytes())
            .await
        {
            Ok(result) => match all_confirmed(&result) {
                Ok(()) => seen.push(format!("{} {label} echoed", result.states_confirmed)),
                Err(why) => return fail(format!("{label}: {why}")),
            },
            Err(error) => return write_failed(label, &error),
        }
    }
    pass(seen.join("; "))
}

async fn cancelled(s: &Suite<'_>) -> Verdict {
    let (config, folder) = s.case_config("cancelled-mid-stream");
    let stream = TestStream::new("interrupted");
    let batch = |from: u64, with_state: bool| {
        let mut input = Messages::new();
        for id in from..from + 2000 {
            input.record(&stream, &json!({"id": id, "padding": "p".repeat(100)}));
        }
        if with_state {
            input.stream_state(&stream, from);
        }
        input.into_bytes()
    };
    let batches = vec![batch(0, true), batch(2000, false), batch(4000, false)];
    let run = match raw_write(
        s,
        config.clone(),
        catalog(std::slice::from_ref(&stream)),
        batches,
        Some(2),
    )
    .await
    {
        Ok(run) => run,
        Err(why) => return fail(why),
    };
    let cancelled = format!(
        "stopped after the cancel ({}; {} state echoed before)",
        if run.exit.is_ok() { "exit 0" } else { "killed" },
        run.states_echoed
    );
    // The next write must work, and (overwrite + COMPLETE) leave only its rows.
    let fresh = TestStream::new("interrupted").mode("overwrite");
    let mut input = Messages::new();
    for id in 1..=5 {
        input.record(&fresh, &json!({"id": id}));
    }
    input.stream_state(&fresh, 5).complete(&fresh);
    match s
        .write(
            &config,
            catalog(std::slice::from_ref(&fresh)),
            input.into_bytes(),
        )
        .await
    {
        Ok(result) => {
            if let Err(why) = all_confirmed(&result) {
                return fail(format!("the write after the cancel: {why}"));
            }
        }
        Err(error) => return write_failed("the write after the cancel failed", &error),
    }
    match folder {
        Some(folder) => {
            let want: Vec<Value> = (1..=5).map(|id| json!({"id": id})).collect();
            match s.verify_rows(&folder, &[(&fresh, want)]) {
                Ok(_) => pass(format!(
                    "{cancelled}; the next write replaced the stream cleanly"
                )),
                Err(why) => fail(format!("after the cancel and an overwrite: {why}")),
            }
        }
        None => pass(format!(
            "{cancelled}; the next write succeeded (rows not read back: no reader)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::write::tests::FakeDestination;

    fn suite(executor: &FakeDestination) -> Suite<'_> {
        Suite {
            executor,
            config: json!({}),
            reader: None,
            local_root: PathBuf::new(),
            large_batch_records: 0,
            only: Vec::new(),
        }
    }

    /// Batches of two records and a state each.
    fn batches(stream: &TestStream, count: u64) -> Vec<Vec<u8>> {
        (0..count)
            .map(|i| {
                let mut input = Messages::new();
                input
                    .record(stream, &json!({"id": 2 * i}))
                    .record(stream, &json!({"id": 2 * i + 1}))
                    .stream_state(stream, i);
                input.into_bytes()
            })
            .collect()
    }

    #[tokio::test]
    async fn a_raw_write_reads_output_while_it_feeds_a_destination_that_echoes_every_line() {
        // It echoes each line before reading the next, into one-slot channels: a
        // writer that sends all its input before reading any output deadlocks it.
        let fake = FakeDestination::new(|mut io| async move {
            while let Some(lines) = io.recv().await {
                for line in lines {
                    io.say(&line).await;
                }
            }
            Ok(())
        })
        .capacity(1, 1);
        let stream = TestStream::new("echoed");
        let s = suite(&fake);
        let run = tokio::time::timeout(
            Duration::from_secs(10),
            raw_write(
                &s,
                json!({}),
                catalog(std::slice::from_ref(&stream)),
                batches(&stream, 8),
                None,
            ),
        )
        .await
        .expect("the raw write deadlocked")
        .expect("the raw write");
        assert_eq!(run.states_echoed, 8);
        assert!(run.exit.is_ok(), "{:?}", run.exit);
    }

    #[tokio::test]
    async fn a_cancelled_raw_write_aborts_once_a_state_came_back() {
        let fake = FakeDestination::new(|mut io| async move {
            while let Some(lines) = io.recv().await {
                for line in lines.iter().filter(|l| crate::write::tests::is_state(l)) {
                    io.say(line).await;
                }
            }
            Ok(())
        })
        .capacity(1, 1);
        let stream = TestStream::new("interrupted");
        let s = suite(&fake);
        let run = tokio::time::timeout(
            Duration::from_secs(10),
            raw_write(
                &s,
                json!({}),
                catalog(std::slice::from_ref(&stream)),
                batches(&stream, 3),
                Some(2),
            ),
        )
        .await
        .expect("the raw write hung")
        .expect("the raw write");
        assert!(run.states_echoed >= 1);
        assert!(
            run.exit.is_err(),
            "an aborted destination exits with an error"
        );
        assert!(fake.was_aborted() && !fake.saw_end_of_input());
    }
}
