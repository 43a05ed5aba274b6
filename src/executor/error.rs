//! [`ExecutorError`]: what can go wrong running a connector, kept apart by who is at
//! fault — the connector reported failure, or the host could not run it.

use std::fmt;
use std::path::PathBuf;

use crate::protocol::{FailureType, FramingError};

use super::LogTail;

/// Why a connector's run counts as failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FailureReason {
    /// It exited with this non-zero code.
    ExitCode(i32),
    /// It was killed by this signal.
    Signal(i32),
    /// It exited 0 but emitted a TRACE ERROR.
    TraceError,
    /// A plugin returned an error from this call (`open`, `write`, `close`).
    PluginError(&'static str),
    /// The container was killed for exceeding its memory limit.
    OutOfMemory {
        /// The limit, in bytes.
        limit_bytes: u64,
    },
}

impl fmt::Display for FailureReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ExitCode(code) => write!(f, "exit code {code}"),
            Self::Signal(9) => f.write_str("killed by signal 9 (SIGKILL; out of memory or killed)"),
            Self::Signal(signal) => write!(f, "killed by signal {signal}"),
            Self::TraceError => f.write_str("reported a TRACE ERROR"),
            Self::PluginError(call) => write!(f, "returned an error from {call}"),
            Self::OutOfMemory { limit_bytes } => write!(
                f,
                "was OOM-killed at its memory limit of {} MiB (raise it with --memory-limit MIB)",
                limit_bytes / (1024 * 1024)
            ),
        }
    }
}

/// A failure to run a connector.
#[derive(Debug, thiserror::Error)]
pub enum ExecutorError {
    /// The executable does not exist.
    #[error(
        "{connector}: executable {} not found; check the path given to \
         --local-executable, or install the connector", path.display()
    )]
    ExecutableNotFound {
        /// Connector name.
        connector: String,
        /// The path tried.
        path: PathBuf,
    },

    /// The executable exists but could not be started.
    #[error("{connector}: could not start {}", path.display())]
    Spawn {
        /// Connector name.
        connector: String,
        /// The program.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },

    /// The connector ran and failed.
    #[error(
        "{connector} failed: {reason}{}{}{log_tail}",
        failure_type.map(|t| format!(" [failure_type: {t}]")).unwrap_or_default(),
        message.as_ref().map(|m| format!(": {m}")).unwrap_or_default()
    )]
    ConnectorFailed {
        /// Connector name.
        connector: String,
        /// How it failed.
        reason: FailureReason,
        /// Who is to blame, from its TRACE ERROR.
        failure_type: Option<FailureType>,
        /// Its TRACE ERROR message.
        message: Option<String>,
        /// Its last log lines.
        log_tail: LogTail,
    },

    /// The connector stopped reading its input before the input ended.
    #[error(
        "{connector} stopped reading its input before the input ended \
         (it closed stdin, exited early, or did not read for {stalled_secs}s){log_tail}"
    )]
    StoppedReading {
        /// Connector name.
        connector: String,
        /// How long airlock waited before giving up; 0 when the pipe closed.
        stalled_secs: u64,
        /// Its last log lines.
        log_tail: LogTail,
    },

    /// The connector exited cleanly without the message its command must produce.
    #[error("{connector} printed no {expected} message{log_tail}")]
    MissingOutput {
        /// Connector name.
        connector: String,
        /// The message type expected.
        expected: &'static str,
        /// Its last log lines.
        log_tail: LogTail,
    },

    /// The connector's output broke framing (e.g. a line over the limit).
    #[error("{connector}: bad output")]
    Framing {
        /// Connector name.
        connector: String,
        /// The cause.
        #[source]
        source: FramingError,
    },

    /// Host I/O around the connector failed (temp files, pipes).
    #[error("{connector}: {context}")]
    Io {
        /// Connector name.
        connector: String,
        /// What airlock was doing.
        context: &'static str,
        /// The cause.
        #[source]
        source: std::io::Error,
    },

    /// The file is not a WebAssembly component airlock can compile.
    #[error("{connector}: {} is not a usable WebAssembly component: {reason}\nfix: build it with `cargo build --target wasm32-wasip2` (a component, not a core module)", path.display())]
    InvalidComponent {
        /// Connector name.
        connector: String,
        /// Where the bytes came from.
        path: PathBuf,
        /// wasmtime's reason.
        reason: String,
    },

    /// The component implements a world airlock does not run.
    #[error(
        "{connector}: the component implements another world or an incompatible version; \
         it exports [{}], but airlock runs `airlock:destination/destination@0.1.x` plugins \
         and `wasi:cli/run@0.2.x` commands{}",
        exports.join(", "), detail.as_ref().map(|d| format!(": {d}")).unwrap_or_default()
    )]
    UnsupportedWorld {
        /// Connector name.
        connector: String,
        /// What the component exports.
        exports: Vec<String>,
        /// More detail (e.g. an import the sandbox does not provide).
        detail: Option<String>,
    },

    /// The guest trapped.
    #[error("{connector} trapped in {call}: {cause}{log_tail}")]
    Trap {
        /// Connector name.
        connector: String,
        /// The call that trapped (`open`, `write`, `close`, `spec`, …).
        call: &'static str,
        /// What the trap says.
        cause: String,
        /// Its last log lines.
        log_tail: LogTail,
    },

    /// The connector broke a rule of its sandbox and was stopped.
    #[error("{connector} was stopped: it exceeded the sandbox's {rule}\nfix: {fix}{log_tail}")]
    SandboxViolation {
        /// Connector name.
        connector: String,
        /// The rule and its limit, e.g. "memory limit of 512 MiB".
        rule: String,
        /// How to raise the limit.
        fix: &'static str,
        /// Its last log lines.
        log_tail: LogTail,
    },

    /// The sandbox refused the connector a network use (a connection, a name
    /// lookup, listening) and the connector then failed.
    #[error("{connector} was refused {what}: {rule}\nfix: {fix}{log_tail}")]
    NetworkRefused {
        /// Connector name.
        connector: String,
        /// What was refused, e.g. "a connection to 10.0.0.5:5433".
        what: String,
        /// The rule it broke, with what is granted.
        rule: String,
        /// How to allow it.
        fix: String,
        /// Its last log lines.
        log_tail: LogTail,
    },

    /// A network grant cannot be used: its name does not resolve, or the config
    /// names an endpoint badly.
    #[error("{connector}: {reason}")]
    BadGrant {
        /// Connector name.
        connector: String,
        /// What is wrong and how to fix it.
        reason: String,
    },

    /// The Docker engine cannot be reached.
    #[error(
        "{connector}: cannot reach the Docker engine ({endpoint}): {reason}\n\
         fix: start the engine, or point DOCKER_HOST at yours (e.g. unix:///var/run/docker.sock)"
    )]
    DockerUnreachable {
        /// Connector name.
        connector: String,
        /// Where airlock looked.
        endpoint: String,
        /// The client's error.
        reason: String,
    },

    /// The image is not available.
    #[error(
        "{connector}: image {image} is not available: {reason}\n\
         fix: pull it where a registry is reachable and `docker load` it here, build it locally \
         (scripts/package-docker.sh builds ours), or allow pulling with --install"
    )]
    ImageMissing {
        /// Connector name.
        connector: String,
        /// The image reference.
        image: String,
        /// Why.
        reason: String,
    },

    /// The Docker engine refused or failed a request.
    #[error("{connector}: Docker {action} failed for image {image}: {reason}")]
    Docker {
        /// Connector name.
        connector: String,
        /// The image.
        image: String,
        /// What airlock asked.
        action: &'static str,
        /// The engine's answer.
        reason: String,
    },

    /// The connector cannot do what was asked (a destination plugin asked to read).
    #[error("{connector} cannot run `{command}`: {reason}")]
    Unsupported {
        /// Connector name.
        connector: String,
        /// The command asked for.
        command: &'static str,
        /// Why, and what would.
        reason: &'static str,
    },

    /// Installing a Python connector failed.
    #[error(
        "{connector}: installing {package} failed while {step}{log_tail}\nfix: check the package name or --pip-url, and that PyPI (or the URL) is reachable"
    )]
    InstallFailed {
        /// Connector name.
        connector: String,
        /// The pip requirement or URL.
        package: String,
        /// The step that failed.
        step: &'static str,
        /// Its last output lines.
        log_tail: LogTail,
    },

    /// A task of airlock's own panicked or was cancelled: a bug in airlock, not a
    /// fault of the connector or the input.
    #[error(
        "internal error in airlock: its task {task:?} for {connector} {what}\n\
         this is a bug in airlock; the states confirmed before it are kept — please report it"
    )]
    Internal {
        /// Connector name.
        connector: String,
        /// Which task.
        task: &'static str,
        /// "panicked: …" or "was cancelled".
        what: String,
    },

    /// No backend could be found for the name.
    #[error("no connector named {name:?} was found; tried:\n{}\nfix: {hint}", tried.iter().map(|t| format!("  - {t}")).collect::<Vec<_>>().join("\n"))]
    NotFound {
        /// The name asked for.
        name: String,
        /// What was tried, in order.
        tried: Vec<String>,
        /// How to make it resolvable.
        hint: &'static str,
    },
}

impl ExecutorError {
    /// The error for a task of airlock's that ended without a result.
    pub fn internal(connector: &str, task: &'static str, join: tokio::task::JoinError) -> Self {
        Self::Internal {
            connector: connector.to_owned(),
            task,
            what: describe_join_error(join),
        }
    }

    /// The error with `secrets` masked in every text it carries (messages, causes,
    /// log tails). Backends mask what they keep already; this is the last line at
    /// the library's boundary.
    #[must_use]
    pub fn masked(mut self, secrets: &crate::config::SecretMask) -> Self {
        if secrets.is_empty() {
            return self;
        }
        let tail = |t: &mut LogTail| t.0.iter_mut().for_each(|l| secrets.mask_in_place(l));
        match &mut self {
            Self::ConnectorFailed {
                message, log_tail, ..
            } => {
                if let Some(m) = message.as_mut() {
                    secrets.mask_in_place(m);
                }
                tail(log_tail);
            }
            Self::Trap {
                cause, log_tail, ..
            } => {
                secrets.mask_in_place(cause);
                tail(log_tail);
            }
            Self::SandboxViolation { rule, log_tail, .. } => {
                secrets.mask_in_place(rule);
                tail(log_tail);
            }
            Self::NetworkRefused {
                what,
                rule,
                fix,
                log_tail,
                ..
            } => {
                for text in [what, rule, fix] {
                    secrets.mask_in_place(text);
                }
                tail(log_tail);
            }
            Self::StoppedReading { log_tail, .. }
            | Self::MissingOutput { log_tail, .. }
            | Self::InstallFailed { log_tail, .. } => tail(log_tail),
            Self::UnsupportedWorld { detail, .. } => {
                if let Some(d) = detail.as_mut() {
                    secrets.mask_in_place(d);
                }
            }
            Self::InvalidComponent { reason, .. }
            | Self::DockerUnreachable { reason, .. }
            | Self::BadGrant { reason, .. }
            | Self::ImageMissing { reason, .. }
            | Self::Docker { reason, .. } => secrets.mask_in_place(reason),
            Self::Io { source, .. } | Self::Spawn { source, .. } => {
                let text = source.to_string();
                if let std::borrow::Cow::Owned(masked) = secrets.mask(&text) {
                    *source = std::io::Error::new(source.kind(), masked);
                }
            }
            Self::ExecutableNotFound { .. }
            | Self::Framing { .. }
            | Self::Unsupported { .. }
            | Self::NotFound { .. }
            | Self::Internal { .. } => {}
        }
        self
    }

    /// The connector's reported failure type, if it reported one.
    pub fn failure_type(&self) -> Option<FailureType> {
        match self {
            Self::ConnectorFailed { failure_type, .. } => *failure_type,
            _ => None,
        }
    }

    /// The connector's last log lines, when the error carries them.
    pub fn log_tail(&self) -> Option<&LogTail> {
        match self {
            Self::ConnectorFailed { log_tail, .. }
            | Self::Trap { log_tail, .. }
            | Self::SandboxViolation { log_tail, .. }
            | Self::NetworkRefused { log_tail, .. }
            | Self::StoppedReading { log_tail, .. }
            | Self::MissingOutput { log_tail, .. } => Some(log_tail),
            _ => None,
        }
    }

    /// Whether the connector itself failed, as opposed to airlock failing to run it.
    pub fn is_connector_failure(&self) -> bool {
        matches!(
            self,
            Self::ConnectorFailed { .. }
                | Self::StoppedReading { .. }
                | Self::MissingOutput { .. }
                | Self::Framing { .. }
                | Self::Trap { .. }
                | Self::SandboxViolation { .. }
                | Self::NetworkRefused { .. }
        )
    }
}

/// "panicked: MESSAGE" or "was cancelled", for a task that ended without a result.
pub(crate) fn describe_join_error(join: tokio::task::JoinError) -> String {
    if join.is_cancelled() {
        return "was cancelled".to_owned();
    }
    let panic = join.into_panic();
    let message = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".to_owned());
    format!("panicked: {message}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panicked_task_is_an_internal_error_naming_it() {
        let join = tokio::spawn(async { panic!("the pump fell over") })
            .await
            .expect_err("it panics");
        let error = ExecutorError::internal("dest", "read stdout", join);
        let text = error.to_string();
        assert!(
            text.contains("internal error")
                && text.contains("\"read stdout\"")
                && text.contains("panicked: the pump fell over")
                && text.contains("dest"),
            "{text}"
        );
        assert!(!error.is_connector_failure());
    }

    #[test]
    fn each_cause_in_a_chain_prints_once() {
        let io = || std::io::Error::other("disk on fire");
        let errors: Vec<anyhow::Error> = vec![
            ExecutorError::Io {
                connector: "d".into(),
                context: "writing the job folder",
                source: io(),
            }
            .into(),
            ExecutorError::Spawn {
                connector: "d".into(),
                path: "/bin/d".into(),
                source: io(),
            }
            .into(),
            crate::config::ConfigError::Unreadable {
                what: "config",
                path: "c.json".into(),
                source: io(),
            }
            .into(),
            crate::write::WriteError {
                cause: crate::write::WriteFailure::Input(FramingError::Io {
                    line_number: 3,
                    source: io(),
                }),
                partial: Box::default(),
            }
            .into(),
        ];
        for error in errors {
            let shown = format!("{error:#}");
            assert_eq!(shown.matches("disk on fire").count(), 1, "{shown}");
        }
    }
}
