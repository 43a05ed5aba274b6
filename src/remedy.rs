//! [`Remedy`]: how to fix an error, as data.
//!
//! The library's errors say the rule that was broken and the cause in the
//! library's own terms (a setting, a policy key, a file); each also offers its fix
//! as a [`Remedy`] so a front end can word it in its own terms (the CLI maps each
//! to a flag). This module names no front end's flags and owns no error type.

use std::fmt;
use std::path::PathBuf;

/// How to fix an error: the setting to change or the step to take.
///
/// Its [`Display`](fmt::Display) is the library's wording (settings and policy
/// keys); a front end maps each variant to its own.
///
/// ```
/// use airlock::remedy::Remedy;
///
/// let fix = Remedy::AllowNet { endpoint: "db:5432".into() };
/// assert!(fix.to_string().contains("db:5432"));
/// assert_eq!(Remedy::RaiseMemoryLimit.policy_key(), Some("memory_limit_mib"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Remedy {
    /// Raise the sandbox's memory limit.
    RaiseMemoryLimit,
    /// Raise the sandbox's idle timeout (how long one call may run).
    RaiseIdleTimeout,
    /// Raise the sandbox's whole-run deadline.
    RaiseDeadline,
    /// Raise the sandbox's cap on protocol output.
    RaiseOutputLimit,
    /// Raise the sandbox's cap on logs.
    RaiseLogLimit,
    /// Raise the longest input line a write accepts.
    RaiseLineLimit,
    /// Grant TCP to an endpoint.
    AllowNet {
        /// `HOST:PORT`, with a placeholder where a part is unknown
        /// (`db:PORT`, `HOST:PORT`).
        endpoint: String,
    },
    /// Check the path given for the connector's executable.
    CheckExecutablePath {
        /// The path tried.
        path: PathBuf,
    },
    /// Check the path given for the component file.
    CheckComponentPath {
        /// The path tried.
        path: PathBuf,
    },
    /// Build the plugin as a WebAssembly component (`wasm32-wasip2`), not a core
    /// module.
    BuildComponent,
    /// Allow installing a missing connector, or install it first.
    InstallConnector {
        /// The package to install.
        package: String,
    },
    /// Check the pip package name or URL, and that the index is reachable.
    CheckPipPackage,
    /// Make the Docker image available: load it, build it, or allow pulling it.
    ProvideImage {
        /// The image reference.
        image: String,
    },
    /// Start the Docker engine, or point `DOCKER_HOST` at one.
    StartDocker,
    /// Run the container's stdio over the engine's attach stream instead of
    /// airlock's init and socket.
    DockerAttach,
    /// Wait for the run that holds a sync's lease to end.
    WaitForLease,
    /// Say where the connector is: a component file, an executable or a Docker
    /// image; or put it where name resolution looks.
    LocateConnector,
    /// Use another cache file (or delete this one).
    UseAnotherCache,
    /// Use another state database.
    UseAnotherStateDatabase,
    /// Give the source a config.
    GiveSourceConfig,
    /// Give the destination a config.
    GiveDestinationConfig,
    /// Choose a write strategy that needs no primary key (append or replace).
    ChooseWriteStrategy,
}

impl Remedy {
    /// The sandbox policy-file key this remedy changes, when it changes one.
    pub fn policy_key(&self) -> Option<&'static str> {
        Some(match self {
            Self::RaiseMemoryLimit => "memory_limit_mib",
            Self::RaiseIdleTimeout => "idle_timeout_secs",
            Self::RaiseDeadline => "deadline_secs",
            Self::RaiseOutputLimit => "max_output_mib",
            Self::RaiseLogLimit => "max_log_mib",
            Self::AllowNet { .. } => "allow_net",
            _ => return None,
        })
    }
}

impl fmt::Display for Remedy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::RaiseMemoryLimit => {
                f.write_str("raise the sandbox's memory limit (memory_limit_mib in a policy)")
            }
            Self::RaiseIdleTimeout => {
                f.write_str("raise the sandbox's idle timeout (idle_timeout_secs in a policy)")
            }
            Self::RaiseDeadline => {
                f.write_str("raise the sandbox's run deadline (deadline_secs in a policy)")
            }
            Self::RaiseOutputLimit => {
                f.write_str("raise the sandbox's output cap (max_output_mib in a policy)")
            }
            Self::RaiseLogLimit => {
                f.write_str("raise the sandbox's log cap (max_log_mib in a policy)")
            }
            Self::RaiseLineLimit => f.write_str(
                "raise the line limit (the write's max_line_bytes) if such records are expected",
            ),
            Self::AllowNet { endpoint } => {
                write!(f, "grant TCP to {endpoint} (allow_net in a policy)")
            }
            Self::CheckExecutablePath { path } => write!(
                f,
                "check the connector's executable path ({}), or install the connector",
                path.display()
            ),
            Self::CheckComponentPath { path } => {
                write!(f, "check the component file's path ({})", path.display())
            }
            Self::BuildComponent => f.write_str(
                "build it for the wasm32-wasip2 target (a component, not a core module)",
            ),
            Self::InstallConnector { package } => write!(
                f,
                "install {package} first, or allow installing missing connectors \
                 (install_if_missing)"
            ),
            Self::CheckPipPackage => f.write_str(
                "check the package name or URL, and that PyPI (or the URL) is reachable",
            ),
            Self::ProvideImage { image } => write!(
                f,
                "pull {image} where a registry is reachable and `docker load` it here, build \
                 it locally, or allow installing missing connectors (install_if_missing)"
            ),
            Self::StartDocker => f.write_str(
                "start the engine, or point DOCKER_HOST at yours (e.g. unix:///var/run/docker.sock)",
            ),
            Self::WaitForLease => f.write_str(
                "let that run end (its lease runs out unless it is renewed), or wait for it \
                 (SyncJob::wait_for_lease)",
            ),
            Self::DockerAttach => f.write_str(
                "run the connector over the engine's attach stream instead \
                 (DockerOptions::stdio = DockerStdio::Attach)",
            ),
            Self::LocateConnector => f.write_str(
                "name the connector's component file, executable or Docker image, put NAME.wasm \
                 in the plugins folder, or put the connector's executable on PATH",
            ),
            Self::UseAnotherCache => f.write_str("use another cache file"),
            Self::UseAnotherStateDatabase => f.write_str("use another state database"),
            Self::GiveSourceConfig => f.write_str("give the source a config"),
            Self::GiveDestinationConfig => f.write_str("give the destination a config"),
            Self::ChooseWriteStrategy => {
                f.write_str("write it with the append or replace strategy (or auto)")
            }
        }
    }
}
