//! `context`: where a destination runs — as a plain local executable or
//! inside a sandbox with a `/local` folder — and how a configured path is
//! resolved for that place.

use std::ffi::OsString;
use std::path::PathBuf;

use crate::DestinationError;

/// The environment variable that the native entry point reads the local
/// root from (see [`Context::from_env`]). A Docker image sets it to `/local`.
pub const LOCAL_ROOT_ENV: &str = "AIRLOCK_LOCAL_ROOT";

/// The folder that sandboxed configurations name their files under, as in
/// Airbyte's Docker destinations.
const LOCAL_PREFIX: &str = "local";

/// Where the local root is inside a WASM sandbox: airlock preopens it as
/// `/local`, so a component sees its configured paths under their own names.
pub const SANDBOX_LOCAL_ROOT: &str = "/local";

/// Where a destination runs, as far as its configured paths are concerned.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Context {
    /// `None`: the destination runs as a plain local executable and a
    /// configured path is a host path, used as is.
    ///
    /// `Some(root)`: the destination is sandboxed (a WASM component or a
    /// Docker image); configured paths live under `/local`, which is the
    /// folder `root` as seen by the destination.
    pub local_root: Option<PathBuf>,
}

impl Context {
    /// A context for a plain local executable: paths are used as is.
    pub fn native() -> Self {
        Self { local_root: None }
    }

    /// A context for a sandbox whose `/local` is the folder `root`.
    pub fn sandboxed(root: impl Into<PathBuf>) -> Self {
        Self {
            local_root: Some(root.into()),
        }
    }

    /// The context of the CLI entry point ([`run_cli`](crate::run_cli)),
    /// read from [`LOCAL_ROOT_ENV`]:
    ///
    /// - set and not empty: sandboxed under the folder it names;
    /// - set but empty: native;
    /// - not set: native in a native build; in a `wasm32` build (the CLI
    ///   compiled as a `wasi:cli/command`, which runs in airlock's sandbox
    ///   with the local root preopened as `/local`) sandboxed under
    ///   [`SANDBOX_LOCAL_ROOT`].
    pub fn from_env() -> Self {
        Self::from_local_root_var(std::env::var_os(LOCAL_ROOT_ENV), Self::unset_default())
    }

    /// The context when [`LOCAL_ROOT_ENV`] is not set.
    fn unset_default() -> Self {
        if cfg!(target_arch = "wasm32") {
            Self::sandboxed(SANDBOX_LOCAL_ROOT)
        } else {
            Self::native()
        }
    }

    fn from_local_root_var(value: Option<OsString>, unset: Self) -> Self {
        match value {
            Some(root) if !root.is_empty() => Self::sandboxed(root),
            Some(_) => Self::native(),
            None => unset,
        }
    }

    /// Resolves a path taken from the configuration.
    ///
    /// Natively the path is returned as is. In a sandbox it is resolved the
    /// way Airbyte's file destinations do: a path that does not start with
    /// `/local` gets `/local` put in front of it, `.` and `..` are resolved
    /// lexically, and the result must still be inside `/local`; then
    /// `/local/<rest>` becomes `<local_root>/<rest>`.
    ///
    /// ```
    /// use airlock_plugin_sdk::Context;
    /// use std::path::Path;
    ///
    /// let ctx = Context::sandboxed("/srv/job/local");
    /// assert_eq!(ctx.resolve_local_path("/json_data")?, Path::new("/srv/job/local/json_data"));
    /// assert_eq!(ctx.resolve_local_path("/local/a/../b")?, Path::new("/srv/job/local/b"));
    /// assert!(ctx.resolve_local_path("../../etc").is_err());
    /// # Ok::<(), airlock_plugin_sdk::DestinationError>(())
    /// ```
    ///
    /// # Errors
    ///
    /// A [`FailureType::ConfigError`](crate::FailureType::ConfigError) when
    /// the path is empty, or, in a sandbox, when it leaves `/local`.
    pub fn resolve_local_path(&self, configured: &str) -> Result<PathBuf, DestinationError> {
        if configured.trim().is_empty() {
            return Err(DestinationError::config("the configured path is empty"));
        }
        let Some(root) = &self.local_root else {
            return Ok(PathBuf::from(configured));
        };
        // Sandboxed paths are POSIX paths inside the sandbox, whatever the host.
        let segments = configured.split('/').filter(|s| !s.is_empty() && *s != ".");
        let starts_under_local =
            configured.starts_with('/') && segments.clone().next() == Some(LOCAL_PREFIX);
        let mut parts: Vec<&str> = Vec::new();
        if !starts_under_local {
            parts.push(LOCAL_PREFIX);
        }
        for segment in segments {
            if segment == ".." {
                parts.pop();
            } else {
                parts.push(segment);
            }
        }
        if parts.first() != Some(&LOCAL_PREFIX) {
            return Err(DestinationError::config(format!(
                "the path {configured:?} resolves to \"/{}\", outside /local; it must stay inside /local",
                parts.join("/")
            )));
        }
        Ok(parts[1..]
            .iter()
            .fold(root.clone(), |path, part| path.join(part)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn sandbox() -> Context {
        Context::sandboxed("/root/local")
    }

    #[test]
    fn native_paths_are_used_as_is() {
        let ctx = Context::native();
        assert_eq!(
            ctx.resolve_local_path("../data/out").expect("ok"),
            Path::new("../data/out")
        );
        assert_eq!(
            ctx.resolve_local_path("/tmp/x").expect("ok"),
            Path::new("/tmp/x")
        );
    }

    #[test]
    fn sandboxed_paths_map_under_the_root() {
        let ctx = sandbox();
        for (configured, expected) in [
            ("/local", "/root/local"),
            ("/local/", "/root/local"),
            ("/local/json_data", "/root/local/json_data"),
            ("/json_data", "/root/local/json_data"),
            ("json_data", "/root/local/json_data"),
            ("./a/./b", "/root/local/a/b"),
            ("/local/a/../b", "/root/local/b"),
            ("/localfoo", "/root/local/localfoo"),
            ("/local/../local/x", "/root/local/x"),
            ("a/..", "/root/local"),
        ] {
            assert_eq!(
                ctx.resolve_local_path(configured).expect(configured),
                Path::new(expected),
                "{configured}"
            );
        }
    }

    #[test]
    fn escaping_local_is_refused_as_a_config_error() {
        let ctx = sandbox();
        for configured in [
            "..",
            "../etc",
            "/local/..",
            "/local/../etc/passwd",
            "a/../../b",
        ] {
            let err = ctx.resolve_local_path(configured).expect_err(configured);
            assert_eq!(err.failure_type, crate::FailureType::ConfigError);
            assert!(err.message.contains(configured), "{}", err.message);
            assert!(err.message.contains("inside /local"), "{}", err.message);
        }
    }

    #[test]
    fn empty_paths_are_refused() {
        assert!(Context::native().resolve_local_path("").is_err());
        assert!(sandbox().resolve_local_path("  ").is_err());
    }

    #[test]
    fn from_env_reads_the_local_root_variable() {
        let unset = Context::sandboxed("/default");
        assert_eq!(
            Context::from_local_root_var(None, unset.clone()),
            Context::sandboxed("/default")
        );
        assert_eq!(
            Context::from_local_root_var(Some(OsString::new()), unset.clone()),
            Context::native()
        );
        assert_eq!(
            Context::from_local_root_var(Some("/srv/local".into()), unset),
            Context::sandboxed("/srv/local")
        );
    }

    #[test]
    fn an_unset_variable_means_native_natively_and_local_in_wasm() {
        let expected = if cfg!(target_arch = "wasm32") {
            Context::sandboxed("/local")
        } else {
            Context::native()
        };
        assert_eq!(Context::unset_default(), expected);
    }
}
