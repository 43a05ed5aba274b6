//! The feeding half of the write loop: input lines in, batches to the destination out.
//!
//! Owns reading, classifying and counting input, and framing each batch it sends
//! (a [`crate::protocol::Frame`] per line: kind, stream index, where a record's data lies). Records
//! are looked at, not parsed ([`crate::protocol::peek_line`]); STATE and TRACE lines
//! are parsed because the loop must know them. It does not read the destination's
//! output.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncRead, BufReader};
use tokio::sync::mpsc;

use crate::protocol::{
    ConfiguredAirbyteCatalog, FramingError, LineBatch, LinePeek, LineReader, MessageType, Payload,
    StreamDescriptor, TraceType, parse_message, peek_line,
};

use super::ledger::SentState;
use crate::events::{StreamSpans, StreamStarted};
use crate::protocol::framing::{message_frame, record_frame};

/// Read buffer for the input.
const INPUT_BUFFER_BYTES: usize = 256 * 1024;
/// Warnings about bad lines printed before the rest are only counted.
const BAD_LINE_WARNINGS: u64 = 10;

/// Counters the progress display reads while the feed runs.
#[derive(Debug, Default)]
pub(crate) struct LiveCounters {
    pub records_sent: AtomicU64,
    pub bytes_sent: AtomicU64,
    /// Records sent per stream, as of the last batch.
    pub per_stream: std::sync::Mutex<Vec<(StreamDescriptor, u64)>>,
}

impl LiveCounters {
    fn publish(&self, sent: &StreamCounts) {
        let mut per_stream = self.per_stream.lock().unwrap_or_else(|p| p.into_inner());
        per_stream.clear();
        per_stream.extend(sent.counts.iter().cloned());
    }
}

/// Records sent per stream, found by a linear scan: catalogs are short, and the last
/// hit is checked first, so a run of one stream costs one comparison a record.
#[derive(Debug, Default, Clone)]
pub(crate) struct StreamCounts {
    counts: Vec<(StreamDescriptor, u64)>,
    last: usize,
}

impl StreamCounts {
    fn for_catalog(catalog: &ConfiguredAirbyteCatalog) -> Self {
        Self {
            counts: catalog.descriptors().into_iter().map(|d| (d, 0)).collect(),
            last: 0,
        }
    }

    /// Counts one record: the stream's index in the catalog and its count with
    /// it, `None` if the stream is not in the catalog.
    fn count(&mut self, name: &str, namespace: Option<&str>) -> Option<(usize, u64)> {
        let matches = |(d, _): &(StreamDescriptor, u64)| {
            d.name == name && d.namespace.as_deref() == namespace
        };
        if !self.counts.get(self.last).is_some_and(matches) {
            self.last = self.counts.iter().position(matches)?;
        }
        let count = &mut self.counts[self.last].1;
        *count += 1;
        Some((self.last, *count))
    }

    pub fn snapshot(&self) -> Vec<(StreamDescriptor, u64)> {
        self.counts.clone()
    }
}

/// What the feed did, when it ended.
#[derive(Debug, Default)]
pub(crate) struct FeedSummary {
    /// Records per stream in the batches handed to the destination.
    pub sent: StreamCounts,
    pub lines_skipped: u64,
    pub records_skipped: u64,
    /// The input was read to its end and the destination's input closed.
    pub input_complete: bool,
    /// After a broken input or a stall, the destination's input, held open: the
    /// loop aborts the destination, which must not see its input end as if it
    /// were complete. Dropped once the write is over.
    pub input_held_open: Option<mpsc::Sender<LineBatch>>,
}

/// Why the feed stopped early.
#[derive(Debug)]
pub(crate) enum FeedError {
    /// The input could not be read or framed.
    Input(FramingError),
    /// The destination did not take a batch within the stall timeout.
    Stalled(Duration),
    /// The destination's input closed before the input ended.
    DestinationClosed,
}

/// The batch being built: its records and states count as sent (and the states are
/// registered with the ledger) only as it goes to the destination, so a batch the
/// input breaks in the middle of is neither counted nor confirmable.
#[derive(Default)]
struct Pending {
    /// Records per stream read so far, this batch's included.
    read: StreamCounts,
    /// Records in this batch.
    records: u64,
    /// States in this batch, each with the counts before it.
    states: Vec<SentState>,
}

pub(crate) struct Feed {
    pub catalog: ConfiguredAirbyteCatalog,
    pub max_line_bytes: usize,
    pub batch_bytes: usize,
    pub batch_lines: usize,
    pub stall_timeout: Duration,
    pub counters: Arc<LiveCounters>,
    pub states: mpsc::UnboundedSender<SentState>,
    pub control: Option<super::ControlCallback>,
    /// The streams' spans, for `stream_started`.
    pub spans: Arc<StreamSpans>,
}

impl Feed {
    /// Reads `input` to its end, sending batches to `destination`. Dropping
    /// `destination` at the end closes the destination's input; when the input
    /// breaks or the destination stalls, it is held in the summary instead.
    pub async fn run(
        self,
        input: Box<dyn AsyncRead + Send + Unpin>,
        destination: mpsc::Sender<LineBatch>,
    ) -> (FeedSummary, Result<(), FeedError>) {
        let mut summary = FeedSummary {
            sent: StreamCounts::for_catalog(&self.catalog),
            ..FeedSummary::default()
        };
        let result = self.feed(input, &destination, &mut summary).await;
        if let Err(FeedError::Input(_) | FeedError::Stalled(_)) = result {
            summary.input_held_open = Some(destination);
        }
        (summary, result)
    }

    async fn feed(
        &self,
        input: Box<dyn AsyncRead + Send + Unpin>,
        destination: &mpsc::Sender<LineBatch>,
        summary: &mut FeedSummary,
    ) -> Result<(), FeedError> {
        let mut reader = LineReader::new(
            BufReader::with_capacity(INPUT_BUFFER_BYTES, input),
            self.max_line_bytes,
        );
        let mut batch = LineBatch::with_capacity(self.batch_bytes + self.batch_bytes / 4);
        let mut warned_streams: Vec<StreamDescriptor> = Vec::new();
        let mut pending = Pending {
            read: summary.sent.clone(),
            ..Pending::default()
        };
        loop {
            let start = batch.byte_len();
            let Some(range) = reader
                .read_line_into(batch.buffer_mut())
                .await
                .map_err(FeedError::Input)?
            else {
                break;
            };
            let line_number = reader.line_number();
            let frame = {
                let line = &batch.as_bytes()[range.clone()];
                match peek_line(line) {
                    LinePeek::Empty => None,
                    LinePeek::Record {
                        stream,
                        namespace,
                        data,
                        meta,
                        emitted_at,
                    } => {
                        if let Some((index, count)) =
                            pending.read.count(&stream, namespace.as_deref())
                        {
                            if count == 1 {
                                StreamStarted.emit(self.spans.find(&stream, namespace.as_deref()));
                            }
                            pending.records += 1;
                            Some(record_frame(
                                range.start,
                                line.len(),
                                index,
                                data,
                                meta,
                                emitted_at,
                            ))
                        } else {
                            summary.records_skipped += 1;
                            let descriptor = StreamDescriptor::with_namespace(
                                stream.as_ref(),
                                namespace.map(|n| n.into_owned()),
                            );
                            if !warned_streams.contains(&descriptor) {
                                tracing::warn!(
                                    "input line {line_number}: stream {descriptor} is not in the configured catalog; \
                                     its records are skipped (add the stream to the catalog to write it)"
                                );
                                warned_streams.push(descriptor);
                            }
                            None
                        }
                    }
                    LinePeek::Other(kind) => self
                        .other_message(kind, line, line_number, &mut pending, summary)
                        .then(|| message_frame(range.start, line.len(), kind)),
                    LinePeek::NotAMessage(reason) => {
                        summary.lines_skipped += 1;
                        if summary.lines_skipped <= BAD_LINE_WARNINGS {
                            tracing::warn!(
                                "input line {line_number} is not an Airbyte message and was skipped: {reason}"
                            );
                        }
                        None
                    }
                }
            };
            let Some(frame) = frame else {
                batch.truncate(start);
                continue;
            };
            batch.commit_line();
            batch.push_frame(frame);
            let is_full =
                batch.byte_len() >= self.batch_bytes || batch.line_count() >= self.batch_lines;
            if is_full || reader.get_ref().buffer().is_empty() {
                self.send(destination, batch.take(), &mut pending, summary)
                    .await?;
            }
        }
        if !batch.is_empty() {
            self.send(destination, batch, &mut pending, summary).await?;
        }
        if summary.lines_skipped > BAD_LINE_WARNINGS {
            tracing::warn!(
                "{} input lines in all were not Airbyte messages and were skipped",
                summary.lines_skipped
            );
        }
        summary.input_complete = true;
        Ok(())
    }

    /// Decides whether a non-record message goes to the destination, keeping
    /// states in `pending` until their batch is sent.
    fn other_message(
        &self,
        kind: MessageType,
        line: &[u8],
        line_number: u64,
        pending: &mut Pending,
        summary: &mut FeedSummary,
    ) -> bool {
        let message = match parse_message(line) {
            Ok(message) => message,
            Err(error) => {
                summary.lines_skipped += 1;
                tracing::warn!(
                    "input line {line_number}: malformed {} message skipped: {error}",
                    kind.as_str()
                );
                return false;
            }
        };
        match message.payload {
            Payload::State(state) => {
                let before = pending.read.snapshot();
                pending.states.push(SentState::new(state, line, before));
                true
            }
            Payload::Trace(trace) => match trace.trace_type {
                TraceType::StreamStatus => true,
                TraceType::Error => {
                    let text = trace.error.map(|e| e.message).unwrap_or_default();
                    tracing::warn!("input reports an error: {text}");
                    false
                }
                _ => false,
            },
            Payload::Log(log) => {
                tracing::debug!(level = log.level.as_str(), "input: {}", log.message);
                false
            }
            Payload::Control(control) => {
                match (&self.control, control.connector_config) {
                    (Some(callback), Some(update)) => callback(&update.config),
                    _ => tracing::warn!(
                        "input line {line_number}: the source asked to store an updated config \
                         (CONTROL connectorConfig); a plain write does not persist it (airlock sync does)"
                    ),
                }
                false
            }
            _ => {
                tracing::debug!(
                    "input line {line_number}: {} message not forwarded",
                    kind.as_str()
                );
                false
            }
        }
    }

    /// Sends `batch`, the one `pending` describes.
    async fn send(
        &self,
        destination: &mpsc::Sender<LineBatch>,
        batch: LineBatch,
        pending: &mut Pending,
        summary: &mut FeedSummary,
    ) -> Result<(), FeedError> {
        // The ledger learns of a state before the destination can echo it.
        for state in pending.states.drain(..) {
            let _ = self.states.send(state);
        }
        summary.sent.clone_from(&pending.read);
        let records = std::mem::take(&mut pending.records);
        let bytes = batch.byte_len() as u64;
        match tokio::time::timeout(self.stall_timeout, destination.send(batch)).await {
            Ok(Ok(())) => {
                self.counters
                    .records_sent
                    .fetch_add(records, Ordering::Relaxed);
                self.counters.bytes_sent.fetch_add(bytes, Ordering::Relaxed);
                self.counters.publish(&summary.sent);
                Ok(())
            }
            // The destination's input is gone: it exited or stopped reading. The
            // loop learns why from its exit status.
            Ok(Err(_closed)) => Err(FeedError::DestinationClosed),
            Err(_elapsed) => Err(FeedError::Stalled(self.stall_timeout)),
        }
    }
}
