//! `events`: airlock's named tracing events and the spans they sit in, each
//! defined once.
//!
//! Owns every span name and field (`sync`, `write`, `stream`), and every named
//! event: its `event` field (the stable name machines filter on), its level, its
//! fields and its message. The layers that see a thing happen ([`crate::sync`],
//! [`crate::write`], the executors' diagnostics) build the event here and emit it;
//! none of them spells an event's name or picks its level itself. This module does
//! not decide when anything happens, holds no counts, and installs no subscriber
//! (the CLI does).
//!
//! An event about a stream is emitted with that stream's span entered for just
//! that event (never across an `.await`): subscribers that look only at the
//! current span (the JSON formatter's span list) then see the same spans as those
//! that follow an event's parent.
//!
//! Spans, outermost first:
//! - `sync` (`sync_id`, `source`, `destination`): one [`crate::sync::SyncJob`] run;
//!   the source's log lines sit here.
//! - `write` (`destination`): one [`crate::write::WriteJob`] run, with or without a
//!   sync around it; the destination's log lines sit here.
//! - `stream` (`stream`, `namespace`): one stream of a write, entered only for
//!   events about that stream (streams interleave in one write).
//!
//! Events (`event` field; level):
//! - `sync_started` (INFO), `sync_pipelined` (DEBUG: a cached sync's destination
//!   starts once the read committed its first slice), `sync_finished` (INFO:
//!   counts, `outcome`, `error`);
//! - `write_started` (DEBUG), `write_finished` (INFO: counts, `completed`);
//! - `stream_started` (INFO: the first record was sent), `stream_completed` (INFO:
//!   `sent`, `confirmed`; the write finished cleanly), `stream_stopped` (INFO: the
//!   write failed; what was confirmed is kept);
//! - `state_committed` (DEBUG: `stream`, `namespace`, `states`, `records`; after the
//!   states were persisted), `records_confirmed` (DEBUG: `count`, `total`, `by` =
//!   `state` or `completion`);
//! - `connector_log` (target `airlock::connector`; the connector's own level where
//!   it gave one, else INFO: `connector` and the masked line as the message),
//!   `connector_error` (ERROR: a TRACE ERROR, masked).

use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};

use tracing::{Level, Span};

use crate::protocol::{LogLevel, StreamDescriptor};

/// The target of every line a connector logged: filter them with
/// `AIRLOCK_LOG=airlock::connector=…`.
pub const CONNECTOR_TARGET: &str = "airlock::connector";

/// A short id, unique enough to tell one sync's lines from another's: 12 hex
/// digits from the clock, a process counter and the process's random hash keys.
pub fn new_sync_id() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut hasher = std::hash::RandomState::new().build_hasher();
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    hasher.write_u32(std::process::id());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    hasher.write_u128(now.as_nanos());
    format!("{:012x}", hasher.finish() >> 16)
}

/// `secs` rounded to the millisecond, for a field.
fn millis(secs: f64) -> f64 {
    (secs * 1000.0).round() / 1000.0
}

/// The span of one sync.
pub fn sync_span(sync_id: &str, source: &str, destination: &str) -> Span {
    tracing::info_span!("sync", %sync_id, %source, %destination)
}

/// The span of one write (inside a sync's span, when there is one).
pub fn write_span(destination: &str) -> Span {
    tracing::info_span!("write", %destination)
}

/// The spans of a write's streams, created once each, children of the write span.
#[derive(Debug, Clone)]
pub struct StreamSpans {
    write: Span,
    streams: Vec<(StreamDescriptor, Span)>,
}

impl StreamSpans {
    /// A span per descriptor, under `write`.
    pub fn new(write: &Span, descriptors: impl IntoIterator<Item = StreamDescriptor>) -> Self {
        let streams = descriptors
            .into_iter()
            .map(|d| {
                let span = tracing::info_span!(
                    parent: write,
                    "stream",
                    stream = %d.name,
                    namespace = d.namespace.as_deref().map(tracing::field::display)
                );
                (d, span)
            })
            .collect();
        Self {
            write: write.clone(),
            streams,
        }
    }

    /// The write's own span.
    pub fn write(&self) -> &Span {
        &self.write
    }

    /// The span of the stream `name` in `namespace`; the write's span for a stream
    /// not in the catalog.
    pub fn find(&self, name: &str, namespace: Option<&str>) -> &Span {
        self.streams
            .iter()
            .find(|(d, _)| d.name == name && d.namespace.as_deref() == namespace)
            .map_or(&self.write, |(_, span)| span)
    }

    /// The span of `descriptor`.
    pub fn of(&self, descriptor: &StreamDescriptor) -> &Span {
        self.find(&descriptor.name, descriptor.namespace.as_deref())
    }
}

/// A sync began.
pub struct SyncStarted<'a> {
    /// How the data goes: `stream-through`, `cache` or `cached-read`.
    pub mode: &'a str,
}

impl SyncStarted<'_> {
    /// Emits the event in the current span.
    pub fn emit(&self) {
        tracing::info!(event = "sync_started", mode = %self.mode, "sync started");
    }
}

/// A cached sync's read committed its first slice: the destination starts now
/// and follows the read (a read that commits nothing until it ends is written
/// after it, and says nothing here).
pub struct SyncPipelined;

impl SyncPipelined {
    /// Emits the event in the current span.
    pub fn emit(&self) {
        tracing::debug!(
            event = "sync_pipelined",
            "the read committed its first slice; the destination starts and follows it"
        );
    }
}

/// A sync ended, well or not.
pub struct SyncFinished<'a> {
    /// Records read from the source.
    pub records_read: u64,
    /// Records sent to the destination.
    pub records_sent: u64,
    /// Records the destination confirmed.
    pub records_confirmed: u64,
    /// States the destination confirmed and that were persisted.
    pub states_confirmed: u64,
    /// How long it took, in seconds.
    pub duration_secs: f64,
    /// `Some` when the sync failed.
    pub error: Option<&'a dyn std::error::Error>,
}

impl SyncFinished<'_> {
    /// Emits the event in the current span.
    pub fn emit(&self) {
        let outcome = if self.error.is_some() {
            "failed"
        } else {
            "succeeded"
        };
        tracing::info!(
            event = "sync_finished",
            outcome,
            records_read = self.records_read,
            records_sent = self.records_sent,
            records_confirmed = self.records_confirmed,
            states_confirmed = self.states_confirmed,
            duration_secs = millis(self.duration_secs),
            error = self.error.map(tracing::field::display),
            "sync {outcome}: {} records read, {} sent, {} confirmed in {:.1} s",
            self.records_read,
            self.records_sent,
            self.records_confirmed,
            self.duration_secs,
        );
    }
}

/// A write began.
pub struct WriteStarted {
    /// Streams in the configured catalog.
    pub streams: usize,
}

impl WriteStarted {
    /// Emits the event in the current span.
    pub fn emit(&self) {
        tracing::debug!(
            event = "write_started",
            streams = self.streams,
            "write started"
        );
    }
}

/// A write ended, well or not.
pub struct WriteFinished {
    /// Records sent to the destination.
    pub records_sent: u64,
    /// Records the destination confirmed.
    pub records_confirmed: u64,
    /// States the destination confirmed and that were persisted.
    pub states_confirmed: u64,
    /// Whether it ended cleanly after all its input.
    pub completed: bool,
    /// How long it took, in seconds.
    pub duration_secs: f64,
}

impl WriteFinished {
    /// Emits the event in the current span.
    pub fn emit(&self) {
        tracing::info!(
            event = "write_finished",
            records_sent = self.records_sent,
            records_confirmed = self.records_confirmed,
            states_confirmed = self.states_confirmed,
            completed = self.completed,
            duration_secs = millis(self.duration_secs),
            "write {}: {} records sent, {} confirmed, {} states confirmed",
            if self.completed {
                "completed"
            } else {
                "stopped"
            },
            self.records_sent,
            self.records_confirmed,
            self.states_confirmed,
        );
    }
}

/// The first record of a stream went to the destination.
pub struct StreamStarted;

impl StreamStarted {
    /// Emits the event (in `span`, where it takes one).
    pub fn emit(&self, stream: &Span) {
        stream.in_scope(|| tracing::info!(event = "stream_started", "stream started"));
    }
}

/// A stream's counts when its write ended: cleanly (`stream_completed`) or not
/// (`stream_stopped`).
pub struct StreamCompleted {
    /// Records of the stream sent.
    pub sent: u64,
    /// Records of the stream confirmed.
    pub confirmed: u64,
    /// Whether it ended cleanly after all its input.
    pub completed: bool,
}

impl StreamCompleted {
    /// Emits the event (in `span`, where it takes one).
    pub fn emit(&self, stream: &Span) {
        let _in = stream.enter();
        if self.completed {
            tracing::info!(
                event = "stream_completed",
                sent = self.sent,
                confirmed = self.confirmed,
                "stream completed: {} records sent, {} confirmed",
                self.sent,
                self.confirmed
            );
        } else {
            tracing::info!(
                event = "stream_stopped",
                sent = self.sent,
                confirmed = self.confirmed,
                "stream stopped: {} records sent, {} confirmed and kept",
                self.sent,
                self.confirmed
            );
        }
    }
}

/// States the destination echoed were persisted. `stream` is `None` for a
/// GLOBAL or LEGACY state (emitted in the write's span).
pub struct StateCommitted<'a> {
    /// The stream, when the state names one.
    pub stream: Option<&'a StreamDescriptor>,
    /// States persisted together (one echo may confirm several).
    pub states: usize,
    /// Records these states confirmed that were not confirmed before.
    pub records: u64,
}

impl StateCommitted<'_> {
    /// Emits the event (in `span`, where it takes one).
    pub fn emit(&self, span: &Span) {
        let _in = span.enter();
        tracing::debug!(
            event = "state_committed",
            stream = self.stream.map(|d| tracing::field::display(&d.name)),
            namespace = self
                .stream
                .and_then(|d| d.namespace.as_deref())
                .map(tracing::field::display),
            states = self.states,
            records = self.records,
            "{} state(s) committed, confirming {} more records",
            self.states,
            self.records
        );
    }
}

/// Records of a stream became confirmed: by an echoed, persisted state, or by the
/// destination's clean completion.
pub struct RecordsConfirmed {
    /// Records confirmed now.
    pub count: u64,
    /// The stream's confirmed records so far.
    pub total: u64,
    /// `state` or `completion`.
    pub by: &'static str,
}

impl RecordsConfirmed {
    /// Emits the event (in `span`, where it takes one).
    pub fn emit(&self, stream: &Span) {
        let _in = stream.enter();
        tracing::debug!(
            event = "records_confirmed",
            count = self.count,
            total = self.total,
            by = %self.by,
            "{} records confirmed by {} ({} in all)",
            self.count,
            self.by,
            self.total
        );
    }
}

/// A line a connector logged, already masked. `level` is the connector's own
/// (an Airbyte LOG message's, or a component's log call's); `None` for plain
/// stderr text, emitted at INFO.
pub struct ConnectorLog<'a> {
    /// The connector's name.
    pub connector: &'a str,
    /// Its level, when it gave one.
    pub level: Option<LogLevel>,
    /// The text, masked.
    pub message: &'a str,
}

impl ConnectorLog<'_> {
    /// The tracing level of this line.
    pub fn level(&self) -> Level {
        match self.level {
            Some(LogLevel::Fatal | LogLevel::Error) => Level::ERROR,
            Some(LogLevel::Warn) => Level::WARN,
            Some(LogLevel::Info) | None => Level::INFO,
            Some(LogLevel::Debug) => Level::DEBUG,
            Some(LogLevel::Trace) => Level::TRACE,
        }
    }

    /// Emits the event (in `span`, where it takes one).
    pub fn emit(&self, span: &Span) {
        // The level of an event is part of its static callsite: one call per level.
        macro_rules! at {
            ($level:expr) => {
                tracing::event!(
                    target: CONNECTOR_TARGET,
                    $level,
                    event = "connector_log",
                    connector = %self.connector,
                    "{}",
                    self.message
                )
            };
        }
        let _in = span.enter();
        match self.level() {
            Level::ERROR => at!(Level::ERROR),
            Level::WARN => at!(Level::WARN),
            Level::INFO => at!(Level::INFO),
            Level::DEBUG => at!(Level::DEBUG),
            _ => at!(Level::TRACE),
        }
    }
}

/// A connector's TRACE ERROR, already masked.
pub struct ConnectorError<'a> {
    /// The connector's name.
    pub connector: &'a str,
    /// Who is to blame, as the connector reported it.
    pub failure_type: Option<&'a dyn std::fmt::Debug>,
    /// The text, masked.
    pub message: &'a str,
}

impl ConnectorError<'_> {
    /// Emits the event (in `span`, where it takes one).
    pub fn emit(&self, span: &Span) {
        let _in = span.enter();
        tracing::error!(
            target: CONNECTOR_TARGET,
            event = "connector_error",
            connector = %self.connector,
            failure_type = self.failure_type.map(tracing::field::debug),
            "{}",
            self.message
        );
    }
}

#[cfg(test)]
mod tests;
