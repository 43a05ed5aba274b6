//! `fuzzing`: the entry points of the SDK's fuzz targets (`fuzz/`), kept in
//! the crate so that the inputs the fuzzer found are replayed by the normal
//! test run. Each function takes arbitrary bytes, drives the real code with
//! them and panics when an invariant breaks; nothing else calls them.
//!
//! - [`session_lines`]: [`WriteSession::push_line`], one input line at a
//!   time — the SDK's batch parser.
//! - [`batch_writer`]: [`BatchWriter::write_batch`], the guest side of the
//!   component's `write-batch`, checked against a [`WriteSession`] fed the
//!   same lines one by one.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::component::BatchWriter;
use crate::{
    ConfiguredCatalog, Context, Destination, DestinationError, Emitter, Record, RecordWriter,
    WriteSession,
};

/// The catalog every fuzzed run writes: a stream name with and without a
/// namespace, and one that is listed twice.
const CATALOG: &[u8] = br#"{"streams":[
    {"stream":{"name":"users"},"sync_mode":"full_refresh","destination_sync_mode":"append"},
    {"stream":{"name":"users","namespace":"other"},"sync_mode":"full_refresh","destination_sync_mode":"append"},
    {"stream":{"name":"products","namespace":""},"sync_mode":"incremental","destination_sync_mode":"append_dedup"},
    {"stream":{"name":"users"},"sync_mode":"full_refresh","destination_sync_mode":"overwrite"}]}"#;

/// Streams in [`CATALOG`].
const STREAMS: usize = 4;

/// A record whose data is exactly this fails the write, so that the failure
/// path is fuzzed too.
const FAILING_DATA: &str = "\"fail\"";

/// What the [`DevNull`] writer saw.
#[derive(Debug, Default)]
struct Seen {
    writes: AtomicU64,
    completed: Mutex<Vec<usize>>,
    closed: Mutex<Vec<bool>>,
}

/// A destination that keeps nothing, fails on [`FAILING_DATA`] and checks
/// how the session calls it.
struct DevNull {
    seen: Arc<Seen>,
}

struct DevNullWriter {
    seen: Arc<Seen>,
}

impl Destination for DevNull {
    fn spec(&self) -> Value {
        Value::Object(Map::new())
    }

    fn check(&self, _config: &Value, _ctx: &Context) -> Result<(), String> {
        Ok(())
    }

    fn open(
        &self,
        _config: &Value,
        _catalog: &ConfiguredCatalog,
        _ctx: &Context,
    ) -> Result<Box<dyn RecordWriter>, DestinationError> {
        Ok(Box::new(DevNullWriter {
            seen: self.seen.clone(),
        }))
    }
}

impl RecordWriter for DevNullWriter {
    fn write(
        &mut self,
        record: &Record<'_>,
        _out: &mut Emitter<'_>,
    ) -> Result<(), DestinationError> {
        assert!(
            record.stream_index() < STREAMS,
            "a record of stream index {} outside the catalog",
            record.stream_index()
        );
        assert_ne!(
            record.stream_index(),
            3,
            "a stream listed twice must keep its first index"
        );
        assert!(
            serde_json::from_str::<&serde_json::value::RawValue>(record.data.get()).is_ok(),
            "record data is not one JSON value: {}",
            record.data.get()
        );
        if record.data.get() == FAILING_DATA {
            return Err(DestinationError::system("the fuzzed destination failed"));
        }
        self.seen.writes.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), DestinationError> {
        Ok(())
    }

    fn stream_complete(&mut self, stream_index: usize) -> Result<(), DestinationError> {
        let mut completed = self
            .seen
            .completed
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        assert!(
            stream_index < STREAMS,
            "completed a stream outside the catalog"
        );
        assert!(
            !completed.contains(&stream_index),
            "stream {stream_index} completed twice"
        );
        completed.push(stream_index);
        Ok(())
    }

    fn close(self: Box<Self>, clean: bool) -> Result<(), DestinationError> {
        self.seen
            .closed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(clean);
        Ok(())
    }
}

/// A STATE line with nothing else in it: `{"type":"STATE","state":{…}}`,
/// each key once. Such a line must be echoed.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PlainState {
    #[serde(rename = "type")]
    _kind: PlainStateType,
    #[serde(rename = "state")]
    _state: Map<String, Value>,
}

#[derive(Deserialize)]
enum PlainStateType {
    #[serde(rename = "STATE")]
    State,
}

/// Whether `line` is JSON in which no object repeats a key. Which of repeated
/// members counts is up to each parser, so the cross-checks of the harnesses
/// (these and the host's) leave such lines out: the echo of one is only
/// checked to be a STATE.
pub fn json_without_repeated_keys(line: &[u8]) -> bool {
    struct Unique;
    impl<'de> Deserialize<'de> for Unique {
        fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            deserializer.deserialize_any(Unique)
        }
    }
    impl<'de> serde::de::Visitor<'de> for Unique {
        type Value = Unique;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("JSON")
        }
        fn visit_bool<E>(self, _: bool) -> Result<Unique, E> {
            Ok(Unique)
        }
        fn visit_i64<E>(self, _: i64) -> Result<Unique, E> {
            Ok(Unique)
        }
        fn visit_u64<E>(self, _: u64) -> Result<Unique, E> {
            Ok(Unique)
        }
        fn visit_f64<E>(self, _: f64) -> Result<Unique, E> {
            Ok(Unique)
        }
        fn visit_str<E>(self, _: &str) -> Result<Unique, E> {
            Ok(Unique)
        }
        fn visit_unit<E>(self) -> Result<Unique, E> {
            Ok(Unique)
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Unique, A::Error> {
            while seq.next_element::<Unique>()?.is_some() {}
            Ok(Unique)
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Unique, A::Error> {
            let mut keys = std::collections::HashSet::new();
            while let Some(key) = map.next_key::<String>()? {
                if !keys.insert(key) {
                    return Err(serde::de::Error::custom("a repeated key"));
                }
                map.next_value::<Unique>()?;
            }
            Ok(Unique)
        }
    }
    serde_json::from_slice::<Unique>(line).is_ok()
}

/// The output lines in `out`, each checked to be one JSON object of a type
/// a destination may write.
fn output_lines(out: &[u8]) -> Vec<Value> {
    if out.is_empty() {
        return Vec::new();
    }
    assert_eq!(out.last(), Some(&b'\n'), "output does not end in a newline");
    out[..out.len() - 1]
        .split(|b| *b == b'\n')
        .map(|line| {
            let value: Value = serde_json::from_slice(line).unwrap_or_else(|e| {
                panic!(
                    "an output line is not JSON ({e}): {}",
                    String::from_utf8_lossy(line)
                )
            });
            let kind = value.get("type").and_then(Value::as_str);
            assert!(
                matches!(kind, Some("STATE" | "LOG" | "TRACE")),
                "an output line of type {kind:?}"
            );
            value
        })
        .collect()
}

/// The record count an echoed state carries: a whole, non-negative float.
fn record_count(echo: &Value) -> u64 {
    let count = &echo["state"]["destinationStats"]["recordCount"];
    assert!(
        count.is_f64(),
        "recordCount is not written as a float: {count}"
    );
    let count = count.as_f64().unwrap_or(-1.0);
    assert!(
        count >= 0.0 && count.fract() == 0.0,
        "recordCount {count} is not a count"
    );
    count as u64
}

/// Checks that `echo` is `input` as received plus `destinationStats`: the
/// same fields, in the same order, with the same values.
fn assert_echo_of(input: &Value, echo: &Value) {
    let (Some(input), Some(echo)) = (input.as_object(), echo.as_object()) else {
        panic!("a STATE echo of a line that is not an object");
    };
    let keys = |m: &Map<String, Value>| m.keys().cloned().collect::<Vec<_>>();
    assert_eq!(keys(input), keys(echo), "the echo's fields differ");
    for (key, value) in input {
        if key != "state" {
            assert_eq!(value, &echo[key], "the echo changed `{key}`");
        }
    }
    let (Some(state), Some(echoed)) = (input["state"].as_object(), echo["state"].as_object())
    else {
        panic!("a STATE echo whose `state` is not an object");
    };
    // `destinationStats` is set (anywhere); every other field keeps its place.
    let others = |m: &Map<String, Value>| {
        m.keys()
            .filter(|k| *k != "destinationStats")
            .cloned()
            .collect::<Vec<_>>()
    };
    assert_eq!(
        others(state),
        others(echoed),
        "the echoed state's fields differ"
    );
    assert!(
        echoed.contains_key("destinationStats"),
        "the echo has no destinationStats"
    );
    for (key, value) in state {
        if key != "destinationStats" {
            assert_eq!(value, &echoed[key], "the echo changed `state.{key}`");
        }
    }
}

/// Fuzzes [`WriteSession::push_line`]: `data` is split into lines, pushed one
/// at a time into a session of a discarding destination, then the session is
/// finished.
///
/// # Panics
///
/// When an invariant breaks: an output line that is not a JSON object of
/// type STATE, LOG or TRACE; a plain STATE line (`{"type":"STATE","state":
/// {…}}`) not echoed exactly once, as received plus `destinationStats` (for
/// a line without repeated keys); a
/// STATE echoed for a line that is not one; more records counted in
/// `recordCount`s than were written; a stream completed twice; a failure
/// that does not stick or is not reported as the last line, a TRACE ERROR;
/// the writer not closed exactly once (unclean after a failure).
pub fn session_lines(data: &[u8]) {
    let seen = Arc::new(Seen::default());
    let dest = DevNull { seen: seen.clone() };
    let catalog = ConfiguredCatalog::from_json(CATALOG).unwrap_or_else(|e| panic!("{e}"));
    let mut session = WriteSession::open(
        &dest,
        &Value::Object(Map::new()),
        &catalog,
        &Context::native(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let mut out = Vec::new();
    let mut failure: Option<DestinationError> = None;
    let mut counted = 0u64;
    for line in data.split_inclusive(|b| *b == b'\n') {
        let start = out.len();
        let pushed = session.push_line(line, &mut out);
        let delta = output_lines(&out[start..]);
        if let Some(failure) = &failure {
            assert_eq!(
                pushed.as_ref(),
                Err(failure),
                "a failed run accepted a line"
            );
            assert!(delta.is_empty(), "a failed run wrote output");
            continue;
        }
        // The session trims ASCII whitespace, form feed included (which JSON
        // does not count as whitespace).
        let input: Option<Value> = serde_json::from_slice(line.trim_ascii()).ok();
        let states: Vec<&Value> = delta.iter().filter(|v| v["type"] == "STATE").collect();
        for echo in &states {
            let Some(input) = &input else {
                panic!("a STATE echoed for a line that is not JSON");
            };
            assert_eq!(input["type"], "STATE", "a STATE echoed for another message");
            if json_without_repeated_keys(line.trim_ascii()) {
                assert_echo_of(input, echo);
                counted += record_count(echo);
            }
        }
        assert!(states.len() <= 1, "one line echoed {} states", states.len());
        match pushed {
            Ok(()) => {
                if serde_json::from_slice::<PlainState>(line.trim_ascii()).is_ok() {
                    assert_eq!(states.len(), 1, "a plain STATE line was not echoed");
                    assert_eq!(
                        delta.len(),
                        1,
                        "a plain STATE line wrote more than its echo"
                    );
                }
            }
            Err(e) => {
                assert!(states.is_empty(), "a failed line echoed a state");
                failure = Some(e);
            }
        }
    }
    let writes = seen.writes.load(Ordering::Relaxed);
    assert!(
        counted <= writes,
        "the echoes counted {counted} records, but {writes} were written"
    );
    let start = out.len();
    let finished = session.finish(&mut out);
    let tail = output_lines(&out[start..]);
    match &failure {
        None => {
            assert!(
                finished.is_ok(),
                "a clean run failed to finish: {finished:?}"
            );
            assert!(tail.is_empty(), "finishing a clean run wrote {tail:?}");
        }
        Some(failure) => {
            assert_eq!(finished.as_ref(), Err(failure), "finish lost the failure");
            let last = tail
                .last()
                .unwrap_or_else(|| panic!("no TRACE ERROR at the end"));
            assert_eq!(last["trace"]["type"], "ERROR", "the last line is {last}");
            assert_eq!(last["trace"]["error"]["message"], failure.message.as_str());
        }
    }
    let closed = seen
        .closed
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    assert_eq!(closed, [failure.is_none()], "how the writer was closed");
}

/// Replaces the time in TRACE lines, which differs between two runs.
fn without_times(out: &[u8]) -> Vec<Value> {
    let mut lines = output_lines(out);
    for line in &mut lines {
        if let Some(trace) = line.get_mut("trace").and_then(Value::as_object_mut) {
            trace.remove("emitted_at");
        }
    }
    lines
}

/// Fuzzes [`BatchWriter::write_batch`], the guest side of the component's
/// `write-batch`: `data` is cut at NUL bytes into batches, written one after
/// the other, then the writer is closed.
///
/// # Panics
///
/// When the output of the batches and of `close` differs from that of a
/// [`WriteSession`] fed the same lines one at a time (the times in TRACE
/// lines aside), or when a writer whose batch failed accepts another call.
pub fn batch_writer(data: &[u8]) {
    let seen = Arc::new(Seen::default());
    let dest = DevNull { seen: seen.clone() };
    let writer = BatchWriter::open(&dest, b"{}", CATALOG, &Context::sandboxed("/local"))
        .unwrap_or_else(|e| panic!("{e}"));

    let reference_seen = Arc::new(Seen::default());
    let reference_dest = DevNull {
        seen: reference_seen.clone(),
    };
    let catalog = ConfiguredCatalog::from_json(CATALOG).unwrap_or_else(|e| panic!("{e}"));
    let mut reference = Some(
        WriteSession::open(
            &reference_dest,
            &Value::Object(Map::new()),
            &catalog,
            &Context::native(),
        )
        .unwrap_or_else(|e| panic!("{e}")),
    );

    for batch in data.split(|b| *b == 0) {
        let result = writer.write_batch(batch);
        let Some(session) = reference.as_mut() else {
            assert!(result.is_err(), "a failed writer accepted another batch");
            continue;
        };
        let out = result.unwrap_or_else(|e| panic!("a batch of a live run failed: {e}"));
        let mut expected = Vec::new();
        for line in batch.split(|b| *b == b'\n') {
            if session.push_line(line, &mut expected).is_err() {
                if let Some(session) = reference.take() {
                    let _ = session.finish(&mut expected);
                }
                break;
            }
        }
        assert_eq!(
            without_times(&out),
            without_times(&expected),
            "the batch's output differs from its lines'"
        );
    }
    let closed = writer.close();
    match reference {
        Some(session) => {
            let mut expected = Vec::new();
            let finished = session.finish(&mut expected);
            match closed {
                Ok(out) => {
                    assert!(finished.is_ok(), "close succeeded where finish failed");
                    assert_eq!(without_times(&out), without_times(&expected));
                }
                Err(e) => panic!("close failed where finish gave {finished:?}: {e}"),
            }
        }
        None => assert!(closed.is_err(), "close succeeded after a failed batch"),
    }
    assert_eq!(
        seen.writes.load(Ordering::Relaxed),
        reference_seen.writes.load(Ordering::Relaxed),
        "the batches wrote a different number of records"
    );
    let closed = seen
        .closed
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let reference_closed = reference_seen
        .closed
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    assert_eq!(
        closed, reference_closed,
        "the writers were closed differently"
    );
    assert_eq!(
        closed.len(),
        1,
        "the writer was closed {} times",
        closed.len()
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    const RUN: &[u8] = b"{\"type\":\"RECORD\",\"record\":{\"stream\":\"users\",\"data\":{},\"emitted_at\":1}}\n\
        {\"type\":\"STATE\",\"state\":{\"data\":{\"n\":1}}}\n\
        \n  \r\nnot json\n\
        {\"type\":\"TRACE\",\"trace\":{\"type\":\"STREAM_STATUS\",\"emitted_at\":1,\"stream_status\":{\"stream_descriptor\":{\"name\":\"products\"},\"status\":\"COMPLETE\"}}}\n\
        {\"type\":\"RECORD\",\"record\":{\"stream\":\"users\",\"namespace\":\"other\",\"data\":\"fail\",\"emitted_at\":1}}\n\
        {\"type\":\"STATE\",\"state\":{\"data\":{\"n\":2}}}";

    #[test]
    fn the_harnesses_accept_a_run_that_fails_midway() {
        session_lines(RUN);
        batch_writer(RUN);
        let mut batches = RUN.to_vec();
        batches[80] = 0;
        batch_writer(&batches);
    }

    #[test]
    fn the_harnesses_accept_empty_input() {
        session_lines(b"");
        batch_writer(b"");
    }
}
