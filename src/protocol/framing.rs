//! Line framing: newline-delimited JSON in, bounded lines out, and the cheap look at a
//! line that tells what it is without parsing its record data.
//!
//! Owns [`LineReader`] (async, length-bounded) and [`peek_line`]. It does not decide
//! what to do with a line; the write loop and the executors do.

use std::borrow::Cow;
use std::ops::Range;

use serde::Deserialize;
use tokio::io::{AsyncBufRead, AsyncBufReadExt};

use crate::protocol::message::{AirbyteMessage, MessageType};
use crate::protocol::{Frame, FrameKind, Span};

/// The default cap on one line: 256 MiB. A longer line is an error, never an
/// attempt to buffer it all.
pub const DEFAULT_MAX_LINE_BYTES: usize = 256 * 1024 * 1024;

/// A framing failure.
#[derive(Debug, thiserror::Error)]
pub enum FramingError {
    /// A line exceeded the cap.
    #[error("line {line_number} is longer than the {limit}-byte line limit")]
    LineTooLong {
        /// 1-based line number.
        line_number: u64,
        /// The cap in force.
        limit: usize,
    },
    /// The underlying reader failed.
    #[error("reading line {line_number}")]
    Io {
        /// 1-based line number.
        line_number: u64,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

impl FramingError {
    /// What would fix it: a longer line limit, for a line over it.
    pub fn remedy(&self) -> Option<crate::remedy::Remedy> {
        match self {
            Self::LineTooLong { .. } => Some(crate::remedy::Remedy::RaiseLineLimit),
            _ => None,
        }
    }
}

/// Reads newline-delimited lines from an async reader, each at most `max_line_bytes`.
///
/// Lines are appended to a caller's buffer so the write loop can batch them without
/// copying twice. A trailing `\r` is kept (JSON parsers treat it as whitespace).
#[derive(Debug)]
pub struct LineReader<R> {
    reader: R,
    max_line_bytes: usize,
    line_number: u64,
}

impl<R: AsyncBufRead + Unpin> LineReader<R> {
    /// A reader with the given cap on line length.
    pub fn new(reader: R, max_line_bytes: usize) -> Self {
        Self {
            reader,
            max_line_bytes,
            line_number: 0,
        }
    }

    /// The underlying reader (e.g. to ask a `BufReader` whether input is buffered).
    pub fn get_ref(&self) -> &R {
        &self.reader
    }

    /// The underlying reader, for draining what is left.
    pub fn into_inner(self) -> R {
        self.reader
    }

    /// Lines read so far.
    pub fn line_number(&self) -> u64 {
        self.line_number
    }

    /// Appends the next line (without its `\n`) to `buf` and returns where it lies in
    /// `buf`, or `None` at end of input.
    ///
    /// # Errors
    /// [`FramingError::LineTooLong`] when the line passes the cap (the rest of it is
    /// not read); [`FramingError::Io`] when the reader fails.
    pub async fn read_line_into(
        &mut self,
        buf: &mut Vec<u8>,
    ) -> Result<Option<Range<usize>>, FramingError> {
        let start = buf.len();
        let mut saw_any = false;
        loop {
            let available = match self.reader.fill_buf().await {
                Ok(bytes) => bytes,
                Err(source) => {
                    return Err(FramingError::Io {
                        line_number: self.line_number + 1,
                        source,
                    });
                }
            };
            if available.is_empty() {
                if !saw_any {
                    return Ok(None);
                }
                self.line_number += 1;
                return Ok(Some(start..buf.len()));
            }
            saw_any = true;
            let (chunk, consumed, done) = match memchr::memchr(b'\n', available) {
                Some(i) => (&available[..i], i + 1, true),
                None => (available, available.len(), false),
            };
            if buf.len() - start + chunk.len() > self.max_line_bytes {
                buf.truncate(start);
                self.line_number += 1;
                return Err(FramingError::LineTooLong {
                    line_number: self.line_number,
                    limit: self.max_line_bytes,
                });
            }
            buf.extend_from_slice(chunk);
            self.reader.consume(consumed);
            if done {
                self.line_number += 1;
                return Ok(Some(start..buf.len()));
            }
        }
    }
}

/// What a line is, learned without parsing record data into a tree.
#[derive(Debug, PartialEq)]
pub enum LinePeek<'a> {
    /// Blank: a keep-alive.
    Empty,
    /// A RECORD for this stream.
    Record {
        /// Stream name.
        stream: Cow<'a, str>,
        /// Namespace, if any.
        namespace: Option<Cow<'a, str>>,
        /// Where the record's `data` object lies in the line.
        data: Range<usize>,
        /// Where its `meta` lies, when present and not null.
        meta: Option<Range<usize>>,
        /// Its `emitted_at` in milliseconds (a fraction truncated).
        emitted_at: i64,
    },
    /// Another message type; parse it fully with [`parse_message`] if needed.
    Other(MessageType),
    /// Not an Airbyte message: a log line. Holds why.
    NotAMessage(String),
}

#[derive(Deserialize)]
struct PeekWire<'a> {
    #[serde(rename = "type")]
    kind: MessageType,
    #[serde(borrow, default)]
    record: Option<RecordPeek<'a>>,
}

#[derive(Deserialize)]
struct RecordPeek<'a> {
    #[serde(borrow)]
    stream: Cow<'a, str>,
    #[serde(borrow, default)]
    namespace: Option<Cow<'a, str>>,
    /// Skipped as raw text (serde_json's fastest skip: keys are not decoded);
    /// checked to be an object below.
    #[serde(borrow)]
    data: &'a serde_json::value::RawValue,
    emitted_at: serde_json::Number,
    #[serde(borrow, default)]
    meta: Option<&'a serde_json::value::RawValue>,
}

/// Where `inner`, a slice of `outer`, lies in it.
fn offset_in(outer: &str, inner: &str) -> Range<usize> {
    let start = (inner.as_ptr() as usize).saturating_sub(outer.as_ptr() as usize);
    start..start + inner.len()
}

/// Milliseconds from a JSON number: an integer, or a float truncated (saturating).
fn epoch_millis(number: &serde_json::Number) -> i64 {
    number
        .as_i64()
        .or_else(|| number.as_u64().map(|_| i64::MAX))
        .unwrap_or_else(|| number.as_f64().map_or(0, |f| f as i64))
}

/// Looks at one line and says what it is. RECORD lines are checked for shape
/// (`stream` a string, `data` an object, `emitted_at` a number) and to be UTF-8,
/// but their data is skipped, not built.
pub fn peek_line(line: &[u8]) -> LinePeek<'_> {
    if line.iter().all(u8::is_ascii_whitespace) {
        return LinePeek::Empty;
    }
    // JSON text is UTF-8. The parser checks only the strings it decodes, so a line
    // with invalid UTF-8 in skipped data or an unknown field would pass as a record.
    let Ok(line) = std::str::from_utf8(line) else {
        return LinePeek::NotAMessage("the line is not UTF-8".into());
    };
    match serde_json::from_str::<PeekWire<'_>>(line) {
        Ok(PeekWire {
            kind: MessageType::Record,
            record: Some(r),
        }) if !r.data.get().starts_with('{') => {
            LinePeek::NotAMessage("RECORD `data` is not a JSON object".into())
        }
        Ok(PeekWire {
            kind: MessageType::Record,
            record: Some(r),
        }) => LinePeek::Record {
            data: offset_in(line, r.data.get()),
            meta: r.meta.map(|meta| offset_in(line, meta.get())),
            emitted_at: epoch_millis(&r.emitted_at),
            stream: r.stream,
            namespace: r.namespace,
        },
        Ok(PeekWire {
            kind: MessageType::Record,
            record: None,
        }) => LinePeek::NotAMessage("RECORD message has no `record` field".into()),
        Ok(PeekWire { kind, .. }) => LinePeek::Other(kind),
        Err(e) => LinePeek::NotAMessage(e.to_string()),
    }
}

/// Parses one line into a full [`AirbyteMessage`].
///
/// # Errors
/// The parser's error when the line is not JSON or not a message.
pub fn parse_message(line: &[u8]) -> Result<AirbyteMessage, serde_json::Error> {
    serde_json::from_slice(line)
}

/// One line of connector output, classified.
#[derive(Debug, Clone, PartialEq)]
pub enum OutputLine {
    /// A blank keep-alive.
    Empty,
    /// A protocol message.
    Message(Box<AirbyteMessage>),
    /// Text that is not a message: a log line.
    Text(String),
}

/// Classifies a line of connector output: blank, a message, or log text.
pub fn classify_output(line: &[u8]) -> OutputLine {
    if line.iter().all(u8::is_ascii_whitespace) {
        return OutputLine::Empty;
    }
    match parse_message(line) {
        Ok(message) => OutputLine::Message(Box::new(message)),
        Err(_) => OutputLine::Text(String::from_utf8_lossy(line).trim_end().to_owned()),
    }
}

/// Whole lines of JSON in one buffer, each ending in `\n`: the unit that crosses an
/// executor boundary, so no executor pays a call per record.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LineBatch {
    bytes: Vec<u8>,
    lines: usize,
    /// The framing table, when whoever built the batch framed its lines (the
    /// write loop does; `airlock:destination@0.2.0` plugins receive it).
    frames: Vec<Frame>,
}

impl LineBatch {
    /// An empty batch with room for `bytes`.
    pub fn with_capacity(bytes: usize) -> Self {
        Self {
            bytes: Vec::with_capacity(bytes),
            lines: 0,
            frames: Vec::new(),
        }
    }

    /// A batch of the newline-delimited lines in `bytes` (a final line without
    /// `\n` gets one).
    pub fn from_lines(mut bytes: Vec<u8>) -> Self {
        if bytes.last().is_some_and(|b| *b != b'\n') {
            bytes.push(b'\n');
        }
        let lines = memchr::memchr_iter(b'\n', &bytes).count();
        Self {
            bytes,
            lines,
            frames: Vec::new(),
        }
    }

    /// Frames the line just committed: `frame`'s spans are offsets in the batch.
    pub fn push_frame(&mut self, frame: Frame) {
        self.frames.push(frame);
    }

    /// The framing table: one frame per line when the batch was framed (see
    /// [`LineBatch::is_framed`]), else empty.
    pub fn frames(&self) -> &[Frame] {
        &self.frames
    }

    /// Whether every line has its frame.
    pub fn is_framed(&self) -> bool {
        self.frames.len() == self.lines
    }

    /// Appends one line; a `\n` is added.
    pub fn push_line(&mut self, line: &[u8]) {
        self.bytes.extend_from_slice(line);
        self.bytes.push(b'\n');
        self.lines += 1;
    }

    /// The buffer, for appending a line in place with [`LineReader::read_line_into`];
    /// finish it with [`LineBatch::commit_line`] or roll it back with
    /// [`LineBatch::truncate`].
    pub fn buffer_mut(&mut self) -> &mut Vec<u8> {
        &mut self.bytes
    }

    /// Terminates the line just read into [`LineBatch::buffer_mut`] and counts it.
    pub fn commit_line(&mut self) {
        self.bytes.push(b'\n');
        self.lines += 1;
    }

    /// Drops bytes past `len` (a line that is not to be sent).
    pub fn truncate(&mut self, len: usize) {
        self.bytes.truncate(len);
    }

    /// Lines in the batch.
    pub fn line_count(&self) -> usize {
        self.lines
    }

    /// Bytes in the batch, newlines included.
    pub fn byte_len(&self) -> usize {
        self.bytes.len()
    }

    /// Whether the batch holds no line.
    pub fn is_empty(&self) -> bool {
        self.lines == 0
    }

    /// The raw bytes: lines, each ending in `\n`.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Each line without its `\n`.
    pub fn lines(&self) -> impl Iterator<Item = &[u8]> {
        let body = self.bytes.strip_suffix(b"\n").unwrap_or(&self.bytes);
        body.split(|b| *b == b'\n').filter(move |_| self.lines > 0)
    }

    /// Takes the contents, leaving an empty batch with the same capacity.
    pub fn take(&mut self) -> LineBatch {
        let capacity = self.bytes.capacity();
        let frames = self.frames.capacity();
        let mut empty = LineBatch::with_capacity(capacity);
        empty.frames.reserve(frames);
        std::mem::replace(self, empty)
    }
}

/// The frame of a RECORD line that starts at byte `start` of its batch: `data`
/// and `meta` are the ranges [`peek_line`] found in the line.
pub fn record_frame(
    start: usize,
    line_len: usize,
    stream: usize,
    data: Range<usize>,
    meta: Option<Range<usize>>,
    emitted_at: i64,
) -> Frame {
    let at = |r: Range<usize>| Span::of(start + r.start..start + r.end).unwrap_or_default();
    Frame {
        kind: FrameKind::Record,
        line: at(0..line_len),
        stream: stream as u32,
        data: at(data),
        meta: meta.map(at),
        emitted_at,
    }
}

/// The frame of a non-record message line that starts at byte `start`.
pub fn message_frame(start: usize, line_len: usize, kind: MessageType) -> Frame {
    Frame::message(
        FrameKind::of_type(kind.as_str()),
        Span::of(start..start + line_len).unwrap_or_default(),
    )
}

/// `batch` with its framing table, for a batch built without one: a frame for
/// each line that is a message (a record only when its stream is in `streams`,
/// whose order gives the stream index). Lines without a frame are not delivered
/// to a plugin that reads the table.
pub fn framed(mut batch: LineBatch, streams: &[crate::protocol::StreamDescriptor]) -> LineBatch {
    batch.frames.clear();
    let mut start = 0usize;
    let bytes = std::mem::take(&mut batch.bytes);
    for line in bytes.split(|b| *b == b'\n') {
        let frame = match peek_line(line) {
            LinePeek::Record {
                stream,
                namespace,
                data,
                meta,
                emitted_at,
            } => streams
                .iter()
                .position(|d| d.name == stream && d.namespace.as_deref() == namespace.as_deref())
                .map(|index| record_frame(start, line.len(), index, data, meta, emitted_at)),
            LinePeek::Other(kind) => Some(message_frame(start, line.len(), kind)),
            LinePeek::Empty | LinePeek::NotAMessage(_) => None,
        };
        batch.frames.extend(frame);
        start += line.len() + 1;
    }
    batch.bytes = bytes;
    batch
}
