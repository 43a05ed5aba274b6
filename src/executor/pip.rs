//! The pip backend: a Python connector installed from PyPI (or any pip URL) into its
//! own virtual environment under airlock's home, then run as a local process — as
//! PyAirbyte's venv executor does.
//!
//! Owns the venv's life: create, install, reuse while the requested package spec is
//! unchanged, reinstall when it changes, remove on uninstall, and [`PipError`] (the
//! install failed or is missing). Running is the [`ProcessExecutor`]'s job.

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use tokio::process::Command;

use super::process::ProcessExecutor;
use super::{Executor, ExecutorError, Invocation, LogTail, Session};
use crate::remedy::Remedy;

/// The pip backend could not provide the connector.
#[derive(Debug, thiserror::Error)]
pub enum PipError {
    /// Installing the connector failed.
    #[error(
        "installing {package} failed while {step}{log_tail}\nfix: {}",
        Remedy::CheckPipPackage
    )]
    InstallFailed {
        /// The pip requirement or URL.
        package: String,
        /// The step that failed.
        step: &'static str,
        /// Its last output lines.
        log_tail: LogTail,
    },

    /// The connector is not installed, and installing it was not allowed.
    #[error(
        "{package} is not installed in {}\nfix: {}",
        venv.display(),
        Remedy::InstallConnector { package: package.clone() }
    )]
    NotInstalled {
        /// The pip requirement or URL.
        package: String,
        /// Where it would be.
        venv: PathBuf,
    },
}

impl PipError {
    /// How to fix it.
    pub fn remedy(&self) -> Option<Remedy> {
        Some(match self {
            Self::InstallFailed { .. } => Remedy::CheckPipPackage,
            Self::NotInstalled { package, .. } => Remedy::InstallConnector {
                package: package.clone(),
            },
        })
    }
}

/// The marker recording what a venv was installed with.
const MARKER: &str = ".airlock-installed";

/// A Python connector in its own virtual environment.
#[derive(Debug, Clone)]
pub struct PipExecutor {
    connector: String,
    package: String,
    venv: PathBuf,
    install_if_missing: bool,
}

/// The pip package for `name`: `pip_url` if given, else `airbyte-<name>` pinned to
/// `version` when one is asked for.
///
/// ```
/// use airlock::executor::pip::package_spec;
/// assert_eq!(package_spec("source-faker", None, None), "airbyte-source-faker");
/// assert_eq!(package_spec("source-faker", None, Some("7.2.1")), "airbyte-source-faker==7.2.1");
/// assert_eq!(package_spec("x", Some("git+https://example.org/x.git"), Some("1")), "git+https://example.org/x.git");
/// ```
pub fn package_spec(name: &str, pip_url: Option<&str>, version: Option<&str>) -> String {
    match (pip_url.filter(|u| !u.is_empty()), version) {
        (Some(url), _) => url.to_owned(),
        (None, Some(version)) => format!("airbyte-{name}=={version}"),
        (None, None) => format!("airbyte-{name}"),
    }
}

/// The package spec the venv of `connector` was installed with, if any.
pub fn installed_spec(connector: &str) -> Option<String> {
    std::fs::read_to_string(
        crate::home::dir()
            .join("venvs")
            .join(connector)
            .join(MARKER),
    )
    .ok()
}

impl PipExecutor {
    /// An executor for `connector` installed from `package` (a pip requirement or
    /// URL) into `<home>/venvs/<connector>`.
    pub fn new(
        connector: impl Into<String>,
        package: impl Into<String>,
        install_if_missing: bool,
    ) -> Self {
        let connector = connector.into();
        let venv = crate::home::dir().join("venvs").join(&connector);
        Self {
            connector,
            package: package.into(),
            venv,
            install_if_missing,
        }
    }

    /// Keeps the venv in `folder/<connector>` instead of under airlock's home.
    pub fn venvs_folder(mut self, folder: impl Into<PathBuf>) -> Self {
        self.venv = folder.into().join(&self.connector);
        self
    }

    /// The virtual environment's folder.
    pub fn venv(&self) -> &Path {
        &self.venv
    }

    fn program(&self) -> PathBuf {
        self.venv.join("bin").join(&self.connector)
    }

    /// Whether the venv holds this package spec.
    fn installed(&self) -> bool {
        std::fs::read_to_string(self.venv.join(MARKER)).is_ok_and(|spec| spec == self.package)
            && self.program().is_file()
    }

    async fn step(
        &self,
        what: &'static str,
        program: &Path,
        args: &[&str],
    ) -> Result<(), ExecutorError> {
        let output = Command::new(program)
            .args(args)
            .output()
            .await
            .map_err(|source| ExecutorError::io(&self.connector, what, source))?;
        if output.status.success() {
            return Ok(());
        }
        let text = String::from_utf8_lossy(&output.stderr);
        let tail: Vec<String> = text
            .lines()
            .rev()
            .take(10)
            .map(str::to_owned)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        Err(ExecutorError::new(
            &self.connector,
            PipError::InstallFailed {
                package: self.package.clone(),
                step: what,
                log_tail: LogTail(tail),
            },
        ))
    }
}

#[async_trait]
impl Executor for PipExecutor {
    fn connector(&self) -> &str {
        &self.connector
    }

    async fn install(&self) -> Result<(), ExecutorError> {
        if self.installed() {
            return Ok(());
        }
        if self.venv.exists() {
            self.uninstall().await?;
        }
        tracing::info!(connector = %self.connector, package = %self.package, venv = %self.venv.display(), "installing");
        let venv = self.venv.to_string_lossy().into_owned();
        self.step(
            "creating the virtual environment (python3 -m venv)",
            Path::new("python3"),
            &["-m", "venv", &venv],
        )
        .await?;
        let pip = self.venv.join("bin").join("pip");
        self.step(
            "pip install",
            &pip,
            &[
                "install",
                "--quiet",
                "--disable-pip-version-check",
                &self.package,
            ],
        )
        .await?;
        if !self.program().is_file() {
            return Err(ExecutorError::new(
                &self.connector,
                PipError::InstallFailed {
                    package: self.package.clone(),
                    step: "finding the connector's console script",
                    log_tail: LogTail(vec![format!(
                        "{} does not exist after installing",
                        self.program().display()
                    )]),
                },
            ));
        }
        std::fs::write(self.venv.join(MARKER), &self.package)
            .map_err(|source| ExecutorError::io(&self.connector, "recording the install", source))
    }

    async fn uninstall(&self) -> Result<(), ExecutorError> {
        match std::fs::remove_dir_all(&self.venv) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(ExecutorError::io(
                &self.connector,
                "removing the venv",
                source,
            )),
        }
    }

    async fn version(&self) -> Result<Option<String>, ExecutorError> {
        if !self.installed() {
            return Ok(None);
        }
        let pip = self.venv.join("bin").join("pip");
        let name = format!("airbyte-{}", self.connector);
        let output = Command::new(pip).args(["show", &name]).output().await.ok();
        Ok(output.and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .find_map(|l| l.strip_prefix("Version: ").map(str::to_owned))
        }))
    }

    async fn run(&self, invocation: Invocation) -> Result<Session, ExecutorError> {
        if !self.installed() {
            if !self.install_if_missing {
                return Err(ExecutorError::new(
                    &self.connector,
                    PipError::NotInstalled {
                        package: self.package.clone(),
                        venv: self.venv.clone(),
                    },
                ));
            }
            self.install().await?;
        }
        ProcessExecutor::new(&self.connector, self.program())
            .run(invocation)
            .await
    }
}
