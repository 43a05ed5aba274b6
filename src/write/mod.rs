//! `write`: the one write loop — any message stream into any destination.
//!
//! Owns forwarding (RECORD, STATE, TRACE STREAM_STATUS), counting, matching echoed
//! states against sent ones, handing confirmed states to a [`Checkpoints`] (the
//! layer above implements it: [`crate::state::StateTarget`]), progress, and the
//! [`WriteResult`]. It drives an [`Executor`] and never learns which backend that is.
//! It does not parse records (see [`crate::protocol::peek_line`]) and uses nothing
//! above it (`tests/layers.rs`).
//!
//! A STATE echoed by the destination is accepted only if it was sent and comes in
//! order; it is persisted, and only then are the records before it counted as
//! confirmed.
//!
//! A write runs in a `write` span, and each stream has its own `stream` span,
//! created once and used as the parent of the events about that stream (streams
//! interleave). The events themselves are defined in [`crate::events`].

mod feed;
pub(crate) mod ledger;
#[cfg(test)]
pub(crate) mod tests;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::Value;
use tokio::io::AsyncRead;
use tokio::sync::mpsc;
use tracing::Instrument;

use crate::config::SecretMask;
use crate::events::{
    RecordsConfirmed, StateCommitted, StreamCompleted, StreamSpans, WriteFinished, WriteStarted,
};
use crate::executor::{Executor, ExecutorError, Invocation, OutputEvent};
use crate::protocol::{
    AirbyteStateMessage, ConfiguredAirbyteCatalog, DEFAULT_MAX_LINE_BYTES, FramingError,
    OutputLine, Payload, StateType, StreamDescriptor, classify_output,
};

use feed::{Feed, FeedError, FeedSummary, LiveCounters};
pub use ledger::StateMismatch;
use ledger::{Ledger, SentState};

/// Tuning of one write.
#[derive(Debug, Clone)]
pub struct WriteOptions {
    /// Longest input line accepted. Default: [`DEFAULT_MAX_LINE_BYTES`].
    pub max_line_bytes: usize,
    /// A batch is sent once it holds this many bytes. Default: 256 KiB.
    pub batch_bytes: usize,
    /// …or this many lines. Default: 4096.
    pub batch_lines: usize,
    /// How long the destination may refuse input before it counts as stalled.
    /// Default: 10 minutes.
    pub stall_timeout: Duration,
    /// How often the progress callback runs. Default: 1 s.
    pub progress_interval: Duration,
}

impl Default for WriteOptions {
    fn default() -> Self {
        Self {
            max_line_bytes: DEFAULT_MAX_LINE_BYTES,
            batch_bytes: 256 * 1024,
            batch_lines: 4096,
            stall_timeout: Duration::from_secs(600),
            progress_interval: Duration::from_secs(1),
        }
    }
}

/// Counts of one stream.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct StreamTotals {
    /// Stream name.
    pub name: String,
    /// Namespace, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Records sent to the destination.
    pub sent: u64,
    /// Records confirmed: covered by a state the destination echoed and airlock
    /// persisted, plus those committed by a clean completion
    /// ([`StreamTotals::confirmed_at_completion`]).
    pub confirmed: u64,
    /// Of `confirmed`, the records no echoed state covered that the destination's
    /// clean exit after all its input committed (a stream without states, or the
    /// records after its last state), as the Airbyte platform counts them. Never
    /// counted for a failed or interrupted write.
    #[serde(skip_serializing_if = "is_zero")]
    pub confirmed_at_completion: u64,
    /// Records the source produced for this stream, when known (a sync fills it:
    /// a cached write may send fewer than were read, when resuming).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub read: Option<u64>,
    /// Records the destination said it wrote (`destinationStats.recordCount` of
    /// the states it echoed), when it says.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reported_by_destination: Option<u64>,
}

/// What a write did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct WriteResult {
    /// The destination's name.
    pub destination: String,
    /// Records sent.
    pub records_sent: u64,
    /// Records confirmed: covered by a persisted echoed state, or committed by
    /// the destination's clean completion.
    pub records_confirmed: u64,
    /// Of `records_confirmed`, those committed by the clean completion alone (no
    /// state covered them; their position is not stored, so a resumed source may
    /// send them again).
    pub records_confirmed_at_completion: u64,
    /// States sent.
    pub states_sent: u64,
    /// States confirmed.
    pub states_confirmed: u64,
    /// Bytes sent, newlines included.
    pub bytes_sent: u64,
    /// Wall time, in seconds.
    pub duration_secs: f64,
    /// Per stream (namespace and name). In JSON: a list of [`StreamTotals`], each
    /// naming its stream, so that stream `a.b` and stream `b` of namespace `a`
    /// stay apart.
    #[serde(serialize_with = "streams_as_list")]
    pub streams: BTreeMap<StreamDescriptor, StreamTotals>,
    /// The last confirmed state of each stream (and the GLOBAL / LEGACY one).
    pub final_states: Vec<AirbyteStateMessage>,
    /// Input lines that were not Airbyte messages.
    pub lines_skipped: u64,
    /// Records of streams not in the catalog.
    pub records_skipped: u64,
    /// Whether all input was delivered and the destination finished cleanly.
    pub completed: bool,
    /// Disagreements found while reconciling counts (read, sent, confirmed, and
    /// what the destination reported).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Serialises the per-stream map as a list of its values (each names its stream).
fn streams_as_list<S: serde::Serializer>(
    streams: &BTreeMap<StreamDescriptor, StreamTotals>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.collect_seq(streams.values())
}

impl WriteResult {
    /// The totals of the stream `name` (no namespace).
    pub fn stream(&self, name: &str) -> Option<&StreamTotals> {
        self.streams.get(&StreamDescriptor::new(name))
    }

    /// Records per second over the whole run.
    pub fn records_per_sec(&self) -> f64 {
        if self.duration_secs > 0.0 {
            self.records_sent as f64 / self.duration_secs
        } else {
            0.0
        }
    }

    /// Megabytes (10^6) per second over the whole run.
    pub fn megabytes_per_sec(&self) -> f64 {
        if self.duration_secs > 0.0 {
            self.bytes_sent as f64 / 1e6 / self.duration_secs
        } else {
            0.0
        }
    }
}

/// A snapshot for progress displays.
#[derive(Debug, Clone, Default)]
pub struct Progress {
    /// Records sent so far.
    pub records_sent: u64,
    /// Bytes sent so far.
    pub bytes_sent: u64,
    /// Records confirmed so far.
    pub records_confirmed: u64,
    /// States confirmed so far.
    pub states_confirmed: u64,
    /// Time since the write started.
    pub elapsed: Duration,
    /// Per stream: records sent, confirmed.
    pub streams: Vec<(StreamDescriptor, u64, u64)>,
    /// While a source is being read into the cache: the records cached so far
    /// (a cached sync's destination follows the read, so records may be sent
    /// meanwhile). `None` once the read is over, and without a cache.
    pub reading: Option<u64>,
    /// The source, while it has sent nothing yet (it may take a while to start:
    /// a Python connector, a container); `elapsed` is how long it has been.
    pub waiting_for: Option<String>,
}

/// Why a write failed. [`WriteError::partial`] holds what was done and confirmed
/// before the failure; every state counted there is persisted.
#[derive(Debug)]
pub struct WriteError {
    /// What went wrong.
    pub cause: WriteFailure,
    /// Counts up to the failure.
    pub partial: Box<WriteResult>,
}

// Transparent over its cause: the partial counts are data, not a message, and the
// cause's own chain follows it once.
impl std::fmt::Display for WriteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(&self.cause, f)
    }
}

impl std::error::Error for WriteError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        std::error::Error::source(&self.cause)
    }
}

/// The cause of a [`WriteError`].
#[derive(Debug, thiserror::Error)]
pub enum WriteFailure {
    /// The destination could not be started, failed, or stopped reading.
    #[error(transparent)]
    Destination(#[from] ExecutorError),
    /// The destination echoed a state it should not have.
    #[error(
        "{destination} echoed {problem}: {state}\n  \
         the write was stopped; states confirmed before it are kept"
    )]
    UnexpectedState {
        /// The destination.
        destination: String,
        /// What was wrong.
        problem: StateMismatch,
        /// The echoed state, shortened.
        state: String,
    },
    /// The input could not be read.
    #[error("reading the input")]
    Input(#[source] FramingError),
    /// A confirmed state could not be persisted.
    #[error(transparent)]
    State(#[from] CheckpointError),
}

/// Called with the new config when a connector replaces its config through a
/// CONTROL message.
pub type ControlCallback = Arc<dyn Fn(&Value) + Send + Sync>;

/// Where confirmed states are persisted. The loop hands over the states one echo
/// confirmed and counts their records only after [`Checkpoints::commit`] returned;
/// [`crate::state::StateTarget`] (a SQLite store and a key) is the one airlock
/// ships, and this trait keeps the loop from depending on it.
pub trait Checkpoints: Send + Sync + std::fmt::Debug {
    /// Persists `states`, confirmed together by one echo, durably and all at once.
    ///
    /// # Errors
    /// [`CheckpointError`] when they could not be persisted; the write stops.
    fn commit(&self, states: &[AirbyteStateMessage]) -> Result<(), CheckpointError>;
}

/// Confirmed states could not be persisted.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct CheckpointError(pub Box<dyn std::error::Error + Send + Sync>);

/// A progress callback, called every [`WriteOptions::progress_interval`].
pub type ProgressCallback = Box<dyn FnMut(&Progress) + Send>;

/// One write, built then run: input messages into a destination.
///
/// ```no_run
/// # async fn demo() -> anyhow::Result<()> {
/// use airlock::executor::process::ProcessExecutor;
/// use airlock::write::WriteJob;
/// let dest = ProcessExecutor::new("destination-dev-null", "./destination-dev-null");
/// let catalog = serde_json::from_str(&std::fs::read_to_string("catalog.json")?)?;
/// let config = serde_json::json!({"test_destination": {"test_destination_type": "SILENT"}});
/// let input = tokio::fs::File::open("messages.jsonl").await?;
/// let result = WriteJob::new(&dest, config, catalog).input(input).run().await?;
/// println!("{} records confirmed", result.records_confirmed);
/// # Ok(()) }
/// ```
pub struct WriteJob<'a> {
    executor: &'a dyn Executor,
    config: Value,
    catalog: ConfiguredAirbyteCatalog,
    input: Option<Box<dyn AsyncRead + Send + Unpin>>,
    state: Option<Arc<dyn Checkpoints>>,
    options: WriteOptions,
    progress: Option<ProgressCallback>,
    confirmed: Option<ConfirmedCallback>,
    input_control: Option<ControlCallback>,
    destination_control: Option<ControlCallback>,
    secrets: Option<SecretMask>,
}

/// A task aborted when its handle is dropped.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Called after confirmed states were persisted, with the number of states
/// confirmed so far in this write.
pub type ConfirmedCallback = Box<dyn FnMut(u64) + Send>;

impl<'a> WriteJob<'a> {
    /// A write into `executor`'s destination with `config` and `catalog`.
    pub fn new(
        executor: &'a dyn Executor,
        config: Value,
        catalog: ConfiguredAirbyteCatalog,
    ) -> Self {
        Self {
            executor,
            config,
            catalog,
            input: None,
            state: None,
            options: WriteOptions::default(),
            progress: None,
            confirmed: None,
            input_control: None,
            destination_control: None,
            secrets: None,
        }
    }

    /// The destination's secrets, masked in everything it says. Default: read
    /// from its spec when the write starts.
    pub fn secrets(mut self, secrets: SecretMask) -> Self {
        self.secrets = Some(secrets);
        self
    }

    /// Called after each confirmation is persisted, with the number of states
    /// confirmed so far (the cache moves its positions with it).
    pub fn on_states_confirmed(mut self, callback: impl FnMut(u64) + Send + 'static) -> Self {
        self.confirmed = Some(Box::new(callback));
        self
    }

    /// Called with the new config when the input (the source) carries a CONTROL
    /// `connectorConfig` message. Without it, such messages are logged and dropped.
    pub fn on_input_control(mut self, callback: ControlCallback) -> Self {
        self.input_control = Some(callback);
        self
    }

    /// Called with the new config when the destination emits CONTROL
    /// `connectorConfig`. Without it, such messages are logged and dropped.
    pub fn on_destination_control(mut self, callback: ControlCallback) -> Self {
        self.destination_control = Some(callback);
        self
    }

    /// The messages to write (newline-delimited JSON). Default: none.
    pub fn input(mut self, input: impl AsyncRead + Send + Unpin + 'static) -> Self {
        self.input = Some(Box::new(input));
        self
    }

    /// Persist confirmed states here (e.g. a [`crate::state::StateTarget`]).
    /// Default: not persisted.
    pub fn state(mut self, target: impl Checkpoints + 'static) -> Self {
        self.state = Some(Arc::new(target));
        self
    }

    /// Tuning.
    pub fn options(mut self, options: WriteOptions) -> Self {
        self.options = options;
        self
    }

    /// Called every [`WriteOptions::progress_interval`] while the write runs.
    pub fn on_progress(mut self, callback: impl FnMut(&Progress) + Send + 'static) -> Self {
        self.progress = Some(Box::new(callback));
        self
    }

    /// Runs the write to the end.
    ///
    /// # Errors
    /// [`WriteError`], with the counts reached, when the destination fails, echoes a
    /// state it should not, the input breaks, or a state cannot be persisted.
    pub async fn run(self) -> Result<WriteResult, WriteError> {
        let span = crate::events::write_span(self.executor.connector());
        let spans = Arc::new(StreamSpans::new(&span, self.catalog.descriptors()));
        let outcome = WriteLoop::start(self, spans.clone()).instrument(span).await;
        match &outcome {
            Ok(result) => report(&spans, result),
            Err(error) => report(&spans, &error.partial),
        }
        outcome
    }
}

/// The events of a write's end: per stream, what the clean completion confirmed
/// and the stream's counts; then the write's.
fn report(spans: &StreamSpans, result: &WriteResult) {
    for (descriptor, totals) in &result.streams {
        let span = spans.of(descriptor);
        if totals.confirmed_at_completion > 0 {
            RecordsConfirmed {
                count: totals.confirmed_at_completion,
                total: totals.confirmed,
                by: "completion",
            }
            .emit(span);
        }
        StreamCompleted {
            sent: totals.sent,
            confirmed: totals.confirmed,
            completed: result.completed,
        }
        .emit(span);
    }
    spans.write().in_scope(|| {
        WriteFinished {
            records_sent: result.records_sent,
            records_confirmed: result.records_confirmed,
            states_confirmed: result.states_confirmed,
            completed: result.completed,
            duration_secs: result.duration_secs,
        }
        .emit();
    });
}

/// The running loop's own state.
struct WriteLoop {
    destination: String,
    started: Instant,
    ledger: Ledger,
    states_rx: mpsc::UnboundedReceiver<SentState>,
    counters: Arc<LiveCounters>,
    state: Option<Arc<dyn Checkpoints>>,
    confirmed: Option<ConfirmedCallback>,
    destination_control: Option<ControlCallback>,
    secrets: SecretMask,
    spans: Arc<StreamSpans>,
}

impl WriteLoop {
    async fn start(job: WriteJob<'_>, spans: Arc<StreamSpans>) -> Result<WriteResult, WriteError> {
        let destination = job.executor.connector().to_owned();
        let (states_tx, states_rx) = mpsc::unbounded_channel();
        let counters = Arc::new(LiveCounters::default());
        WriteStarted {
            streams: job.catalog.streams.len(),
        }
        .emit();
        let mut this = WriteLoop {
            destination,
            started: Instant::now(),
            ledger: Ledger::default(),
            states_rx,
            counters: counters.clone(),
            state: job.state,
            confirmed: job.confirmed,
            destination_control: job.destination_control,
            secrets: SecretMask::none(),
            spans: spans.clone(),
        };
        let feed = Feed {
            catalog: job.catalog.clone(),
            max_line_bytes: job.options.max_line_bytes,
            batch_bytes: job.options.batch_bytes,
            batch_lines: job.options.batch_lines,
            stall_timeout: job.options.stall_timeout,
            counters,
            states: states_tx,
            control: job.input_control,
            spans,
        };
        let secrets = match job.secrets {
            Some(secrets) => secrets,
            None => {
                let spec = job.executor.spec().await;
                SecretMask::for_connector(&this.destination, spec.as_ref(), &job.config)
            }
        };
        // A config the destination replaces through CONTROL has its secrets masked too.
        this.destination_control = this
            .destination_control
            .take()
            .map(|callback| secrets.tracking(callback));
        this.secrets = secrets.clone();
        let invocation = Invocation::Write {
            config: job.config,
            catalog: job.catalog,
            secrets,
        };
        let mut session = match job.executor.run(invocation).await {
            Ok(session) => session,
            Err(error) => return Err(this.fail(error.into(), FeedSummary::default())),
        };
        let Some(input_tx) = session.input.take() else {
            return Err(this.fail(
                ExecutorError::io(
                    &this.destination,
                    "opening the destination's input",
                    std::io::Error::other("the executor gave no input channel for write"),
                )
                .into(),
                FeedSummary::default(),
            ));
        };
        let input = job.input.unwrap_or_else(|| Box::new(tokio::io::empty()));
        // Aborted when this future is dropped: a cancelled write lets go of its input.
        let mut feeder = AbortOnDrop(tokio::spawn(
            feed.run(input, input_tx)
                .instrument(tracing::Span::current()),
        ));
        let mut feed_outcome: Option<(FeedSummary, Result<(), FeedError>)> = None;
        let mut fatal: Option<WriteFailure> = None;
        let mut progress = job.progress;
        let mut ticker = tokio::time::interval(job.options.progress_interval);
        ticker.tick().await;

        loop {
            tokio::select! {
                event = session.output.recv() => match event {
                    Some(OutputEvent::Lines(batch)) => {
                        for line in batch.lines() {
                            if let Err(failure) = this.on_output_line(line) {
                                fatal = Some(failure);
                                break;
                            }
                        }
                        if fatal.is_some() {
                            session.abort();
                            break;
                        }
                    }
                    Some(OutputEvent::Diagnostic(_)) => {}
                    None => break,
                },
                joined = &mut feeder.0, if feed_outcome.is_none() => {
                    let outcome = joined.unwrap_or_else(|e| (FeedSummary::default(), Err(FeedError::Input(FramingError::Io { line_number: 0, source: std::io::Error::other(e) }))));
                    match &outcome.1 {
                        Ok(()) | Err(FeedError::DestinationClosed) => {}
                        Err(FeedError::Input(_)) | Err(FeedError::Stalled(_)) => session.abort(),
                    }
                    feed_outcome = Some(outcome);
                }
                _ = ticker.tick(), if progress.is_some() => {
                    if let Some(callback) = progress.as_mut() {
                        callback(&this.progress());
                    }
                }
            }
        }

        // The destination's output has ended. The feed is done too, unless the
        // destination quit early: then it is stopped, not waited for.
        let (summary, feed_result) = match feed_outcome {
            Some(outcome) => outcome,
            None => match tokio::time::timeout(Duration::from_secs(2), &mut feeder.0).await {
                Ok(Ok(outcome)) => outcome,
                _ => {
                    feeder.0.abort();
                    (FeedSummary::default(), Err(FeedError::DestinationClosed))
                }
            },
        };
        if let Err(FeedError::Input(_) | FeedError::Stalled(_)) = feed_result {
            session.abort(); // its input is held open: it must not finish as if complete
        }
        let exit = session.exit.await;
        this.drain_registered_states();

        let stopped_reading = |stalled: Duration, exit: Result<(), ExecutorError>| {
            let log_tail = exit
                .err()
                .and_then(|e| e.log_tail().cloned())
                .unwrap_or_default();
            ExecutorError::new(
                &this.destination,
                crate::executor::RunError::StoppedReading {
                    stalled_secs: stalled.as_secs(),
                    log_tail,
                },
            )
        };
        // The first cause wins: a protocol breach or bad input is the root even though
        // the destination then exited on the abort.
        let failure = match (fatal, feed_result) {
            (Some(failure), _) => Some(failure),
            (None, Err(FeedError::Input(error))) => Some(WriteFailure::Input(error)),
            (None, Err(FeedError::Stalled(timeout))) => Some(stopped_reading(timeout, exit).into()),
            (None, Err(FeedError::DestinationClosed)) => Some(match exit {
                Err(error) => error.into(),
                Ok(()) => stopped_reading(Duration::ZERO, Ok(())).into(),
            }),
            (None, Ok(())) => exit.err().map(WriteFailure::Destination),
        };
        match failure {
            Some(cause) => Err(this.fail(cause, summary)),
            None => Ok(this.result(summary, true)),
        }
    }

    fn drain_registered_states(&mut self) {
        while let Ok(sent) = self.states_rx.try_recv() {
            self.ledger.register(sent);
        }
    }

    /// Handles one line the destination emitted.
    fn on_output_line(&mut self, line: &[u8]) -> Result<(), WriteFailure> {
        let OutputLine::Message(message) = classify_output(line) else {
            return Ok(()); // text and keep-alives: the executor kept them as logs
        };
        match message.payload {
            Payload::State(echoed) => {
                self.drain_registered_states();
                let confirmed_before = self.ledger.confirmed.clone();
                let covered = self.ledger.accept(&echoed, line).map_err(|problem| {
                    let mut state = self
                        .secrets
                        .mask(&serde_json::to_string(&echoed).unwrap_or_default())
                        .into_owned();
                    if state.len() > 300 {
                        state.truncate(state.floor_char_boundary(300));
                        state.push('…');
                    }
                    WriteFailure::UnexpectedState {
                        destination: self.destination.clone(),
                        problem,
                        state,
                    }
                })?;
                if let Some(target) = &self.state {
                    target.commit(&covered)?;
                }
                self.announce_commit(&covered, &confirmed_before);
                if let Some(callback) = self.confirmed.as_mut() {
                    callback(self.ledger.states_confirmed);
                }
                Ok(())
            }
            Payload::Control(control) => {
                // The new config's secrets are masked from now on.
                if let Some(update) = &control.connector_config {
                    self.secrets.add_config(&update.config);
                }
                match (&self.destination_control, control.connector_config) {
                    (Some(callback), Some(update)) => callback(&update.config),
                    _ => tracing::warn!(
                        destination = %self.destination,
                        "the destination asked to store an updated config (CONTROL connectorConfig); \
                         a plain write does not persist connector configs (airlock sync does)"
                    ),
                }
                Ok(())
            }
            _ => Ok(()), // LOG and TRACE are kept by the executor's diagnostics
        }
    }

    /// The events of a persisted confirmation: `state_committed` per stream (or
    /// one for a GLOBAL / LEGACY state), and `records_confirmed` per stream whose
    /// confirmed count moved.
    fn announce_commit(
        &self,
        covered: &[AirbyteStateMessage],
        confirmed_before: &[(StreamDescriptor, u64)],
    ) {
        let before = |d: &StreamDescriptor| {
            confirmed_before
                .iter()
                .find(|(b, _)| b == d)
                .map_or(0, |(_, n)| *n)
        };
        let moved: Vec<(&StreamDescriptor, u64, u64)> = self
            .ledger
            .confirmed
            .iter()
            .map(|(d, now)| (d, now.saturating_sub(before(d)), *now))
            .filter(|(_, count, _)| *count > 0)
            .collect();
        // States per stream, in the order they came; GLOBAL and LEGACY together.
        let mut per_stream: Vec<(&StreamDescriptor, usize)> = Vec::new();
        let mut shared = 0usize;
        for state in covered {
            match (state.effective_type(), &state.stream) {
                (StateType::Stream, Some(s)) => {
                    let d = &s.stream_descriptor;
                    match per_stream.iter_mut().find(|(p, _)| *p == d) {
                        Some((_, n)) => *n += 1,
                        None => per_stream.push((d, 1)),
                    }
                }
                _ => shared += 1,
            }
        }
        for (descriptor, states) in per_stream {
            let records = moved
                .iter()
                .find(|(d, _, _)| *d == descriptor)
                .map_or(0, |(_, n, _)| *n);
            StateCommitted {
                stream: Some(descriptor),
                states,
                records,
            }
            .emit(self.spans.of(descriptor));
        }
        if shared > 0 {
            StateCommitted {
                stream: None,
                states: shared,
                records: moved.iter().map(|(_, n, _)| n).sum(),
            }
            .emit(self.spans.write());
        }
        for (descriptor, count, total) in moved {
            RecordsConfirmed {
                count,
                total,
                by: "state",
            }
            .emit(self.spans.of(descriptor));
        }
    }

    fn progress(&self) -> Progress {
        Progress {
            records_sent: self.counters.records_sent.load(Ordering::Relaxed),
            bytes_sent: self.counters.bytes_sent.load(Ordering::Relaxed),
            records_confirmed: self.ledger.confirmed.iter().map(|(_, n)| n).sum(),
            states_confirmed: self.ledger.states_confirmed,
            elapsed: self.started.elapsed(),
            reading: None,
            waiting_for: None,
            streams: self
                .counters
                .per_stream
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .iter()
                .map(|(d, sent)| {
                    let confirmed = self
                        .ledger
                        .confirmed
                        .iter()
                        .find(|(c, _)| c == d)
                        .map_or(0, |(_, n)| *n);
                    (d.clone(), *sent, confirmed)
                })
                .collect(),
        }
    }

    fn result(&self, summary: FeedSummary, completed: bool) -> WriteResult {
        let completed = completed && summary.input_complete;
        let mut streams = BTreeMap::new();
        for (descriptor, sent) in summary.sent.snapshot() {
            let confirmed = self
                .ledger
                .confirmed
                .iter()
                .find(|(d, _)| d == &descriptor)
                .map_or(0, |(_, n)| *n);
            // A clean exit after all the input commits what no state covered.
            let at_completion = if completed {
                sent.saturating_sub(confirmed)
            } else {
                0
            };
            streams.insert(
                descriptor.clone(),
                StreamTotals {
                    name: descriptor.name.clone(),
                    namespace: descriptor.namespace.clone(),
                    sent,
                    confirmed: confirmed + at_completion,
                    confirmed_at_completion: at_completion,
                    read: None,
                    reported_by_destination: self.ledger.reported.get(&descriptor).copied(),
                },
            );
        }
        WriteResult {
            destination: self.destination.clone(),
            records_sent: streams.values().map(|s| s.sent).sum(),
            records_confirmed: streams.values().map(|s| s.confirmed).sum(),
            records_confirmed_at_completion: streams
                .values()
                .map(|s| s.confirmed_at_completion)
                .sum(),
            states_sent: self.ledger.states_sent,
            states_confirmed: self.ledger.states_confirmed,
            bytes_sent: self.counters.bytes_sent.load(Ordering::Relaxed),
            duration_secs: self.started.elapsed().as_secs_f64(),
            streams,
            final_states: self.ledger.final_states(),
            lines_skipped: summary.lines_skipped,
            records_skipped: summary.records_skipped,
            completed,
            warnings: self.ledger.warnings.clone(),
        }
    }

    fn fail(&self, cause: WriteFailure, summary: FeedSummary) -> WriteError {
        WriteError {
            cause,
            partial: Box::new(self.result(summary, false)),
        }
    }
}
