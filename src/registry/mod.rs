//! `registry`: from a connector name and the user's executor options to an
//! [`Executor`].
//!
//! Owns the resolution order and the "what was tried" error. It does not run
//! anything. Explicit flags win; a bare name resolves in this documented order:
//!
//! 1. `--local-executable PATH`: that program (process executor);
//! 2. `--wasm PATH`: that component (WASM executor, sandboxed);
//! 3. a **built-in** plugin of that name (carried by the airlock binary, sandboxed:
//!    the three destinations and `source-faker`);
//! 4. the **plugins folder**: `$AIRLOCK_HOME/plugins/<name>.wasm` (sandboxed);
//! 5. an **executable** of that name on `PATH` (process executor);
//! 6. a **pip venv** `$AIRLOCK_HOME/venvs/<name>` (installed from PyPI as
//!    `airbyte-<name>` when `install_if_missing` is on);
//! 7. the **Docker image** `airbyte/<name>:<version or latest>` (Docker executor).
//!
//! `--docker-image [IMAGE]` and `--pip-url URL` pick their backend explicitly,
//! before the built-ins.

use std::path::{Path, PathBuf};

#[cfg(not(all(feature = "wasm", feature = "docker", feature = "pip")))]
use crate::executor::ExecutorErrorKind;
#[cfg(feature = "docker")]
use crate::executor::docker::{DockerExecutor, DockerOptions, image_reference};
#[cfg(feature = "pip")]
use crate::executor::pip::{PipExecutor, installed_spec, package_spec};
use crate::executor::process::ProcessExecutor;
use crate::executor::sandbox::SandboxPolicy;
#[cfg(feature = "wasm")]
use crate::executor::wasm::{WasmExecutor, WasmSource};
use crate::executor::{Executor, ExecutorError};

mod builder;

pub use builder::ConnectorBuilder;

#[cfg(feature = "wasm")]
include!(concat!(env!("OUT_DIR"), "/builtin_plugins.rs"));
/// Without the `wasm` feature nothing is built in.
#[cfg(not(feature = "wasm"))]
static BUILTIN_PLUGINS: &[(&str, &[u8])] = &[];

/// How the user asked for a connector to be run. Mirrors PyAirbyte's arguments.
#[derive(Debug, Clone, Default)]
pub struct ExecutorOptions {
    /// Run this local program.
    pub local_executable: Option<PathBuf>,
    /// Run this WebAssembly component.
    pub wasm: Option<PathBuf>,
    /// Run a Docker image: `Some("")` for `airbyte/<name>:<version or latest>`,
    /// `Some(image)` for that image.
    pub docker_image: Option<String>,
    /// Install from this pip requirement or URL into a venv (PyAirbyte's `pip_url`).
    pub pip_url: Option<String>,
    /// Docker settings (pulling, CPUs).
    #[cfg(feature = "docker")]
    pub docker: DockerOptions,
    /// The connector version wanted (used by backends that can pin one).
    pub version: Option<String>,
    /// Install a missing connector on first use.
    pub install_if_missing: bool,
    /// Environment for a local executable, beyond what it inherits.
    pub env: Vec<(String, String)>,
    /// The sandbox for WASM components. Without a local root, the default one
    /// ([`crate::home::local_root`]) is granted as `/local`.
    pub policy: Option<SandboxPolicy>,
}

impl ExecutorOptions {
    #[cfg_attr(
        not(any(feature = "wasm", feature = "docker")),
        allow(dead_code, reason = "only the sandboxed backends use it")
    )]
    fn sandbox(&self) -> SandboxPolicy {
        let policy = self.policy.clone().unwrap_or_default();
        match policy.local_root() {
            Some(_) => policy,
            None => policy.allow_local_root(crate::home::local_root()),
        }
    }
}

/// The names of the built-in plugins.
pub fn builtin_names() -> impl Iterator<Item = &'static str> {
    BUILTIN_PLUGINS.iter().map(|(name, _)| *name)
}

/// The component bytes of a built-in plugin.
pub fn builtin(name: &str) -> Option<&'static [u8]> {
    BUILTIN_PLUGINS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, bytes)| *bytes)
}

/// `$AIRLOCK_HOME/plugins`.
pub fn plugins_dir() -> PathBuf {
    crate::home::dir().join("plugins")
}

/// Resolves `name` to an executor, trying each way in order.
///
/// # Errors
/// An [`ExecutorError`] of kind
/// [`NotFound`](crate::executor::ExecutorErrorKind::NotFound) listing everything
/// tried, or naming the backend this build of airlock lacks (a cargo feature
/// turned off).
pub fn resolve(name: &str, options: &ExecutorOptions) -> Result<Box<dyn Executor>, ExecutorError> {
    if let Some(path) = &options.local_executable {
        return Ok(Box::new(process_executor(name, path.clone(), options)));
    }
    if let Some(path) = &options.wasm {
        #[cfg(feature = "wasm")]
        return Ok(Box::new(WasmExecutor::new(
            name,
            WasmSource::File(path.clone()),
            options.sandbox(),
        )));
        #[cfg(not(feature = "wasm"))]
        return Err(not_built_in(name, "wasm", &path.display().to_string()));
    }
    if let Some(image) = &options.docker_image {
        #[cfg(feature = "docker")]
        return Ok(Box::new(docker_executor(name, Some(image), options)));
        #[cfg(not(feature = "docker"))]
        return Err(not_built_in(name, "docker", image));
    }
    if let Some(url) = &options.pip_url {
        #[cfg(feature = "pip")]
        {
            let package = package_spec(name, Some(url), options.version.as_deref());
            return Ok(Box::new(PipExecutor::new(name, package, true)));
        }
        #[cfg(not(feature = "pip"))]
        return Err(not_built_in(name, "pip", url));
    }
    let mut tried = Vec::new();
    #[cfg(feature = "wasm")]
    {
        match builtin(name) {
            Some(bytes) => {
                return Ok(Box::new(WasmExecutor::new(
                    name,
                    WasmSource::Builtin(bytes),
                    options.sandbox(),
                )));
            }
            None => tried.push(format!(
                "a built-in plugin (built in: {})",
                builtin_names().collect::<Vec<_>>().join(", ")
            )),
        }
        let in_folder = plugins_dir().join(format!("{name}.wasm"));
        if in_folder.is_file() {
            return Ok(Box::new(WasmExecutor::new(
                name,
                WasmSource::File(in_folder),
                options.sandbox(),
            )));
        }
        tried.push(format!("the plugins folder: {}", in_folder.display()));
    }
    #[cfg(not(feature = "wasm"))]
    tried.push("built-in plugins and the plugins folder (this build has no `wasm` feature)".into());
    match find_on_path(name) {
        Some(path) => return Ok(Box::new(process_executor(name, path, options))),
        None => tried.push(format!("an executable named {name:?} on PATH")),
    }
    #[cfg(feature = "pip")]
    {
        let venv = crate::home::dir().join("venvs").join(name);
        if options.install_if_missing || venv.join("bin").join(name).is_file() {
            // A Python connector from PyPI: source-x is airbyte-source-x. Without a
            // version asked for, whatever is installed will do.
            let package = match (&options.version, installed_spec(name)) {
                (None, Some(installed)) => installed,
                (version, _) => package_spec(name, None, version.as_deref()),
            };
            return Ok(Box::new(PipExecutor::new(
                name,
                package,
                options.install_if_missing,
            )));
        }
        tried.push(format!(
            "a pip-installed venv at {} (installing airbyte-{name} needs install_if_missing)",
            venv.display()
        ));
    }
    #[cfg(feature = "docker")]
    return Ok(Box::new(
        docker_executor(name, None, options).as_fallback(tried),
    ));
    #[cfg(not(feature = "docker"))]
    {
        tried.push("a Docker image (this build has no `docker` feature)".into());
        Err(ExecutorError::new(
            name,
            ExecutorErrorKind::NotFound { tried },
        ))
    }
}

/// The error for a backend this build does not carry.
#[cfg(not(all(feature = "wasm", feature = "docker", feature = "pip")))]
#[allow(dead_code, reason = "used by whichever backends are turned off")]
fn not_built_in(name: &str, feature: &str, asked: &str) -> ExecutorError {
    ExecutorError::new(
        name,
        ExecutorErrorKind::NotFound {
            tried: vec![format!(
                "{asked} needs the `{feature}` backend, which this build of airlock was \
                 compiled without (all backends are cargo features, on by default)"
            )],
        },
    )
}

#[cfg(feature = "docker")]
fn docker_executor(name: &str, image: Option<&str>, options: &ExecutorOptions) -> DockerExecutor {
    let image = image_reference(name, image, options.version.as_deref());
    let docker = DockerOptions {
        install_if_missing: options.install_if_missing,
        ..options.docker.clone()
    };
    DockerExecutor::new(name, image, options.sandbox(), docker)
}

fn process_executor(name: &str, path: PathBuf, options: &ExecutorOptions) -> ProcessExecutor {
    options
        .env
        .iter()
        .fold(ProcessExecutor::new(name, path), |exec, (k, v)| {
            exec.env(k, v)
        })
}

/// The first executable file called `name` in the directories of `PATH`.
pub fn find_on_path(name: &str) -> Option<PathBuf> {
    if name.contains('/') {
        return None;
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    let Ok(meta) = std::fs::metadata(path) else {
        return false;
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        meta.is_file() && meta.permissions().mode() & 0o111 != 0
    }
    #[cfg(not(unix))]
    {
        meta.is_file()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(feature = "docker")]
    #[tokio::test]
    async fn an_unknown_name_lists_what_was_tried_in_order() {
        let exec = resolve(
            "destination-that-does-not-exist-anywhere",
            &ExecutorOptions::default(),
        )
        .expect("the Docker fallback");
        // With no engine, or an engine without the image, running it says what was tried.
        let err = exec.spec().await.expect_err("no such connector anywhere");
        let text = err.to_string();
        let builtin = text.find("built-in plugin").expect("built-in tried");
        let folder = text.find("plugins folder").expect("folder tried");
        let path = text.find("on PATH").expect("PATH tried");
        let docker = text
            .find("Docker image airbyte/destination-that-does-not-exist-anywhere:latest")
            .expect("Docker tried");
        assert!(builtin < folder && folder < path && path < docker, "{text}");
        assert_eq!(err.remedy(), Some(crate::remedy::Remedy::LocateConnector));
        assert!(text.contains("component file"), "{text}");
    }

    #[cfg(feature = "wasm")]
    #[test]
    fn the_builtins_are_carried() {
        for name in [
            "destination-dev-null",
            "destination-local-json",
            "destination-csv",
            "destination-postgres",
            "source-faker",
        ] {
            let bytes = builtin(name).unwrap_or_else(|| panic!("{name} built in"));
            assert!(
                bytes.starts_with(b"\0asm\x0d\0\x01\0"),
                "{name} is a component"
            );
        }
    }

    #[test]
    fn an_executable_on_path_is_found() {
        assert!(find_on_path("sh").is_some());
        assert!(find_on_path("./sh").is_none());
    }
}
