//! The job folder: a connector's config, catalog and state as private files, and the
//! Airbyte CLI arguments that name them.
//!
//! Owns writing those files (mode 0600, in a 0700 temp folder removed when the run
//! ends). Each backend decides where the folder appears to the connector: as itself
//! for a local process, as `/job` inside a sandbox or container.

use std::ffi::OsString;
use std::io::Write as _;
use std::path::Path;

use serde::Serialize;

use super::Invocation;

/// The files of one run. Dropping it removes them.
#[derive(Debug)]
pub(crate) struct JobFolder {
    dir: tempfile::TempDir,
    files: Vec<(&'static str, &'static str)>,
    command: &'static str,
}

impl JobFolder {
    /// Writes the files `invocation` needs.
    pub fn write(invocation: &Invocation) -> std::io::Result<Self> {
        let dir = tempfile::Builder::new().prefix("airlock-job-").tempdir()?;
        let mut files = Vec::new();
        match invocation {
            Invocation::Spec => {}
            Invocation::Check { config, .. } => {
                write_private_json(dir.path(), "config.json", config)?;
                files.push(("--config", "config.json"));
            }
            Invocation::Discover { config, .. } => {
                write_private_json(dir.path(), "config.json", config)?;
                files.push(("--config", "config.json"));
            }
            Invocation::Write {
                config, catalog, ..
            }
            | Invocation::Read {
                config,
                catalog,
                state: None,
                ..
            } => {
                write_private_json(dir.path(), "config.json", config)?;
                write_private_json(dir.path(), "catalog.json", catalog)?;
                files.push(("--config", "config.json"));
                files.push(("--catalog", "catalog.json"));
            }
            Invocation::Read {
                config,
                catalog,
                state: Some(state),
                ..
            } => {
                write_private_json(dir.path(), "config.json", config)?;
                write_private_json(dir.path(), "catalog.json", catalog)?;
                write_private_json(dir.path(), "state.json", state)?;
                files.push(("--config", "config.json"));
                files.push(("--catalog", "catalog.json"));
                files.push(("--state", "state.json"));
            }
        }
        Ok(Self {
            dir,
            files,
            command: invocation.command(),
        })
    }

    /// The folder on the host.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Lets other users read the files (folder mode 0711: traversable, not
    /// listable; files 0644), for a container that runs as a non-root user.
    #[cfg(feature = "docker")]
    pub fn share_with_other_users(&self) -> std::io::Result<()> {
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(self.dir.path(), std::fs::Permissions::from_mode(0o711))?;
            for entry in std::fs::read_dir(self.dir.path())? {
                std::fs::set_permissions(entry?.path(), std::fs::Permissions::from_mode(0o644))?;
            }
        }
        Ok(())
    }

    /// The CLI arguments, with files named under `seen_as` (where the connector
    /// sees this folder).
    pub fn args(&self, seen_as: &Path) -> Vec<OsString> {
        let mut args: Vec<OsString> = vec![self.command.into()];
        for (flag, name) in &self.files {
            args.push((*flag).into());
            args.push(seen_as.join(name).into_os_string());
        }
        args
    }
}

/// Writes `value` as JSON to `dir/name` with mode 0600.
fn write_private_json(dir: &Path, name: &str, value: &impl Serialize) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(dir.join(name))?;
    serde_json::to_writer(&mut file, value)?;
    file.flush()
}
