//! Byte-stream plumbing shared by backends that talk to a connector over
//! stdin/stdout/stderr (a local process; a container's attached streams).
//!
//! Owns the three pumps and nothing else: input batches to stdin, stdout to line
//! batches, stderr to diagnostics. They run concurrently, so no size of input or
//! output can deadlock the connector against airlock.

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;

use crate::protocol::{FramingError, LineBatch, LineReader};

use super::{Diagnostics, ExecutorError, FailureReason, OutputEvent, RunError};

/// Bytes gathered before a stdout batch is handed on, unless the pipe runs dry first.
const OUTPUT_BATCH_BYTES: usize = 64 * 1024;
/// Read buffer for a connector's stdout.
const READ_BUFFER_BYTES: usize = 256 * 1024;
/// Longest stderr line kept whole.
const MAX_STDERR_LINE_BYTES: usize = 1024 * 1024;

/// How feeding the connector's stdin ended.
#[derive(Debug)]
pub(crate) enum FeedOutcome {
    /// All input was written and stdin closed.
    Completed,
    /// The connector closed its end while input remained.
    PipeClosed,
    /// Writing failed otherwise.
    Failed(std::io::Error),
}

/// Writes each batch to `stdin`; closes it when the sender side is dropped.
pub(crate) async fn feed_stdin<W: AsyncWrite + Unpin>(
    mut stdin: W,
    mut input: mpsc::Receiver<LineBatch>,
) -> FeedOutcome {
    while let Some(batch) = input.recv().await {
        if let Err(error) = stdin.write_all(batch.as_bytes()).await {
            return match error.kind() {
                std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset => {
                    FeedOutcome::PipeClosed
                }
                _ => FeedOutcome::Failed(error),
            };
        }
    }
    match stdin.shutdown().await {
        Ok(()) => FeedOutcome::Completed,
        Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => FeedOutcome::Completed,
        Err(error) => FeedOutcome::Failed(error),
    }
}

/// Reads stdout as protocol lines and hands them on in batches. A batch goes out when
/// it is large or when no more output is waiting, so a lone STATE echo is never held
/// back. LOG and TRACE lines are also noted in `diagnostics`.
///
/// If the receiver is gone, output is still drained so the connector never blocks.
pub(crate) async fn pump_stdout<R: AsyncRead + Unpin>(
    stdout: R,
    output: mpsc::Sender<OutputEvent>,
    diagnostics: Diagnostics,
    max_line_bytes: usize,
) -> Result<(), FramingError> {
    let mut reader = LineReader::new(
        BufReader::with_capacity(READ_BUFFER_BYTES, stdout),
        max_line_bytes,
    );
    let mut batch = LineBatch::with_capacity(OUTPUT_BATCH_BYTES * 2);
    let mut receiver_alive = true;
    loop {
        let range = match reader.read_line_into(batch.buffer_mut()).await {
            Ok(Some(range)) => range,
            Ok(None) => break,
            Err(error) => {
                // Keep the pipe drained so the connector can still exit, then report.
                let mut rest = reader.into_inner();
                let _ = tokio::io::copy(&mut rest, &mut tokio::io::sink()).await;
                return Err(error);
            }
        };
        diagnostics.note_protocol_line(&batch.as_bytes()[range]);
        batch.commit_line();
        if batch.byte_len() >= OUTPUT_BATCH_BYTES || reader.get_ref().buffer().is_empty() {
            let full = batch.take();
            if receiver_alive && output.send(OutputEvent::Lines(full)).await.is_err() {
                receiver_alive = false;
            }
        }
    }
    if !batch.is_empty() && receiver_alive {
        let _ = output.send(OutputEvent::Lines(batch)).await;
    }
    Ok(())
}

/// Reads stderr line by line into `diagnostics` and hands each line on.
pub(crate) async fn pump_stderr<R: AsyncRead + Unpin>(
    stderr: R,
    output: mpsc::Sender<OutputEvent>,
    diagnostics: Diagnostics,
) {
    let mut reader = LineReader::new(BufReader::new(stderr), MAX_STDERR_LINE_BYTES);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match reader.read_line_into(&mut buf).await {
            Ok(Some(range)) => {
                let line = String::from_utf8_lossy(&buf[range]).trim_end().to_owned();
                if line.is_empty() {
                    continue;
                }
                let line = diagnostics.note(line);
                let _ = output.send(OutputEvent::Diagnostic(line)).await;
            }
            Ok(None) => break,
            Err(FramingError::LineTooLong { .. }) => {
                diagnostics.note("(a stderr line over 1 MiB was cut)");
            }
            Err(FramingError::Io { .. }) => break,
        }
    }
}

/// How a connector's run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ended {
    /// With this exit code.
    Code(i32),
    /// Killed by this signal.
    Signal(i32),
}

/// The verdict on a finished run that spoke over stdio: a non-zero exit, a signal
/// or a TRACE ERROR is a failure; then broken framing; then unread input.
pub(crate) fn exit_result(
    connector: &str,
    ended: Ended,
    diagnostics: &Diagnostics,
    framing: Result<(), FramingError>,
    fed: FeedOutcome,
) -> Result<(), ExecutorError> {
    let log_tail = diagnostics.tail();
    let trace = diagnostics.trace_error();
    let failed = |reason| {
        ExecutorError::new(
            connector,
            RunError::ConnectorFailed {
                reason,
                failure_type: trace.as_ref().and_then(|t| t.failure_type),
                message: trace.as_ref().map(|t| t.message.clone()),
                log_tail: log_tail.clone(),
            },
        )
    };
    match ended {
        Ended::Code(0) => {}
        Ended::Code(code) => return Err(failed(FailureReason::ExitCode(code))),
        Ended::Signal(signal) => return Err(failed(FailureReason::Signal(signal))),
    }
    if trace.is_some() {
        return Err(failed(FailureReason::TraceError));
    }
    if let Err(source) = framing {
        return Err(ExecutorError::new(connector, RunError::Framing { source }));
    }
    match fed {
        FeedOutcome::Completed => Ok(()),
        FeedOutcome::PipeClosed => Err(ExecutorError::new(
            connector,
            RunError::StoppedReading {
                stalled_secs: 0,
                log_tail,
            },
        )),
        FeedOutcome::Failed(source) => Err(ExecutorError::io(
            connector,
            "writing to the connector's stdin",
            source,
        )),
    }
}

/// A pump's or feeder's result; one that panicked is an internal error naming it.
pub(crate) fn joined_or_internal<T>(
    connector: &str,
    task: &'static str,
    joined: Result<T, tokio::task::JoinError>,
) -> Result<T, ExecutorError> {
    joined.map_err(|join| ExecutorError::internal(connector, task, join))
}
