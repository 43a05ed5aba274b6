//! `fuzzing`: the entry points of airlock's fuzz targets (`fuzz/`), kept in the
//! crate so that they reach crate-private code (the state ledger) and so that the
//! inputs the fuzzer found are replayed by the normal test run
//! (`tests/fuzz_regressions.rs`). Each function takes arbitrary bytes, drives the
//! real code with them and panics when an invariant breaks; nothing else calls them.

use std::pin::pin;
use std::task::{Context, Poll, Waker};

use crate::protocol::{
    AirbyteStateMessage, FramingError, LineBatch, LinePeek, LineReader, OutputLine, Payload,
    StreamDescriptor, classify_output, parse_message, peek_line,
};
use crate::write::ledger::{Ledger, SentState, StateMismatch};
use airlock_plugin_sdk::fuzzing::json_without_repeated_keys;

/// Reads fuzz bytes front to back; zeros once they run out.
struct Bytes<'a>(&'a [u8]);

impl<'a> Bytes<'a> {
    fn byte(&mut self) -> u8 {
        let Some((first, rest)) = self.0.split_first() else {
            return 0;
        };
        self.0 = rest;
        *first
    }

    fn take(&mut self, n: usize) -> &'a [u8] {
        let (taken, rest) = self.0.split_at(n.min(self.0.len()));
        self.0 = rest;
        taken
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Polls a future that cannot wait (its reader is a byte slice) to completion.
fn complete<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    match future.as_mut().poll(&mut cx) {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("reading a byte slice waited"),
    }
}

/// Fuzzes [`LineReader`] and [`LineBatch`]: the first two bytes choose the line
/// limit (1–32 bytes) and the read buffer (1–16 bytes, so lines straddle
/// refills); the rest is the input.
///
/// # Panics
///
/// When the lines read differ from the input split at `\n` (a final line without
/// one included, no line after a final `\n`), when a line over the limit is not
/// refused as [`FramingError::LineTooLong`] with its 1-based number and the buffer
/// rolled back, when the line count is off, or when a [`LineBatch`] built from the
/// lines (in place, or with [`LineBatch::from_lines`]) does not give them back.
pub fn framing(data: &[u8]) {
    let mut bytes = Bytes(data);
    let limit = 1 + usize::from(bytes.byte() % 32);
    let capacity = 1 + usize::from(bytes.byte() % 16);
    let input = bytes.0;

    let mut expected: Vec<&[u8]> = input.split(|b| *b == b'\n').collect();
    if input.is_empty() || input.ends_with(b"\n") {
        expected.pop();
    }
    let too_long = expected.iter().position(|line| line.len() > limit);

    let mut reader = LineReader::new(tokio::io::BufReader::with_capacity(capacity, input), limit);
    let mut batch = LineBatch::default();
    batch.push_line(b"before");
    let mut read: Vec<Vec<u8>> = Vec::new();
    loop {
        let start = batch.byte_len();
        let result = complete(reader.read_line_into(batch.buffer_mut()));
        let number = read.len() + 1;
        match result {
            Ok(Some(range)) => {
                assert_eq!(
                    range.start, start,
                    "line {number} does not start at the end"
                );
                assert_eq!(
                    range.end,
                    batch.byte_len(),
                    "line {number} does not end the buffer"
                );
                let line = &batch.as_bytes()[range];
                assert!(
                    line.len() <= limit,
                    "line {number} passed the {limit}-byte limit"
                );
                assert!(!line.contains(&b'\n'), "line {number} holds a newline");
                read.push(line.to_vec());
                batch.commit_line();
                assert_eq!(reader.line_number(), number as u64);
            }
            Ok(None) => {
                assert_eq!(too_long, None, "a line over the limit was not refused");
                assert_eq!(batch.byte_len(), start, "the end of input left bytes");
                break;
            }
            Err(FramingError::LineTooLong {
                line_number,
                limit: refused,
            }) => {
                assert_eq!(
                    too_long,
                    Some(number - 1),
                    "line {number} refused as too long"
                );
                assert_eq!(line_number, number as u64, "the refused line's number");
                assert_eq!(refused, limit);
                assert_eq!(
                    batch.byte_len(),
                    start,
                    "a refused line was not rolled back"
                );
                break;
            }
            Err(e) => panic!("reading a byte slice failed: {e}"),
        }
    }
    let kept = too_long.unwrap_or(expected.len());
    assert_eq!(
        read,
        expected[..kept],
        "the lines read differ from the input's"
    );

    let mut lines = batch.lines();
    assert_eq!(lines.next(), Some(&b"before"[..]));
    assert!(
        lines.eq(expected[..kept].iter().copied()),
        "the batch lost lines"
    );
    assert_eq!(batch.line_count(), kept + 1);

    let whole = LineBatch::from_lines(input.to_vec());
    assert_eq!(whole.line_count(), expected.len(), "from_lines miscounted");
    assert!(
        whole.lines().eq(expected.iter().copied()),
        "from_lines lost lines"
    );
    assert!(whole.is_empty() || whole.as_bytes().ends_with(b"\n"));
}

/// Fuzzes [`peek_line`] against [`parse_message`] and [`classify_output`] on one
/// line of arbitrary bytes.
///
/// # Panics
///
/// When the three disagree: a blank line not [`LinePeek::Empty`] (or the
/// reverse); a line that parses as a message of another type peeked as
/// anything but that type; a RECORD that parses with object data not peeked as a
/// record of the same stream and namespace (with non-object data, not refused);
/// a peeked record that is not a JSON object of type RECORD; or
/// [`classify_output`] not matching [`parse_message`]. Lines whose objects
/// repeat a key skip the checks against [`parse_message`]'s payload.
pub fn peek(data: &[u8]) {
    let blank = data.iter().all(u8::is_ascii_whitespace);
    let peeked = peek_line(data);
    let parsed = parse_message(data);
    assert_eq!(
        peeked == LinePeek::Empty,
        blank,
        "blank line peeked as {peeked:?}"
    );
    match classify_output(data) {
        OutputLine::Empty => assert!(blank, "a line with text classified as blank"),
        OutputLine::Message(message) => {
            assert!(!blank);
            assert_eq!(
                Some(&*message),
                parsed.as_ref().ok(),
                "classify_output's message"
            );
        }
        OutputLine::Text(_) => assert!(!blank && parsed.is_err(), "a message classified as text"),
    }
    if let Some(message) = parsed
        .as_ref()
        .ok()
        .filter(|_| json_without_repeated_keys(data))
    {
        match &message.payload {
            Payload::Record(record) if record.data.is_object() => {
                let LinePeek::Record {
                    stream,
                    namespace,
                    data: data_range,
                    ..
                } = &peeked
                else {
                    panic!("a parsed RECORD peeked as {peeked:?}");
                };
                assert_eq!(
                    (stream.as_ref(), namespace.as_deref()),
                    (record.stream.as_str(), record.namespace.as_deref()),
                    "a parsed RECORD peeked differently"
                );
                // The framing table's data range is exactly the record's data.
                let framed: serde_json::Value = data
                    .get(data_range.clone())
                    .and_then(|bytes| serde_json::from_slice(bytes).ok())
                    .unwrap_or_else(|| {
                        panic!("the peeked data range {data_range:?} is not the data")
                    });
                assert_eq!(
                    framed, record.data,
                    "the peeked data range holds other data"
                );
            }
            Payload::Record(_) => assert!(
                matches!(peeked, LinePeek::NotAMessage(_)),
                "a RECORD whose data is not an object peeked as {peeked:?}"
            ),
            _ => assert_eq!(
                peeked,
                LinePeek::Other(message.kind()),
                "a parsed {} message peeked differently",
                message.kind().as_str()
            ),
        }
    }
    if let LinePeek::Record {
        stream, namespace, ..
    } = &peeked
    {
        // JSON as the grammar has it: numbers are not evaluated (one past f64's
        // range is still JSON), strings must be UTF-8.
        type Members<'a> = std::collections::BTreeMap<String, &'a serde_json::value::RawValue>;
        let text = std::str::from_utf8(data)
            .unwrap_or_else(|e| panic!("a peeked record is not UTF-8: {e}"));
        serde_json::from_str::<serde::de::IgnoredAny>(text)
            .unwrap_or_else(|e| panic!("a peeked record is not JSON: {e}"));
        let message: Members<'_> = serde_json::from_str(text).expect("an object");
        let field = |members: &Members<'_>, key: &str| -> Option<String> {
            serde_json::from_str(members.get(key)?.get()).ok()
        };
        assert_eq!(
            field(&message, "type").as_deref(),
            Some("RECORD"),
            "a peeked record's type"
        );
        let record: Members<'_> = serde_json::from_str(message["record"].get())
            .unwrap_or_else(|e| panic!("a peeked record's `record`: {e}"));
        assert_eq!(field(&record, "stream").as_deref(), Some(stream.as_ref()));
        assert_eq!(field(&record, "namespace").as_deref(), namespace.as_deref());
        assert!(
            record["data"].get().starts_with('{'),
            "a peeked record's data"
        );
    }
}

/// Fuzzes [`parse_message`] and the message model's round trip.
///
/// # Panics
///
/// When a parsed message, written with
/// [`AirbyteMessage::to_line`](crate::protocol::AirbyteMessage::to_line), is not
/// one line, does not parse again, or parses to a different message; or when the
/// line written the second time differs from the first.
pub fn message(data: &[u8]) {
    let Ok(message) = parse_message(data) else {
        return;
    };
    let line = message.to_line();
    assert!(
        !line.is_empty() && !line.contains('\n'),
        "to_line wrote {line:?}"
    );
    let again = parse_message(line.as_bytes())
        .unwrap_or_else(|e| panic!("a written message does not parse ({e}): {line}"));
    assert_eq!(again, message, "the round trip changed the message: {line}");
    assert_eq!(
        again.to_line(),
        line,
        "writing the message again changed it"
    );
    assert_eq!(
        classify_output(line.as_bytes()),
        OutputLine::Message(Box::new(message))
    );
}

/// Distinct cursor values, each with spellings of the same exact value.
const VALUES: &[&[&str]] = &[
    &["0", "0.0", "-0", "-0.0", "0e5", "0.000"],
    &["1", "1.0", "1e0", "10e-1", "0.1E1", "1.000", "1E+0"],
    &["-1", "-1.0", "-1e0"],
    &["1.5", "15e-1", "0.15e1", "1.50"],
    &["0.1", "1e-1", "0.10"],
    &["0.10000000000000000001"],
    &[
        "9007199254740992",
        "9007199254740992.0",
        "9.007199254740992e15",
    ],
    &[
        "9007199254740993",
        "9007199254740993.0",
        "9.007199254740993e15",
    ],
    &["18446744073709551615", "1.8446744073709551615e19"],
    &["-9223372036854775808"],
    &[
        "123456789012345678901234567890",
        "1.2345678901234567890123456789e29",
    ],
    &["123456789012345678901234567891"],
    &[r#""x""#, r#""\u0078""#],
    &[r#""1""#],
    &[r#"[1,"x"]"#, r#"[ 1.0 , "\u0078" ]"#],
    &[
        r#"{"a":1,"b":null}"#,
        r#"{"b":null,"a":1.0}"#,
        r#"{ "a" : 1e0 , "b" : null }"#,
    ],
    &["true"],
    &["null"],
];

/// `sourceStats` / `destinationStats` a state may carry (they never change which
/// state it is); the last [`HUGE_STATS`] are counts past 2^63.
const STATS: &[&str] = &[
    r#"{"recordCount":3.0}"#,
    r#"{"recordCount":0}"#,
    r#"{"recordCount":2.5}"#,
    r#"{"recordCount":-4.0}"#,
    r#"{"recordCount":7.0,"rejectedRecordCount":1.0,"x":[]}"#,
    r#"{"recordCount":1e19}"#,
    r#"{"recordCount":1e300}"#,
];
const HUGE_STATS: usize = 2;

/// The streams states are filed under.
const STREAMS: [(&str, Option<&str>); 3] = [("a", None), ("a", Some("x")), ("b", None)];

/// Which state a generated one is: two with the same identity are the same
/// state, however spelled; two with different identities never are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Identity {
    /// A STREAM state of `STREAMS[stream]` with cursor `VALUES[value]`.
    Stream { stream: usize, value: usize },
    /// A GLOBAL state with shared cursor `VALUES[value]`.
    Global { value: usize },
    /// A LEGACY state (`"type":"LEGACY"`) with cursor `VALUES[value]`.
    Legacy { value: usize },
    /// A state without `type` (LEGACY) with cursor `VALUES[value]`.
    Untyped { value: usize },
    /// A LEGACY state holding fuzz bytes (one JSON value) and a serial number;
    /// its echo is its exact text.
    Raw { serial: usize },
}

/// A JSON object from members written in the given order, with some spacing.
fn object(members: &[(&str, String)], spaced: bool) -> String {
    let (colon, comma) = if spaced { (" : ", " , ") } else { (":", ",") };
    let body: Vec<String> = members
        .iter()
        .map(|(key, value)| format!("\"{key}\"{colon}{value}"))
        .collect();
    format!("{{{}}}", body.join(comma))
}

/// Applies a permutation chosen by `order` to `members`.
fn shuffle<T>(members: &mut [T], order: u8) {
    let n = members.len();
    if n > 1 {
        members.rotate_left(usize::from(order) % n);
        if order & 0x80 != 0 {
            members.swap(0, n - 1);
        }
    }
}

/// A STATE message line for `identity`, spelled as `bytes` choose: member order,
/// spacing, number spelling, an explicit `"namespace":null`, stats.
fn state_line(
    identity: Identity,
    raw: &[String],
    respell: Respellings,
    bytes: &mut Bytes<'_>,
) -> String {
    let spelling = bytes.byte();
    let order = bytes.byte();
    let extras = bytes.byte();
    let spaced = extras & 1 != 0;
    let stats = if respell.huge_counts {
        STATS
    } else {
        &STATS[..STATS.len() - HUGE_STATS]
    };
    let value = |value: usize| {
        let spellings = VALUES[value];
        spellings[usize::from(spelling) % spellings.len()].to_owned()
    };
    let mut members: Vec<(&str, String)> = match identity {
        Identity::Stream { stream, value: v } => {
            let (name, namespace) = STREAMS[stream];
            let mut descriptor = vec![("name", format!("\"{name}\""))];
            match namespace {
                Some(namespace) => descriptor.push(("namespace", format!("\"{namespace}\""))),
                None if respell.null_namespace && extras & 2 != 0 => {
                    descriptor.push(("namespace", "null".into()))
                }
                None => {}
            }
            shuffle(&mut descriptor, order >> 3);
            let mut stream = vec![
                ("stream_descriptor", object(&descriptor, spaced)),
                ("stream_state", object(&[("cursor", value(v))], spaced)),
            ];
            shuffle(&mut stream, order >> 5);
            vec![
                ("type", "\"STREAM\"".into()),
                ("stream", object(&stream, spaced)),
            ]
        }
        Identity::Global { value: v } => {
            let mut global = vec![
                ("shared_state", object(&[("cursor", value(v))], spaced)),
                ("stream_states", "[]".into()),
            ];
            shuffle(&mut global, order >> 5);
            vec![
                ("type", "\"GLOBAL\"".into()),
                ("global", object(&global, spaced)),
            ]
        }
        Identity::Legacy { value: v } => vec![
            ("type", "\"LEGACY\"".into()),
            ("data", object(&[("cursor", value(v))], spaced)),
        ],
        Identity::Untyped { value: v } => vec![("data", object(&[("cursor", value(v))], spaced))],
        Identity::Raw { serial } => vec![
            ("type", "\"LEGACY\"".into()),
            (
                "data",
                format!(r#"{{"raw":{},"serial":{serial}}}"#, raw[serial]),
            ),
        ],
    };
    if !matches!(identity, Identity::Raw { .. }) {
        if extras & 4 != 0 {
            members.push((
                "sourceStats",
                stats[usize::from(extras >> 4) % stats.len()].into(),
            ));
        }
        if extras & 8 != 0 {
            members.push((
                "destinationStats",
                stats[usize::from(spelling >> 4) % stats.len()].into(),
            ));
        }
        shuffle(&mut members, order);
    } else if extras & 8 != 0 {
        members.push((
            "destinationStats",
            stats[usize::from(extras >> 4) % stats.len()].into(),
        ));
    }
    let mut message = vec![
        ("type", "\"STATE\"".into()),
        ("state", object(&members, spaced)),
    ];
    shuffle(&mut message, order >> 7);
    object(&message, spaced)
}

/// One state registered with the ledger, as the model remembers it.
struct Registered {
    identity: Identity,
    state: AirbyteStateMessage,
    records_before: Vec<(StreamDescriptor, u64)>,
    confirmed: bool,
}

/// Fuzzes the state ledger's echo matching: the bytes are a program of
/// registrations (states spelled in many ways, or holding fuzz bytes), echoes
/// (of pending, confirmed or never-sent states, respelled: member order, number
/// spelling such as `1` / `1.0` / `1e0`, an explicit `"namespace":null`, stats
/// added) and record counts, run against the ledger and against a model of it.
///
/// # Panics
///
/// When the ledger and the model disagree: an echo of a pending state must be
/// accepted and cover it and every earlier pending state, in order, with the
/// echo's `destinationStats` on the last and the record counts before it
/// confirmed; an echo of a state never sent is refused as
/// [`StateMismatch::NeverSent`]; an echo of a confirmed state, with no pending
/// twin, as [`StateMismatch::OutOfOrder`]; the counts and final states follow.
/// Also on any panic inside the ledger.
pub fn ledger_echoes(data: &[u8]) {
    ledger_echoes_with(data, Respellings::default());
}

/// Which respellings of a state [`ledger_echoes_with`] uses besides member order,
/// spacing, number spelling and stats (all of which it always uses).
#[derive(Debug, Clone, Copy)]
pub struct Respellings {
    /// `"namespace":null` in a stream descriptor that has no namespace (absent
    /// and explicit `null` read the same).
    pub null_namespace: bool,
    /// Record counts in `destinationStats` past 2^63 (`1e19`, `1e300`).
    pub huge_counts: bool,
}

impl Default for Respellings {
    fn default() -> Self {
        Self {
            null_namespace: true,
            huge_counts: true,
        }
    }
}

/// [`ledger_echoes`] with a choice of respellings, so that a fuzz run can leave
/// out one whose mismatch is already known.
pub fn ledger_echoes_with(data: &[u8], respell: Respellings) {
    let mut bytes = Bytes(data);
    let mut ledger = Ledger::default();
    let mut model: Vec<Registered> = Vec::new();
    let mut raw: Vec<String> = Vec::new();
    let mut counts: Vec<(StreamDescriptor, u64)> = STREAMS
        .iter()
        .map(|(name, namespace)| {
            StreamDescriptor::with_namespace(*name, namespace.map(str::to_owned))
        })
        .map(|d| (d, 0))
        .collect();
    let mut final_states: Vec<(Identity, AirbyteStateMessage)> = Vec::new();
    let mut confirmed_count = 0u64;
    let mut steps = 0;
    while !bytes.is_empty() && steps < 200 {
        steps += 1;
        let op = bytes.byte();
        match op % 8 {
            0..=2 => {
                let kind = bytes.byte();
                let value = usize::from(bytes.byte()) % VALUES.len();
                let identity = match kind % 4 {
                    0 => Identity::Stream {
                        stream: usize::from(kind >> 2) % STREAMS.len(),
                        value,
                    },
                    1 => Identity::Global { value },
                    2 => Identity::Legacy { value },
                    _ => Identity::Untyped { value },
                };
                register(
                    &mut ledger,
                    &mut model,
                    identity,
                    &raw,
                    respell,
                    &counts,
                    &mut bytes,
                );
            }
            3 => {
                let len = usize::from(bytes.byte() % 64);
                let Ok(text) = std::str::from_utf8(bytes.take(len)) else {
                    continue;
                };
                if serde_json::from_str::<&serde_json::value::RawValue>(text).is_err() {
                    continue;
                }
                raw.push(text.trim().to_owned());
                let identity = Identity::Raw {
                    serial: raw.len() - 1,
                };
                register(
                    &mut ledger,
                    &mut model,
                    identity,
                    &raw,
                    respell,
                    &counts,
                    &mut bytes,
                );
            }
            4 => {
                let (i, n) = (bytes.byte(), bytes.byte());
                let slot = &mut counts[usize::from(i) % STREAMS.len()].1;
                *slot += u64::from(n);
            }
            _ => {
                // Echo: a registered state (pending or not), or any identity.
                let which = bytes.byte();
                let identity = if which % 4 != 3 && !model.is_empty() {
                    model[usize::from(bytes.byte()) % model.len()].identity
                } else {
                    let value = usize::from(bytes.byte()) % VALUES.len();
                    match which >> 2 & 3 {
                        0 => Identity::Stream {
                            stream: usize::from(which >> 4) % STREAMS.len(),
                            value,
                        },
                        1 => Identity::Global { value },
                        2 => Identity::Legacy { value },
                        _ => Identity::Untyped { value },
                    }
                };
                let line = state_line(identity, &raw, respell, &mut bytes);
                let Ok(message) = parse_message(line.as_bytes()) else {
                    panic!("a generated echo does not parse: {line}");
                };
                let Payload::State(echoed) = message.payload else {
                    panic!("a generated echo is not a STATE: {line}");
                };
                let result = ledger.accept(&echoed, line.as_bytes());
                let pending = model
                    .iter()
                    .enumerate()
                    .filter(|(_, r)| !r.confirmed)
                    .find(|(_, r)| r.identity == identity)
                    .map(|(i, _)| i);
                match pending {
                    Some(matched) => {
                        let covered = result.unwrap_or_else(|e| {
                            panic!("an echo of a pending state was refused ({e:?}): {line}")
                        });
                        let expected: Vec<usize> =
                            (0..=matched).filter(|i| !model[*i].confirmed).collect();
                        assert_eq!(
                            covered.len(),
                            expected.len(),
                            "the echo covers {} states, not {}: {line}",
                            covered.len(),
                            expected.len()
                        );
                        for (state, &i) in covered.iter().zip(&expected) {
                            let mut sent = model[i].state.clone();
                            if i == matched {
                                sent.destination_stats = echoed.destination_stats.clone();
                            }
                            assert_eq!(state, &sent, "a covered state changed: {line}");
                            model[i].confirmed = true;
                            let identity = model[i].identity;
                            let slot = slot_of(identity);
                            final_states.retain(|(other, _)| slot_of(*other) != slot);
                            final_states.push((identity, state.clone()));
                        }
                        confirmed_count += expected.len() as u64;
                        assert_eq!(
                            ledger.confirmed, model[matched].records_before,
                            "the confirmed record counts"
                        );
                    }
                    None => {
                        let expected = if model.iter().any(|r| r.identity == identity) {
                            StateMismatch::OutOfOrder
                        } else {
                            StateMismatch::NeverSent
                        };
                        assert_eq!(result, Err(expected), "the echo {line}");
                    }
                }
                assert_eq!(ledger.states_confirmed, confirmed_count);
                assert_eq!(ledger.states_sent, model.len() as u64);
                let mut finals = ledger.final_states();
                let mut expected: Vec<AirbyteStateMessage> =
                    final_states.iter().map(|(_, s)| s.clone()).collect();
                let key = |s: &AirbyteStateMessage| serde_json::to_string(s).unwrap_or_default();
                finals.sort_by_key(key);
                expected.sort_by_key(key);
                assert_eq!(finals, expected, "the final states");
            }
        }
    }
}

/// The ledger's filing slot of an identity (as text, for comparing).
fn slot_of(identity: Identity) -> String {
    match identity {
        Identity::Stream { stream, .. } => format!("stream {stream}"),
        Identity::Global { .. } => "global".into(),
        _ => "legacy".into(),
    }
}

fn register(
    ledger: &mut Ledger,
    model: &mut Vec<Registered>,
    identity: Identity,
    raw: &[String],
    respell: Respellings,
    counts: &[(StreamDescriptor, u64)],
    bytes: &mut Bytes<'_>,
) {
    let line = state_line(identity, raw, respell, bytes);
    let Ok(message) = parse_message(line.as_bytes()) else {
        // A state the write loop would skip (say, a number out of range).
        assert!(
            matches!(identity, Identity::Raw { .. }),
            "a generated state does not parse: {line}"
        );
        return;
    };
    let Payload::State(state) = message.payload else {
        panic!("a generated state is not a STATE: {line}");
    };
    ledger.register(SentState::new(
        state.clone(),
        line.as_bytes(),
        counts.to_vec(),
    ));
    model.push(Registered {
        identity,
        state,
        records_before: counts.to_vec(),
        confirmed: false,
    });
}
