//! [`ExecutorError`]: what can go wrong running a connector, kept apart by who is at
//! fault — the connector itself ([`RunError`], shared by every backend), or a
//! backend that could not run it (its own error, defined beside it:
//! [`ProcessError`], [`WasmError`], [`DockerError`], [`PipError`], [`GrantError`]).
//! The connector is named once, here. Messages say the rule and the cause in the
//! library's terms; the fix is also data ([`Remedy`]) for a front end to word.

use std::fmt;

use crate::protocol::{FailureType, FramingError};
use crate::remedy::Remedy;

use super::LogTail;
use super::docker::DockerError;
use super::net::{GrantError, Refusal};
use super::pip::PipError;
use super::process::ProcessError;
use super::wasm::WasmError;

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
                "was OOM-killed at its memory limit of {}\nfix: {}",
                mib(*limit_bytes),
                Remedy::RaiseMemoryLimit
            ),
        }
    }
}

/// A limit of the sandbox, with its value, that a connector exceeded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SandboxLimit {
    /// The memory limit.
    Memory {
        /// The limit, in bytes.
        limit_bytes: u64,
    },
    /// The idle timeout: one call ran this long without returning.
    IdleTimeout {
        /// The timeout, in seconds.
        secs: u64,
    },
    /// The whole-run deadline.
    Deadline {
        /// The deadline, in seconds.
        secs: u64,
    },
    /// The cap on protocol output.
    Output {
        /// The cap, in bytes.
        limit_bytes: u64,
    },
    /// The cap on logs.
    Log {
        /// The cap, in bytes.
        limit_bytes: u64,
    },
}

impl SandboxLimit {
    /// How to raise this limit.
    pub fn remedy(&self) -> Remedy {
        match self {
            Self::Memory { .. } => Remedy::RaiseMemoryLimit,
            Self::IdleTimeout { .. } => Remedy::RaiseIdleTimeout,
            Self::Deadline { .. } => Remedy::RaiseDeadline,
            Self::Output { .. } => Remedy::RaiseOutputLimit,
            Self::Log { .. } => Remedy::RaiseLogLimit,
        }
    }
}

impl fmt::Display for SandboxLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Memory { limit_bytes } => write!(f, "memory limit of {}", mib(*limit_bytes)),
            Self::IdleTimeout { secs } => write!(
                f,
                "idle timeout of {secs}s (one call ran that long without returning)"
            ),
            Self::Deadline { secs } => write!(f, "run deadline of {secs}s"),
            Self::Output { limit_bytes } => write!(f, "output cap of {}", mib(*limit_bytes)),
            Self::Log { limit_bytes } => write!(f, "log cap of {}", mib(*limit_bytes)),
        }
    }
}

/// "N MiB", or bytes when under one MiB.
fn mib(bytes: u64) -> String {
    const MIB: u64 = 1024 * 1024;
    if bytes >= MIB {
        format!("{} MiB", bytes / MIB)
    } else {
        format!("{bytes} bytes")
    }
}

/// What the connector itself did wrong, whatever the backend: it failed, stopped
/// reading, printed nothing useful, broke framing, trapped, or broke a rule of its
/// sandbox. Each message follows the connector's name ("dest failed: …").
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The connector ran and failed.
    #[error(
        "failed: {reason}{}{}{log_tail}",
        failure_type.map(|t| format!(" [failure_type: {t}]")).unwrap_or_default(),
        message.as_ref().map(|m| format!(": {m}")).unwrap_or_default()
    )]
    ConnectorFailed {
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
        "stopped reading its input before the input ended \
         (it closed stdin, exited early, or did not read for {stalled_secs}s){log_tail}"
    )]
    StoppedReading {
        /// How long airlock waited before giving up; 0 when the pipe closed.
        stalled_secs: u64,
        /// Its last log lines.
        log_tail: LogTail,
    },

    /// The connector exited cleanly without the message its command must produce.
    #[error("printed no {expected} message{log_tail}")]
    MissingOutput {
        /// The message type expected.
        expected: &'static str,
        /// Its last log lines.
        log_tail: LogTail,
    },

    /// The connector's output broke framing (e.g. a line over the limit).
    #[error("wrote bad output")]
    Framing {
        /// The cause.
        #[source]
        source: FramingError,
    },

    /// A plugin (`airlock:destination@0.2.0`) returned output whose framing table
    /// does not describe it; the output was refused, not read.
    #[error(
        "returned a malformed framing table from {call}: {detail}; its output was refused \
         (a 0.2.0 plugin must frame each output line, in order, inside its output, with the \
         line's message type){log_tail}"
    )]
    BadFraming {
        /// The call (`write`, `close`).
        call: &'static str,
        /// What is wrong, naming the frame.
        detail: String,
        /// The plugin's last log lines.
        log_tail: LogTail,
    },

    /// The guest trapped.
    #[error("trapped in {call}: {cause}{log_tail}")]
    Trap {
        /// The call that trapped (`open`, `write`, `close`, `spec`, …).
        call: &'static str,
        /// What the trap says.
        cause: String,
        /// Its last log lines.
        log_tail: LogTail,
    },

    /// The connector broke a rule of its sandbox and was stopped.
    #[error("was stopped: it exceeded the sandbox's {limit}\nfix: {}{log_tail}", limit.remedy())]
    SandboxViolation {
        /// The limit it exceeded.
        limit: SandboxLimit,
        /// Its last log lines.
        log_tail: LogTail,
    },

    /// The sandbox refused the connector a network use (a connection, a name
    /// lookup, listening) and the connector then failed.
    #[error("was refused {}: {}\nfix: {}{log_tail}", refusal.what, refusal.rule, refusal.fix)]
    NetworkRefused {
        /// What was refused, the rule, and the fix.
        refusal: Box<Refusal>,
        /// Its last log lines.
        log_tail: LogTail,
    },
}

impl RunError {
    /// How to fix it, when the library knows.
    pub fn remedy(&self) -> Option<Remedy> {
        match self {
            Self::SandboxViolation { limit, .. } => Some(limit.remedy()),
            Self::NetworkRefused { refusal, .. } => refusal.remedy.clone(),
            Self::ConnectorFailed {
                reason: FailureReason::OutOfMemory { .. },
                ..
            } => Some(Remedy::RaiseMemoryLimit),
            _ => None,
        }
    }

    /// Its last log lines, when it carries them.
    pub fn log_tail(&self) -> Option<&LogTail> {
        match self {
            Self::ConnectorFailed { log_tail, .. }
            | Self::Trap { log_tail, .. }
            | Self::SandboxViolation { log_tail, .. }
            | Self::NetworkRefused { log_tail, .. }
            | Self::BadFraming { log_tail, .. }
            | Self::StoppedReading { log_tail, .. }
            | Self::MissingOutput { log_tail, .. } => Some(log_tail),
            Self::Framing { .. } => None,
        }
    }

    fn masked(&mut self, secrets: &crate::config::SecretMask) {
        let tail = |t: &mut LogTail| t.0.iter_mut().for_each(|l| secrets.mask_in_place(l));
        match self {
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
            Self::NetworkRefused { refusal, log_tail } => {
                for text in [&mut refusal.what, &mut refusal.rule, &mut refusal.fix] {
                    secrets.mask_in_place(text);
                }
                tail(log_tail);
            }
            Self::BadFraming {
                detail, log_tail, ..
            } => {
                secrets.mask_in_place(detail);
                tail(log_tail);
            }
            Self::SandboxViolation { log_tail, .. }
            | Self::StoppedReading { log_tail, .. }
            | Self::MissingOutput { log_tail, .. } => tail(log_tail),
            Self::Framing { .. } => {}
        }
    }
}

/// What went wrong, by layer: the connector's behaviour, one backend's failure to
/// run it, host I/O, name resolution, or a bug in airlock.
#[derive(Debug, thiserror::Error)]
pub enum ExecutorErrorKind {
    /// The connector itself failed or broke a rule.
    #[error(transparent)]
    Run(#[from] RunError),
    /// The process backend could not start the connector.
    #[error(transparent)]
    Process(#[from] ProcessError),
    /// The WASM backend could not load or run the component.
    #[error(transparent)]
    Wasm(#[from] WasmError),
    /// The Docker backend could not run the image.
    #[error(transparent)]
    Docker(#[from] DockerError),
    /// The pip backend could not install the connector.
    #[error(transparent)]
    Pip(#[from] PipError),
    /// A network grant cannot be used.
    #[error(transparent)]
    Grant(#[from] GrantError),

    /// Host I/O around the connector failed (temp files, pipes).
    #[error("{context}")]
    Io {
        /// What airlock was doing.
        context: &'static str,
        /// The cause.
        #[source]
        source: std::io::Error,
    },

    /// No backend could be found for the name.
    #[error(
        "no connector by this name was found; tried:\n{}\nfix: {}",
        tried.iter().map(|t| format!("  - {t}")).collect::<Vec<_>>().join("\n"),
        Remedy::LocateConnector
    )]
    NotFound {
        /// What was tried, in order.
        tried: Vec<String>,
    },

    /// A task of airlock's own panicked or was cancelled: a bug in airlock, not a
    /// fault of the connector or the input.
    #[error(
        "internal error in airlock: its task {task:?} {what}\n\
         this is a bug in airlock; the states confirmed before it are kept — please report it"
    )]
    Internal {
        /// Which task.
        task: &'static str,
        /// "panicked: …" or "was cancelled".
        what: String,
    },
}

/// A failure to run a connector: the connector's name, once, and what went wrong
/// ([`ExecutorErrorKind`]).
///
/// Its [`Display`](fmt::Display) is "NAME failed: …" for the connector's own
/// failures ([`RunError`]) and "NAME: …" for the rest; its
/// [`source`](std::error::Error::source) is the kind's, so a chain prints each
/// cause once.
#[derive(Debug)]
pub struct ExecutorError {
    connector: String,
    kind: ExecutorErrorKind,
}

impl fmt::Display for ExecutorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            ExecutorErrorKind::Run(run) => write!(f, "{} {run}", self.connector),
            kind => write!(f, "{}: {kind}", self.connector),
        }
    }
}

impl std::error::Error for ExecutorError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        std::error::Error::source(&self.kind)
    }
}

impl ExecutorError {
    /// The error of `connector`.
    pub fn new(connector: impl Into<String>, kind: impl Into<ExecutorErrorKind>) -> Self {
        Self {
            connector: connector.into(),
            kind: kind.into(),
        }
    }

    /// Host I/O around `connector` failed while doing `context`.
    pub fn io(connector: impl Into<String>, context: &'static str, source: std::io::Error) -> Self {
        Self::new(connector, ExecutorErrorKind::Io { context, source })
    }

    /// The error for a task of airlock's that ended without a result.
    pub fn internal(connector: &str, task: &'static str, join: tokio::task::JoinError) -> Self {
        Self::new(
            connector,
            ExecutorErrorKind::Internal {
                task,
                what: describe_join_error(join),
            },
        )
    }

    /// The connector's name.
    pub fn connector(&self) -> &str {
        &self.connector
    }

    /// What went wrong.
    pub fn kind(&self) -> &ExecutorErrorKind {
        &self.kind
    }

    /// What went wrong, owned.
    pub fn into_kind(self) -> ExecutorErrorKind {
        self.kind
    }

    /// How to fix it, as data a front end can word in its own terms; `None` when
    /// the library knows no fix.
    pub fn remedy(&self) -> Option<Remedy> {
        match &self.kind {
            ExecutorErrorKind::Run(run) => run.remedy(),
            ExecutorErrorKind::Process(e) => e.remedy(),
            ExecutorErrorKind::Wasm(e) => e.remedy(),
            ExecutorErrorKind::Docker(e) => e.remedy(),
            ExecutorErrorKind::Pip(e) => e.remedy(),
            ExecutorErrorKind::Grant(e) => e.remedy.clone(),
            ExecutorErrorKind::NotFound { .. } => Some(Remedy::LocateConnector),
            ExecutorErrorKind::Io { .. } | ExecutorErrorKind::Internal { .. } => None,
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
        let io = |source: &mut std::io::Error| {
            let text = source.to_string();
            if let std::borrow::Cow::Owned(masked) = secrets.mask(&text) {
                *source = std::io::Error::new(source.kind(), masked);
            }
        };
        match &mut self.kind {
            ExecutorErrorKind::Run(run) => run.masked(secrets),
            ExecutorErrorKind::Pip(PipError::InstallFailed { log_tail, .. }) => tail(log_tail),
            ExecutorErrorKind::Wasm(WasmError::UnsupportedWorld { detail, .. }) => {
                if let Some(d) = detail.as_mut() {
                    secrets.mask_in_place(d);
                }
            }
            ExecutorErrorKind::Wasm(WasmError::InvalidComponent { reason, .. })
            | ExecutorErrorKind::Docker(
                DockerError::Unreachable { reason, .. }
                | DockerError::ImageMissing { reason, .. }
                | DockerError::Api { reason, .. }
                | DockerError::Init { reason, .. },
            )
            | ExecutorErrorKind::Grant(GrantError { reason, .. }) => {
                secrets.mask_in_place(reason);
            }
            ExecutorErrorKind::Io { source, .. }
            | ExecutorErrorKind::Process(ProcessError::Spawn { source, .. }) => io(source),
            ExecutorErrorKind::Process(ProcessError::NotFound { .. })
            | ExecutorErrorKind::Wasm(WasmError::NotFound { .. } | WasmError::Unsupported { .. })
            | ExecutorErrorKind::Pip(PipError::NotInstalled { .. })
            | ExecutorErrorKind::NotFound { .. }
            | ExecutorErrorKind::Internal { .. } => {}
        }
        self
    }

    /// The connector's reported failure type, if it reported one.
    pub fn failure_type(&self) -> Option<FailureType> {
        match &self.kind {
            ExecutorErrorKind::Run(RunError::ConnectorFailed { failure_type, .. }) => *failure_type,
            _ => None,
        }
    }

    /// The connector's last log lines, when the error carries them.
    pub fn log_tail(&self) -> Option<&LogTail> {
        match &self.kind {
            ExecutorErrorKind::Run(run) => run.log_tail(),
            _ => None,
        }
    }

    /// Whether the connector itself failed, as opposed to airlock failing to run it.
    pub fn is_connector_failure(&self) -> bool {
        matches!(self.kind, ExecutorErrorKind::Run(_))
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
        assert!(matches!(error.kind(), ExecutorErrorKind::Internal { .. }));
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
        let framing = || FramingError::Io {
            line_number: 3,
            source: io(),
        };
        let errors: Vec<anyhow::Error> = vec![
            ExecutorError::io("d", "writing the job folder", io()).into(),
            ExecutorError::new(
                "d",
                ProcessError::Spawn {
                    path: "/bin/d".into(),
                    source: io(),
                },
            )
            .into(),
            ExecutorError::new("d", RunError::Framing { source: framing() }).into(),
            crate::source::SourceError::ReadFailed {
                source: ExecutorError::io("s", "reading", io()),
                records_kept: 0,
            }
            .into(),
            crate::config::ConfigError::Unreadable {
                what: "config",
                path: "c.json".into(),
                source: io(),
            }
            .into(),
            crate::write::WriteError {
                cause: crate::write::WriteFailure::Input(framing()),
                partial: Box::default(),
            }
            .into(),
        ];
        for error in errors {
            let shown = format!("{error:#}");
            assert_eq!(shown.matches("disk on fire").count(), 1, "{shown}");
        }
    }

    /// One of every error of every layer, each carrying `cause` in the one text
    /// field it has, where it has one (its log tail counts as one only when it has
    /// no other).
    fn every_error(cause: &str) -> Vec<ExecutorError> {
        let tail = || LogTail(vec!["log: the last line".to_owned()]);
        let kinds: Vec<ExecutorErrorKind> = vec![
            RunError::ConnectorFailed {
                reason: FailureReason::ExitCode(1),
                failure_type: Some(FailureType::ConfigError),
                message: Some(cause.into()),
                log_tail: tail(),
            }
            .into(),
            RunError::ConnectorFailed {
                reason: FailureReason::OutOfMemory {
                    limit_bytes: 32 * 1024 * 1024,
                },
                failure_type: None,
                message: None,
                log_tail: tail(),
            }
            .into(),
            RunError::StoppedReading {
                stalled_secs: 3,
                log_tail: LogTail(vec![format!("log: {cause}")]),
            }
            .into(),
            RunError::MissingOutput {
                expected: "SPEC",
                log_tail: tail(),
            }
            .into(),
            RunError::Trap {
                call: "write",
                cause: cause.into(),
                log_tail: tail(),
            }
            .into(),
            RunError::SandboxViolation {
                limit: SandboxLimit::Memory {
                    limit_bytes: 64 * 1024 * 1024,
                },
                log_tail: tail(),
            }
            .into(),
            RunError::NetworkRefused {
                refusal: Box::new(Refusal {
                    what: format!("a connection to {cause}"),
                    rule: "no network grant covers it (granted: none)".into(),
                    fix: Remedy::AllowNet {
                        endpoint: "10.0.0.5:5433".into(),
                    }
                    .to_string(),
                    remedy: Some(Remedy::AllowNet {
                        endpoint: "10.0.0.5:5433".into(),
                    }),
                }),
                log_tail: tail(),
            }
            .into(),
            ProcessError::NotFound {
                path: "/opt/dest".into(),
            }
            .into(),
            ProcessError::Spawn {
                path: "/opt/dest".into(),
                source: std::io::Error::other(cause.to_owned()),
            }
            .into(),
            WasmError::NotFound {
                path: "/opt/dest.wasm".into(),
            }
            .into(),
            WasmError::InvalidComponent {
                path: "/opt/dest.wasm".into(),
                reason: cause.into(),
            }
            .into(),
            WasmError::UnsupportedWorld {
                exports: vec!["x".into()],
                detail: Some(cause.into()),
            }
            .into(),
            WasmError::Unsupported {
                command: "read",
                reason: "it is a destination",
            }
            .into(),
            DockerError::Unreachable {
                endpoint: "unix:///nowhere".into(),
                reason: cause.into(),
            }
            .into(),
            DockerError::ImageMissing {
                image: "airbyte/x:1".into(),
                reason: cause.into(),
            }
            .into(),
            DockerError::Api {
                image: "airbyte/x:1".into(),
                action: "create container",
                reason: cause.into(),
            }
            .into(),
            PipError::InstallFailed {
                package: "airbyte-x".into(),
                step: "pip install",
                log_tail: LogTail(vec![format!("pip: {cause}")]),
            }
            .into(),
            PipError::NotInstalled {
                package: "airbyte-x".into(),
                venv: "/home/venvs/x".into(),
            }
            .into(),
            GrantError {
                reason: cause.into(),
                remedy: None,
            }
            .into(),
            ExecutorErrorKind::Io {
                context: "writing the job folder",
                source: std::io::Error::other(cause.to_owned()),
            },
            ExecutorErrorKind::NotFound {
                tried: vec!["a built-in plugin".into()],
            },
            ExecutorErrorKind::Internal {
                task: "read stdout",
                what: "was cancelled".into(),
            },
        ];
        kinds
            .into_iter()
            .map(|kind| ExecutorError::new("conn-x", kind))
            .collect()
    }

    #[test]
    fn every_error_prints_each_cause_once_and_names_the_connector_once() {
        for error in every_error("disk on fire") {
            let shown = format!("{:#}", anyhow::Error::from(error));
            assert!(
                shown.matches("disk on fire").count() <= 1,
                "printed twice: {shown}"
            );
            assert_eq!(shown.matches("conn-x").count(), 1, "{shown}");
        }
    }

    #[test]
    fn no_error_names_a_cli_flag_and_a_fix_has_its_remedy() {
        for error in every_error("it broke") {
            let shown = error.to_string();
            assert!(!shown.contains("--"), "names a flag: {shown}");
            if shown.contains("\nfix: ") {
                assert!(
                    error.remedy().is_some()
                        || matches!(error.kind(), ExecutorErrorKind::Docker(_)),
                    "a fix with no remedy: {shown}"
                );
            }
        }
    }

    #[test]
    fn the_remedies_follow_the_rules() {
        let remedy = |kind: ExecutorErrorKind| ExecutorError::new("d", kind).remedy();
        let violation = |limit| RunError::SandboxViolation {
            limit,
            log_tail: LogTail::default(),
        };
        for (limit, expected) in [
            (
                SandboxLimit::Memory { limit_bytes: 1 },
                Remedy::RaiseMemoryLimit,
            ),
            (
                SandboxLimit::IdleTimeout { secs: 1 },
                Remedy::RaiseIdleTimeout,
            ),
            (SandboxLimit::Deadline { secs: 1 }, Remedy::RaiseDeadline),
            (
                SandboxLimit::Output { limit_bytes: 1 },
                Remedy::RaiseOutputLimit,
            ),
            (SandboxLimit::Log { limit_bytes: 1 }, Remedy::RaiseLogLimit),
        ] {
            assert_eq!(remedy(violation(limit).into()), Some(expected));
        }
        assert_eq!(
            remedy(ProcessError::NotFound { path: "/x".into() }.into()),
            Some(Remedy::CheckExecutablePath { path: "/x".into() })
        );
        assert_eq!(
            remedy(
                WasmError::NotFound {
                    path: "/x.wasm".into()
                }
                .into()
            ),
            Some(Remedy::CheckComponentPath {
                path: "/x.wasm".into()
            })
        );
        assert_eq!(
            remedy(ExecutorErrorKind::Io {
                context: "x",
                source: std::io::Error::other("x")
            }),
            None
        );
    }

    #[test]
    fn the_rule_is_said_with_its_value() {
        let error = ExecutorError::new(
            "d",
            RunError::SandboxViolation {
                limit: SandboxLimit::Memory {
                    limit_bytes: 512 * 1024 * 1024,
                },
                log_tail: LogTail::default(),
            },
        );
        let text = error.to_string();
        assert!(
            text.starts_with("d was stopped: it exceeded the sandbox's memory limit of 512 MiB")
                && text.contains("fix: raise the sandbox's memory limit"),
            "{text}"
        );
        assert_eq!(error.connector(), "d");
        assert!(error.is_connector_failure());
    }

    #[test]
    fn masking_reaches_every_text() {
        let secrets = crate::config::SecretMask::none();
        secrets.add_value("password", "hunter2-hunter2");
        for error in every_error("hunter2-hunter2") {
            let shown = format!("{:#}", anyhow::Error::from(error.masked(&secrets)));
            assert!(!shown.contains("hunter2-hunter2"), "{shown}");
        }
    }
}
