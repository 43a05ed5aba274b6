//! `registry`: from a connector name and the user's executor options to an
//! [`Executor`].
//!
//! Owns the resolution order and the "what was tried" error. It does not run
//! anything. The order today:
//!
//! 1. `--local-executable PATH` (or `.local_executable(..)`): that program;
//! 2. an executable named like the connector on `PATH`.
//!
//! Later backends (built-in WASM plugins, the plugins folder, Docker) slot in here.

use std::path::{Path, PathBuf};

use crate::executor::process::ProcessExecutor;
use crate::executor::{Executor, ExecutorError};

/// How the user asked for a connector to be run. Mirrors PyAirbyte's arguments.
#[derive(Debug, Clone, Default)]
pub struct ExecutorOptions {
    /// Run this local program.
    pub local_executable: Option<PathBuf>,
    /// The connector version wanted (used by backends that can pin one).
    pub version: Option<String>,
    /// Install a missing connector on first use.
    pub install_if_missing: bool,
    /// Environment for the connector, beyond what it inherits.
    pub env: Vec<(String, String)>,
}

/// Resolves `name` to an executor, trying each way in order.
///
/// # Errors
/// [`ExecutorError::NotFound`] listing everything tried.
pub fn resolve(name: &str, options: &ExecutorOptions) -> Result<Box<dyn Executor>, ExecutorError> {
    if let Some(path) = &options.local_executable {
        return Ok(Box::new(process_executor(name, path.clone(), options)));
    }
    let mut tried = Vec::new();
    match find_on_path(name) {
        Some(path) => return Ok(Box::new(process_executor(name, path, options))),
        None => tried.push(format!("an executable named {name:?} on PATH")),
    }
    Err(ExecutorError::NotFound {
        name: name.to_owned(),
        tried,
        hint: "pass --local-executable PATH, or put the connector's executable on PATH",
    })
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

    #[test]
    fn an_unknown_name_lists_what_was_tried() {
        let err = resolve(
            "destination-that-does-not-exist-anywhere",
            &ExecutorOptions::default(),
        )
        .expect_err("not found");
        let text = err.to_string();
        assert!(
            text.contains("on PATH") && text.contains("--local-executable"),
            "{text}"
        );
    }

    #[test]
    fn an_executable_on_path_is_found() {
        assert!(find_on_path("sh").is_some());
        assert!(find_on_path("./sh").is_none());
    }
}
