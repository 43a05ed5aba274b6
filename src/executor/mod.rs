//! `executor`: the one seam between airlock and a running connector.
//!
//! Owns the [`Executor`] trait, what crosses it ([`Invocation`], [`Session`],
//! [`OutputEvent`]), the typed [`ExecutorError`], and the backends. Callers (the write
//! loop, the CLI, the library) see only this trait: no backend's paths, processes,
//! stores or containers leak through it. This module does not interpret a sync: which
//! states count, what is persisted and what is counted belong to [`crate::write`].

mod diagnostics;
#[cfg(feature = "docker")]
pub mod docker;
mod error;
mod job;
pub mod net;
#[cfg(feature = "pip")]
pub mod pip;
pub mod process;
pub mod sandbox;
mod stdio;
#[cfg(feature = "wasm")]
pub mod wasm;

use std::fmt;
use std::future::Future;
use std::pin::Pin;

use async_trait::async_trait;
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

use crate::config::SecretMask;
use crate::protocol::{
    AirbyteCatalog, AirbyteConnectionStatus, ConfiguredAirbyteCatalog, ConnectorSpecification,
    LineBatch, MessageType, OutputLine, Payload, classify_output,
};

pub use crate::remedy::Remedy;
pub use diagnostics::{Diagnostics, LogTail};
pub use error::{ExecutorError, ExecutorErrorKind, FailureReason, RunError, SandboxLimit};

/// Stops everything a connector was started as that could outlive this process
/// (today: the Docker containers of this process's runs). Call it when giving up
/// on every run at once, e.g. on Ctrl-C; runs still going fail.
pub async fn stop_all() {
    #[cfg(feature = "docker")]
    docker::remove_live_containers().await;
}

/// What a connector is asked to do: the Airbyte CLI commands.
#[derive(Debug, Clone)]
pub enum Invocation {
    /// `spec`.
    Spec,
    /// `check --config`.
    Check {
        /// The connector's config.
        config: Value,
        /// Its secret values, masked in everything the connector says.
        secrets: SecretMask,
    },
    /// `write --config --catalog`, with messages on the session's input.
    Write {
        /// The connector's config.
        config: Value,
        /// The configured catalog.
        catalog: ConfiguredAirbyteCatalog,
        /// Its secret values, masked in everything the connector says.
        secrets: SecretMask,
    },
    /// `discover --config` (a source).
    Discover {
        /// The connector's config.
        config: Value,
        /// Its secret values, masked in everything the connector says.
        secrets: SecretMask,
    },
    /// `read --config --catalog [--state]` (a source): messages on the output.
    Read {
        /// The connector's config.
        config: Value,
        /// The configured catalog.
        catalog: ConfiguredAirbyteCatalog,
        /// The state to resume from (a list of state messages), if any.
        state: Option<Value>,
        /// Its secret values, masked in everything the connector says.
        secrets: SecretMask,
    },
}

impl Invocation {
    /// The command's name, as on the Airbyte CLI.
    pub fn command(&self) -> &'static str {
        match self {
            Self::Spec => "spec",
            Self::Check { .. } => "check",
            Self::Write { .. } => "write",
            Self::Discover { .. } => "discover",
            Self::Read { .. } => "read",
        }
    }

    /// The connector's config (none for `spec`).
    pub fn config(&self) -> Option<&Value> {
        match self {
            Self::Spec => None,
            Self::Check { config, .. }
            | Self::Write { config, .. }
            | Self::Discover { config, .. }
            | Self::Read { config, .. } => Some(config),
        }
    }

    /// The secrets to mask in what the connector says (none for `spec`).
    pub fn secrets(&self) -> SecretMask {
        match self {
            Self::Spec => SecretMask::none(),
            Self::Check { secrets, .. }
            | Self::Write { secrets, .. }
            | Self::Discover { secrets, .. }
            | Self::Read { secrets, .. } => secrets.clone(),
        }
    }
}

/// Something the connector produced.
#[derive(Debug)]
pub enum OutputEvent {
    /// Protocol output (stdout, or what a component returned), as whole lines.
    Lines(LineBatch),
    /// A diagnostic line: stderr, or a component's log import.
    Diagnostic(String),
}

/// The boxed future that resolves when a connector has finished.
pub type ExitFuture = Pin<Box<dyn Future<Output = Result<(), ExecutorError>> + Send>>;

/// A running connector.
///
/// Feed [`Session::input`] (bounded: a full channel is backpressure) and drop it to
/// close the connector's input; read [`Session::output`] until it ends; then await
/// [`Session::exit`]. Reading output while feeding input is the caller's duty, so a
/// connector that writes as much as it reads never deadlocks.
pub struct Session {
    /// Where input batches go, for `write`; `None` for commands without input.
    pub input: Option<mpsc::Sender<LineBatch>>,
    /// What the connector emits, in order. Ends when the connector's output closes.
    pub output: mpsc::Receiver<OutputEvent>,
    /// Resolves when the connector has exited: `Ok` only on a clean, complete run.
    pub exit: ExitFuture,
    abort: Option<oneshot::Sender<()>>,
}

impl Session {
    /// A session; `abort` is signalled when the caller gives up on the connector.
    pub fn new(
        input: Option<mpsc::Sender<LineBatch>>,
        output: mpsc::Receiver<OutputEvent>,
        exit: ExitFuture,
        abort: oneshot::Sender<()>,
    ) -> Self {
        Self {
            input,
            output,
            exit,
            abort: Some(abort),
        }
    }

    /// A session whose exit is a spawned task's result, its error masked with
    /// `secrets`; a task that panicked or was cancelled becomes an
    /// an internal [`ExecutorError`] naming `connector`.
    pub(crate) fn from_task(
        connector: &str,
        secrets: SecretMask,
        input: Option<mpsc::Sender<LineBatch>>,
        output: mpsc::Receiver<OutputEvent>,
        task: tokio::task::JoinHandle<Result<(), ExecutorError>>,
        abort: oneshot::Sender<()>,
    ) -> Self {
        let connector = connector.to_owned();
        let exit = async move {
            task.await
                .unwrap_or_else(|join| Err(ExecutorError::internal(&connector, "run", join)))
                .map_err(|error| error.masked(&secrets))
        };
        Self::new(input, output, Box::pin(exit), abort)
    }

    /// Stops the connector now, without letting it finish its input: used when the
    /// input failed or the connector broke the protocol, so a partial run is never
    /// finalised as if it were complete.
    pub fn abort(&mut self) {
        self.input = None;
        if let Some(abort) = self.abort.take() {
            let _ = abort.send(());
        }
    }
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("has_input", &self.input.is_some())
            .finish_non_exhaustive()
    }
}

/// Runs one connector, whatever it is packaged as.
///
/// Backends implement [`Executor::run`]; `spec` and `check` are built on it. The write
/// loop drives [`Invocation::Write`] through the same method, so it never knows which
/// backend it talks to.
#[async_trait]
pub trait Executor: Send + Sync + fmt::Debug {
    /// The connector's name, used in every error.
    fn connector(&self) -> &str;

    /// Starts the connector on `invocation`.
    ///
    /// # Errors
    /// [`ExecutorError`] when the connector cannot be started.
    async fn run(&self, invocation: Invocation) -> Result<Session, ExecutorError>;

    /// The connector's version, if the backend can tell.
    ///
    /// # Errors
    /// [`ExecutorError`] when asking fails.
    async fn version(&self) -> Result<Option<String>, ExecutorError> {
        Ok(None)
    }

    /// Makes the connector available (pull an image, create a venv). A no-op where
    /// there is nothing to install.
    ///
    /// # Errors
    /// [`ExecutorError`] when installing fails.
    async fn install(&self) -> Result<(), ExecutorError> {
        Ok(())
    }

    /// Removes what [`Executor::install`] made.
    ///
    /// # Errors
    /// [`ExecutorError`] when removing fails.
    async fn uninstall(&self) -> Result<(), ExecutorError> {
        Ok(())
    }

    /// Runs `spec` and returns the connector's specification.
    ///
    /// # Errors
    /// [`ExecutorError`] when the connector fails or prints no SPEC message.
    async fn spec(&self) -> Result<ConnectorSpecification, ExecutorError> {
        let session = self.run(Invocation::Spec).await?;
        let found = collect_first(
            self.connector(),
            session,
            MessageType::Spec,
            &SecretMask::none(),
        )
        .await?;
        match found {
            Payload::Spec(spec) => Ok(spec),
            _ => unreachable!("collect_first returns the requested type"),
        }
    }

    /// Runs `discover` with `config` and returns the source's catalog; `secrets`
    /// are masked in what the connector says.
    ///
    /// # Errors
    /// [`ExecutorError`] when the connector fails or prints no CATALOG message.
    async fn discover(
        &self,
        config: &Value,
        secrets: &SecretMask,
    ) -> Result<AirbyteCatalog, ExecutorError> {
        let session = self
            .run(Invocation::Discover {
                config: config.clone(),
                secrets: secrets.clone(),
            })
            .await?;
        let found = collect_first(self.connector(), session, MessageType::Catalog, secrets).await;
        match found.map_err(|e| e.masked(secrets))? {
            Payload::Catalog(catalog) => Ok(catalog),
            _ => unreachable!("collect_first returns the requested type"),
        }
    }

    /// Runs `check` with `config`. A FAILED status is a successful call. `secrets`
    /// are masked in what the connector says, the status's message included.
    ///
    /// # Errors
    /// [`ExecutorError`] when the connector crashes without a status.
    async fn check(
        &self,
        config: &Value,
        secrets: &SecretMask,
    ) -> Result<AirbyteConnectionStatus, ExecutorError> {
        let session = self
            .run(Invocation::Check {
                config: config.clone(),
                secrets: secrets.clone(),
            })
            .await?;
        let found = collect_first(
            self.connector(),
            session,
            MessageType::ConnectionStatus,
            secrets,
        )
        .await
        .map_err(|e| e.masked(secrets))?;
        match found {
            Payload::ConnectionStatus(mut status) => {
                if let Some(message) = status.message.as_mut() {
                    secrets.mask_in_place(message);
                }
                Ok(status)
            }
            _ => unreachable!("collect_first returns the requested type"),
        }
    }
}

/// Drains a session without input and returns the first message of `wanted` type.
/// A connector that printed the message and then failed still counts as answering
/// (Airbyte's `check` may exit non-zero after a FAILED status).
async fn collect_first(
    connector: &str,
    mut session: Session,
    wanted: MessageType,
    secrets: &SecretMask,
) -> Result<Payload, ExecutorError> {
    let mut found = None;
    let diagnostics = Diagnostics::new(connector, secrets.clone());
    while let Some(event) = session.output.recv().await {
        match event {
            OutputEvent::Lines(batch) => {
                for line in batch.lines() {
                    if let OutputLine::Message(message) = classify_output(line) {
                        if found.is_none() && message.kind() == wanted {
                            found = Some(message.payload);
                        }
                    } else {
                        diagnostics.note(String::from_utf8_lossy(line));
                    }
                }
            }
            OutputEvent::Diagnostic(line) => {
                diagnostics.note(line);
            }
        }
    }
    let exit = session.exit.await;
    match (found, exit) {
        (Some(payload), _) => Ok(payload),
        (None, Err(error)) => Err(error),
        (None, Ok(())) => Err(ExecutorError::new(
            connector,
            RunError::MissingOutput {
                expected: wanted.as_str(),
                log_tail: diagnostics.tail(),
            },
        )),
    }
}
