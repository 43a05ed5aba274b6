//! What a connector said about itself: the tail of its logs and the first TRACE ERROR.
//!
//! Owns [`Diagnostics`] (shared by a backend's output pumps) and [`LogTail`] (what an
//! error carries). Every connector log line also becomes a `tracing` event here, in
//! one place, with the connector's name as a field — after its config's secrets
//! are masked ([`SecretMask`]), so no verbosity and no error shows them. The event
//! (`connector_log`, target `airlock::connector`) is defined in `crate::events`;
//! it sits in the span that was current when the connector was started (the
//! sync's, or the write's), however the backend's pumps were spawned.

use std::collections::VecDeque;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};

use memchr::memmem;

use crate::config::SecretMask;
use crate::events::{ConnectorError, ConnectorLog};
use crate::protocol::{AirbyteErrorTraceMessage, LogLevel, Payload, TraceType, parse_message};

/// Lines kept for errors.
const TAIL_LINES: usize = 20;
/// Longest line kept, in characters; the rest is cut.
const TAIL_LINE_CHARS: usize = 1000;

/// The last log lines of a connector, carried by every [`super::ExecutorError`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogTail(pub Vec<String>);

impl LogTail {
    /// Whether no line was kept.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for LogTail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("\n  (the connector logged nothing)");
        }
        f.write_str("\n  last log lines:")?;
        for line in &self.0 {
            write!(f, "\n    | {line}")?;
        }
        Ok(())
    }
}

#[derive(Debug, Default)]
struct Inner {
    tail: VecDeque<String>,
    trace_error: Option<AirbyteErrorTraceMessage>,
}

/// A connector's log tail and first TRACE ERROR, shared between the tasks that read
/// its output and the one that reports its exit.
#[derive(Debug, Clone)]
pub struct Diagnostics {
    connector: Arc<str>,
    secrets: SecretMask,
    inner: Arc<Mutex<Inner>>,
    /// Where the connector's lines are emitted: the span current at [`Diagnostics::new`].
    span: tracing::Span,
}

impl Diagnostics {
    /// Empty diagnostics for `connector`, masking `secrets` in all it keeps. The
    /// connector's lines become events in the span current now.
    pub fn new(connector: &str, secrets: SecretMask) -> Self {
        Self {
            connector: connector.into(),
            secrets,
            inner: Arc::default(),
            span: tracing::Span::current(),
        }
    }

    fn emit(&self, level: Option<LogLevel>, message: &str) {
        ConnectorLog {
            connector: &self.connector,
            level,
            message,
        }
        .emit(&self.span);
    }

    /// `text` with the connector's secrets masked.
    pub fn mask(&self, text: &str) -> String {
        self.secrets.mask(text).into_owned()
    }

    /// The secrets this connector's output is masked with.
    pub fn secrets(&self) -> &SecretMask {
        &self.secrets
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A poisoned lock only means another pump panicked mid-push; the data is fine.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn push(&self, line: String) {
        let mut line = line;
        if line.chars().count() > TAIL_LINE_CHARS {
            line = line.chars().take(TAIL_LINE_CHARS).collect::<String>() + "…";
        }
        let mut inner = self.lock();
        if inner.tail.len() == TAIL_LINES {
            inner.tail.pop_front();
        }
        inner.tail.push_back(line);
    }

    /// A diagnostic text line (stderr, a component's log call); returns it
    /// masked, as kept.
    pub fn note(&self, line: impl Into<String>) -> String {
        let line = line.into();
        let line = self.secrets.mask(line.trim_end()).into_owned();
        if line.is_empty() {
            return line;
        }
        self.emit(None, &line);
        self.push(line.clone());
        line
    }

    /// A log line the connector gave a level (a component's log call); returns it
    /// masked, as kept.
    pub fn note_log(&self, level: LogLevel, message: &str) -> String {
        let message = self.secrets.mask(message.trim_end()).into_owned();
        self.emit(Some(level), &message);
        let line = format!("{} {message}", level.as_str());
        self.push(line.clone());
        line
    }

    /// A line of protocol output. LOG and TRACE messages and non-JSON text are kept;
    /// records and states are not looked at beyond a substring search.
    pub fn note_protocol_line(&self, line: &[u8]) {
        let first = line.iter().find(|b| !b.is_ascii_whitespace());
        match first {
            None => {}
            // A source's records come through here one by one: the compact form
            // every CDK writes is skipped before any scan of the data.
            Some(b'{') if line.starts_with(br#"{"type":"RECORD""#) => {}
            Some(b'{') => {
                let may_matter = memmem::find(line, b"\"LOG\"").is_some()
                    || memmem::find(line, b"\"TRACE\"").is_some()
                    || memmem::find(line, b"\"CONTROL\"").is_some();
                if let Some(message) = may_matter.then(|| parse_message(line).ok()).flatten() {
                    self.note_message(&message.payload);
                }
            }
            Some(_) => {
                self.note(String::from_utf8_lossy(line));
            }
        }
    }

    /// Keeps what a parsed message says about the connector's health.
    pub fn note_message(&self, payload: &Payload) {
        match payload {
            Payload::Log(log) => {
                self.note_log(log.level, &log.message);
            }
            // A config the connector replaced its own with: its secrets are
            // masked from here on, and in what was kept already.
            Payload::Control(control) => {
                if let Some(update) = &control.connector_config {
                    self.secrets.add_config(&update.config);
                    let mut inner = self.lock();
                    for line in inner.tail.iter_mut() {
                        self.secrets.mask_in_place(line);
                    }
                }
            }
            Payload::Trace(trace) if trace.trace_type == TraceType::Error => {
                if let Some(error) = &trace.error {
                    let mut error = error.clone();
                    self.secrets.mask_in_place(&mut error.message);
                    if let Some(internal) = error.internal_message.as_mut() {
                        self.secrets.mask_in_place(internal);
                    }
                    if let Some(stack) = error.stack_trace.as_mut() {
                        self.secrets.mask_in_place(stack);
                    }
                    ConnectorError {
                        connector: &self.connector,
                        failure_type: error.failure_type.as_ref().map(|t| t as &dyn fmt::Debug),
                        message: &error.message,
                    }
                    .emit(&self.span);
                    self.push(format!("TRACE ERROR {}", error.message));
                    if let Some(internal) = &error.internal_message {
                        self.push(format!("  internal: {internal}"));
                    }
                    let mut inner = self.lock();
                    if inner.trace_error.is_none() {
                        inner.trace_error = Some(error);
                    }
                }
            }
            _ => {}
        }
    }

    /// The kept lines, oldest first.
    pub fn tail(&self) -> LogTail {
        LogTail(self.lock().tail.iter().cloned().collect())
    }

    /// The first TRACE ERROR the connector emitted, if any.
    pub fn trace_error(&self) -> Option<AirbyteErrorTraceMessage> {
        self.lock().trace_error.clone()
    }
}
