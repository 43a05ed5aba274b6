//! The write loop against a scripted destination: no processes, no files; each
//! test drives one race the loop must win and reads back what was committed.
//!
//! [`FakeDestination`] is also used by the conformance suite's tests.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use futures_util::future::BoxFuture;
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;
use tokio::sync::{mpsc, oneshot, watch};

use super::*;
use crate::executor::{ExecutorErrorKind, FailureReason, RunError, Session};
use crate::protocol::LineBatch;

/// What a scripted destination is handed: the batches it is fed and where its
/// output goes. Dropping `output` closes its stdout.
pub(crate) struct FakeIo {
    /// Input batches, as the write loop sent them.
    pub input: mpsc::Receiver<LineBatch>,
    /// Its stdout.
    pub output: mpsc::Sender<OutputEvent>,
    saw_end: Arc<AtomicBool>,
    aborted: watch::Receiver<bool>,
}

impl FakeIo {
    /// The lines of the next input batch; `None` once the input is closed.
    pub async fn recv(&mut self) -> Option<Vec<Vec<u8>>> {
        match self.input.recv().await {
            Some(batch) => Some(batch.lines().map(<[u8]>::to_vec).collect()),
            None => {
                self.saw_end.store(true, Ordering::SeqCst);
                None
            }
        }
    }

    /// Writes `line` to stdout, as its own output batch.
    pub async fn say(&self, line: &[u8]) {
        let _ = self
            .output
            .send(OutputEvent::Lines(LineBatch::from_lines(line.to_vec())))
            .await;
    }

    /// Waits until the session is aborted (seen by a script that outlives it).
    pub async fn until_aborted(&mut self) {
        let _ = self.aborted.wait_for(|aborted| *aborted).await;
    }

    /// Closes its stdout (the process runs on).
    pub fn close_output(&mut self) {
        let (closed, _) = mpsc::channel(1);
        drop(std::mem::replace(&mut self.output, closed));
    }

    /// Reads the input to its end, echoing each STATE line as it comes.
    pub async fn echo_all(&mut self) {
        while let Some(lines) = self.recv().await {
            for line in lines.iter().filter(|l| is_state(l)) {
                self.say(line).await;
            }
        }
    }
}

/// Whether `line` is a STATE message.
pub(crate) fn is_state(line: &[u8]) -> bool {
    matches!(classify_output(line), OutputLine::Message(m) if matches!(m.payload, Payload::State(_)))
}

type Script = Box<dyn FnOnce(FakeIo) -> BoxFuture<'static, Result<(), ExecutorError>> + Send>;

/// An [`Executor`] whose one `write` runs a script: it may echo states, hold or
/// close its output, never read its input, and exit with `Ok` or any error.
/// Other commands say nothing and exit cleanly (so `spec` fails, as for a
/// connector without one).
pub(crate) struct FakeDestination {
    script: Mutex<Option<Script>>,
    input_capacity: usize,
    output_capacity: usize,
    honours_abort: bool,
    aborted: watch::Sender<bool>,
    saw_end: Arc<AtomicBool>,
}

impl std::fmt::Debug for FakeDestination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FakeDestination")
    }
}

/// The fake's name, in every error it makes.
pub(crate) const FAKE: &str = "destination-fake";

impl FakeDestination {
    /// A destination whose `write` runs `script`.
    pub fn new<F, Fut>(script: F) -> Self
    where
        F: FnOnce(FakeIo) -> Fut + Send + 'static,
        Fut: Future<Output = Result<(), ExecutorError>> + Send + 'static,
    {
        Self {
            script: Mutex::new(Some(Box::new(
                move |io| -> BoxFuture<'static, Result<(), ExecutorError>> { Box::pin(script(io)) },
            ))),
            input_capacity: 4,
            output_capacity: 64,
            honours_abort: true,
            aborted: watch::Sender::new(false),
            saw_end: Arc::default(),
        }
    }

    /// Room for this many batches in each direction.
    pub fn capacity(mut self, input: usize, output: usize) -> Self {
        self.input_capacity = input;
        self.output_capacity = output;
        self
    }

    /// The script runs on after an abort (a destination slow to die); its exit is
    /// still the abort's.
    pub fn outliving_abort(mut self) -> Self {
        self.honours_abort = false;
        self
    }

    /// Whether the session was aborted (by [`Session::abort`] or by being dropped).
    pub fn was_aborted(&self) -> bool {
        *self.aborted.borrow()
    }

    /// Waits until the session is aborted.
    pub async fn until_aborted(&self) {
        let _ = self.aborted.subscribe().wait_for(|aborted| *aborted).await;
    }

    /// Whether the script saw its input end (it was closed, not aborted).
    pub fn saw_end_of_input(&self) -> bool {
        self.saw_end.load(Ordering::SeqCst)
    }
}

/// The error of a destination killed on an abort.
fn killed() -> ExecutorError {
    ExecutorError::new(
        FAKE,
        RunError::ConnectorFailed {
            reason: FailureReason::Signal(9),
            failure_type: None,
            message: Some("stopped by airlock".into()),
            log_tail: Default::default(),
        },
    )
}

/// A destination failing with exit code `code`.
pub(crate) fn exit_code(code: i32) -> ExecutorError {
    ExecutorError::new(
        FAKE,
        RunError::ConnectorFailed {
            reason: FailureReason::ExitCode(code),
            failure_type: None,
            message: None,
            log_tail: Default::default(),
        },
    )
}

#[async_trait]
impl Executor for FakeDestination {
    fn connector(&self) -> &str {
        FAKE
    }

    async fn run(&self, invocation: Invocation) -> Result<Session, ExecutorError> {
        let (output_tx, output_rx) = mpsc::channel(self.output_capacity);
        let (abort_tx, abort_rx) = oneshot::channel::<()>();
        let Invocation::Write { .. } = invocation else {
            drop(output_tx);
            return Ok(Session::new(
                None,
                output_rx,
                Box::pin(async { Ok(()) }),
                abort_tx,
            ));
        };
        let script = self
            .script
            .lock()
            .expect("script lock")
            .take()
            .expect("the fake runs one write");
        let (input_tx, input_rx) = mpsc::channel(self.input_capacity);
        let mut work = script(FakeIo {
            input: input_rx,
            output: output_tx,
            saw_end: self.saw_end.clone(),
            aborted: self.aborted.subscribe(),
        });
        let aborted = self.aborted.clone();
        let honours_abort = self.honours_abort;
        let task = tokio::spawn(async move {
            tokio::select! {
                exit = &mut work => exit,
                // Sent, or the session dropped: the backends treat both as an abort.
                _ = abort_rx => {
                    aborted.send_replace(true);
                    if !honours_abort {
                        let _ = work.await;
                    }
                    Err(killed())
                }
            }
        });
        let exit = async move {
            task.await
                .unwrap_or_else(|join| Err(ExecutorError::internal(FAKE, "run", join)))
        };
        Ok(Session::new(
            Some(input_tx),
            output_rx,
            Box::pin(exit),
            abort_tx,
        ))
    }
}

/// Fails a test that hangs instead of letting it hang.
async fn within<T>(future: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(10), future)
        .await
        .expect("the test hung")
}

fn catalog() -> ConfiguredAirbyteCatalog {
    serde_json::from_value(json!({"streams": [{
        "stream": {"name": "s", "json_schema": {"type": "object"},
                   "supported_sync_modes": ["full_refresh", "incremental"]},
        "sync_mode": "incremental",
        "destination_sync_mode": "append",
    }]}))
    .expect("catalog")
}

fn record(id: u64) -> String {
    format!(r#"{{"type":"RECORD","record":{{"stream":"s","data":{{"id":{id}}},"emitted_at":1}}}}"#)
}

fn state(cursor: u64) -> String {
    format!(
        r#"{{"type":"STATE","state":{{"type":"STREAM","stream":{{"stream_descriptor":{{"name":"s"}},"stream_state":{{"cursor":{cursor}}}}}}}}}"#
    )
}

/// Lines joined into an input.
fn input(lines: &[String]) -> Vec<u8> {
    lines
        .iter()
        .flat_map(|l| format!("{l}\n").into_bytes())
        .collect()
}

/// Where the tests' confirmed states go: every commit, in order, as a state store
/// would receive them.
#[derive(Debug, Clone, Default)]
struct Recorded(Arc<Mutex<Vec<AirbyteStateMessage>>>);

impl Checkpoints for Recorded {
    fn commit(&self, states: &[AirbyteStateMessage]) -> Result<(), CheckpointError> {
        self.0
            .lock()
            .expect("not poisoned")
            .extend(states.iter().cloned());
        Ok(())
    }
}

/// A fresh record of commits.
fn memory_store() -> Recorded {
    Recorded::default()
}

/// The cursor a store would hold for the one stream: the last committed, if any.
fn stored(target: &Recorded) -> Vec<Value> {
    target
        .0
        .lock()
        .expect("not poisoned")
        .iter()
        .filter_map(|s| s.stream.as_ref().and_then(|s| s.stream_state.clone()))
        .map(|s| s["cursor"].clone())
        .next_back()
        .into_iter()
        .collect()
}

/// The cursors of a result's final states.
fn cursors(result: &WriteResult) -> Vec<Value> {
    result
        .final_states
        .iter()
        .filter_map(|s| s.stream.as_ref().and_then(|s| s.stream_state.clone()))
        .map(|s| s["cursor"].clone())
        .collect()
}

/// A write of `lines` into `fake`, states persisted in `target`.
fn job<'a>(fake: &'a FakeDestination, target: &Recorded, lines: &[String]) -> WriteJob<'a> {
    WriteJob::new(fake, json!({}), catalog())
        .secrets(SecretMask::none())
        .state(target.clone())
        .input(std::io::Cursor::new(input(lines)))
}

fn totals(result: &WriteResult) -> (u64, u64, u64, u64, u64) {
    (
        result.records_sent,
        result.records_confirmed,
        result.records_confirmed_at_completion,
        result.states_sent,
        result.states_confirmed,
    )
}

#[tokio::test]
async fn output_closed_before_a_clean_exit_counts_every_echo() {
    let fake = FakeDestination::new(|mut io| async move {
        io.echo_all().await;
        drop(io.output); // stdout closes; the process lingers, then exits 0
        tokio::time::sleep(Duration::from_millis(50)).await;
        Ok(())
    });
    let target = memory_store();
    let lines = [record(1), record(2), state(1), record(3), state(2)];
    let result = within(job(&fake, &target, &lines).run())
        .await
        .expect("write");
    assert!(result.completed);
    assert_eq!(totals(&result), (3, 3, 0, 2, 2));
    assert_eq!(stored(&target), vec![json!(2)]);
    assert_eq!(cursors(&result), vec![json!(2)]);
    assert!(fake.saw_end_of_input() && !fake.was_aborted());
}

#[tokio::test]
async fn output_closed_before_a_failed_exit_keeps_the_echoes_and_the_error() {
    let fake = FakeDestination::new(|mut io| async move {
        io.echo_all().await;
        drop(io.output);
        tokio::time::sleep(Duration::from_millis(50)).await;
        Err(exit_code(3))
    });
    let target = memory_store();
    let lines = [record(1), record(2), state(1), record(3)];
    let error = within(job(&fake, &target, &lines).run())
        .await
        .expect_err("the exit failed");
    assert!(
        matches!(
            &error.cause,
            WriteFailure::Destination(e) if matches!(
                e.kind(),
                ExecutorErrorKind::Run(RunError::ConnectorFailed {
                    reason: FailureReason::ExitCode(3),
                    ..
                })
            )
        ),
        "{error:?}"
    );
    let partial = &error.partial;
    assert!(!partial.completed);
    // The record after the last state is not committed by a failed exit.
    assert_eq!(totals(partial), (3, 2, 0, 1, 1));
    assert_eq!(stored(&target), vec![json!(1)]);
}

#[tokio::test]
async fn a_failed_exit_with_echoes_still_queued_commits_what_was_echoed_and_nothing_after() {
    let fake = FakeDestination::new(|mut io| async move {
        let mut lines = Vec::new();
        while let Some(batch) = io.recv().await {
            lines.extend(batch);
        }
        // Two echoes queued on stdout as the exit turns to a failure; the third
        // state is never echoed.
        let states: Vec<_> = lines.into_iter().filter(|l| is_state(l)).collect();
        for line in &states[..2] {
            io.say(line).await;
        }
        Err(exit_code(1))
    });
    let target = memory_store();
    let lines = [
        record(1),
        state(1),
        record(2),
        record(3),
        state(2),
        record(4),
        state(3),
        record(5),
    ];
    let error = within(job(&fake, &target, &lines).run())
        .await
        .expect_err("the exit failed");
    assert!(
        matches!(
            &error.cause,
            WriteFailure::Destination(e) if matches!(
                e.kind(),
                ExecutorErrorKind::Run(RunError::ConnectorFailed {
                    reason: FailureReason::ExitCode(1),
                    ..
                })
            )
        ),
        "{error:?}"
    );
    assert!(!error.partial.completed);
    assert_eq!(totals(&error.partial), (5, 3, 0, 3, 2));
    assert_eq!(stored(&target), vec![json!(2)]);
    assert_eq!(cursors(&error.partial), vec![json!(2)]);
}

#[tokio::test]
async fn an_echo_after_a_state_mismatch_is_neither_committed_nor_counted() {
    let fake = FakeDestination::new(|mut io| async move {
        while io.recv().await.is_some() {}
        // A state it never got, then (in the same output batch) one it did.
        let both = [state(99), state(1)].join("\n");
        io.say(both.as_bytes()).await;
        io.say(state(2).as_bytes()).await;
        std::future::pending::<()>().await;
        Ok(())
    });
    let target = memory_store();
    let lines = [record(1), state(1), record(2), state(2)];
    let error = within(job(&fake, &target, &lines).run())
        .await
        .expect_err("a mismatch");
    assert!(
        matches!(
            &error.cause,
            WriteFailure::UnexpectedState {
                problem: StateMismatch::NeverSent,
                ..
            }
        ),
        "{error:?}"
    );
    assert!(!error.partial.completed);
    assert_eq!(totals(&error.partial), (2, 0, 0, 2, 0));
    assert!(stored(&target).is_empty());
    assert!(fake.was_aborted());
}

#[tokio::test]
async fn an_echo_out_of_order_stops_the_write() {
    let fake = FakeDestination::new(|mut io| async move {
        while io.recv().await.is_some() {}
        io.say(state(2).as_bytes()).await;
        io.say(state(1).as_bytes()).await;
        io.say(state(3).as_bytes()).await;
        std::future::pending::<()>().await;
        Ok(())
    });
    let target = memory_store();
    let lines = [
        record(1),
        state(1),
        record(2),
        state(2),
        record(3),
        state(3),
    ];
    let error = within(job(&fake, &target, &lines).run())
        .await
        .expect_err("a mismatch");
    assert!(
        matches!(
            &error.cause,
            WriteFailure::UnexpectedState {
                problem: StateMismatch::OutOfOrder,
                ..
            }
        ),
        "{error:?}"
    );
    // State 2 confirmed state 1 with it; state 3, after the breach, was not read.
    assert_eq!(totals(&error.partial), (3, 2, 0, 3, 2));
    assert_eq!(stored(&target), vec![json!(2)]);
    assert!(fake.was_aborted());
}

#[tokio::test]
async fn records_after_the_last_state_count_at_completion_only_on_a_clean_exit() {
    let lines = [record(1), record(2), state(1), record(3), record(4)];
    let clean = FakeDestination::new(|mut io| async move {
        io.echo_all().await;
        Ok(())
    });
    let target = memory_store();
    let result = within(job(&clean, &target, &lines).run())
        .await
        .expect("write");
    assert!(result.completed);
    assert_eq!(totals(&result), (4, 4, 2, 1, 1));
    let stream = result.stream("s").expect("stream s");
    assert_eq!((stream.sent, stream.confirmed), (4, 4));
    assert_eq!(stream.confirmed_at_completion, 2);
    assert_eq!(stored(&target), vec![json!(1)]);

    let failing = FakeDestination::new(|mut io| async move {
        io.echo_all().await;
        Err(exit_code(2))
    });
    let target = memory_store();
    let error = within(job(&failing, &target, &lines).run())
        .await
        .expect_err("the exit failed");
    assert_eq!(totals(&error.partial), (4, 2, 0, 1, 1));
    assert_eq!(stored(&target), vec![json!(1)]);
}

#[tokio::test]
async fn a_destination_that_never_reads_is_stopped_after_the_stall_timeout() {
    let fake = FakeDestination::new(|io| async move {
        let _keep = io; // holds its input and output open, reads nothing
        std::future::pending::<()>().await;
        Ok(())
    })
    .capacity(1, 4);
    let target = memory_store();
    let lines: Vec<String> = (1..=5).map(record).collect();
    let options = WriteOptions {
        batch_lines: 1,
        stall_timeout: Duration::from_millis(100),
        ..WriteOptions::default()
    };
    let error = within(job(&fake, &target, &lines).options(options).run())
        .await
        .expect_err("stalled");
    assert!(
        matches!(
            &error.cause,
            WriteFailure::Destination(e) if e.connector() == FAKE
                && matches!(e.kind(), ExecutorErrorKind::Run(RunError::StoppedReading { .. }))
        ),
        "{error:?}"
    );
    assert!(!error.partial.completed);
    assert_eq!(error.partial.records_confirmed, 0);
    assert!(fake.was_aborted());
    assert!(stored(&target).is_empty());
}

/// An input the test writes as it goes, and the channel the write reports its
/// confirmations on.
fn live_input() -> (tokio::io::DuplexStream, tokio::io::DuplexStream) {
    tokio::io::duplex(64 * 1024)
}

#[tokio::test]
async fn dropping_the_write_mid_batch_keeps_confirmed_states_and_aborts_the_destination() {
    let (got_second, second_arrived) = oneshot::channel::<()>();
    let fake = FakeDestination::new(|mut io| async move {
        let first = io.recv().await.unwrap_or_default();
        for line in first.iter().filter(|l| is_state(l)) {
            io.say(line).await;
        }
        // The second batch arrives; it is still being written when the caller gives up.
        let _second = io.recv().await;
        let _ = got_second.send(());
        std::future::pending::<()>().await;
        Ok(())
    });
    let target = memory_store();
    let (mut writer, reader) = live_input();
    let (confirmed_tx, mut confirmed_rx) = mpsc::unbounded_channel();
    let write = WriteJob::new(&fake, json!({}), catalog())
        .secrets(SecretMask::none())
        .state(target.clone())
        .input(reader)
        .on_states_confirmed(move |n| {
            let _ = confirmed_tx.send(n);
        })
        .run();
    let driver = async {
        writer
            .write_all(&input(&[record(1), state(1), record(2)]))
            .await
            .expect("first part");
        assert_eq!(confirmed_rx.recv().await, Some(1));
        writer
            .write_all(&input(&[record(3), state(2)]))
            .await
            .expect("second part");
        second_arrived.await.expect("the second batch");
    };
    within(async {
        tokio::select! {
            result = write => panic!("the write ended by itself: {result:?}"),
            () = driver => {} // the write future is dropped here, mid-batch
        }
    })
    .await;
    within(fake.until_aborted()).await;
    assert_eq!(stored(&target), vec![json!(1)]);
    assert!(
        !fake.saw_end_of_input(),
        "the destination must be stopped, not have its input closed as if complete"
    );
    // The feeder stops with the write: the input is let go, not read on.
    within(async {
        while writer.write_all(b"{}\n").await.is_ok() {
            tokio::task::yield_now().await;
        }
    })
    .await;
}

#[tokio::test]
async fn an_input_that_breaks_mid_batch_keeps_confirmed_states_and_counts_only_what_was_sent() {
    let fake = FakeDestination::new(|mut io| async move {
        io.echo_all().await;
        Ok(())
    });
    let target = memory_store();
    let (mut writer, reader) = live_input();
    let (confirmed_tx, mut confirmed_rx) = mpsc::unbounded_channel();
    let write = WriteJob::new(&fake, json!({}), catalog())
        .secrets(SecretMask::none())
        .state(target.clone())
        .options(WriteOptions {
            max_line_bytes: 200,
            ..WriteOptions::default()
        })
        .input(reader)
        .on_states_confirmed(move |n| {
            let _ = confirmed_tx.send(n);
        })
        .run();
    let driver = async {
        writer
            .write_all(&input(&[record(1), record(2), state(1), record(3)]))
            .await
            .expect("first part");
        assert_eq!(confirmed_rx.recv().await, Some(1));
        // Then a record and a state, and a line over the limit in the same batch:
        // neither reaches the destination.
        let too_long = format!(r#"{{"type":"RECORD","padding":"{}"}}"#, "x".repeat(300));
        writer
            .write_all(&input(&[record(4), state(2), too_long]))
            .await
            .expect("second part");
    };
    let (result, ()) = within(async { tokio::join!(write, driver) }).await;
    let error = result.expect_err("the input broke");
    assert!(
        matches!(
            &error.cause,
            WriteFailure::Input(FramingError::LineTooLong { line_number: 7, .. })
        ),
        "{error:?}"
    );
    assert!(!error.partial.completed);
    assert_eq!(totals(&error.partial), (3, 2, 0, 1, 1));
    assert_eq!(stored(&target), vec![json!(1)]);
    assert!(fake.was_aborted() && !fake.saw_end_of_input());
}

#[tokio::test]
async fn an_echo_of_a_state_that_never_reached_the_destination_is_refused() {
    // The input breaks in the batch holding state 2; the destination, slow to
    // die, echoes state 1 (which it got) and state 2 (which it never got).
    let fake = FakeDestination::new(|mut io| async move {
        let _first = io.recv().await;
        io.say(state(1).as_bytes()).await;
        io.until_aborted().await;
        io.say(state(2).as_bytes()).await;
        Ok(())
    })
    .outliving_abort();
    let target = memory_store();
    let (mut writer, reader) = live_input();
    let (confirmed_tx, mut confirmed_rx) = mpsc::unbounded_channel();
    let write = WriteJob::new(&fake, json!({}), catalog())
        .secrets(SecretMask::none())
        .state(target.clone())
        .options(WriteOptions {
            max_line_bytes: 200,
            ..WriteOptions::default()
        })
        .input(reader)
        .on_states_confirmed(move |n| {
            let _ = confirmed_tx.send(n);
        })
        .run();
    let driver = async {
        writer
            .write_all(&input(&[record(1), state(1)]))
            .await
            .expect("first part");
        assert_eq!(confirmed_rx.recv().await, Some(1));
        let too_long = format!(r#"{{"type":"RECORD","padding":"{}"}}"#, "x".repeat(300));
        writer
            .write_all(&input(&[record(2), state(2), too_long]))
            .await
            .expect("second part");
    };
    let (result, ()) = within(async { tokio::join!(write, driver) }).await;
    let error = result.expect_err("the input broke");
    assert!(
        matches!(
            &error.cause,
            WriteFailure::UnexpectedState {
                problem: StateMismatch::NeverSent,
                ..
            }
        ),
        "{error:?}"
    );
    assert_eq!(totals(&error.partial), (1, 1, 0, 1, 1));
    assert_eq!(stored(&target), vec![json!(1)]);
}

#[tokio::test]
async fn an_input_that_breaks_after_the_output_closed_still_aborts_the_destination() {
    // It closes stdout at once and reads on: the loop stops waiting on its output
    // before the input breaks, and must still stop it rather than end its input.
    let fake = FakeDestination::new(|mut io| async move {
        io.close_output();
        while io.recv().await.is_some() {}
        Ok(())
    });
    let target = memory_store();
    let (mut writer, reader) = live_input();
    let write = WriteJob::new(&fake, json!({}), catalog())
        .secrets(SecretMask::none())
        .state(target.clone())
        .options(WriteOptions {
            max_line_bytes: 200,
            ..WriteOptions::default()
        })
        .input(reader)
        .run();
    let driver = async {
        writer
            .write_all(&input(&[record(1), state(1)]))
            .await
            .expect("first part");
        tokio::time::sleep(Duration::from_millis(50)).await;
        let too_long = format!(r#"{{"type":"RECORD","padding":"{}"}}"#, "x".repeat(300));
        writer
            .write_all(&input(&[too_long]))
            .await
            .expect("second part");
    };
    let (result, ()) = within(async { tokio::join!(write, driver) }).await;
    let error = result.expect_err("the input broke");
    assert!(
        matches!(
            &error.cause,
            WriteFailure::Input(FramingError::LineTooLong { line_number: 3, .. })
        ),
        "{error:?}"
    );
    assert_eq!(totals(&error.partial), (1, 0, 0, 1, 0));
    assert!(fake.was_aborted() && !fake.saw_end_of_input());
    assert!(stored(&target).is_empty());
}
