//! `session`: one `write` run, driven a line at a time — the destination
//! contract between the input messages and a [`RecordWriter`]. It owns the
//! catalog lookup, the per-state record counts, the flush-then-echo order of
//! STATE messages and the way a run ends; it does no I/O of its own.

use std::collections::{HashMap, HashSet};

use serde::Deserialize;
use serde::de::{MapAccess, Visitor};
use serde_json::Value;
use serde_json::error::Category;
use serde_json::value::RawValue;

use std::borrow::Cow;

use airbyte_protocol::{Frame, FrameKind};

use crate::message::{Envelope, RawJson, Trace, write_log, write_trace_error};
use crate::{
    ConfiguredCatalog, Context, Destination, DestinationError, Emitter, LogLevel, Record,
    RecordWriter, StreamDescriptor,
};

/// Message types that a destination may receive and has nothing to do with.
const IGNORED_TYPES: [&str; 6] = [
    "LOG",
    "SPEC",
    "CONNECTION_STATUS",
    "CATALOG",
    "CONTROL",
    "DESTINATION_CATALOG",
];

/// How much of a skipped line is quoted in the warning.
const QUOTED_LINE_BYTES: usize = 120;

/// One `write` run: feed it the input lines with
/// [`push_line`](Self::push_line), then end it with [`finish`](Self::finish)
/// (or [`abort`](Self::abort) when the input itself failed).
///
/// What it does with each line, per Airbyte's destination contract:
///
/// - blank lines are keep-alives and are ignored;
/// - a line that is not JSON, not an Airbyte message, or of an unknown type
///   is skipped with a LOG WARN, and the run goes on;
/// - a RECORD of a catalog stream goes to [`RecordWriter::write`]; records of
///   other streams are skipped, with one LOG WARN per stream;
/// - a STATE is echoed after [`RecordWriter::flush`], as received, with
///   `destinationStats.recordCount` set to the records written since the
///   previous state of the same stream (STREAM states) or since the previous
///   state of any kind (GLOBAL and LEGACY states; a state without `type` is
///   LEGACY);
/// - a TRACE STREAM_STATUS COMPLETE of a catalog stream calls
///   [`RecordWriter::stream_complete`], once per stream; other TRACE and LOG
///   messages are ignored.
///
/// An error from the writer fails the run: `push_line` returns it, and
/// `finish` then closes the writer unclean and reports the error as a TRACE
/// ERROR.
///
/// ```
/// use airlock_plugin_sdk::{ConfiguredCatalog, Context, WriteSession};
/// # use airlock_plugin_sdk::{Destination, DestinationError, Emitter, Record, RecordWriter};
/// # use serde_json::{Value, json};
/// # struct Discard;
/// # impl RecordWriter for Discard {
/// #     fn write(&mut self, _: &Record<'_>, _: &mut Emitter<'_>) -> Result<(), DestinationError> { Ok(()) }
/// #     fn flush(&mut self) -> Result<(), DestinationError> { Ok(()) }
/// #     fn close(self: Box<Self>, _: bool) -> Result<(), DestinationError> { Ok(()) }
/// # }
/// # struct DevNull;
/// # impl Destination for DevNull {
/// #     fn spec(&self) -> Value { json!({}) }
/// #     fn check(&self, _: &Value, _: &Context) -> Result<(), String> { Ok(()) }
/// #     fn open(&self, _: &Value, _: &ConfiguredCatalog, _: &Context)
/// #         -> Result<Box<dyn RecordWriter>, DestinationError> { Ok(Box::new(Discard)) }
/// # }
/// let catalog = ConfiguredCatalog::from_json(
///     br#"{"streams":[{"stream":{"name":"users"},"sync_mode":"full_refresh","destination_sync_mode":"append"}]}"#,
/// )
/// .expect("a valid catalog");
/// let mut session = WriteSession::open(&DevNull, &json!({}), &catalog, &Context::native())?;
/// let mut out = Vec::new();
/// session.push_line(br#"{"type":"RECORD","record":{"stream":"users","data":{},"emitted_at":1}}"#, &mut out)?;
/// session.push_line(br#"{"type":"STATE","state":{"data":{"cursor":1}}}"#, &mut out)?;
/// session.finish(&mut out)?;
/// assert_eq!(
///     String::from_utf8_lossy(&out),
///     "{\"type\":\"STATE\",\"state\":{\"data\":{\"cursor\":1},\"destinationStats\":{\"recordCount\":1.0}}}\n",
/// );
/// # Ok::<(), DestinationError>(())
/// ```
pub struct WriteSession {
    writer: Box<dyn RecordWriter>,
    streams: StreamTable,
    /// The catalog's streams, by index: what a framed record's stream names.
    descriptors: Vec<StreamDescriptor>,
    /// Per catalog stream: records written since that stream's last STREAM
    /// state (or since the last GLOBAL/LEGACY state).
    since_stream_state: Vec<u64>,
    /// Records written since the last state of any kind.
    since_any_state: u64,
    /// Per catalog stream: whether its COMPLETE status was passed on.
    completed: Vec<bool>,
    /// Streams outside the catalog already warned about.
    unknown_streams: HashSet<StreamDescriptor>,
    /// The error that failed the run, if any.
    failure: Option<DestinationError>,
    /// Echoes of states the writer chose to commit later, in order.
    deferred: Vec<u8>,
}

impl WriteSession {
    /// Opens `dest` for a `write` of `catalog`'s streams.
    ///
    /// # Errors
    ///
    /// The [`DestinationError`] of [`Destination::open`]; the caller reports
    /// it as a TRACE ERROR (see [`write_trace_error`](crate::message::write_trace_error)).
    pub fn open<D: Destination + ?Sized>(
        dest: &D,
        config: &Value,
        catalog: &ConfiguredCatalog,
        ctx: &Context,
    ) -> Result<Self, DestinationError> {
        let writer = dest.open(config, catalog, ctx)?;
        let streams = StreamTable::new(catalog);
        let count = catalog.streams.len();
        Ok(Self {
            writer,
            streams,
            descriptors: catalog
                .streams
                .iter()
                .map(|configured| configured.stream.descriptor())
                .collect(),
            since_stream_state: vec![0; count],
            since_any_state: 0,
            completed: vec![false; count],
            unknown_streams: HashSet::new(),
            failure: None,
            deferred: Vec::new(),
        })
    }

    /// Handles one input line (with or without its line ending), appending
    /// any output lines (echoed states, logs) to `out`.
    ///
    /// # Errors
    ///
    /// The writer's [`DestinationError`]. The run has then failed: later
    /// calls return the same error, and [`finish`](Self::finish) reports it.
    pub fn push_line(&mut self, line: &[u8], out: &mut Vec<u8>) -> Result<(), DestinationError> {
        if let Some(failure) = &self.failure {
            return Err(failure.clone());
        }
        let line = line.trim_ascii();
        if line.is_empty() {
            return Ok(());
        }
        let handled = self.handle(line, out);
        if let Err(e) = &handled {
            self.failure = Some(e.clone());
        }
        handled
    }

    /// Handles one framed message of `messages` (a batch of
    /// `airlock:destination@0.2.0`): a record goes to the writer straight from
    /// the frame (stream index, raw `data`, `emitted_at`), no envelope parsed;
    /// every other kind is handled as [`push_line`](Self::push_line) handles
    /// its line. The frame must have passed
    /// [`check_frames`](airbyte_protocol::check_frames) against `messages` and
    /// [`stream_count`](Self::stream_count).
    ///
    /// # Errors
    ///
    /// The writer's [`DestinationError`], as for `push_line`; or a system error
    /// when the frame's data is not UTF-8 (the host framed the batch wrongly).
    pub fn push_framed(
        &mut self,
        messages: &[u8],
        frame: &Frame,
        out: &mut Vec<u8>,
    ) -> Result<(), DestinationError> {
        if frame.kind != FrameKind::Record {
            return self.push_line(&messages[frame.line.range()], out);
        }
        if let Some(failure) = &self.failure {
            return Err(failure.clone());
        }
        let handled = self.on_framed_record(messages, frame, out);
        if let Err(e) = &handled {
            self.failure = Some(e.clone());
        }
        handled
    }

    /// Streams in the catalog: a framed record's stream index is below it.
    pub fn stream_count(&self) -> usize {
        self.descriptors.len()
    }

    fn on_framed_record(
        &mut self,
        messages: &[u8],
        frame: &Frame,
        out: &mut Vec<u8>,
    ) -> Result<(), DestinationError> {
        let text = |span: airbyte_protocol::Span, what: &str| {
            std::str::from_utf8(&messages[span.range()]).map_err(|_| {
                DestinationError::system(format!(
                    "the host's framing table is wrong: the {what} of a record is not UTF-8"
                ))
            })
        };
        let data = RawJson::trusted(text(frame.data, "data")?);
        let meta = match frame.meta {
            Some(span) => Some(RawJson::trusted(text(span, "meta")?)),
            None => None,
        };
        let index = frame.stream as usize;
        let descriptor = &self.descriptors[index];
        let record = Record {
            stream: Cow::Borrowed(&descriptor.name),
            namespace: descriptor.namespace.as_deref().map(Cow::Borrowed),
            data,
            emitted_at: frame.emitted_at,
            meta,
            stream_index: index,
        };
        self.writer.write(&record, &mut Emitter::new(out))?;
        self.since_stream_state[index] += 1;
        self.since_any_state += 1;
        Ok(())
    }

    /// The input ran dry for now: commits the states held back (see
    /// [`RecordWriter::may_defer_state`]) and appends their echoes to `out`.
    ///
    /// # Errors
    ///
    /// The writer's [`DestinationError`]; the run has then failed.
    pub fn input_idle(&mut self, out: &mut Vec<u8>) -> Result<(), DestinationError> {
        if let Some(failure) = &self.failure {
            return Err(failure.clone());
        }
        if self.deferred.is_empty() {
            return Ok(());
        }
        if let Err(e) = self.writer.flush() {
            self.failure = Some(e.clone());
            return Err(e);
        }
        out.append(&mut self.deferred);
        Ok(())
    }

    /// Ends the run at the end of the input: closes the writer (clean unless
    /// the run has failed).
    ///
    /// # Errors
    ///
    /// The error that failed the run, or else the error of
    /// [`RecordWriter::close`]. It has already been appended to `out` as a
    /// TRACE ERROR; the entry point only has to exit non-zero.
    pub fn finish(mut self, out: &mut Vec<u8>) -> Result<(), DestinationError> {
        let mut failure = self.failure.take();
        if failure.is_none() && !self.deferred.is_empty() {
            match self.writer.flush() {
                Ok(()) => out.append(&mut self.deferred),
                Err(e) => failure = Some(e),
            }
        }
        self.end(failure, out)
    }

    /// Ends the run on an error from outside the session (say, the input
    /// could not be read): closes the writer unclean and appends a TRACE
    /// ERROR for `error` — or for the writer's error, if the run had already
    /// failed — to `out`.
    pub fn abort(mut self, error: DestinationError, out: &mut Vec<u8>) {
        let failure = self.failure.take().unwrap_or(error);
        // The result is the failure just reported; nothing more to do with it.
        let _ = self.end(Some(failure), out);
    }

    fn end(
        self,
        failure: Option<DestinationError>,
        out: &mut Vec<u8>,
    ) -> Result<(), DestinationError> {
        let closed = self.writer.close(failure.is_none());
        let error = match (failure, closed) {
            (None, Ok(())) => return Ok(()),
            (None, Err(close_error)) => close_error,
            (Some(failure), Ok(())) => failure,
            (Some(failure), Err(close_error)) => {
                write_log(
                    out,
                    LogLevel::Error,
                    &format!(
                        "closing the destination after the failure also failed: {close_error}"
                    ),
                );
                failure
            }
        };
        write_trace_error(out, &error);
        Err(error)
    }

    fn handle(&mut self, line: &[u8], out: &mut Vec<u8>) -> Result<(), DestinationError> {
        let envelope: Envelope<'_> = match serde_json::from_slice(line) {
            Ok(envelope) => envelope,
            Err(e) => {
                let why = match e.classify() {
                    Category::Syntax | Category::Eof | Category::Io => "it is not JSON",
                    Category::Data => "it is not an Airbyte message",
                };
                skip_line(out, line, &format!("{why} ({e})"));
                return Ok(());
            }
        };
        match envelope.kind.as_deref() {
            Some("RECORD") => match envelope.record {
                Some(record) => self.on_record(record, out),
                None => {
                    skip_line(out, line, "a RECORD message needs a `record` object");
                    Ok(())
                }
            },
            Some("STATE") => self.on_state(line, out),
            Some("TRACE") => match envelope.trace {
                Some(trace) => self.on_trace(trace.get(), line, out),
                None => Ok(()),
            },
            Some(kind) if IGNORED_TYPES.contains(&kind) => Ok(()),
            Some(kind) => {
                skip_line(
                    out,
                    line,
                    &format!("{kind:?} is not an Airbyte message type"),
                );
                Ok(())
            }
            None => {
                skip_line(
                    out,
                    line,
                    "it has no `type`, so it is not an Airbyte message",
                );
                Ok(())
            }
        }
    }

    fn on_record(
        &mut self,
        mut record: Record<'_>,
        out: &mut Vec<u8>,
    ) -> Result<(), DestinationError> {
        let Some(index) = self
            .streams
            .find(&record.stream, record.namespace.as_deref())
        else {
            self.warn_unknown_stream(&record, out);
            return Ok(());
        };
        record.stream_index = index;
        self.writer.write(&record, &mut Emitter::new(out))?;
        self.since_stream_state[index] += 1;
        self.since_any_state += 1;
        Ok(())
    }

    fn warn_unknown_stream(&mut self, record: &Record<'_>, out: &mut Vec<u8>) {
        let stream = StreamDescriptor {
            name: record.stream.to_string(),
            namespace: record.namespace.as_ref().map(ToString::to_string),
        };
        if self.unknown_streams.contains(&stream) {
            return;
        }
        write_log(
            out,
            LogLevel::Warn,
            &format!(
                "skipping the records of stream {stream:?}: it is not in the configured catalog"
            ),
        );
        self.unknown_streams.insert(stream);
    }

    fn on_state(&mut self, line: &[u8], out: &mut Vec<u8>) -> Result<(), DestinationError> {
        // States are rare: parse the whole message into an order-preserving
        // tree so that every field survives the echo.
        let mut message: Value = match serde_json::from_slice(line) {
            Ok(message) => message,
            Err(e) => {
                skip_line(out, line, &format!("it is not an Airbyte message ({e})"));
                return Ok(());
            }
        };
        let Some(state) = message.get_mut("state").and_then(Value::as_object_mut) else {
            skip_line(out, line, "a STATE message needs a `state` object");
            return Ok(());
        };
        let defer = self.writer.may_defer_state();
        if !defer {
            self.writer.flush()?;
        }
        let record_count = match state.get("type").and_then(Value::as_str) {
            Some("STREAM") => {
                let descriptor = state.get("stream").and_then(|s| s.get("stream_descriptor"));
                let name = descriptor
                    .and_then(|d| d.get("name"))
                    .and_then(Value::as_str);
                let namespace = descriptor
                    .and_then(|d| d.get("namespace"))
                    .and_then(Value::as_str);
                match name.and_then(|name| self.streams.find(name, namespace)) {
                    Some(index) => std::mem::take(&mut self.since_stream_state[index]),
                    None => 0,
                }
            }
            // GLOBAL, LEGACY, or no type at all (LEGACY).
            _ => {
                self.since_stream_state.fill(0);
                self.since_any_state
            }
        };
        self.since_any_state = 0;
        // The echo keeps every field as it was written (numbers included: the
        // host matches echoes by their exact text), with destinationStats added.
        // The count is a float so that it is written with a decimal point.
        let stats = serde_json::json!({ "recordCount": record_count as f64 });
        // Held-back echoes go out first, in order, once their records are durable.
        if !defer {
            out.append(&mut self.deferred);
        }
        let sink = if defer { &mut self.deferred } else { out };
        match echo_with_stats(line, &stats) {
            Some(echo) => sink.extend_from_slice(&echo),
            None => {
                state.insert("destinationStats".to_string(), stats);
                if serde_json::to_writer(&mut *sink, &message).is_err() {
                    return Ok(());
                }
            }
        }
        sink.push(b'\n');
        Ok(())
    }

    fn on_trace(
        &mut self,
        trace: &str,
        line: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), DestinationError> {
        let trace: Trace<'_> = match serde_json::from_str(trace) {
            Ok(trace) => trace,
            Err(e) => {
                skip_line(
                    out,
                    line,
                    &format!("it is not an Airbyte TRACE message ({e})"),
                );
                return Ok(());
            }
        };
        let Some(status) = trace.stream_status else {
            return Ok(());
        };
        if trace.kind.as_deref() != Some("STREAM_STATUS")
            || status.status.as_deref() != Some("COMPLETE")
        {
            return Ok(());
        }
        let descriptor = status.stream_descriptor;
        let Some(index) = self
            .streams
            .find(&descriptor.name, descriptor.namespace.as_deref())
        else {
            return Ok(());
        };
        if !std::mem::replace(&mut self.completed[index], true) {
            self.writer.stream_complete(index)?;
        }
        Ok(())
    }
}

/// Finds a catalog stream's index by name and namespace without allocating.
struct StreamTable {
    by_name: HashMap<String, Vec<(Option<String>, usize)>>,
}

impl StreamTable {
    fn new(catalog: &ConfiguredCatalog) -> Self {
        let mut by_name: HashMap<String, Vec<(Option<String>, usize)>> = HashMap::new();
        for (index, configured) in catalog.streams.iter().enumerate() {
            let namespaces = by_name.entry(configured.stream.name.clone()).or_default();
            let namespace = non_empty(configured.stream.namespace.as_deref());
            // A stream listed twice keeps its first index.
            if !namespaces.iter().any(|(ns, _)| ns.as_deref() == namespace) {
                namespaces.push((namespace.map(str::to_string), index));
            }
        }
        Self { by_name }
    }

    /// The catalog index of a stream; an empty namespace is no namespace.
    fn find(&self, name: &str, namespace: Option<&str>) -> Option<usize> {
        let namespace = non_empty(namespace);
        self.by_name
            .get(name)?
            .iter()
            .find(|(ns, _)| ns.as_deref() == namespace)
            .map(|(_, index)| *index)
    }
}

/// `None` for an empty namespace, which some sources send for "none".
fn non_empty(namespace: Option<&str>) -> Option<&str> {
    namespace.filter(|ns| !ns.is_empty())
}

/// Warns that an input line was skipped, quoting its start.
fn skip_line(out: &mut Vec<u8>, line: &[u8], why: &str) {
    let quoted = String::from_utf8_lossy(&line[..line.len().min(QUOTED_LINE_BYTES)]);
    let ellipsis = if line.len() > QUOTED_LINE_BYTES {
        "…"
    } else {
        ""
    };
    write_log(
        out,
        LogLevel::Warn,
        &format!("skipped an input line because {why}: {quoted}{ellipsis}"),
    );
}

/// A JSON object's members in order, each value as the text it was written as.
struct Members<'a>(Vec<(String, &'a RawValue)>);

impl<'de> Deserialize<'de> for Members<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> Visitor<'de> for Visit {
            type Value = Members<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut members = Vec::new();
                while let Some(member) = map.next_entry::<String, &'de RawValue>()? {
                    members.push(member);
                }
                Ok(Members(members))
            }
        }
        deserializer.deserialize_map(Visit)
    }
}

/// The STATE message `line` with `stats` as its state's `destinationStats`, every
/// other member kept as written; `None` if it is not an object with a `state` object.
fn echo_with_stats(line: &[u8], stats: &Value) -> Option<Vec<u8>> {
    let message: Members<'_> = serde_json::from_slice(line).ok()?;
    let mut out = Vec::with_capacity(line.len() + 40);
    out.push(b'{');
    // A line that repeats `state` is read by its last one (as serde_json and
    // the host do), so that is the one that gets the stats.
    let last_state = message.0.iter().rposition(|(key, _)| key == "state")?;
    for (i, (key, value)) in message.0.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        serde_json::to_writer(&mut out, key).ok()?;
        out.push(b':');
        if i == last_state {
            let state: Members<'_> = serde_json::from_str(value.get()).ok()?;
            out.push(b'{');
            for (key, value) in state.0.iter().filter(|(k, _)| k != "destinationStats") {
                serde_json::to_writer(&mut out, key).ok()?;
                out.push(b':');
                out.extend_from_slice(value.get().as_bytes());
                out.push(b',');
            }
            out.extend_from_slice(b"\"destinationStats\":");
            serde_json::to_writer(&mut out, stats).ok()?;
            out.push(b'}');
        } else {
            out.extend_from_slice(value.get().as_bytes());
        }
    }
    out.push(b'}');
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::sync::{Arc, Mutex};

    /// What the fake writer was asked to do, in order.
    type Calls = Arc<Mutex<Vec<String>>>;

    fn log(calls: &Calls, call: String) {
        calls.lock().expect("lock").push(call);
    }

    struct Recorder {
        calls: Calls,
        fail_on_record: Option<usize>,
        written: usize,
    }

    impl RecordWriter for Recorder {
        fn write(
            &mut self,
            record: &Record<'_>,
            out: &mut Emitter<'_>,
        ) -> Result<(), DestinationError> {
            self.written += 1;
            if self.fail_on_record == Some(self.written) {
                return Err(DestinationError::system("disk full"));
            }
            out.log(LogLevel::Debug, "wrote");
            log(
                &self.calls,
                format!(
                    "write {} {} {}",
                    record.stream_index(),
                    record.data.get(),
                    record.emitted_at
                ),
            );
            Ok(())
        }
        fn flush(&mut self) -> Result<(), DestinationError> {
            log(&self.calls, "flush".into());
            Ok(())
        }
        fn stream_complete(&mut self, stream_index: usize) -> Result<(), DestinationError> {
            log(&self.calls, format!("complete {stream_index}"));
            Ok(())
        }
        fn close(self: Box<Self>, clean: bool) -> Result<(), DestinationError> {
            log(&self.calls, format!("close clean={clean}"));
            Ok(())
        }
    }

    struct Fake {
        calls: Calls,
        fail_on_record: Option<usize>,
    }

    impl Destination for Fake {
        fn spec(&self) -> Value {
            json!({})
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
            Ok(Box::new(Recorder {
                calls: self.calls.clone(),
                fail_on_record: self.fail_on_record,
                written: 0,
            }))
        }
    }

    fn catalog() -> ConfiguredCatalog {
        ConfiguredCatalog::from_json(
            br#"{"streams":[
                {"stream":{"name":"users"},"sync_mode":"full_refresh","destination_sync_mode":"overwrite"},
                {"stream":{"name":"users","namespace":"other"},"sync_mode":"full_refresh","destination_sync_mode":"append"},
                {"stream":{"name":"products"},"sync_mode":"incremental","destination_sync_mode":"append"}]}"#,
        )
        .expect("catalog")
    }

    /// Runs `input` through a session; returns the writer calls, the output
    /// lines and the end result.
    fn run(
        input: &str,
        fail_on_record: Option<usize>,
    ) -> (Vec<String>, Vec<Value>, Result<(), DestinationError>) {
        let calls = Calls::default();
        let fake = Fake {
            calls: calls.clone(),
            fail_on_record,
        };
        let mut session =
            WriteSession::open(&fake, &json!({}), &catalog(), &Context::native()).expect("open");
        let mut out = Vec::new();
        for line in input.split_inclusive('\n') {
            if session.push_line(line.as_bytes(), &mut out).is_err() {
                break;
            }
        }
        let result = session.finish(&mut out);
        let lines = out
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| serde_json::from_slice(l).expect("output lines are JSON"))
            .collect();
        let calls = calls.lock().expect("lock").clone();
        (calls, lines, result)
    }

    fn record(stream: &str, n: u32) -> String {
        format!(
            r#"{{"type":"RECORD","record":{{"stream":"{stream}","data":{{"n":{n}}},"emitted_at":{n}}}}}"#
        )
    }

    fn states(lines: &[Value]) -> Vec<&Value> {
        lines.iter().filter(|l| l["type"] == "STATE").collect()
    }

    #[test]
    fn records_go_to_their_stream_and_states_are_flushed_then_echoed() {
        let input = [
            record("users", 1),
            r#"{"type":"RECORD","record":{"stream":"users","namespace":"other","data":{"n":2},"emitted_at":2.9}}"#.into(),
            r#"{"type":"STATE","state":{"type":"STREAM","stream":{"stream_descriptor":{"name":"users"},"stream_state":{"c":1}},"sourceStats":{"recordCount":1.0}}}"#.into(),
        ]
        .join("\n");
        let (calls, lines, result) = run(&input, None);
        assert!(result.is_ok());
        assert_eq!(
            calls,
            [
                "write 0 {\"n\":1} 1",
                "write 1 {\"n\":2} 2",
                "flush",
                "close clean=true"
            ]
        );
        let states = states(&lines);
        assert_eq!(states.len(), 1);
        // Echoed as received, fields in their order, plus destinationStats.
        assert_eq!(
            serde_json::to_string(states[0]).expect("json"),
            r#"{"type":"STATE","state":{"type":"STREAM","stream":{"stream_descriptor":{"name":"users"},"stream_state":{"c":1}},"sourceStats":{"recordCount":1.0},"destinationStats":{"recordCount":1.0}}}"#
        );
    }

    #[test]
    fn stream_state_counts_only_records_of_that_stream_since_its_last_state() {
        let stream_state = |name: &str| {
            format!(
                r#"{{"type":"STATE","state":{{"type":"STREAM","stream":{{"stream_descriptor":{{"name":"{name}","namespace":null}},"stream_state":{{}}}}}}}}"#
            )
        };
        let input = [
            record("users", 1),
            record("products", 2),
            record("users", 3),
            stream_state("users"),
            record("products", 4),
            stream_state("products"),
            stream_state("users"),
            stream_state("unknown"),
        ]
        .join("\n");
        let (_, lines, _) = run(&input, None);
        let counts: Vec<&Value> = states(&lines)
            .iter()
            .map(|s| &s["state"]["destinationStats"]["recordCount"])
            .collect();
        assert_eq!(counts, [&json!(2.0), &json!(2.0), &json!(0.0), &json!(0.0)]);
    }

    #[test]
    fn global_and_legacy_states_count_everything_since_the_previous_state() {
        let input = [
            record("users", 1),
            record("products", 2),
            r#"{"type":"STATE","state":{"type":"GLOBAL","global":{"shared_state":{},"stream_states":[]}}}"#.into(),
            record("users", 3),
            r#"{"type":"STATE","state":{"data":{"legacy":true}}}"#.into(),
            r#"{"type":"STATE","state":{"type":"LEGACY","data":{},"destinationStats":{"recordCount":99.0}}}"#.into(),
        ]
        .join("\n");
        let (_, lines, _) = run(&input, None);
        let states = states(&lines);
        assert_eq!(
            states[0]["state"]["destinationStats"],
            json!({"recordCount": 2.0})
        );
        assert_eq!(
            serde_json::to_string(&states[1]["state"]).expect("json"),
            r#"{"data":{"legacy":true},"destinationStats":{"recordCount":1.0}}"#
        );
        assert_eq!(
            states[2]["state"]["destinationStats"],
            json!({"recordCount": 0.0})
        );
    }

    #[test]
    fn record_count_is_written_with_a_decimal_point() {
        let input = format!(
            "{}\n{}",
            record("users", 1),
            r#"{"type":"STATE","state":{}}"#
        );
        let calls = Calls::default();
        let fake = Fake {
            calls,
            fail_on_record: None,
        };
        let mut session =
            WriteSession::open(&fake, &json!({}), &catalog(), &Context::native()).expect("open");
        let mut out = Vec::new();
        for line in input.lines() {
            session.push_line(line.as_bytes(), &mut out).expect("push");
        }
        let text = String::from_utf8(out).expect("utf8");
        assert!(
            text.contains(r#""destinationStats":{"recordCount":1.0}"#),
            "{text}"
        );
    }

    #[test]
    fn junk_lines_are_skipped_with_a_warning_and_blank_lines_ignored() {
        let input = [
            "".to_string(),
            "   \t\r".into(),
            "this is not json".into(),
            "[1,2]".into(),
            r#"{"no":"type"}"#.into(),
            r#"{"type":"BOGUS"}"#.into(),
            r#"{"type":"RECORD"}"#.into(),
            r#"{"type":"RECORD","record":{"stream":"users"}}"#.into(),
            r#"{"type":"LOG","log":{"level":"INFO","message":"hi"}}"#.into(),
            r#"{"type":"TRACE","trace":{"type":"ESTIMATE","emitted_at":1,"estimate":{"name":"users"}}}"#.into(),
            record("users", 1),
        ]
        .join("\n");
        let (calls, lines, result) = run(&input, None);
        assert!(result.is_ok());
        assert_eq!(calls, ["write 0 {\"n\":1} 1", "close clean=true"]);
        let warnings: Vec<&str> = lines
            .iter()
            .filter(|l| l["log"]["level"] == "WARN")
            .map(|l| l["log"]["message"].as_str().expect("message"))
            .collect();
        assert_eq!(warnings.len(), 6, "{warnings:#?}");
        assert!(warnings[0].contains("it is not JSON") && warnings[0].contains("this is not json"));
        assert!(warnings[1].contains("not an Airbyte message"));
        assert!(warnings[2].contains("no `type`"));
        assert!(warnings[3].contains("\"BOGUS\" is not an Airbyte message type"));
        assert!(warnings[4].contains("needs a `record`"));
        assert!(warnings[5].contains("not an Airbyte message"));
    }

    #[test]
    fn records_of_unknown_streams_are_skipped_with_one_warning_per_stream() {
        let input = [
            record("ghost", 1),
            record("ghost", 2),
            r#"{"type":"RECORD","record":{"stream":"users","namespace":"nowhere","data":{},"emitted_at":3}}"#.into(),
            record("users", 4),
            r#"{"type":"RECORD","record":{"stream":"users","namespace":"","data":{},"emitted_at":5}}"#.into(),
            r#"{"type":"STATE","state":{}}"#.into(),
        ]
        .join("\n");
        let (calls, lines, _) = run(&input, None);
        assert_eq!(
            calls,
            [
                "write 0 {\"n\":4} 4",
                "write 0 {} 5",
                "flush",
                "close clean=true"
            ]
        );
        let warnings = lines.iter().filter(|l| l["log"]["level"] == "WARN").count();
        assert_eq!(warnings, 2);
        assert_eq!(
            states(&lines)[0]["state"]["destinationStats"]["recordCount"],
            json!(2.0)
        );
    }

    #[test]
    fn stream_complete_is_passed_on_once_per_catalog_stream() {
        let complete = |name: &str, ns: &str| {
            format!(
                r#"{{"type":"TRACE","trace":{{"type":"STREAM_STATUS","emitted_at":1.5,"stream_status":{{"stream_descriptor":{{"name":"{name}"{ns}}},"status":"COMPLETE"}}}}}}"#
            )
        };
        let input = [
            complete("products", ""),
            complete("products", ""),
            complete("users", r#","namespace":"other""#),
            complete("ghost", ""),
            r#"{"type":"TRACE","trace":{"type":"STREAM_STATUS","emitted_at":1,"stream_status":{"stream_descriptor":{"name":"users"},"status":"RUNNING"}}}"#.into(),
        ]
        .join("\n");
        let (calls, lines, _) = run(&input, None);
        assert_eq!(calls, ["complete 2", "complete 1", "close clean=true"]);
        assert!(lines.is_empty(), "{lines:?}");
    }

    #[test]
    fn a_writer_error_stops_the_run_and_is_reported_as_a_trace_error() {
        let input = [
            record("users", 1),
            r#"{"type":"STATE","state":{"data":1}}"#.into(),
            record("users", 2),
            r#"{"type":"STATE","state":{"data":2}}"#.into(),
        ]
        .join("\n");
        let (calls, lines, result) = run(&input, Some(2));
        assert_eq!(result.expect_err("fails").message, "disk full");
        assert_eq!(calls, ["write 0 {\"n\":1} 1", "flush", "close clean=false"]);
        assert_eq!(states(&lines).len(), 1);
        let last = lines.last().expect("trace");
        assert_eq!(last["type"], "TRACE");
        assert_eq!(last["trace"]["type"], "ERROR");
        assert_eq!(last["trace"]["error"]["failure_type"], "system_error");
        assert_eq!(last["trace"]["error"]["message"], "disk full");
    }

    #[test]
    fn abort_closes_unclean_and_reports_the_error() {
        let calls = Calls::default();
        let fake = Fake {
            calls: calls.clone(),
            fail_on_record: None,
        };
        let session =
            WriteSession::open(&fake, &json!({}), &catalog(), &Context::native()).expect("open");
        let mut out = Vec::new();
        session.abort(DestinationError::system("stdin broke"), &mut out);
        assert_eq!(*calls.lock().expect("lock"), ["close clean=false"]);
        let trace: Value = serde_json::from_slice(&out).expect("one line");
        assert_eq!(trace["trace"]["error"]["message"], "stdin broke");
    }

    #[test]
    fn an_echo_keeps_the_state_as_written_numbers_included() {
        let line = br#"{"type":"STATE","state":{"type":"LEGACY","data":{"big":123456789012345678901234567890,"f":0.10000000000000000001,"s":"\u00e9"}},"x":1}"#;
        let echo = echo_with_stats(line, &json!({"recordCount": 2.0})).expect("echo");
        assert_eq!(
            std::str::from_utf8(&echo).expect("utf8"),
            r#"{"type":"STATE","state":{"type":"LEGACY","data":{"big":123456789012345678901234567890,"f":0.10000000000000000001,"s":"\u00e9"},"destinationStats":{"recordCount":2.0}},"x":1}"#
        );
    }

    #[test]
    fn an_echo_of_a_line_that_repeats_state_counts_in_the_state_readers_see() {
        let line = br#"{"type":"STATE","state":{"type":"LEGACY","data":1},"state":{"type":"LEGACY","data":2}}"#;
        let echo = echo_with_stats(line, &json!({"recordCount": 2.0})).expect("echo");
        let read: Value = serde_json::from_slice(&echo).expect("json");
        assert_eq!(read["state"]["data"], 2);
        assert_eq!(read["state"]["destinationStats"]["recordCount"], 2.0);
    }

    /// Defers every other state: `may_defer_state` alternates, starting with true.
    struct Deferring {
        calls: Calls,
        defer_next: bool,
    }

    impl RecordWriter for Deferring {
        fn write(&mut self, _: &Record<'_>, _: &mut Emitter<'_>) -> Result<(), DestinationError> {
            log(&self.calls, "write".into());
            Ok(())
        }
        fn flush(&mut self) -> Result<(), DestinationError> {
            log(&self.calls, "flush".into());
            Ok(())
        }
        fn may_defer_state(&mut self) -> bool {
            self.defer_next = !self.defer_next;
            !self.defer_next
        }
        fn close(self: Box<Self>, clean: bool) -> Result<(), DestinationError> {
            log(&self.calls, format!("close clean={clean}"));
            Ok(())
        }
    }

    struct DeferringDestination(Calls);

    impl Destination for DeferringDestination {
        fn spec(&self) -> Value {
            json!({})
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
            Ok(Box::new(Deferring {
                calls: self.0.clone(),
                defer_next: true,
            }))
        }
    }

    fn echoed_cursors(out: &[u8]) -> Vec<(i64, f64)> {
        out.split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| serde_json::from_slice::<Value>(l).expect("json"))
            .filter(|m| m["type"] == "STATE")
            .map(|m| {
                (
                    m["state"]["data"]["c"].as_i64().expect("cursor"),
                    m["state"]["destinationStats"]["recordCount"]
                        .as_f64()
                        .expect("count"),
                )
            })
            .collect()
    }

    #[test]
    fn deferred_states_wait_for_a_flush_and_keep_their_order_and_counts() {
        let calls = Calls::default();
        let dest = DeferringDestination(calls.clone());
        let mut session =
            WriteSession::open(&dest, &json!({}), &catalog(), &Context::native()).expect("open");
        let record = br#"{"type":"RECORD","record":{"stream":"users","data":{},"emitted_at":1}}"#;
        let state = |c: i64| format!(r#"{{"type":"STATE","state":{{"data":{{"c":{c}}}}}}}"#);
        let mut out = Vec::new();
        session.push_line(record, &mut out).expect("record");
        session
            .push_line(state(1).as_bytes(), &mut out)
            .expect("deferred");
        assert!(echoed_cursors(&out).is_empty(), "held back, not flushed");
        session.push_line(record, &mut out).expect("record");
        session.push_line(record, &mut out).expect("record");
        session
            .push_line(state(2).as_bytes(), &mut out)
            .expect("flushed");
        assert_eq!(
            echoed_cursors(&out),
            [(1, 1.0), (2, 2.0)],
            "both, in order, after one flush"
        );
        out.clear();
        session
            .push_line(state(3).as_bytes(), &mut out)
            .expect("deferred");
        session.input_idle(&mut out).expect("idle");
        assert_eq!(
            echoed_cursors(&out),
            [(3, 0.0)],
            "the idle input commits it"
        );
        out.clear();
        session.push_line(record, &mut out).expect("record");
        session
            .push_line(state(4).as_bytes(), &mut out)
            .expect("deferred");
        session.finish(&mut out).expect("finish");
        assert_eq!(echoed_cursors(&out), [(4, 1.0)], "a clean end commits it");
        let calls = calls.lock().expect("lock").clone();
        assert_eq!(
            calls,
            [
                "write",
                "write",
                "write",
                "flush",
                "flush",
                "write",
                "flush",
                "close clean=true"
            ]
        );
    }

    #[test]
    fn a_deferred_state_is_never_echoed_after_a_failure() {
        let calls = Calls::default();
        let dest = DeferringDestination(calls.clone());
        let mut session =
            WriteSession::open(&dest, &json!({}), &catalog(), &Context::native()).expect("open");
        let mut out = Vec::new();
        session
            .push_line(br#"{"type":"STATE","state":{"data":{"c":1}}}"#, &mut out)
            .expect("deferred");
        session.abort(DestinationError::system("input broke"), &mut out);
        assert!(echoed_cursors(&out).is_empty());
    }
}
