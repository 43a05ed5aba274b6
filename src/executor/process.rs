//! The process backend: a local executable that speaks the Airbyte CLI.
//!
//! Owns spawning the program, the job folder of config and catalog files (mode 0600,
//! removed when the run ends), the mapping of exit status to [`ExecutorError`], and
//! [`ProcessError`] (the program could not be started). It knows nothing of Docker,
//! WASM or the write loop.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use async_trait::async_trait;
use tokio::process::Command;
use tokio::sync::{mpsc, oneshot};

use super::job::JobFolder;
use super::stdio::{
    Ended, FeedOutcome, exit_result, feed_stdin, joined_or_internal, pump_stderr, pump_stdout,
};
use super::{Diagnostics, Executor, ExecutorError, Invocation, Session};
use crate::protocol::DEFAULT_MAX_LINE_BYTES;
use crate::remedy::Remedy;

/// The process backend could not start the connector.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    /// The executable does not exist.
    #[error(
        "executable {} not found: the file does not exist\nfix: {}",
        path.display(),
        Remedy::CheckExecutablePath { path: path.clone() }
    )]
    NotFound {
        /// The path tried.
        path: PathBuf,
    },

    /// The executable exists but could not be started.
    #[error("could not start {}", path.display())]
    Spawn {
        /// The program.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

impl ProcessError {
    /// How to fix it, when the library knows.
    pub fn remedy(&self) -> Option<Remedy> {
        match self {
            Self::NotFound { path } => Some(Remedy::CheckExecutablePath { path: path.clone() }),
            Self::Spawn { .. } => None,
        }
    }
}

/// Input batches buffered ahead of the connector's stdin.
const INPUT_QUEUE: usize = 4;
/// Output batches buffered ahead of the consumer.
const OUTPUT_QUEUE: usize = 16;

/// Runs a local executable as an Airbyte connector.
///
/// ```no_run
/// # async fn demo() -> Result<(), airlock::executor::ExecutorError> {
/// use airlock::executor::{Executor, process::ProcessExecutor};
///
/// let exec = ProcessExecutor::new("destination-dev-null", "/usr/local/bin/destination-dev-null");
/// let spec = exec.spec().await?;
/// println!("{}", spec.connection_specification);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct ProcessExecutor {
    connector: String,
    program: PathBuf,
    env: Vec<(OsString, OsString)>,
    max_line_bytes: usize,
}

impl ProcessExecutor {
    /// An executor that runs `program` and calls it `connector` in messages.
    pub fn new(connector: impl Into<String>, program: impl Into<PathBuf>) -> Self {
        Self {
            connector: connector.into(),
            program: program.into(),
            env: Vec::new(),
            max_line_bytes: DEFAULT_MAX_LINE_BYTES,
        }
    }

    /// Sets an environment variable for the connector (the rest is inherited).
    pub fn env(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Caps the length of one line of the connector's output.
    pub fn max_line_bytes(mut self, limit: usize) -> Self {
        self.max_line_bytes = limit;
        self
    }

    /// The program this executor runs.
    pub fn program(&self) -> &Path {
        &self.program
    }

    fn io_error(&self, context: &'static str) -> impl FnOnce(std::io::Error) -> ExecutorError + '_ {
        move |source| ExecutorError::io(&self.connector, context, source)
    }
}

/// How long the output pumps may run on after the connector exited.
const PIPE_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// Kills the connector's process group (it leads one: see `process_group(0)`).
fn kill_process_group(pid: Option<u32>) {
    #[cfg(unix)]
    if let Some(pid) = pid.and_then(|id| rustix::process::Pid::from_raw(id as i32)) {
        let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
    }
}

#[async_trait]
impl Executor for ProcessExecutor {
    fn connector(&self) -> &str {
        &self.connector
    }

    async fn run(&self, invocation: Invocation) -> Result<Session, ExecutorError> {
        let secrets = invocation.secrets();
        let job = JobFolder::write(&invocation).map_err(self.io_error("writing the job folder"))?;
        let args = job.args(job.path());
        let takes_input = matches!(invocation, Invocation::Write { .. });

        let mut command = Command::new(&self.program);
        command
            .args(&args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(if takes_input {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        // Its own process group, so an abort reaches whatever it started too.
        #[cfg(unix)]
        command.process_group(0);
        let mut child = command.spawn().map_err(|source| {
            let path = self.program.clone();
            let error = match source.kind() {
                std::io::ErrorKind::NotFound => ProcessError::NotFound { path },
                _ => ProcessError::Spawn { path, source },
            };
            ExecutorError::new(&self.connector, error)
        })?;
        tracing::debug!(connector = %self.connector, program = %self.program.display(), command = invocation.command(), "started");

        let diagnostics = Diagnostics::new(&self.connector, secrets.clone());
        let (output_tx, output_rx) = mpsc::channel(OUTPUT_QUEUE);
        let (abort_tx, abort_rx) = oneshot::channel::<()>();

        let (input_tx, feeder) = match child.stdin.take() {
            Some(stdin) if takes_input => {
                // A 1 MiB pipe instead of 64 KiB: fewer wake-ups of both sides
                // per batch. Best effort (the system may cap it).
                #[cfg(target_os = "linux")]
                let _ = rustix::pipe::fcntl_setpipe_size(&stdin, 1 << 20);
                let (tx, rx) = mpsc::channel(INPUT_QUEUE);
                (Some(tx), Some(tokio::spawn(feed_stdin(stdin, rx))))
            }
            _ => (None, None),
        };
        let stdout = child.stdout.take().ok_or_else(|| {
            self.io_error("opening stdout")(std::io::Error::other("no stdout pipe"))
        })?;
        // A source's whole output comes this way: the same larger pipe.
        #[cfg(target_os = "linux")]
        let _ = rustix::pipe::fcntl_setpipe_size(&stdout, 1 << 20);
        let stderr = child.stderr.take().ok_or_else(|| {
            self.io_error("opening stderr")(std::io::Error::other("no stderr pipe"))
        })?;
        let stdout_pump = tokio::spawn(pump_stdout(
            stdout,
            output_tx.clone(),
            diagnostics.clone(),
            self.max_line_bytes,
        ));
        let stderr_pump = tokio::spawn(pump_stderr(stderr, output_tx, diagnostics.clone()));

        let connector = self.connector.clone();
        let pid = child.id();
        // The waiter runs on its own, so an abort takes effect at once, even while the
        // caller is still draining output.
        let waiter = tokio::spawn(async move {
            let _job = job; // removed (with config and catalog) when the run ends
            let mut aborted = false;
            let status = tokio::select! {
                status = child.wait() => status,
                _ = abort_rx => {
                    aborted = true;
                    kill_process_group(pid);
                    let _ = child.start_kill();
                    child.wait().await
                }
            }
            .map_err(|source| ExecutorError::io(&connector, "waiting for the connector", source))?;
            // Children it left behind may hold its pipes open: end them, and give the
            // pumps a grace period rather than waiting on strangers.
            kill_process_group(pid);
            let framing = match tokio::time::timeout(PIPE_GRACE, stdout_pump).await {
                Ok(joined) => joined_or_internal(&connector, "read stdout", joined)?,
                Err(_) => Ok(()),
            };
            let _ = tokio::time::timeout(PIPE_GRACE, stderr_pump).await;
            // The feeder ends when the host closes the input; a connector that is
            // gone (killed, or exited while the host still held its input open)
            // must not keep its exit waiting on that.
            let fed = match feeder {
                Some(handle) if aborted => {
                    handle.abort();
                    FeedOutcome::Completed
                }
                Some(mut handle) => match tokio::time::timeout(PIPE_GRACE, &mut handle).await {
                    Ok(joined) => joined_or_internal(&connector, "feed stdin", joined)?,
                    Err(_) => {
                        handle.abort();
                        FeedOutcome::PipeClosed
                    }
                },
                None => FeedOutcome::Completed,
            };
            #[cfg(unix)]
            let signal = {
                use std::os::unix::process::ExitStatusExt;
                status.signal()
            };
            #[cfg(not(unix))]
            let signal = None;
            let ended = match (status.code(), signal) {
                (Some(code), _) => Ended::Code(code),
                (None, Some(signal)) => Ended::Signal(signal),
                (None, None) => Ended::Code(-1),
            };
            exit_result(&connector, ended, &diagnostics, framing, fed)
        });
        Ok(Session::from_task(
            &self.connector,
            secrets,
            input_tx,
            output_rx,
            waiter,
            abort_tx,
        ))
    }
}
